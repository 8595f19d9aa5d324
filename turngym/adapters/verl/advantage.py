"""turngym's credit estimators in verl's advantage-estimator registry (verl 0.9.1).

:func:`register_estimators` registers every turngym estimator that needs nothing beyond the
batch (no probe, critic or judge) with ``verl.trainer.ppo.core_algos.register_adv_est`` as
``turngym_<name>``, so ``algorithm.adv_estimator=turngym_gigpo`` selects it in a verl run. The
registered function has the signature verl calls registered estimators with
(``token_level_rewards``, ``response_mask``, ``index`` = the ``uid`` of each row's prompt,
``config``) and returns ``(advantages, returns)`` of the response's shape.

**From verl's batch to a TurnBatch** (:func:`turn_batch_from_verl`). Rows sharing a ``uid``
are one group. Two row layouts:

* *trajectory rows* (verl's agent loops, and
  :class:`~turngym.adapters.verl.agent_loop.TurngymAgentLoop`): one row per episode, the
  whole conversation in the response; each maximal run of ``response_mask == 1`` is one turn
  (the model's tokens) and the masked tokens after it are the env's reply. A turn's reward is
  ``turn_scores[t]`` when the rollout recorded per-turn scores, else the sum of
  ``token_level_rewards`` from its first token to the next turn's;
* *step rows* (verl-agent's layout: a ``traj_uid`` field): one row per turn, rows of a
  trajectory in turn order; a turn's reward is ``step_rewards`` when given, else the row's
  summed ``token_level_rewards``.

Anchor observations (``anchor_obs``: one state key per turn, a list per trajectory row or one
per step row) become ``Turn.state_key``, which GiGPO groups turns by (arXiv 2505.10978,
Eq. 6). An episode's outcome is ``outcome`` when given, else its total reward. Each turn's
advantage goes back onto that turn's model tokens, zero elsewhere.

**The anchor caveat.** verl's own ``compute_advantage`` hands a registered estimator only
``token_level_rewards``, ``response_mask``, ``uid`` and ``config``; it passes the non-tensor
fields to its GDPO estimator alone. Estimators that read only rewards and groups (``grpo``,
``rloo``, ``trloo``, ...) work through it unchanged, scoring an episode by its total reward
(as verl's own GRPO does; the env's ``outcome`` needs the non-tensor fields). Estimators
that group turns by anchor state (:data:`ANCHORED`: GiGPO) refuse to run without anchors
rather than silently dropping their step level: call :func:`compute_advantage` (same
arguments as verl's; it passes the non-tensor fields to ``turngym_*`` estimators and defers
to verl for every other name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from verl.trainer.ppo import core_algos

from turngym.trainers.credit import CreditContext, TurnBatch, estimator_registry, resolve_estimator
from turngym.types import Episode, Group, Turn

__all__ = [
    "PREFIX",
    "ANCHORED",
    "register_estimators",
    "turn_batch_from_verl",
    "token_advantages",
    "compute_advantage",
]

PREFIX = "turngym_"
"""verl-side names are ``turngym_<estimator>``."""

ANCHORED = frozenset({"gigpo"})
"""Estimators whose step level groups turns by anchor state (they need ``anchor_obs``)."""

# One function object per name, for the life of the process: verl's registry refuses a
# different function under a taken name, so new parameters update _BOUND instead.
_FUNCTIONS: dict[str, Any] = {}
_BOUND: dict[str, tuple[Any, CreditContext]] = {}


@dataclass(frozen=True)
class _Spans:
    """Where each turn row of a TurnBatch lives in the verl batch: row, token span."""

    rows: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def register_estimators(
    params: Mapping[str, Mapping[str, Any]] | None = None, names: Iterable[str] | None = None
) -> list[str]:
    """Register turngym estimators in verl's registry as ``turngym_<name>``.

    Args:
        params: Keyword parameters per estimator name (checked like any turngym config:
            a misspelt or mistyped parameter fails here).
        names: Estimators to register (default: every registered one that needs no probe,
            critic or judge).

    Returns:
        The verl-side names registered.
    """
    params = dict(params or {})
    chosen = list(names) if names is not None else _batch_only_estimators()
    unknown = set(params) - set(chosen)
    if unknown:
        raise ValueError(f"parameters given for estimators not registered: {sorted(unknown)}")
    for name in chosen:
        estimate = resolve_estimator(name, params.get(name, {}))  # fails on a bad config here
        _BOUND[name] = (estimate, CreditContext())
        if name not in _FUNCTIONS:
            _FUNCTIONS[name] = _verl_function(name)
            core_algos.register_adv_est(PREFIX + name)(_FUNCTIONS[name])
    return [PREFIX + n for n in chosen]


def _batch_only_estimators() -> list[str]:
    return [
        n for n in estimator_registry.names()
        if not getattr(estimator_registry.get(n), "requires", frozenset())
    ]  # fmt: skip


def _verl_function(name: str) -> Any:
    def estimator(
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: np.ndarray | None = None,
        config: Any = None,
        non_tensor_batch: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if index is None:
            raise ValueError(f"{PREFIX}{name} needs the batch's uid field (one per prompt)")
        batch, spans = turn_batch_from_verl(
            token_level_rewards, response_mask, index, non_tensor_batch
        )
        if name in ANCHORED and all(k is None for k in _state_keys(batch)):
            raise ValueError(
                f"{PREFIX}{name} groups turns by anchor observation, but the batch has no "
                "anchor_obs field (verl's compute_advantage passes registered estimators no "
                "non-tensor fields); use turngym.adapters.verl.compute_advantage, which does"
            )
        estimate, ctx = _BOUND[name]
        credit = estimate(batch, ctx)
        ctx.step += 1
        advantages = token_advantages(credit.advantages, spans, response_mask)
        returns = credit.returns if credit.returns is not None else credit.advantages
        return advantages, token_advantages(returns, spans, response_mask)

    estimator.__name__ = estimator.__qualname__ = f"{PREFIX}{name}"
    estimator.__doc__ = f"turngym's {name!r} estimator on a verl batch (turngym.adapters.verl)."
    return estimator


def _state_keys(batch: TurnBatch) -> list[str | None]:
    return [t.state_key for g in batch.groups for ep in g.episodes for t in ep.turns]


def _field(non_tensor: Mapping[str, Any] | None, key: str) -> Any:
    if non_tensor is None or key not in non_tensor:
        return None
    return non_tensor[key]


def _mask_runs(mask_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each maximal run of 1s."""
    padded = np.concatenate([[0], mask_row.astype(np.int8), [0]])
    change = np.flatnonzero(np.diff(padded))
    return change[0::2], change[1::2]


