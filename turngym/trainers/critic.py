"""Learned turn-level critics: the ``critic`` part of a training method.

A critic is built by the trainer when the method declares one
(``register_estimator(..., critic="value")``) and handed to the estimator as
``CreditContext.critic``. Every critic answers ``values(batch) ->``
:class:`~turngym.trainers.credit.values.TurnValues` and has two hooks around the estimator:

* ``before_credit(batch)`` — off-policy critics learn here, so the advantages of this
  iteration already use the updated critic (ArCHer trains its critic first);
* ``after_credit(batch, credit)`` — on-policy critics regress on ``credit.value_targets``
  (returns the estimator computed from this iteration's values).

Both return metrics (``critic_value_loss``, ``critic_explained_var``, ...). ``state_dict`` /
``load_state_dict`` put the critic (weights, optimiser, replay buffer) into checkpoints.

Built-ins (:data:`critic_registry`):

* ``value`` — :class:`ValueCritic`: value heads on a transformer trunk, either the policy's own
  (``model="shared"``: heads on its last hidden states) or a separate small model
  (``"separate"``: a fresh small Llama for the tiny models, a copy of the policy's trunk
  otherwise). PPO's clipped value loss, its own learning rate.
* ``twin_q`` — :class:`TwinQCritic`: ArCHer's twin Q/V critic with a Polyak target copy and a
  replay buffer of (state, action, reward, next state, done) token sequences.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from turngym.registry import Registry
from turngym.trainers.credit.types import Credit, TurnBatch
from turngym.trainers.credit.values import TurnValues
from turngym.types import Turn

__all__ = ["critic_registry", "ValueCritic", "explained_variance"]

critic_registry: Registry[type] = Registry("critic")
"""Critic classes by name; built with ``cls(policy, tokenizer, *, seed, device, small,
**params)``."""


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """``1 - Var(target - predicted) / Var(target)`` (0 when the targets are constant).

    Example:
        >>> round(explained_variance(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])), 4)
        0.8571
    """
    var = float(np.var(target)) if target.size else 0.0
    return 0.0 if var < 1e-12 else 1.0 - float(np.var(target - predicted)) / var


def _small_trunk(policy: Any, d_model: int, layers: int, seed: int) -> torch.nn.Module:
    """A fresh small Llama over the policy's vocabulary, drawn from a local generator."""
    from transformers import LlamaConfig, LlamaModel

    cfg = policy.config
    config = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=d_model,
                         intermediate_size=4 * d_model, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=cfg.max_position_embeddings,
                         pad_token_id=cfg.pad_token_id)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        model = LlamaModel(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            if param.ndim >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * param.shape[-1] ** -0.5)
    return model


