"""The policy update of one training iteration: PPO-style epochs over minibatches.

The rollout policy's token log-probabilities are recomputed once per update (so the ratio of
the first minibatch is exactly 1, whatever the sampler's numerics), then each of
``config.ppo_epochs`` passes shuffles the sequences into minibatches, each minibatch is split into
``config.grad_accumulation`` micro-batches, and one optimiser step is taken per minibatch. The
loss is the clipped surrogate (:mod:`turngym.trainers.losses`) minus the entropy bonus, plus the
EPO smoothing term and the KL penalty to a frozen reference when configured.

Micro-batch losses are rescaled so the accumulated gradient equals the whole minibatch's: this
is what makes ``grad_accumulation`` a memory knob, not a change of algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from turngym.trainers.config import TrainConfig
from turngym.trainers.losses import aggregate, clipped_surrogate, kl_penalty
from turngym.trainers.policy import sequence_token_logprobs
from turngym.trainers.regularisers import EPOSmoothing, token_turns
from turngym.trainers.tokens import TrainingSequence, collate

__all__ = ["PolicyUpdate"]


class PolicyUpdate:
    """Runs the optimiser over one iteration's training sequences.

    Args:
        config: The run's configuration (epochs, minibatch, clip, entropy, KL, aggregation).
        model: The policy being trained.
        optimizer: Its optimiser.
        pad_token_id: The tokenizer's pad id (collation).
        device: Where the model lives.
        allowed_ids: The action vocabulary's token ids under restricted decoding (the policy is
            the softmax over them), or ``None``.
        reference: A frozen copy of the initial policy for the KL penalty, or ``None``.
        epo: EPO entropy smoothing (:mod:`turngym.trainers.regularisers`), or ``None``.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: Any,
        optimizer: torch.optim.Optimizer,
        *,
        pad_token_id: int,
        device: torch.device,
        allowed_ids: list[int] | None = None,
        reference: Any = None,
        epo: EPOSmoothing | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.optimizer = optimizer
        self.pad_token_id = pad_token_id
        self.device = device
        self.allowed_ids = allowed_ids
        self.reference = reference
        self.epo = epo

    def __call__(self, sequences: Sequence[TrainingSequence], iteration: int) -> dict[str, float]:
        """Update on ``sequences``; returns mean minibatch metrics and step counts.

        Minibatches whose sequences carry no advantage signal are skipped when
        ``config.skip_without_signal`` is set (they would only move the entropy and KL terms).
        """
        cfg = self.config
        old = self.logprobs(self.model, sequences)
        ref = self.logprobs(self.reference, sequences) if self.reference is not None else None
        rng = np.random.default_rng([cfg.seed, iteration, 3])
        signal = np.array([any(a != 0 for a in s.advantages) for s in sequences])
        sums: dict[str, float] = {}
        n_steps = n_skipped = 0
        self.model.train()
        for _ in range(cfg.ppo_epochs):
            order = rng.permutation(len(sequences))
            for start in range(0, len(order), cfg.minibatch_size):
                chosen = order[start : start + cfg.minibatch_size]
                if cfg.skip_without_signal and not signal[chosen].any():
                    n_skipped += 1
                    continue
                for k, v in self._minibatch_step(sequences, chosen, old, ref, iteration).items():
                    sums[k] = sums.get(k, 0.0) + v
                n_steps += 1
        self.model.eval()
        if self.epo is not None:
            self.epo.end_iteration()
        out = {k: v / max(n_steps, 1) for k, v in sums.items()}
        out["optimizer_steps"] = float(n_steps)
        out["skipped_steps"] = float(n_skipped)
        return out

    @torch.no_grad()
    def logprobs(self, model: Any, sequences: Sequence[TrainingSequence]) -> list[torch.Tensor]:
        """Per-sequence token log-probs under ``model`` (e.g. the rollout policy's, recomputed)."""
        out: list[torch.Tensor] = []
        model.eval()
        for start in range(0, len(sequences), self.config.minibatch_size):
            chunk = sequences[start : start + self.config.minibatch_size]
            logp, _ = sequence_token_logprobs(model, chunk, allowed_ids=self.allowed_ids)
            out.extend(logp[i, : len(s)].float().cpu() for i, s in enumerate(chunk))
        return out

    def _minibatch_step(
        self,
        sequences: Sequence[TrainingSequence],
        chosen: np.ndarray,
        old: list[torch.Tensor],
        ref: list[torch.Tensor] | None,
        iteration: int,
    ) -> dict[str, float]:
        cfg = self.config
        micro = np.array_split(chosen, min(cfg.grad_accumulation, len(chosen)))
        totals = _normalisers([sequences[i] for i in chosen])
        metrics: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        for part in micro:
            seqs = [sequences[i] for i in part]
            old_part = [old[i] for i in part]
            ref_part = None if ref is None else [ref[i] for i in part]
            loss, m = self._micro_loss(seqs, old_part, ref_part, totals, iteration)
            loss.backward()
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0.0) + v * len(part) / len(chosen)
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.max_grad_norm > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        self.optimizer.step()
        return metrics

    def _micro_loss(self, seqs: list[TrainingSequence], old: list[torch.Tensor],
                    ref: list[torch.Tensor] | None, totals: dict[str, float],
                    iteration: int) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
        cfg = self.config
        batch = collate(seqs, self.pad_token_id, device=self.device)
        mask = batch["loss_mask"]
        # Sequences sharing a prompt (the G episodes' first turns) encode it once (Prefix Grouper).
        logp, entropy = sequence_token_logprobs(
            self.model, seqs, with_entropy=True, allowed_ids=self.allowed_ids
        )
        old_lp = _pad(old, mask.shape[1]).to(self.device)
        weights = torch.tensor([s.weight for s in seqs], dtype=mask.dtype, device=self.device)
        clip_low, clip_high = _clip_tensors(batch, cfg)
        surrogate, m = clipped_surrogate(
            logp, old_lp, batch["advantages"], mask * weights[:, None], clip_low=clip_low,
            clip_high=clip_high, dual_clip=cfg.dual_clip, aggregation=cfg.aggregation,
            loss_scale=totals["max_len"],
        )  # fmt: skip
        # Rescale the micro-batch's aggregate so the accumulated gradient equals the full
        # minibatch's (token-mean weighs by valid tokens, seq-mean modes by sequences).
        share = _share(cfg.aggregation, mask, totals)
        loss = surrogate * share
        assert entropy is not None  # asked for with_entropy=True
        ent = aggregate(entropy, mask, cfg.aggregation, loss_scale=totals["max_len"])
        m["entropy"] = float(ent.detach())
        if cfg.entropy_coef:
            loss = loss - cfg.entropy_coef * ent * share
        if self.epo is not None:
            turns = token_turns(seqs, mask.shape[1]).to(self.device)
            term = self.epo.term(entropy, mask, turns, iteration)
            if term is not None:
                loss = loss + cfg.entropy_coef * term * share
                m["epo_term"] = float(term.detach())
        if ref is not None:
            ref_lp = _pad(ref, mask.shape[1]).to(self.device)
            kl = aggregate(kl_penalty(logp, ref_lp, cfg.kl_estimator), mask, cfg.aggregation,
                           loss_scale=totals["max_len"])  # fmt: skip
            loss = loss + cfg.kl_coef * kl * share
            m["kl_ref"] = float(kl.detach())
        m["loss"] = float(loss.detach() / share) if share else 0.0
        return loss, m


def _normalisers(seqs: Sequence[TrainingSequence]) -> dict[str, float]:
    """The minibatch's totals the aggregation modes divide by."""
    return {
        "tokens": float(sum(s.num_trainable for s in seqs)),
        "seqs": float(sum(s.num_trainable > 0 for s in seqs)),
        "max_len": float(max(len(s) for s in seqs)),
    }


def _share(aggregation: str, mask: torch.Tensor, totals: dict[str, float]) -> float:
    """A micro-batch's share of its minibatch under ``aggregation``."""
    if aggregation == "token-mean":
        return float(mask.sum()) / max(totals["tokens"], 1.0)
    if aggregation == "seq-mean-token-sum-norm":
        return 1.0
    return float((mask.sum(-1) > 0).sum()) / max(totals["seqs"], 1.0)


def _clip_tensors(batch: dict[str, torch.Tensor], cfg: TrainConfig) -> tuple[Any, Any]:
    """Per-token clip ranges when the estimator gave them (A²TGPO), else the config's."""
    low = batch.get("clip_low")
    high = batch.get("clip_high")
    return (cfg.clip_low if low is None else low), (cfg.clip_high if high is None else high)


def _pad(rows: list[torch.Tensor], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:length]
    return out
