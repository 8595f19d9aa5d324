"""ArCHer's off-policy utterance-level critic: twin Q/V heads, target copy, replay buffer.

(Zhou et al. 2024, arXiv 2402.19446, Sec. 4.1; code ``archer/algorithms/archer/trainer.py``
and ``archer/models/critic.py`` at YifeiZhou02/ArCHer 7c771a76.)
Every iteration the fresh turns become transitions ``(s, a, r, s', done)`` in a replay buffer
(``s`` the turn's prompt tokens, ``a`` its action tokens, ``s'`` the next turn's prompt); the
critic then takes ``steps`` gradient steps on minibatches drawn from the buffer:

* ``y_Q = r + (1 - done) * gamma * V_k^targ(s')``, loss ``MSE(Q_k(s, a), y_Q)``, k = 1, 2;
* ``y_V = Q_k^targ(s, a_pi)`` with ``a_pi`` a fresh policy action, loss ``MSE(V_k(s), y_V)``;
* after each step the target copy moves ``target <- (1 - tau) target + tau online``.

The actions of the iteration just collected are fresh samples of the current policy at their
states, so by default the V loss uses only those transitions (``fresh_v_only``); older buffer
entries train Q only. A turn with no next turn (the episode's last) counts as done: the state
after it was never observed, so there is nothing to bootstrap from.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from turngym.trainers.credit.archer import td_targets
from turngym.trainers.credit.types import TurnBatch
from turngym.trainers.critic import _TokenCritic, explained_variance

__all__ = ["TwinQCritic"]

_Transition = tuple[tuple[int, ...], tuple[int, ...], float, tuple[int, ...] | None, int]


class TwinQCritic(_TokenCritic):
    """ArCHer's twin Q/V critic on its own trunk.

    Heads ``q1``, ``q2`` are read after the action, ``v1``, ``v2`` at the state.

    Args:
        policy: The policy (its vocabulary sizes the critic's embedding).
        tokenizer: Its tokenizer.
        gamma: TD discount (``default.yaml``: 0.95).
        tau: Polyak rate of the target copy (0.1).
        lr: Critic learning rate.
        capacity: Replay buffer size in transitions (oldest dropped first).
        batch_size: Transitions per critic step.
        steps: Critic gradient steps per iteration.
        fresh_v_only: Train V only on this iteration's (on-policy) transitions.
        max_grad_norm: Gradient clipping (ArCHer: 1.0).
        d_model: Hidden size of a fresh small trunk.
        layers: Its layers.
        seed: Init and sampling.
        device: Torch device.
        small: Fresh small trunk (tiny policies) instead of a copy of the policy's.
    """

    HEADS = ("q1", "q2", "v1", "v2")

    def __init__(self, policy: Any, tokenizer: Any, *, gamma: float = 0.95, tau: float = 0.1,
                 lr: float = 1e-3, capacity: int = 100_000, batch_size: int = 64,
                 steps: int = 8, fresh_v_only: bool = True, max_grad_norm: float = 1.0,
                 d_model: int = 64, layers: int = 2, seed: int = 0, device: Any = "cpu",
                 small: bool = True) -> None:  # fmt: skip
        super().__init__(policy, tokenizer, heads=self.HEADS, model="separate",
                         input="prompt", d_model=d_model, layers=layers, lr=lr, seed=seed,
                         device=device, small=small, batch_rows=batch_size)  # fmt: skip
        if not 0 < tau <= 1 or capacity < 1 or batch_size < 1 or steps < 0:
            raise ValueError("twin_q critic needs 0 < tau <= 1, capacity, batch_size >= 1, "
                             "steps >= 0")  # fmt: skip
        self.gamma, self.tau, self.capacity = gamma, tau, capacity
        self.batch_size, self.steps, self.fresh_v_only = batch_size, steps, fresh_v_only
        self.max_grad_norm = max_grad_norm
        assert self.trunk is not None  # model="separate" always builds a trunk
        self.target_trunk = copy.deepcopy(self.trunk).requires_grad_(False)
        self.target_heads = copy.deepcopy(self.heads).requires_grad_(False)
        self.buffer: list[_Transition] = []
        self.fresh = 0  # the last `fresh` buffer entries come from the current iteration

    def _transitions(self, batch: TurnBatch) -> list[_Transition]:
        out: list[_Transition] = []
        for group in batch.groups:
            for episode in group.episodes:
                traced = [(t, t.trace) for t in episode.turns
                          if t.trace is not None and t.trace.prompt_ids]  # fmt: skip
                for i, (turn, trace) in enumerate(traced):
                    last = turn.terminated or i + 1 == len(traced)
                    nxt = None if last else tuple(traced[i + 1][1].prompt_ids)
                    out.append((tuple(trace.prompt_ids), tuple(trace.completion_ids),
                                float(turn.reward), nxt, int(last)))
        return out

    def before_credit(self, batch: TurnBatch, step: int) -> dict[str, float]:
        """Add the fresh turns to the buffer and train the critic on it (before the actor)."""
        t0 = time.monotonic()
        fresh = self._transitions(batch)
        self.buffer = (self.buffer + fresh)[-self.capacity :]
        self.fresh = min(len(fresh), len(self.buffer))
        self._cache = None  # values must come from the updated critic
        rng = np.random.default_rng([self.seed, step, 11])
        q_losses, v_losses, ev = [], [], []
        for _ in range(self.steps if self.buffer else 0):
            chosen = rng.integers(0, len(self.buffer), min(self.batch_size, len(self.buffer)))
            q_loss, v_loss, explained = self._step(chosen)
            q_losses.append(q_loss)
            v_losses.append(v_loss)
            ev.append(explained)
        return {"critic_q_loss": float(np.mean(q_losses)) if q_losses else 0.0,
                "critic_v_loss": float(np.mean(v_losses)) if v_losses else 0.0,
                "critic_value_loss": float(np.mean(q_losses) + np.mean(v_losses))
                if q_losses else 0.0,
                "critic_explained_var": float(np.mean(ev)) if ev else 0.0,
                "critic_buffer": float(len(self.buffer)),
                "critic_update_s": time.monotonic() - t0}  # fmt: skip

    def _step(self, chosen: np.ndarray) -> tuple[float, float, float]:
        items = [self.buffer[int(i)] for i in chosen]
        rows = [(list(s) + list(a), len(s) - 1, len(a) + 1) for s, a, _, _, _ in items]
        reward = torch.tensor([it[2] for it in items], device=self.device)
        done = torch.tensor([float(it[4]) for it in items], device=self.device)
        with torch.no_grad():
            target_sa = self._outputs(rows, trunk=self.target_trunk, heads=self.target_heads)
            q_targ = torch.stack([o[-1, 0:2] for o in target_sa])  # Q_k^targ(s, a)
            v_next = torch.zeros((len(items), 2), device=self.device)
            nexts = [(i, it[3]) for i, it in enumerate(items) if it[3] is not None]
            if nexts:
                live = [i for i, _ in nexts]
                nxt = [(list(s), len(s) - 1, 1) for _, s in nexts]
                out = self._outputs(nxt, trunk=self.target_trunk, heads=self.target_heads)
                v_next[live] = torch.stack([o[0, 2:4] for o in out])
            y_q = td_targets(reward[:, None], done[:, None], v_next, self.gamma)
        online = self._outputs(rows)
        q = torch.stack([o[-1, 0:2] for o in online])
        v = torch.stack([o[0, 2:4] for o in online])
        q_loss = ((q - y_q) ** 2).mean(0).sum()
        fresh = torch.as_tensor(chosen >= len(self.buffer) - self.fresh, device=self.device)
        use_v = fresh if self.fresh_v_only else torch.ones_like(fresh)
        v_err = ((v - q_targ) ** 2).sum(-1)
        v_loss = (v_err * use_v).sum() / use_v.sum().clamp(min=1)
        loss = q_loss + v_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():  # Polyak averaging of the target copy
            for online_p, target_p in zip(self.parameters(), self._target_parameters(),
                                          strict=True):  # fmt: skip
                target_p.mul_(1.0 - self.tau).add_(online_p, alpha=self.tau)
        explained = explained_variance(q[:, 0].detach().cpu().double().numpy(),
                                       y_q[:, 0].cpu().double().numpy())  # fmt: skip
        return float(q_loss.detach()), float(v_loss.detach()), explained

    def _target_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.target_heads.parameters()) + list(self.target_trunk.parameters())

    def state_dict(self) -> dict[str, Any]:
        """Weights, target copy, optimiser state and the replay buffer."""
        return {**super().state_dict(), "target_heads": self.target_heads.state_dict(),
                "target_trunk": self.target_trunk.state_dict(), "buffer": list(self.buffer),
                "fresh": self.fresh}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        super().load_state_dict(state)
        self.target_heads.load_state_dict(state["target_heads"])
        self.target_trunk.load_state_dict(state["target_trunk"])
        self.buffer, self.fresh = list(state["buffer"]), int(state["fresh"])