class _TokenCritic:
    """Heads on a trunk, scored at every position of each turn (see ``credit/values.py``)."""

    def __init__(self, policy: Any, tokenizer: Any, *, heads: Sequence[str],
                 model: Literal["separate", "shared"], input: Literal["prompt", "observation"],
                 d_model: int, layers: int, lr: float, seed: int, device: Any,
                 small: bool, batch_rows: int = 64) -> None:  # fmt: skip
        if model not in ("separate", "shared"):
            raise ValueError(f"critic model must be 'separate' or 'shared', got {model!r}")
        if input not in ("prompt", "observation"):
            raise ValueError(f"critic input must be 'prompt' or 'observation', got {input!r}")
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"critic heads must be distinct names, got {list(heads)}")
        self.head_names = tuple(heads)
        self.shared = model == "shared"
        self.input = input
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.seed = seed
        self.batch_rows = batch_rows
        self.policy = policy
        if self.shared:
            self.trunk = None
            width = policy.config.hidden_size
        elif small:
            self.trunk = _small_trunk(policy, d_model, layers, seed).to(self.device)
            width = d_model
        else:
            self.trunk = copy.deepcopy(policy.base_model).to(self.device)
            width = policy.config.hidden_size
        self.heads = torch.nn.Linear(width, len(self.head_names)).to(self.device)
        torch.nn.init.zeros_(self.heads.weight)  # V = 0 everywhere before any update
        torch.nn.init.zeros_(self.heads.bias)
        self.optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.0)
        self._cache: tuple[TurnBatch, TurnValues, list[tuple[list[int], int, int]]] | None = None
        self._decoded: dict[int, str] = {}

    def parameters(self) -> list[torch.nn.Parameter]:
        """The critic's trainable parameters (never the policy's)."""
        params = list(self.heads.parameters())
        return params + (list(self.trunk.parameters()) if self.trunk is not None else [])

    # --- Scoring --------------------------------------------------------------------------------
    def _rows(self, turn: Turn) -> tuple[list[int], int, int]:
        """(token ids, index of position 0, number of positions) of one turn."""
        if self.input == "prompt" and turn.trace is not None and turn.trace.prompt_ids:
            prompt, completion = list(turn.trace.prompt_ids), list(turn.trace.completion_ids)
            return prompt + completion, len(prompt) - 1, len(completion) + 1
        ids = list(self.tokenizer(turn.observation or " ")["input_ids"]) or [0]
        return ids, len(ids) - 1, 1

    def _hidden(self, ids: list[list[int]], trunk: Any) -> torch.Tensor:
        width = max(len(x) for x in ids)
        tokens = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros_like(tokens)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = torch.as_tensor(row)
            mask[i, : len(row)] = 1
        out = trunk(input_ids=tokens.to(self.device), attention_mask=mask.to(self.device))
        return out.last_hidden_state

    def _outputs(self, rows: Sequence[tuple[list[int], int, int]], *, trunk: Any = None,
                 heads: Any = None) -> list[torch.Tensor]:  # fmt: skip
        """Head outputs ``(positions, n_heads)`` per row; gradients flow into the critic."""
        trunk = trunk if trunk is not None else self.trunk
        heads = heads if heads is not None else self.heads
        if trunk is None:  # shared: the policy's features, which the critic does not train
            with torch.no_grad():
                hidden = self._hidden([r[0] for r in rows], self.policy.base_model)
        else:
            hidden = self._hidden([r[0] for r in rows], trunk)
        values = heads(hidden.float())
        return [values[i, start : start + n] for i, (_, start, n) in enumerate(rows)]

    def _pieces(self, turn: Turn) -> tuple[str, ...]:
        ids = turn.trace.completion_ids if turn.trace is not None else ()
        missing = [i for i in set(ids) if i not in self._decoded]
        if missing:
            texts = self.tokenizer.batch_decode([[i] for i in missing],
                                                clean_up_tokenization_spaces=False)  # fmt: skip
            self._decoded.update(zip(missing, texts, strict=True))
        return tuple(self._decoded[i] for i in ids)

    @torch.no_grad()
    def values(self, batch: TurnBatch) -> TurnValues:
        """Every head at every position of every turn (cached for the batch)."""
        if self._cache is not None and self._cache[0] is batch:
            return self._cache[1]
        turns = [t for g in batch.groups for ep in g.episodes for t in ep.turns]
        rows = [self._rows(t) for t in turns]
        outs: list[torch.Tensor] = []
        for start in range(0, len(rows), self.batch_rows):
            outs += [o.cpu() for o in self._outputs(rows[start : start + self.batch_rows])]
        counts = np.array([r[2] for r in rows], np.int64)
        flat = torch.cat(outs).double().numpy() if outs else np.zeros((0, len(self.head_names)))
        lengths = np.array([len(t.trace.completion_ids) if t.trace is not None else 0
                            for t in turns], np.int64)  # fmt: skip
        values = TurnValues(np.concatenate([[0], np.cumsum(counts)]),
                            {h: flat[:, k] for k, h in enumerate(self.head_names)},
                            lengths,
                            tuple(self._pieces(t) for t in turns))  # fmt: skip
        self._cache = (batch, values, rows)
        return values

    # --- Checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights and optimiser state (the policy's weights are not the critic's)."""
        return {"heads": self.heads.state_dict(), "optimizer": self.optimizer.state_dict(),
                "trunk": self.trunk.state_dict() if self.trunk is not None else None}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.heads.load_state_dict(state["heads"])
        if self.trunk is not None:
            self.trunk.load_state_dict(state["trunk"])
        self.optimizer.load_state_dict(state["optimizer"])

    def before_credit(self, batch: TurnBatch, step: int) -> dict[str, float]:
        """Hook before the estimator runs (nothing for on-policy critics)."""
        return {}

    def after_credit(self, batch: TurnBatch, credit: Credit, step: int) -> dict[str, float]:
        """Hook after the estimator ran (nothing unless overridden)."""
        return {}


