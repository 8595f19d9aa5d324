"""Multi-agent games in the harness: one agent in one seat against a named opponent.

A multi-agent entry of an eval (an :class:`~turngym.evals.suites.EvalEntry` with an
``opponent``) plays the evaluated agent in one seat and the opponent in every other seat,
once for each seat asked for. Every (entry, seat, agent) gets its own results, keyed by seat
and opponent (:func:`entry_key`), so tables, the leaderboard and the gate never mix them with
single-agent results or with results against another opponent; on top of the usual metrics
they carry win/draw/loss rates (:data:`SEAT_METRICS`, :func:`seat_result`) with Wilson
intervals.

This module holds what the results files, the runner, the tables, the leaderboard and the
bench share about seats. It imports neither PettingZoo nor the rollout engine: envs are built
only inside the functions that need one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.envs.registration import parse_env_id

from turngym.core import TASK_ID
from turngym.envs.multiagent.registry import is_multiagent, make_multiagent, multiagent_registry
from turngym.registry import import_string

__all__ = [
    "SEAT_METRICS",
    "seat_result",
    "entry_key",
    "seat_label",
    "multiagent_task_ids",
    "reference_opponent",
    "resolve_seats",
    "seat_players",
    "opponent_seed",
]

SEAT_METRICS: dict[str, str] = {
    "win": "fraction of games the seat won (its outcome above every other seat's)",
    "draw": "fraction of games the seat tied for the best outcome",
    "loss": "fraction of games another seat did better (a game cut by an error counts as lost)",
}
"""Metric name -> meaning, for the seat views of multi-agent games only (on top of
:data:`EPISODE_METRICS`): win/draw/loss compare the seat's outcome with the other seats'."""


def seat_result(episode: Mapping[str, Any]) -> dict[str, float]:
    """:data:`SEAT_METRICS` of a seat view (the dict form of an Episode); ``{}`` without a seat.

    The seat won when its outcome is above every other seat's, drew when it ties the best,
    and lost when another seat did better (board games: outcome 1 win, 0.5 draw, 0 loss; in
    bargaining, whoever got the larger share). A game cut by an error has no result and is
    counted as lost, as a failed episode counts as unsolved.

    Example:
        >>> seats = {"player_0": {"outcome": 0.5}, "player_1": {"outcome": 0.5}}
        >>> seat_result({"seat": "player_1", "outcome": 0.5, "seat_outcomes": seats})
        {'win': 0.0, 'draw': 1.0, 'loss': 0.0}
    """
    seat = episode.get("seat")
    if seat is None:
        return {}
    outcomes = {s: float(o["outcome"]) for s, o in (episode.get("seat_outcomes") or {}).items()}
    mine = outcomes.get(seat, float(episode["outcome"]))
    best_other = max((v for s, v in outcomes.items() if s != seat), default=mine)
    if episode.get("error") is not None:
        mine, best_other = 0.0, 1.0
    return {"win": float(mine > best_other), "draw": float(mine == best_other),
            "loss": float(mine < best_other)}  # fmt: skip


def entry_key(
    env_id: str, env_kwargs_hash: str, seat: str | None = None, opponent: str | None = None
) -> str:
    """The identity of an entry: ``env_id#hash``, plus ``@seat vs opponent`` for a seat result.

    Seat results of multi-agent games are keyed by seat and opponent, so aggregates, the
    leaderboard and the gate never mix them with single-agent results or with results
    against another opponent.

    Example:
        >>> entry_key("turngym/TicTacToe-v0", "a1b2", "player_0", "minimax")
        'turngym/TicTacToe-v0#a1b2@player_0 vs minimax'
    """
    key = f"{env_id}#{env_kwargs_hash}"
    return key if seat is None else f"{key}@{seat} vs {opponent}"


def seat_label(seat: str | None, opponent: str | None) -> str:
    """What env labels append for a seat result (``""`` for single-agent entries).

    Example:
        >>> "turngym/TicTacToe-v0" + seat_label("player_1", "minimax")
        'turngym/TicTacToe-v0 as player_1 vs minimax'
    """
    return "" if seat is None else f" as {seat} vs {opponent}"


def multiagent_task_ids(env_id: str, env_kwargs: Mapping[str, Any],
                        options: Mapping[str, Any]) -> tuple[list[str], int | None]:  # fmt: skip
    """Task ids of test seeds 0-2 and the id's version, from a fresh multi-agent env.

    What :func:`turngym.evals.results.env_provenance` fingerprints a multi-agent id with (the
    first seat's ``task_id``: every seat of a game shares it).
    """
    env = make_multiagent(env_id, **env_kwargs)
    try:
        reset_options = {"split": "test", **options}
        env.validate_options(reset_options)  # its reset only warns on unknown options
        ids = []
        for seed in range(3):
            env.reset(seed=seed, options=dict(reset_options))
            ids.append(str(env.infos[env.possible_agents[0]].get(TASK_ID, "")))
    finally:
        env.close()
    return ids, parse_env_id(env_id)[2]


def reference_opponent(env_id: str) -> str:
    """The agent spec a multi-agent game names as its scripted opponent of reference.

    Example:
        >>> [reference_opponent(f"turngym/{g}-v0") for g in ("TicTacToe", "DealOrNoDeal")]
        ['minimax', 'negotiator']
    """
    return str(import_string(multiagent_registry.get(env_id).entry_point).reference_opponent)


def resolve_seats(
    env_id: str, env_kwargs: Mapping[str, Any], wanted: Sequence[str] = ()
) -> tuple[str, ...]:
    """The seats to evaluate: ``wanted`` checked against the game's seats, or every seat.

    Raises:
        ValueError: ``env_id`` is not a multi-agent env, or a seat it does not have.

    Example:
        >>> resolve_seats("turngym/TicTacToe-v0", {})
        ('player_0', 'player_1')
    """
    if not is_multiagent(env_id):
        raise ValueError(f"{env_id} is not a multi-agent env: opponents and seats apply to "
                         "multi-agent games only (turngym list envs marks them)")  # fmt: skip
    env = make_multiagent(env_id, **env_kwargs)
    try:
        seats = tuple(env.possible_agents)
    finally:
        env.close()
    unknown = [s for s in wanted if s not in seats]
    if unknown:
        raise ValueError(f"{env_id} has no seat {unknown[0]!r}; its seats are "
                         f"{', '.join(seats)} (or 'all')")  # fmt: skip
    return tuple(dict.fromkeys(wanted)) or seats


def seat_players(seats: Sequence[str], seat: str, agent: Any, opponent: Any) -> dict[str, Any]:
    """``{seat: agent}`` and the opponent in every other seat (the rollout's seat mapping)."""
    return {s: agent if s == seat else opponent for s in seats}


def opponent_seed(run_seed: int) -> int:
    """The opponent's seed for a run seed: its own stream, never an agent's run seed.

    Example:
        >>> opponent_seed(0) == opponent_seed(0) != opponent_seed(1)
        True
    """
    return int(np.random.SeedSequence([run_seed, 0x0990]).generate_state(1)[0])
