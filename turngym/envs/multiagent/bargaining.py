"""DealOrNoDeal: two seats divide a pool of items, each valuing them privately.

The negotiation game of Lewis et al., "Deal or No Deal? End-to-End Learning for Negotiation
Dialogues" (EMNLP 2017), played with alternating offers as in LMRL-Gym's and TextArena's
negotiation games (docs/environments.md#dealornodeal); the rules live in
:mod:`turngym.envs.multiagent.negotiation`.

* **Task**: the pool (1-4 books, hats and balls, 5-7 items), each seat's private values (the
  whole pool is worth 10 to each), and which seat opens.
* **Moves**: ``<action>propose book=1 hat=0 ball=2</action>`` (what the proposer keeps; the
  other seat gets the rest), ``<action>accept</action>`` (the other seat's standing offer),
  ``<action>walk away</action>`` (no deal). ``max_moves`` valid moves (default 10) are allowed;
  a proposal made as the last one cannot be answered, so the game ends without a deal.
* **Rewards**: on a deal each seat gets its own points / 10 (so ``score`` is in [0, 1]); no
  deal (walking away, running out of moves, or a forfeit after ``max_invalid`` refused actions)
  pays 0 to both. ``success`` means a deal was made.
* **Privacy**: a seat sees its own values, the pool and the offers, never the other seat's
  values; ``privileged`` holds them (with the best joint points and, after a deal, whether it
  was Pareto-optimal) for trainers and evaluators. The ``negotiator`` opponent and the oracle
  play :func:`~turngym.envs.multiagent.negotiation.negotiate` on their own seat's view.

Example:
    >>> task = {"counts": [1, 3, 2], "first": "player_0",
    ...         "values": {"player_0": [4, 0, 3], "player_1": [1, 1, 3]}}
    >>> env = DealOrNoDeal()
    >>> env.reset(options={"task": task})
    >>> env.step("<action>propose book=1 ball=2</action>")
    >>> print(env.observe("player_1").splitlines()[0])
    Your opponent proposes to take 1 book and 2 balls, leaving you 3 hats (3 points for you).
    >>> env.step("<action>accept</action>")
    >>> env.rewards
    {'player_0': 1.0, 'player_1': 0.3}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from turngym.envs.multiagent.base import BASE_DIFFICULTY, Move, TextAECEnv
from turngym.envs.multiagent.negotiation import (
    ITEMS,
    TOTAL_VALUE,
    BargainView,
    admissible,
    describe,
    draw_pool,
    format_take,
    negotiate,
    pareto_optimal,
    parse_command,
    points,
    splits,
    value_vectors,
)

__all__ = ["DealOrNoDeal"]

_MAX_VARIANTS = 4


class DealOrNoDeal(TextAECEnv):
    """Alternating-offers bargaining with private values; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {**TextAECEnv.metadata, "name": "deal_or_no_deal_v0"}
    family: ClassVar[str] = "dealornodeal"
    reference_opponent: ClassVar[str] = "negotiator"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>propose book=1 hat=1 ball=1</action>",
        "<action>propose book=2 hat=0 ball=1</action>",
        "<action>accept</action>",
        "<action>walk away</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {**BASE_DIFFICULTY, "max_moves": 10}
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"max_moves": 10},
        1: {"max_moves": 6},
        2: {"max_moves": 4},
    }
    default_max_turns: ClassVar[int] = 40

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """At least two moves: one proposal and its answer."""
        if int(difficulty["max_moves"]) < 2:
            raise ValueError("max_moves must be >= 2 (a proposal and its answer).")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a pool, two admissible value vectors and the opening seat."""
        counts, a, b = draw_pool(rng)
        first = self.seats[int(rng.integers(2))]
        return {"counts": list(counts), "values": {"player_0": list(a), "player_1": list(b)},
                "first": first}  # fmt: skip

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Set up the pool and values; check that both value the pool at 10.

        Raises:
            ValueError: Missing fields, a wrong number of item types, or values that do not
                add up to 10 over the pool.
        """
        try:
            counts = tuple(int(c) for c in task["counts"])
            values = {seat: tuple(int(v) for v in task["values"][seat]) for seat in self.seats}
            first = str(task["first"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"a DealOrNoDeal task needs counts, values and first: {err}") from err
        if len(counts) != len(ITEMS) or any(len(v) != len(ITEMS) for v in values.values()):
            raise ValueError(f"counts and values need one entry per item type {ITEMS}.")
        if first not in self.seats or any(c < 1 for c in counts):
            raise ValueError(f"first must be one of {self.seats}; every count must be >= 1.")
        for seat, vector in values.items():
            if points(vector, counts) != TOTAL_VALUE or min(vector) < 0:
                raise ValueError(f"{seat}'s values must be >= 0 and total {TOTAL_VALUE}.")
        self.counts, self.values, self.first = counts, values, first
        self.max_moves = int(self.episode_difficulty["max_moves"])
        self.moves = 0
        self.offers: list[tuple[str, tuple[int, ...]]] = []
        self.offer: tuple[str, tuple[int, ...]] | None = None
        self.deal: tuple[int, ...] | None = None  # what the seat that proposed it keeps
        self.over = False
        self.points = dict.fromkeys(self.seats, 0)
        self.max_joint = max(
            points(values["player_0"], t) + points(values["player_1"], self._rest(t))
            for t in splits(counts)
        )

    def to_move(self) -> str:
        """Seats alternate from the opening seat; refused actions do not pass the turn."""
        return self.seats[(self.seats.index(self.first) + self.moves) % 2]

    def private_view(self, seat: str) -> BargainView:
        """What ``seat`` knows, for the scripted negotiator."""
        mine = tuple(t for s, t in self.offers if s == seat)
        theirs = tuple(t for s, t in self.offers if s != seat)
        standing = self.offer[1] if self.offer is not None and self.offer[0] != seat else None
        return BargainView(self.counts, self.values[seat], self.moves, self.max_moves, standing,
                           theirs, mine)  # fmt: skip

    def apply(self, seat: str, command: str) -> Move:
        """Propose, accept the standing offer, or walk away."""
        kind, take, error = parse_command(command, self.counts)
        if kind == "error":
            return Move(valid=False, message=f"Invalid action: {error}.")
        if kind == "accept":
            if self.offer is None or self.offer[0] == seat:
                return Move(valid=False, message="Invalid action: there is no offer of your "
                            "opponent's to accept; propose a split instead.")  # fmt: skip
            return self._close_deal(seat)
        self.moves += 1
        if kind == "walk":
            self.over = True
            return Move(message="You walked away: no deal, 0 points each.",
                        announcement="Your opponent walked away: no deal, 0 points each.",
                        terminated=True)  # fmt: skip
        assert take is not None
        self.offer = (seat, take)
        self.offers.append(self.offer)
        rest, other = self._rest(take), self._other(seat)
        they = f"Your opponent proposes to take {describe(take)}, leaving you {describe(rest)}"
        if self.moves >= self.max_moves:
            self.over = True
            return Move(message="That was the last move, so the proposal cannot be answered: "
                        "no deal, 0 points each.",
                        announcement=f"{they}. That was the last move: no deal, 0 points each.",
                        terminated=True)  # fmt: skip
        you = f"You proposed to take {describe(take)}, leaving {describe(rest)} to your opponent."
        worth = points(self.values[other], rest)
        return Move(message=you, announcement=f"{they} ({worth} points for you).")

    def _close_deal(self, seat: str) -> Move:
        assert self.offer is not None
        proposer, take = self.offer
        self.moves += 1
        self.over, self.deal = True, take
        self.points = {proposer: points(self.values[proposer], take),
                       seat: points(self.values[seat], self._rest(take))}  # fmt: skip
        rewards = {s: p / TOTAL_VALUE for s, p in self.points.items()}
        return Move(message=f"Deal! You get {self.points[seat]} points.",
                    announcement=f"Your opponent accepted. Deal! You get {self.points[proposer]} "
                    "points.", rewards=rewards, terminated=True)  # fmt: skip

    def forfeit(self, seat: str) -> Move:
        """Refusing to act legally ``max_invalid`` times in a row ends the game without a deal."""
        self.over = True
        return Move(message="You forfeit: no deal, 0 points each.",
                    announcement="Your opponent forfeits: no deal, 0 points each.",
                    terminated=True)  # fmt: skip

    def score(self, seat: str) -> float:
        """The seat's points / 10 (0 without a deal)."""
        return self.points[seat] / TOTAL_VALUE

    def success(self, seat: str) -> bool:
        """Whether a deal was made."""
        return self.deal is not None

    def state_key(self) -> str:
        """Moves made, the standing offer (proposer and take) and whether the game is over."""
        offer = "-" if self.offer is None else f"{self.offer[0]}:{format_take(self.offer[1])}"
        return f"{self.family}:{self.moves}|{offer}|{int(self.over)}"

    def legal_actions(self, seat: str) -> list[str]:
        """Every proposal, accepting (when the opponent has an offer standing), walking away."""
        if self.over or seat != self.to_move():
            return []
        out = [f"<action>propose {format_take(t)}</action>" for t in splits(self.counts)]
        if self.offer is not None and self.offer[0] != seat:
            out.append("<action>accept</action>")
        return [*out, "<action>walk away</action>"]

    def oracle_action(self, seat: str) -> str:
        """The scripted negotiator's move (it reads only ``seat``'s own view)."""
        return negotiate(self.private_view(seat))

    def privileged(self, seat: str) -> dict[str, Any]:
        """The opponent's values, the best joint points, and whether a deal is Pareto-optimal."""
        out: dict[str, Any] = {
            "opponent_values": list(self.values[self._other(seat)]),
            "max_joint_points": self.max_joint,
        }
        if self.deal is not None:
            assert self.offer is not None
            proposer = self.offer[0]
            out["pareto_optimal"] = pareto_optimal(
                self.deal, self.counts, self.values[proposer], self.values[self._other(proposer)]
            )
        return out

    def metrics(self) -> dict[str, Any]:
        """Moves made, whether there was a deal, and the joint points."""
        return {"moves": self.moves, "deal": self.deal is not None,
                "joint_points": sum(self.points.values())}  # fmt: skip

    def privacy_variants(self, task: Mapping[str, Any], seat: str) -> list[dict[str, Any]]:
        """The same task with other admissible values for the other seat."""
        counts = tuple(task["counts"])
        other = self._other(seat)
        mine = tuple(task["values"][seat])
        out = []
        for vector in value_vectors(counts):
            if vector != tuple(task["values"][other]) and admissible(mine, vector):
                out.append({**task, "values": {seat: list(mine), other: list(vector)}})
            if len(out) == _MAX_VARIANTS:
                break
        return out

    def instructions(self, seat: str) -> str:
        """Rules, the action grammar and this seat's own values."""
        d = self.episode_difficulty
        return (
            f"You are {seat} in Deal or No Deal. You and another player must divide a pool of "
            f"items: {describe(self.counts)}. {self._values_line(seat)} The other player "
            "values the items differently and keeps its values private.\n"
            "Take turns. On your turn either propose what YOU keep (the other player gets the "
            "rest), e.g. <action>propose book=1 hat=0 ball=2</action>, accept the other "
            "player's last proposal with <action>accept</action>, or end the game with no "
            f"deal with <action>walk away</action>. At most {int(d['max_moves'])} moves are "
            "made in all; a proposal made as the last move cannot be answered.\n"
            "When a proposal is accepted, each player's reward is the points of its own share "
            "divided by 10; no deal gives 0 to both. You may think first in <think>...</think>. "
            f"A malformed or illegal action is refused: you act again, it costs "
            f"{abs(float(d['invalid_penalty'])):g} reward, and {int(d['max_invalid'])} refused "
            "actions in a row end the game with no deal."
        )

    def render_text(self, seat: str) -> str:
        """The pool, the seat's own values, the move count and the standing offer."""
        lines = [f"Deal or No Deal: you are {seat}. Pool: {describe(self.counts)}.",
                 self._values_line(seat)]  # fmt: skip
        if self.over:
            outcome = f"Deal: you got {self.points[seat]} points." if self.deal else "No deal."
            return "\n".join([*lines, f"Game over. {outcome}"])
        lines.append(f"Moves made: {self.moves} of {self.max_moves}.")
        if self.offer is not None and self.offer[0] != seat:
            rest = self._rest(self.offer[1])
            lines.append(f"On the table: your opponent keeps {describe(self.offer[1])}; you "
                         f"would get {describe(rest)} ({points(self.values[seat], rest)} points).")
        elif self.offer is not None:
            lines.append(f"On the table: your proposal to keep {describe(self.offer[1])}.")
        if seat != self.to_move():
            lines.append("Waiting for your opponent.")
        elif self.moves == self.max_moves - 1:
            lines.append("Your move. It is the last one: only accepting can still make a deal.")
        else:
            lines.append("Your move: propose, accept or walk away.")
        return "\n".join(lines)

    def _values_line(self, seat: str) -> str:
        values = ", ".join(f"{item} {v}" for item, v in zip(ITEMS, self.values[seat], strict=True))
        return f"Your private values per item: {values} (the whole pool is worth 10 to you)."

    def _rest(self, take: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(c - t for c, t in zip(self.counts, take, strict=True))

    def _other(self, seat: str) -> str:
        return self.seats[1 - self.seats.index(seat)]
