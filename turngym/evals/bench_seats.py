"""Multi-agent games in ``turngym bench``: one seat trained, evaluated against a named opponent.

A bench env that is a multi-agent game (``turngym/TicTacToe-v0``) trains the policy in one
seat, against a fixed opponent (``BenchSpec.opponent``) or in self-play (``opponent=None``),
through the trainer's seat settings (:class:`~turngym.trainers.seats.SeatPlan`). Its learning
curve, its final score and the scripted baselines are all measured in the same seat against
the same evaluation opponent (``BenchSpec.eval_opponent``; default: the training opponent, or
``random`` in self-play), so the head-to-head table compares like with like: e.g. the trained
policy's win rate as ``player_0`` against ``random`` next to the ``random`` and ``minimax``
baselines' win rates in that seat against that opponent.

The bench's own env entries carry that seat and opponent (:func:`seat_envs`), which makes
their results seat results (:mod:`turngym.evals.seats`), keyed apart from everything else.
The bench imports this module, never the other way round (:class:`SeatSettings` is the part
of ``BenchSpec`` it reads).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from turngym.envs.multiagent.registry import is_multiagent, make_multiagent
from turngym.evals.results import redact
from turngym.evals.seats import entry_key, resolve_seats
from turngym.evals.suites import EvalEntry

__all__ = ["SeatSettings", "seat_envs", "train_overrides", "job_entry_key", "seat_fields",
           "action_vocabulary", "seat_setup", "check_seat_jobs", "add_seat_arguments",
           "seat_options"]  # fmt: skip


class SeatSettings(Protocol):
    """The seat settings of a bench (``BenchSpec`` has them; this module never imports it)."""

    @property
    def envs(self) -> tuple[EvalEntry, ...]: ...  # noqa: D102

    @property
    def opponent(self) -> str | None: ...  # noqa: D102

    @property
    def train_seat(self) -> str | None: ...  # noqa: D102

    @property
    def eval_opponent(self) -> str | None: ...  # noqa: D102


def seat_envs(spec: SeatSettings) -> tuple[EvalEntry, ...]:
    """``spec.envs`` with each multi-agent env entry set to its evaluation seat and opponent.

    Raises:
        ValueError: Seat settings without a multi-agent env, or a seat the game lacks.
    """
    games = [e for e in spec.envs if is_multiagent(e.env_id)]
    given = [f for f in ("opponent", "train_seat", "eval_opponent") if getattr(spec, f)]
    if given and not games:
        raise ValueError(f"{', '.join(given)} apply to multi-agent envs (e.g. "
                         "turngym/TicTacToe-v0); the bench has none")  # fmt: skip
    envs = []
    for entry in spec.envs:
        if is_multiagent(entry.env_id):
            wanted = (spec.train_seat,) if spec.train_seat else ()
            seat = resolve_seats(entry.env_id, entry.env_kwargs, wanted)[0]
            against = spec.eval_opponent or spec.opponent or "random"
            entry = replace(entry, opponent=against, seats=(seat,))
        envs.append(entry)
    return tuple(envs)


def train_overrides(spec: SeatSettings, entry: EvalEntry) -> dict[str, Any]:
    """TrainConfig settings of a run on ``entry``: the seats, for a multi-agent game.

    The game charges invalid moves itself (its ``invalid_penalty`` knob, -0.1 by default, the
    recipe's own value), so the trainer adds no penalty of its own there.
    """
    if entry.opponent is None:
        return {}
    return {"opponent": spec.opponent, "train_seat": spec.train_seat,
            "eval_opponent": entry.opponent, "invalid_action_penalty": 0.0}  # fmt: skip


def job_entry_key(entry: EvalEntry, ehash: str) -> str:
    """The results key of a bench entry (a seat key for a multi-agent game)."""
    fields = seat_fields(entry)
    return entry_key(entry.env_id, ehash, fields.get("seat"), fields.get("opponent"))


def seat_fields(entry: EvalEntry) -> dict[str, Any]:
    """``EntryResult`` seat and opponent of a bench entry (none for a single-agent env).

    The opponent is named as the eval runner names it (secrets redacted), so the bench's
    own results and its baselines' share the seat key.
    """
    if entry.opponent is None:
        return {}
    return {"seat": entry.seats[0], "opponent": redact(entry.opponent)}


def action_vocabulary(env_id: str) -> tuple[str, ...]:
    """An env's action vocabulary (restricted decoding draws from it), a game's too."""
    if is_multiagent(env_id):
        return tuple(make_multiagent(env_id).action_vocabulary())
    from turngym.core import TextEnv
    from turngym.registry import make

    env = make(env_id).unwrapped
    return tuple(env.action_vocabulary()) if isinstance(env, TextEnv) else ()


def seat_setup(spec: SeatSettings) -> list[str]:
    """One sentence per multi-agent env of the bench: who plays which seat."""
    lines = []
    for entry in spec.envs:
        if entry.opponent is None:
            continue
        name = entry.env_id.split("/")[-1]
        trained = spec.train_seat or ("every seat" if spec.opponent is None else entry.seats[0])
        rival = f"against {spec.opponent}" if spec.opponent else "in self-play"
        lines.append(f"{name}: the policy trains {trained} {rival}; the curve, the final score "
                     f"and the baselines play {entry.seats[0]} against {entry.opponent}. An "
                     "action the position does not allow (restricted decoding can draw one) "
                     "is refused with the game's invalid-move penalty, and a seat refused "
                     "max_invalid times in a row forfeits.")  # fmt: skip
    return lines


def check_seat_jobs(jobs: Sequence[dict[str, Any]]) -> None:
    """Build the seat plan of each multi-agent env's run config once, before any training.

    Bad seats, opponents or recipe settings fail here (the runs build their plans again).
    """
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.seats import SeatPlan

    checked: set[str] = set()
    for job in jobs:
        config = TrainConfig(**job["config"])
        if is_multiagent(config.env) and config.env not in checked:
            SeatPlan.from_config(config)
            checked.add(config.env)


def add_seat_arguments(p: argparse.ArgumentParser) -> None:
    """``turngym bench``'s options for multi-agent envs."""
    p.add_argument("--opponent", default=None,
                   help="multi-agent envs: the fixed opponent the policy trains against, e.g. "
                   "random, minimax:1 (default: self-play)")  # fmt: skip
    p.add_argument("--train-seat", default=None,
                   help="multi-agent envs: the trained seat (default: player_0 against an "
                   "opponent, every seat in self-play)")  # fmt: skip
    p.add_argument("--eval-opponent", default=None,
                   help="multi-agent envs: the opponent of curves, final scores and baselines "
                   "(default: --opponent, or random in self-play)")  # fmt: skip


def seat_options(args: argparse.Namespace) -> dict[str, str | None]:
    """The BenchSpec fields the options of :func:`add_seat_arguments` set."""
    return {"opponent": args.opponent, "train_seat": args.train_seat,
            "eval_opponent": args.eval_opponent}  # fmt: skip
