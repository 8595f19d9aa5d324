"""Shared pieces of the structured-reward estimators: per-turn info, units, token credit.

Structured methods read what an env reports per turn (``info["rank_hits"]``,
``info["call_match"]``, ``info["phase_rewards"]``, ...) from :attr:`Turn.info
<turngym.types.Turn>`, score *units* finer or coarser than a turn (list items, sub-answers,
phases) and normalise each unit against the units at the same position in the other episodes
of its group. :func:`unit_table` flattens per-turn lists into unit rows, :func:`normalise_units`
does the group-relative step with a chosen singleton policy, and :func:`token_credit` maps unit
advantages onto completion tokens through :mod:`turngym.trainers.credit._spans`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from turngym.trainers.credit._common import normalise
from turngym.trainers.credit.types import CreditContext, TurnBatch
from turngym.types import Turn

__all__ = [
    "turns_of",
    "turn_info",
    "Units",
    "unit_table",
    "normalise_units",
    "token_credit",
    "judge_scores",
]


def turns_of(batch: TurnBatch) -> list[Turn]:
    """The :class:`~turngym.types.Turn` records in batch row order."""
    return [t for g in batch.groups for ep in g.episodes for t in ep.turns]


def turn_info(batch: TurnBatch, key: str, default: Any = None) -> list[Any]:
    """``turn.info.get(key, default)`` for every turn row, in row order."""
    return [t.info.get(key, default) for t in turns_of(batch)]


@dataclass(frozen=True)
class Units:
    """Units (items, sub-answers) of a batch, one row per unit.

    Attributes:
        row: Turn row the unit was reported on (``-1`` for padding units).
        episode: Episode of the unit.
        position: Position of the unit in its episode (or turn), the normalisation key.
        in_turn: Index of the unit within its turn's list.
        value: The unit's reward.
    """

    row: np.ndarray
    episode: np.ndarray
    position: np.ndarray
    in_turn: np.ndarray
    value: np.ndarray


def unit_table(batch: TurnBatch, lists: Sequence[Sequence[float] | None], *, per_turn: bool,
               pad: bool) -> Units:  # fmt: skip
    """Flatten one list of unit values per turn row into unit rows.

    Args:
        batch: The batch.
        lists: ``lists[row]`` is the turn's unit values (``None`` or empty: no units).
        per_turn: Positions restart at every turn and are keyed by the turn index as well
            (SCRL: sub-answer ``k`` of attempt ``t``); otherwise they run on across the
            episode's turns (Rank-GRPO: the episode's ranked list).
        pad: Give every episode the group's largest position count, missing units valued 0
            (a parse failure or a short list earns 0 at every rank, as in Rank-GRPO). The
            padding of an episode that listed nothing sits on its last turn; other padding
            has row ``-1``. Only for ``per_turn=False``.

    Returns:
        The :class:`Units`, sorted by episode then position.
    """
    sizes = np.fromiter((len(v) if v else 0 for v in lists), np.int64, batch.n_turns)
    row = np.repeat(np.arange(batch.n_turns, dtype=np.int64), sizes)
    value = np.fromiter((x for v in lists if v for x in v), np.float64, int(sizes.sum()))
    episode = batch.episode[row]
    first = np.zeros(batch.n_turns + 1, np.int64)
    np.cumsum(sizes, out=first[1:])
    in_turn = np.arange(row.size, dtype=np.int64) - first[row]
    if per_turn:
        width = int(sizes.max(initial=0)) + 1
        position = batch.turn[row] * width + in_turn
        return Units(row, episode, position, in_turn, value)
    ep_first = np.zeros(batch.n_episodes + 1, np.int64)
    np.cumsum(np.bincount(episode, minlength=batch.n_episodes), out=ep_first[1:])
    position = np.arange(row.size, dtype=np.int64) - ep_first[episode]
    units = Units(row, episode, position, in_turn, value)
    return _pad(batch, units) if pad else units


def _pad(batch: TurnBatch, units: Units) -> Units:
    counts = np.bincount(units.episode, minlength=batch.n_episodes)
    group_max = np.zeros(batch.n_groups, np.int64)
    np.maximum.at(group_max, batch.episode_group, counts)
    missing = group_max[batch.episode_group] - counts
    if not missing.any():
        return units
    episode = np.repeat(np.arange(batch.n_episodes, dtype=np.int64), missing)
    first = np.zeros(batch.n_episodes + 1, np.int64)
    np.cumsum(missing, out=first[1:])
    position = counts[episode] + np.arange(episode.size, dtype=np.int64) - first[episode]
    # An episode that listed nothing (a parse failure) owns its zero units on its last turn,
    # so that turn's tokens are pushed down; padding after a real list has no tokens.
    last = batch.episode_start + batch.episode_length - 1
    owned = (counts[episode] == 0) & (batch.episode_length[episode] > 0)
    row = np.where(owned, last[episode], -1)
    in_turn = np.where(owned, position, -1)
    merged = [np.concatenate((a, b)) for a, b in (
        (units.row, row), (units.episode, episode), (units.position, position),
        (units.in_turn, in_turn), (units.value, np.zeros(episode.size)))]  # fmt: skip
    order = np.lexsort((merged[2], merged[1]))
    return Units(*(m[order] for m in merged))


def normalise_units(batch: TurnBatch, units: Units, *, ddof: int, eps: float, by_std: bool = True,
                    singleton: str = "zero") -> np.ndarray:  # fmt: skip
    """Group-relative advantage of every unit among the units at its position in its group.

    ``(v - mean) / (std + eps)`` over the episodes of a group that have a unit at that
    position; a position held by one episode only follows ``singleton`` (``"zero"`` gives 0,
    ``"raw"`` keeps the value, as MatchTIR's mean-0/std-1 fallback does).
    """
    key = batch.episode_group[units.episode] * (int(units.position.max(initial=0)) + 1)
    seg = np.unique(key + units.position, return_inverse=True)[1].reshape(-1)
    n_seg = int(seg.max(initial=-1)) + 1
    adv, size, _ = normalise(units.value, seg, n_seg, ddof=ddof, eps=eps, by_std=by_std)
    alone = size[seg] == 1
    adv[alone] = units.value[alone] if singleton == "raw" else 0.0
    return adv


def token_credit(batch: TurnBatch, ctx: CreditContext, turn_adv: np.ndarray,
                 per_token: Callable[[int, Turn, Any], np.ndarray | None],
                 ) -> tuple[np.ndarray, ...] | None:  # fmt: skip
    """Per-token advantages for every turn, or ``None`` when nothing finer than a turn exists.

    Args:
        batch: The batch.
        ctx: Supplies ``tokenizer``; without one (or without any traced turn) returns ``None``.
        turn_adv: The per-turn advantages (broadcast on turns ``per_token`` leaves alone).
        per_token: ``(row, turn, tokenizer) -> values`` with one value per completion token
            of the turn, or ``None`` to broadcast ``turn_adv[row]``.

    Returns:
        One array per turn row (empty for turns without a trace).
    """
    if ctx.tokenizer is None:
        return None
    out: list[np.ndarray] = []
    finer = False
    for row, turn in enumerate(turns_of(batch)):
        if turn.trace is None:
            out.append(np.zeros(0))
            continue
        values = per_token(row, turn, ctx.tokenizer) if turn.trace.completion_ids else None
        if values is None:
            values = np.full(len(turn.trace.completion_ids), turn_adv[row])
        else:
            finer = True
        out.append(np.asarray(values, np.float64))
    return tuple(out) if finer else None


def judge_scores(batch: TurnBatch, ctx: CreditContext, source: str, info_key: str) -> np.ndarray:
    """Per-turn quality scores from ``ctx.judge``, the env reward or a per-turn info number.

    Args:
        batch: The batch.
        ctx: Supplies ``judge`` when ``source == "judge"``.
        source: ``"judge"`` (``ctx.judge(batch)``), ``"reward"`` (the turn rewards) or
            ``"info"`` (``turn.info[info_key]``, e.g. ``"score"``: the env's task score
            after the turn, which every TextEnv reports).
        info_key: The info key for ``source == "info"``.

    Raises:
        ValueError: No judge in the context, a turn without the info key, or a judge that
            returns the wrong number of scores.
    """
    if source == "reward":
        rewards: np.ndarray = batch.reward.copy()
        return rewards
    if source == "judge":
        if ctx.judge is None:
            raise ValueError("source='judge' needs CreditContext(judge=...); train on an env "
                             "with a per-turn judge, or use source='reward'.")  # fmt: skip
        scores = np.asarray(ctx.judge(batch), np.float64)
        if scores.shape != (batch.n_turns,) or not np.all(np.isfinite(scores)):
            raise ValueError(f"the judge returned {scores.shape} scores (non-finite or the "
                             f"wrong count) for {batch.n_turns} turns")  # fmt: skip
        return scores
    values = turn_info(batch, info_key)
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise ValueError(f"turn row {missing[0]} has no info[{info_key!r}]; pick another "
                         "source or an env that reports it every turn.")  # fmt: skip
    return np.asarray(values, np.float64)
