"""Regularisers the trainer adds to the loss besides the entropy bonus and the KL: EPO.

EPO (Xu et al. 2025, "EPO: Entropy-regularized Policy Optimization for LLM Agents
Reinforcement Learning", arXiv 2509.22576) keeps each turn's policy entropy within a band
around the historical mean entropy of the same turn index. :class:`EPOSmoothing` keeps that
history across iterations (it is saved with the trainer's checkpoint) and builds the term of
:func:`turngym.trainers.losses.epo_smoothing` for a minibatch. The loss becomes
``pg - entropy_coef * (H - smooth_coef * w * M)`` as in the released code, with ``w`` the
phase weight of :func:`~turngym.trainers.losses.epo_weight` when a schedule is set.

The released code's term carries no gradient (it is built from constants); the paper's
intent, a penalty that pushes the entropy back into the band, is the UNVERIFIED option
``differentiable=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from turngym.trainers.config import EPO_OPTIONS, check_epo_options
from turngym.trainers.losses import epo_smoothing, epo_weight
from turngym.trainers.tokens import TrainingSequence

__all__ = ["EPO_OPTIONS", "check_epo_options", "EPOSmoothing", "token_turns"]

def token_turns(sequences: Sequence[TrainingSequence], width: int) -> torch.Tensor:
    """``(B, width)`` turn index of every trainable token (-1 elsewhere).

    The trainable tokens of a sequence come in runs, one per entry of ``turn_indices``.
    """
    out = torch.full((len(sequences), width), -1, dtype=torch.long)
    for row, seq in enumerate(sequences):
        run, inside = -1, False
        for j, trainable in enumerate(seq.loss_mask):
            if trainable and not inside:
                run += 1
            inside = bool(trainable)
            if trainable:
                out[row, j] = seq.turn_indices[min(run, len(seq.turn_indices) - 1)]
    return out


class EPOSmoothing:
    """EPO's entropy history and smoothing term (module docstring).

    Args:
        options: Validated options (:func:`check_epo_options`).
        state: The trainer's persistent state dict; the history lives under ``"epo"`` there,
            so it is checkpointed and resumed with the run.
    """

    def __init__(self, options: Mapping[str, Any], state: dict[str, Any]) -> None:
        self.options = dict(options)
        self.state = state
        self._pending: dict[int, list[float]] = {}

    def _history(self) -> dict[str, list[float]]:
        return self.state.setdefault("epo", {"sum": [], "count": []})

    def mean_entropy(self, turns: torch.Tensor) -> torch.Tensor | None:
        """Historical mean entropy ``H_bar`` of each token's turn index (``None``: no history)."""
        history = self._history()
        if not history["count"]:
            return None
        sums = torch.tensor(history["sum"], dtype=torch.float32)
        counts = torch.tensor(history["count"], dtype=torch.float32).clamp(min=1)
        means = sums / counts
        # A turn index never seen before borrows the last known turn's mean.
        index = turns.clamp(min=0, max=len(means) - 1)
        return means[index]

    def term(self, entropy: torch.Tensor, mask: torch.Tensor, turns: torch.Tensor,
             iteration: int) -> torch.Tensor | None:  # fmt: skip
        """``smooth_coef * w * M`` for a minibatch, and record its entropies for the history."""
        self._record(entropy.detach(), mask, turns)
        history = self.mean_entropy(turns)
        if history is None:
            return None
        o = self.options
        m = epo_smoothing(entropy, mask, history.to(entropy.device), kappa_low=o["kappa_low"],
                          kappa_high=o["kappa_high"], penalty=o["penalty"],
                          differentiable=o["differentiable"])  # fmt: skip
        weight = epo_weight(iteration, o["schedule_epochs"]) if o["schedule_epochs"] else 1.0
        return o["smooth_coef"] * weight * m

    def _record(self, entropy: torch.Tensor, mask: torch.Tensor, turns: torch.Tensor) -> None:
        live = mask.bool().cpu() & (turns >= 0)
        values, index = entropy.cpu()[live], turns[live]
        for t in index.unique().tolist():
            self._pending.setdefault(int(t), []).append(float(values[index == t].mean()))

    def end_iteration(self) -> None:
        """Fold this iteration's per-turn mean entropies into the history."""
        history = self._history()
        for t, values in sorted(self._pending.items()):
            while len(history["sum"]) <= t:
                history["sum"].append(0.0)
                history["count"].append(0)
            history["sum"][t] += sum(values) / len(values)
            history["count"][t] += 1
        self._pending.clear()
