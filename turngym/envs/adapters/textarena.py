"""TextArena's single-player games as turngym ``TextEnv`` s (the ``textarena`` extra).

TextArena (Guertler et al., 2025, arXiv:2504.11442; PyPI ``textarena``) ships ~100 text games
behind ``ta.make(id)``, ``reset(num_players, seed)``, ``step(action) -> (done, info)``,
``get_observation() -> (player, messages)`` and ``close() -> (rewards, game_info)``. This
adapter plays one of its single-player games as a turngym env: ``textarena/Sudoku-v0`` is
``TextArenaEnv(game="Sudoku-v0")`` (the game's ``-raw`` variant, without TextArena's own
observation wrappers).

* **Tasks** are ``{"game", "seed", "kwargs"}``: TextArena generates the puzzle from the seed,
  so the seed *is* the task, and splits are disjoint by construction (two seeds could still
  generate the same puzzle; TextArena gives no way to tell).
* **Randomness.** TextArena seeds and draws from Python's global ``random`` module. The adapter
  keeps the game's own ``random`` state and swaps it in only around TextArena calls (and puts
  the caller's state back), so episodes are deterministic and other code's randomness is not
  disturbed. TextArena's prints go to a buffer.
* **Actions** are ``<action>MOVE</action>``; ``MOVE`` goes to the game unchanged (most games
  use square brackets, e.g. ``[up]`` or ``[3 4 5]``). An action without the tag never reaches
  the game (turngym's invalid action). A tagged move the game refuses follows the game's own
  rule: TextArena lets a player err once in a row and ends the game on the next (reward -1, or
  the game's completion share).
* **Reward** is TextArena's at the end of the game (1 for a win, a completion share for some
  games, -1 for repeated invalid moves); ``score`` clips it to [0, 1]; success is a reward of 1.
* **Instructions** are TextArena's prompt messages; each observation is the messages the game
  sent since the previous action.

Checks this adapter cannot meet as written (``turngym check`` passes, but read these):
``leaks`` passes vacuously: TextArena keeps its ground truth inside the game state and declares
none, so :meth:`TextArenaEnv.leak_check` has nothing to look for. The **state key** hashes
TextArena's ``game_state`` dict as JSON (objects it cannot encode as their ``repr``), so it is
deterministic within a process but not canonical across processes for games whose state holds
sets. There is **no oracle**.

Games that cannot run offline are not registered: ``Hangman``, ``WordSearch``, ``Wordle``,
``WordLadder``, ``SpellingBee`` (they download NLTK's ``words`` corpus at import), ``Klondike``
(its 0.7.4 source does not parse), ``TwentyQuestions`` (an LLM game master over the network),
``RushHour`` (its puzzle generator is not reproducible from the seed: two resets with one seed
differ, so the determinism check fails).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from turngym.core import TextEnv, Transition

__all__ = ["TextArenaEnv", "TEXTARENA_GAMES", "register_textarena_envs", "isolated_game",
           "game_task"]  # fmt: skip

TEXTARENA_GAMES: Mapping[str, int] = {
    "Sudoku-v0": 100,
    "Sokoban-v0": 30,
    "FrozenLake-v0": 100,
    "Minesweeper-v0": 100,
    "Mastermind-v0": 20,
    "TowerOfHanoi-v0": 14,
    "GuessTheNumber-v0": 10,
    "LightsOut-v0": 20,
    "FifteenPuzzle-v0": 200,
    "Crosswords-v0": 30,
    "Countdown-v0": 100,
    "PegJump-v0": 100,
    "Bandit-v0": 20,
    "Blackjack-v0": 100,
    "Cryptarithm-v0": 100,
    "Secretary-v0": 20,
    "LogicPuzzle-v0": 100,
    "Slitherlink-v0": 100,
    "ThreeCardMonte-v0": 20,
}
"""Single-player TextArena games that run offline, with the turn limit registered for each
(TextArena's own limit where it has one, so the game ends first)."""


def register_textarena_envs() -> None:
    """Register ``textarena/<Game>`` for every game of :data:`TEXTARENA_GAMES` (no import)."""
    import gymnasium

    for game, limit in TEXTARENA_GAMES.items():
        env_id = f"textarena/{game}"
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="turngym.envs.adapters.textarena:TextArenaEnv",
                max_episode_steps=limit,
                kwargs={"game": game},
            )


def _import_textarena() -> Any:
    try:
        import textarena
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "textarena/* envs need TextArena: pip install 'turngym[textarena]'"
        ) from err
    return textarena


def _text(messages: list[tuple[Any, ...]]) -> str:
    """Join TextArena messages, marking the player's own.

    Some games order a message's fields differently, so text and sender are found by type.
    """
    lines = []
    for message in messages:
        text = next((m for m in message if isinstance(m, str)), "")
        sender = next((m for m in message if isinstance(m, int) and not isinstance(m, bool)), -1)
        lines.append(text if sender < 0 else f"[You] {text}")
    return "\n".join(lines).strip()


def _is_prompt(message: tuple[Any, ...]) -> bool:
    return any(getattr(m, "name", "") == "PROMPT" for m in message)



@contextlib.contextmanager
def isolated_game(owner: Any) -> Iterator[None]:
    """Run TextArena code on ``owner``'s own ``random`` state, with its prints silenced.

    TextArena seeds and draws from Python's global ``random``; swapping in the state kept on
    ``owner._rng_state`` (and back out afterwards) keeps every env's stream its own and leaves
    the caller's global state untouched.
    """
    outer = random.getstate()
    if owner._rng_state is not None:
        random.setstate(owner._rng_state)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        owner._rng_state = random.getstate()
        random.setstate(outer)


