"""TextArena's two-player games as turngym PettingZoo envs (``textarena/<Game>-v0``).

The same adapter rules as :mod:`turngym.envs.adapters.textarena` (seed = task, the game's own
``random`` state swapped in around every TextArena call, moves inside ``<action></action>``
passed unchanged), on :class:`~turngym.envs.multiagent.base.TextAECEnv`: seats ``player_0``
and ``player_1`` are TextArena's players 0 and 1. Each seat's observation is the messages
TextArena addressed to that player since the seat last moved; its instructions are TextArena's
prompt for that player. Rewards are TextArena's at the end of the game (+1 win, -1 loss, 0
draw); ``score`` maps them to 1, 0 and 0.5. A tagged move TextArena refuses follows
TextArena's rule (one error allowed, the next loses); untagged actions are turngym's refusals
(``invalid_penalty``, forfeit after ``max_invalid``).

Checks: as for single-player games, the leak check has nothing to look for (TextArena declares
no hidden ground truth apart from its state; privacy variants are not declared), the state key
hashes TextArena's ``game_state``, and there is no oracle or scripted opponent (play them
against another agent, or in self-play).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from turngym.envs.adapters.textarena import (
    _import_textarena,
    _is_prompt,
    _text,
    game_task,
    isolated_game,
)
from turngym.envs.multiagent.base import BASE_DIFFICULTY, Move, TextAECEnv

__all__ = ["TextArenaAEC", "TEXTARENA_TWO_PLAYER_GAMES", "register_textarena_multiagent"]

TEXTARENA_TWO_PLAYER_GAMES: Mapping[str, int] = {
    "TicTacToe-v0": 30,
    "ConnectFour-v0": 100,
    "IteratedPrisonersDilemma-v0": 100,
    "KuhnPoker-v0": 200,
    "Othello-v0": 200,
    "Breakthrough-v0": 300,
}
"""Two-player TextArena games registered as ``textarena/<Game>`` (turn caps for both seats)."""


def register_textarena_multiagent() -> None:
    """Register the two-player games in turngym's multi-agent registry (no import)."""
    from turngym.envs.multiagent.registry import register_multiagent

    for game, turns in TEXTARENA_TWO_PLAYER_GAMES.items():
        register_multiagent(f"textarena/{game}", "turngym.envs.adapters.textarena_multi:"
                            "TextArenaAEC", max_turns=turns, kwargs={"game": game})  # fmt: skip


class TextArenaAEC(TextAECEnv):
    """One TextArena two-player game on PettingZoo's AEC API (see the module doc)."""

    family: ClassVar[str] = "textarena2p"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>[4]</action>",
        "<action>[cooperate]</action>",
        "<action>[check]</action>",
        "<action>[d3]</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        **BASE_DIFFICULTY, "game": "TicTacToe-v0", "game_kwargs": {}}  # fmt: skip
    default_max_turns: ClassVar[int] = 200

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of ``TextAECEnv``."""
        super().__init__(**kwargs)
        self.game: Any = None
        self._rng_state: Any = None
        self._prompts: dict[str, str] = {}
        self._views: dict[str, list[str]] = {}
        self.final: dict[str, float] = {}

    def _isolated(self) -> contextlib.AbstractContextManager[None]:
        return isolated_game(self)

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """The game id, a seed and the game's kwargs."""
        return game_task(rng, difficulty)

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Make the game, reset it for two players, collect each player's prompt."""
        ta = _import_textarena()
        game, seed = task.get("game"), task.get("seed")
        registry = ta.envs.registration.ENV_REGISTRY
        if not isinstance(game, str) or not isinstance(seed, int) or game not in registry:
            raise ValueError(f"A TextArena task is {{'game': <TextArena id>, 'seed': int}}; got "
                             f"{dict(task)!r}.")  # fmt: skip
        name = f"{game}-raw" if f"{game}-raw" in registry else game
        self._rng_state, self.final = None, {}
        with self._isolated():
            self.game = ta.make(name, **dict(task.get("kwargs") or {}))
            self.game.reset(num_players=2, seed=seed)
        self._views = {seat: [] for seat in self.seats}
        self._prompts = {}
        for pid, seat in enumerate(self.seats):
            messages = self._drain(pid)
            self._prompts[seat] = _text([m for m in messages if _is_prompt(m)])
            rest = _text([m for m in messages if not _is_prompt(m)])
            if rest:
                self._views[seat].append(rest)

    def _drain(self, pid: int) -> list[Any]:
        queue = self.game.state.observations
        messages, queue[pid] = list(queue.get(pid, [])), []
        return messages

    def to_move(self) -> str:
        """TextArena's current player."""
        return self.seats[int(self.game.state.current_player_id)]

    def instructions(self, seat: str) -> str:
        """TextArena's prompt for the seat, then the action format."""
        return (f"{self._prompts.get(seat, '')}\n\nAnswer with your move inside <action></action>, "
                "written as the game asks, e.g. <action>[4]</action>.")

    def render_text(self, seat: str) -> str:
        """What TextArena told this player since the seat last moved."""
        return "\n".join(self._views.get(seat, [])) or "(waiting for your move)"

    def apply(self, seat: str, command: str) -> Move:
        """Send the move to TextArena; deliver each player's new messages to its seat."""
        state = self.game.state
        if self.final:
            return Move(valid=False, message="The game is over.")
        self._views[seat] = []
        with self._isolated():
            try:
                done, _ = self.game.step(command)
            except Exception as err:  # a third-party game must not crash the rollout
                return Move(valid=False, message=f"The game rejected the move ({err}).")
        invalid = bool(getattr(state, "made_invalid_move", False)) or bool(
            getattr(state, "error_count", 0))  # fmt: skip
        for pid, other in enumerate(self.seats):
            text = _text(self._drain(pid))
            if text:
                self._views[other].append(text)
        if not done:
            return Move(valid=not invalid)
        raw = state.rewards or {}
        self.final = {s: float(raw.get(pid, 0.0)) for pid, s in enumerate(self.seats)}
        return Move(valid=not invalid, rewards=dict(self.final), terminated=True)

    def forfeit(self, seat: str) -> Move:
        """Too many untagged actions in a row: the seat loses."""
        self.final = {s: (-1.0 if s == seat else 1.0) for s in self.seats}
        return Move(False, "You forfeit the game.", f"{seat} forfeits: you win.",
                    dict(self.final), terminated=True)  # fmt: skip

    def state_key(self) -> str:
        """A hash of TextArena's game state, the player to move and the result."""
        state = getattr(self.game, "state", None)
        blob = json.dumps([getattr(state, "game_state", None),
                           getattr(state, "current_player_id", None), self.final],
                          sort_keys=True, default=repr)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def score(self, seat: str) -> float:
        """1 for a win, 0.5 for a draw, 0 for a loss (0 while the game runs)."""
        if not self.final:
            return 0.0
        return {1: 1.0, 0: 0.5}.get(int(np.sign(self.final[seat])), 0.0)

    def metrics(self) -> dict[str, Any]:
        """TextArena's final rewards (empty while the game runs)."""
        return {"textarena_rewards": dict(self.final)}