def turn_batch_from_verl(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Iterable[Any],
    non_tensor_batch: Mapping[str, Any] | None = None,
) -> tuple[TurnBatch, _Spans]:
    """Turn a verl batch into a TurnBatch (see the module docstring for the layouts).

    Args:
        token_level_rewards: ``(rows, response_length)`` rewards.
        response_mask: ``(rows, response_length)``, 1 on model tokens.
        index: The ``uid`` of each row (rows with one uid form a group).
        non_tensor_batch: Optional fields: ``traj_uid``, ``turn_scores``, ``step_rewards``,
            ``anchor_obs``, ``outcome``.

    Returns:
        The batch and where each of its turn rows lives in the verl batch.
    """
    rewards = token_level_rewards.detach().to(torch.float64).cpu().numpy()
    mask = response_mask.detach().cpu().numpy() > 0
    uids = [str(u) for u in index]
    if len(uids) != rewards.shape[0]:
        raise ValueError(f"{len(uids)} uids for {rewards.shape[0]} rows")
    traj = _field(non_tensor_batch, "traj_uid")
    if traj is not None:
        trajectories = _step_rows(rewards, mask, uids, [str(t) for t in traj], non_tensor_batch)
    else:
        trajectories = _trajectory_rows(rewards, mask, uids, non_tensor_batch)
    return _assemble(trajectories)


# A trajectory: (uid, episode id, outcome or None, [(reward, anchor, row, start, end), ...])
_Trajectory = tuple[str, str, Any, list[tuple[float, Any, int, int, int]]]


def _trajectory_rows(rewards: np.ndarray, mask: np.ndarray, uids: list[str],
                     non_tensor: Mapping[str, Any] | None) -> list[_Trajectory]:  # fmt: skip
    scores, anchors = _field(non_tensor, "turn_scores"), _field(non_tensor, "anchor_obs")
    outcomes = _field(non_tensor, "outcome")
    out = []
    for row in range(rewards.shape[0]):
        starts, ends = _mask_runs(mask[row])
        bounds = np.append(starts[1:], rewards.shape[1])
        turn_rewards = [float(rewards[row, s:b].sum()) for s, b in zip(starts, bounds, strict=True)]
        given = None if scores is None else scores[row]
        if given is not None and len(given):
            if len(given) != len(starts):
                raise ValueError(f"row {row}: {len(given)} turn_scores for {len(starts)} turns")
            turn_rewards = [float(r) for r in given]
        keys = [None] * len(starts) if anchors is None else list(anchors[row])[: len(starts)]
        if len(keys) != len(starts):
            raise ValueError(f"row {row}: {len(keys)} anchor_obs for {len(starts)} turns")
        outcome = None if outcomes is None else outcomes[row]
        turns = [(r, k, row, int(s), int(e))
                 for r, k, s, e in zip(turn_rewards, keys, starts, ends, strict=True)]  # fmt: skip
        out.append((uids[row], f"row{row}", outcome, turns))
    return out