def game_task(rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
    """A TextArena task: the game id, a seed, and the game's constructor kwargs."""
    return {"game": difficulty["game"], "seed": int(rng.integers(2**31 - 1)),
            "kwargs": dict(difficulty["game_kwargs"])}  # fmt: skip

class TextArenaEnv(TextEnv):
    """One TextArena single-player game (see the module doc for the adapter's rules).

    Difficulty knobs: ``game`` (a TextArena id, e.g. ``"Sudoku-v0"``) and ``game_kwargs`` (its
    constructor arguments, e.g. ``{"clues": 40}``).
    """

    family: ClassVar[str] = "textarena"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>[up]</action>",
        "<action>[1]</action>",
        "<action>[0 1 2]</action>",
        "<action>[A 5]</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {"game": "Sudoku-v0", "game_kwargs": {}}

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.game: Any = None
        self._rng_state: Any = None
        self._prompt = ""
        self._view = ""
        self.reward = 0.0
        self.done = False
        self.last_valid = True

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """The game must be a TextArena id; its kwargs a dict."""
        game = difficulty["game"]
        if not isinstance(game, str) or not game:
            raise ValueError(f"TextArenaEnv: game={game!r}; name a TextArena id, e.g. 'Sudoku-v0'.")
        if not isinstance(difficulty["game_kwargs"], Mapping):
            raise ValueError("TextArenaEnv: game_kwargs must be a dict of constructor arguments.")

    def _isolated(self) -> contextlib.AbstractContextManager[None]:
        return isolated_game(self)

    # --- Tasks ---------------------------------------------------------------------------------
    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """The game id, a seed, and the game's kwargs."""
        return game_task(rng, difficulty)

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Make the game and reset it with the task's seed."""
        ta = _import_textarena()
        game, seed = task.get("game"), task.get("seed")
        if not isinstance(game, str) or not isinstance(seed, int):
            raise ValueError('A TextArena task is {"game": "Sudoku-v0", "seed": 1, "kwargs": {}}.')
        registry = ta.envs.registration.ENV_REGISTRY
        name = f"{game}-raw" if f"{game}-raw" in registry else game
        if name not in registry:
            raise ValueError(f"TextArena has no game {game!r}.")
        self._rng_state = None
        with self._isolated():
            self.game = ta.make(name, **dict(task.get("kwargs") or {}))
            self.game.reset(num_players=1, seed=seed)
            _, messages = self.game.get_observation()
        prompt = [m for m in messages if _is_prompt(m)]
        self._prompt = _text(prompt)
        self._view = _text([m for m in messages if m not in prompt]) or "The game begins."
        self.reward, self.done, self.last_valid = 0.0, False, True

    # --- Play -----------------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Send the move to the game; at its end collect TextArena's reward."""
        if self.done:
            return Transition(valid=False, effective=False, message="The game is over.")
        state = self.game.state
        with self._isolated():
            try:
                done, _ = self.game.step(command)
            except Exception as err:  # a third-party game must not crash the rollout
                self._view = f"The game rejected the move ({type(err).__name__}: {err})."
                return Transition(valid=False, effective=False)
            _, messages = self.game.get_observation()
        invalid = bool(getattr(state, "error_count", 0)) or bool(
            state.game_info.get(0, {}).get("invalid_move"))  # fmt: skip
        self.last_valid = not invalid
        self._view = _text(messages) or "(no new messages)"
        reward = 0.0
        if done:
            self.done = True
            rewards = state.rewards or {}
            raw = rewards.get(0, 0.0)
            reward = float(raw) if isinstance(raw, int | float) else 0.0
            self.reward = reward
            reason = state.game_info.get(0, {}).get("reason")
            if reason:
                self._view += f"\nGame over: {reason}"
        return Transition(
            reward=reward,
            terminated=done,
            valid=not invalid,
            reward_components={"textarena": reward},
            effective=not invalid,
        )

    # --- Views ----------------------------------------------------------------------------------
    def instructions(self) -> str:
        """TextArena's prompt, then the action format."""
        return (f"{self._prompt}\n\nAnswer with your move inside <action></action>, written as the "
                "game asks (often in square brackets), e.g. <action>[up]</action>.")  # fmt: skip

    def render_text(self) -> str:
        """The messages the game sent since the previous action."""
        return self._view

    def state_key(self) -> str:
        """A hash of TextArena's ``game_state`` (JSON, ``repr`` for what JSON cannot encode)."""
        state = getattr(self.game, "state", None)
        blob = json.dumps([getattr(state, "game_state", None), self.done, self.reward],
                          sort_keys=True, default=repr)  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def score(self) -> float:
        """TextArena's final reward clipped to [0, 1] (0 while the game runs)."""
        return float(min(1.0, max(0.0, self.reward)))

    def privileged(self) -> dict[str, Any]:
        """The game and seed (TextArena keeps its ground truth inside the game state)."""
        return {"game": self.task.get("game"), "seed": self.task.get("seed")}

    def metrics(self) -> dict[str, Any]:
        """TextArena's raw reward and turn count."""
        state = getattr(self.game, "state", None)
        return {"textarena_reward": self.reward, "textarena_turn": getattr(state, "turn", 0)}

    def leak_check(self, text: str) -> list[str]:
        """Nothing to check: TextArena declares no ground truth apart from its state."""
        return []