class ValueCritic(_TokenCritic):
    """A value model with named heads, fitted to the estimator's value targets (PPO critic).

    Args:
        policy: The policy model (its trunk is shared, or its vocabulary sized for a copy).
        tokenizer: Its tokenizer.
        heads: Head names (``("value",)``; HiPER ``("low", "high", "term")``).
        model: ``"separate"`` (own trunk) or ``"shared"`` (heads on the policy's features).
        input: ``"prompt"`` (the turn's prompt and action tokens) or ``"observation"`` (the
            observation text alone, one state position per turn).
        lr: The critic's own AdamW learning rate.
        value_clip: PPO value clipping around the values the estimator saw (verl
            ``cliprange_value``); ``None`` turns it off.
        epochs: Passes over the iteration's targets.
        minibatch_size: Turn rows per critic optimiser step.
        max_grad_norm: Gradient clipping of the critic (0: off).
        d_model: Hidden size of a separate small trunk (tiny models).
        layers: Layers of a separate small trunk.
        seed: Init and minibatch order.
        device: Torch device.
        small: Build a fresh small trunk (tiny policies) instead of copying the policy's.
    """

    def __init__(self, policy: Any, tokenizer: Any, *, heads: Sequence[str] = ("value",),
                 model: Literal["separate", "shared"] = "separate",
                 input: Literal["prompt", "observation"] = "prompt", lr: float = 1e-3,
                 value_clip: float | None = 0.5, epochs: int = 2, minibatch_size: int = 64,
                 max_grad_norm: float = 1.0, d_model: int = 64, layers: int = 2, seed: int = 0,
                 device: Any = "cpu", small: bool = True) -> None:  # fmt: skip
        super().__init__(policy, tokenizer, heads=heads, model=model, input=input,
                         d_model=d_model, layers=layers, lr=lr, seed=seed, device=device,
                         small=small, batch_rows=minibatch_size)  # fmt: skip
        if epochs < 1 or minibatch_size < 1:
            raise ValueError("critic epochs and minibatch_size must be >= 1")
        self.value_clip, self.epochs, self.minibatch_size = value_clip, epochs, minibatch_size
        self.max_grad_norm = max_grad_norm

    def after_credit(self, batch: TurnBatch, credit: Credit, step: int) -> dict[str, float]:
        """Regress every head on ``credit.value_targets`` with the clipped value loss."""
        if not credit.value_targets:
            return {}
        t0 = time.monotonic()
        values = self.values(batch)  # the values the estimator saw (cached), for clipping
        assert self._cache is not None
        rows = self._cache[2]
        entries: list[tuple[Any, ...]] = []  # (row, position, head index, target, old value)
        for name, tgt in credit.value_targets.items():
            k = self.head_names.index(name)
            old = values.head(name)[values.offsets[tgt.rows] + tgt.positions]
            entries += zip(tgt.rows, tgt.positions, [k] * len(tgt.rows), tgt.targets, old,
                           strict=True)  # fmt: skip
        data = np.array(entries, np.float64).reshape(-1, 5)
        rng = np.random.default_rng([self.seed, step, 7])
        turn_rows = np.unique(data[:, 0].astype(np.int64))
        losses, clipped = [], []
        for _ in range(self.epochs):
            order = rng.permutation(turn_rows)
            for start in range(0, order.size, self.minibatch_size):
                loss, frac = self._step(rows, data, order[start : start + self.minibatch_size])
                losses.append(loss)
                clipped.append(frac)
        return {"critic_value_loss": float(np.mean(losses)) if losses else 0.0,
                "critic_explained_var": explained_variance(data[:, 4], data[:, 3]),
                "critic_clip_frac": float(np.mean(clipped)) if clipped else 0.0,
                "critic_target_mean": float(data[:, 3].mean()) if data.size else 0.0,
                "critic_update_s": time.monotonic() - t0}  # fmt: skip

    def _step(self, rows: list[Any], data: np.ndarray, chosen: np.ndarray) -> tuple[float, float]:
        local = {int(r): i for i, r in enumerate(chosen)}
        mine = data[np.isin(data[:, 0].astype(np.int64), chosen)]
        outs = self._outputs([rows[int(r)] for r in chosen])
        pred = torch.stack([outs[local[int(r)]][int(p), int(k)] for r, p, k in mine[:, :3]])
        target = torch.as_tensor(mine[:, 3], dtype=pred.dtype, device=pred.device)
        old = torch.as_tensor(mine[:, 4], dtype=pred.dtype, device=pred.device)
        loss = (pred - target) ** 2
        frac = 0.0
        if self.value_clip is not None:  # PPO value clipping (verl compute_value_loss)
            clipped = old + torch.clamp(pred - old, -self.value_clip, self.value_clip)
            clipped_loss = (clipped - target) ** 2
            frac = float((clipped_loss > loss).float().mean())
            loss = torch.maximum(loss, clipped_loss)
        loss = 0.5 * loss.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach()), frac


critic_registry.register("value", ValueCritic)
critic_registry.register("twin_q", "turngym.trainers.replay_critic:TwinQCritic")
