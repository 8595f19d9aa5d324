"""Update schedules: which training sequences are updated in which order.

A method's ``schedule`` picks one of :data:`schedule_registry`. The trainer hands the schedule
its sequences and two callables, ``optimize(sequences, iteration) -> metrics`` (its usual
minibatch PPO pass over those sequences) and ``logprobs(sequences) -> list[Tensor]`` (the
current policy's token log-probabilities), and never asks which schedule it has.

* ``joint`` — :class:`JointSchedule`: everything in one pass (the default).
* ``reverse_turn`` — :class:`ReverseTurnSchedule`: SeeUPO's sequential per-turn updates in
  reverse turn order with the clipped sequence-ratio correction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from turngym.registry import Registry
from turngym.trainers.credit.seeupo import mirror_ratio
from turngym.trainers.tokens import TrainingSequence

__all__ = ["schedule_registry", "JointSchedule", "ReverseTurnSchedule"]

schedule_registry: Registry[type] = Registry("update schedule")
"""Schedule classes by name; built with ``cls(**params)``."""

Optimize = Callable[[Sequence[TrainingSequence], int], dict[str, float]]
LogProbs = Callable[[Sequence[TrainingSequence]], list[Any]]


class JointSchedule:
    """All sequences of the iteration in one minibatch pass (the trainer's usual update)."""

    needs_turn_sequences = False

    def update(self, sequences: Sequence[TrainingSequence], iteration: int, *,
               optimize: Optimize, logprobs: LogProbs) -> dict[str, float]:  # fmt: skip
        """Run ``optimize`` once over everything."""
        return optimize(sequences, iteration)


class ReverseTurnSchedule:
    """SeeUPO's backward-induction update (arXiv 2602.06554; AgentEvolver ``seeupo`` branch).

    Turn ``T-1`` is updated first, then ``T-2``, ..., ``0``, each on the sequences of that
    turn only. After updating turn ``t`` the mean token log-ratio (after vs before that
    update) of each sequence gives a per-episode sequence ratio, and the running product
    ``M`` (:func:`~turngym.trainers.credit.seeupo.mirror_ratio`, clamped to
    ``[1 - eps_low, 1 + eps_high]`` twice) multiplies the advantages of the same episode's
    earlier turns, so an earlier turn accounts for how its later turns' policy moved (the
    HAML correction). Episodes that ended before turn ``t`` have no sample there; their
    ratio starts at their last turn. Needs one sequence per turn (``sequence_mode="turn"``).

    Args:
        eps_low: Lower clip of the ratio (``adv_clip_ratio_low``).
        eps_high: Upper clip (``adv_clip_ratio_high``).
    """

    needs_turn_sequences = True

    def __init__(self, *, eps_low: float = 0.2, eps_high: float = 0.2) -> None:
        if not 0 <= eps_low < 1 or eps_high < 0:
            raise ValueError(f"eps_low must be in [0, 1) and eps_high >= 0, got {eps_low}, "
                             f"{eps_high}")  # fmt: skip
        self.eps_low, self.eps_high = eps_low, eps_high

    def update(self, sequences: Sequence[TrainingSequence], iteration: int, *,
               optimize: Optimize, logprobs: LogProbs) -> dict[str, float]:  # fmt: skip
        """Update turn by turn, last turn first; returns the per-turn metrics averaged."""
        by_turn: dict[int, list[TrainingSequence]] = {}
        for seq in sequences:
            if len(seq.turn_indices) != 1:
                raise ValueError("reverse_turn updates need one sequence per turn; set "
                                 "sequence_mode='turn'")  # fmt: skip
            by_turn.setdefault(seq.turn_indices[0], []).append(seq)
        ratio: dict[int, float] = {}  # episode index -> M
        sums: dict[str, float] = {}
        for turn in sorted(by_turn, reverse=True):
            batch = [_scaled(s, ratio.get(s.episode_index)) for s in by_turn[turn]]
            before = logprobs(batch)
            for key, value in optimize(batch, iteration).items():
                sums[key] = sums.get(key, 0.0) + value
            after = logprobs(batch)
            log_ratio = np.array([_mean_log_ratio(s, b, a) for s, b, a in
                                  zip(batch, before, after, strict=True)])  # fmt: skip
            prev = np.array([ratio.get(s.episode_index, 1.0) for s in batch])
            m = mirror_ratio(prev, log_ratio, self.eps_low, self.eps_high)
            ratio.update({s.episode_index: float(v) for s, v in zip(batch, m, strict=True)})
        out = {k: v / max(len(by_turn), 1) for k, v in sums.items()}
        out["seeupo_turn_updates"] = float(len(by_turn))
        out["seeupo_ratio_mean"] = float(np.mean(list(ratio.values()))) if ratio else 1.0
        return out


def _scaled(seq: TrainingSequence, m: float | None) -> TrainingSequence:
    if m is None or m == 1.0:
        return seq
    return dataclasses.replace(seq, advantages=tuple(a * m for a in seq.advantages))


def _mean_log_ratio(seq: TrainingSequence, before: Any, after: Any) -> float:
    mask = np.asarray(seq.loss_mask, bool)[: len(before)]
    diff = (after - before).double().numpy()[: mask.size]
    return float(diff[mask].mean()) if mask.any() else 0.0


schedule_registry.register("joint", JointSchedule)
schedule_registry.register("reverse_turn", ReverseTurnSchedule)