def _step_rows(rewards: np.ndarray, mask: np.ndarray, uids: list[str], traj: list[str],
               non_tensor: Mapping[str, Any] | None) -> list[_Trajectory]:  # fmt: skip
    steps, anchors = _field(non_tensor, "step_rewards"), _field(non_tensor, "anchor_obs")
    outcomes = _field(non_tensor, "outcome")
    by_traj: dict[str, _Trajectory] = {}
    for row in range(rewards.shape[0]):
        uid = uids[row]
        current = by_traj.setdefault(
            traj[row], (uid, traj[row], None if outcomes is None else outcomes[row], [])
        )
        if current[0] != uid:
            raise ValueError(f"trajectory {traj[row]!r} spans two uids ({current[0]!r}, {uid!r})")
        reward = float(rewards[row].sum()) if steps is None else float(steps[row])
        anchor = None if anchors is None else anchors[row]
        current[3].append((reward, anchor, row, 0, rewards.shape[1]))
    return list(by_traj.values())


def _assemble(trajectories: list[_Trajectory]) -> tuple[TurnBatch, _Spans]:
    members: dict[str, list[Episode]] = {}
    rows, starts, ends = [], [], []
    for uid, episode_id, outcome, turns in trajectories:
        records = tuple(
            Turn(t, "agent", "", "", reward, t == len(turns) - 1, False,
                 None if anchor is None else str(anchor), True)
            for t, (reward, anchor, _, _, _) in enumerate(turns)
        )  # fmt: skip
        total = float(sum(t.reward for t in records))
        score = total if outcome is None else float(outcome)
        members.setdefault(uid, []).append(
            Episode(episode_id, "verl", uid, 0, "train", records, score, score > 0)
        )
    # Rows of the TurnBatch are group-major: list the spans in that same order.
    order = {episode_id: turns for _, episode_id, _, turns in trajectories}
    for episodes in members.values():
        for ep in episodes:
            for _, _, row, start, end in order[ep.episode_id]:
                rows.append(row)
                starts.append(start)
                ends.append(end)
    groups = [Group(f"{uid}@verl", uid, tuple(eps)) for uid, eps in members.items()]
    spans = _Spans(np.array(rows, np.int64), np.array(starts, np.int64), np.array(ends, np.int64))
    return TurnBatch.from_groups(groups), spans


def token_advantages(
    values: np.ndarray, spans: _Spans, response_mask: torch.Tensor
) -> torch.Tensor:
    """Put one value per turn row onto that turn's tokens (zero elsewhere, masked)."""
    out = torch.zeros(response_mask.shape, dtype=torch.float64)
    for value, row, start, end in zip(values, spans.rows, spans.starts, spans.ends, strict=True):
        out[row, start:end] = float(value)
    return (out * (response_mask.detach().cpu() > 0)).to(torch.float32).to(response_mask.device)


def compute_advantage(data: Any, adv_estimator: Any, *args: Any, **kwargs: Any) -> Any:
    """Verl's ``compute_advantage``, also handing ``turngym_*`` estimators the non-tensor fields.

    Same arguments and return value as ``verl.trainer.ppo.ray_trainer.compute_advantage``
    (the batch gains ``advantages`` and ``returns``); any other estimator name goes to verl's.
    """
    name = getattr(adv_estimator, "value", adv_estimator)
    if not str(name).startswith(PREFIX):
        from verl.trainer.ppo.ray_trainer import compute_advantage as verl_compute_advantage

        return verl_compute_advantage(data, adv_estimator, *args, **kwargs)
    batch = data.batch
    if "response_mask" not in batch.keys():
        raise ValueError("the batch has no response_mask (verl's rollout adds one)")
    fn = core_algos.get_adv_estimator_fn(str(name))
    advantages, returns = fn(
        token_level_rewards=batch["token_level_rewards"], response_mask=batch["response_mask"],
        index=data.non_tensor_batch.get("uid"), config=kwargs.get("config"),
        non_tensor_batch=data.non_tensor_batch,
    )  # fmt: skip
    batch["advantages"] = advantages
    batch["returns"] = returns
    return data
