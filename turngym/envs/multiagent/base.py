"""``TextAECEnv``: the bookkeeping every turn-based text game shares, on PettingZoo's AEC API.

A subclass describes one game through a few hooks (task generation, rules, per-seat rendering);
the base class does what must be identical everywhere: tasks and splits from
:mod:`turngym.tasks`, action-tag parsing with :func:`turngym.core.parse_action`, the
invalid-move rule, per-seat rewards and infos with turngym's reserved keys, truncation at the
turn cap, and PettingZoo's dead-step protocol (Terry et al., "PettingZoo: Gym for Multi-Agent
Reinforcement Learning", NeurIPS 2021; the AEC API at https://pettingzoo.farama.org/api/aec/).

**Invalid-move rule.** A malformed or illegal action never raises. The same seat must move
again; the refused action costs ``invalid_penalty`` reward (default -0.1, the format penalty
of RAGEN and verl-agent); after ``max_invalid`` refused actions in a
row the seat forfeits (the game says what forfeiting means: a loss in board games, no deal in
bargaining). The refusal reason reaches only the seat that made it.

**Privacy.** ``observe(seat)`` and the seat's instructions are built from what that seat may
know; ``infos[seat]["privileged"]`` holds ground truth for trainers (the opponent's private
values, solver output), which the rollout engine strips before any agent sees anything.
:meth:`TextAECEnv.privacy_variants` names tasks that differ only in what a seat must not see,
so the leak test can check that the seat's view does not change with them.

**There is no dead step for the game itself:** a game ends for every seat at once
(docs/design.md#the-environment-contract); the dead steps PettingZoo's protocol asks for
afterwards only retire agents.
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pettingzoo import AECEnv

from turngym.core import (
    ACTION_VALID,
    INSTRUCTIONS,
    METRICS,
    PRIVILEGED,
    REWARD_COMPONENTS,
    SCORE,
    STATE_KEY,
    SUCCESS,
    TASK_ID,
)
from turngym.task_cache import cached_draw
from turngym.tasks import SPLITS, canonical_json, resolve_difficulty, task_fingerprint
from turngym.text_actions import TextSpace, parse_action, parse_fields

__all__ = ["TextObservation", "Move", "TextAECEnv", "BASE_DIFFICULTY"]

_RESET_OPTION_KEYS = frozenset({"split", "task", "difficulty", "level"})

BASE_DIFFICULTY: Mapping[str, Any] = {"invalid_penalty": -0.1, "max_invalid": 3}
"""Knobs every game has: the reward of a refused action and the refusals before forfeiting."""


class TextObservation(str):
    """A ``str`` that also carries ``dtype = None`` (the dtype of :class:`TextSpace`).

    PettingZoo's ``api_test`` compares ``observation_space.dtype`` with ``observation.dtype``
    (it assumes numpy observations); this subclass passes that comparison and is a plain
    string everywhere else. The rollout engine converts it with ``str()``.
    """

    __slots__ = ()
    dtype = None


@dataclass(frozen=True, slots=True)
class Move:
    """What :meth:`TextAECEnv.apply` returns for one parsed command.

    Attributes:
        valid: Whether the command was legal; an illegal one changes nothing.
        message: Feedback shown only to the seat that moved (e.g. why it was refused).
        announcement: What every other seat is told (e.g. "Your opponent played 5.").
        rewards: Immediate reward per seat (seats left out get 0).
        terminated: The game ended for every seat.
    """

    valid: bool = True
    message: str = ""
    announcement: str = ""
    rewards: Mapping[str, float] = field(default_factory=dict)
    terminated: bool = False


class TextAECEnv(AECEnv):
    """Base class of turngym's multi-agent games: a PettingZoo ``AECEnv`` whose spaces are text.

    ``reset(seed, options)`` takes the same options as :class:`turngym.core.TextEnv`
    (``split``, ``task``, ``difficulty``, ``level``); the seed selects the task within the
    split. Unknown option keys only warn, because PettingZoo's ``api_test`` passes
    ``{"options": 1}``; :meth:`validate_options` (which the rollout engine calls before any
    work) rejects them.

    ``infos[seat]`` after reset and after every step holds the reserved keys of
    :mod:`turngym.core` from that seat's point of view: ``score`` and ``success`` are the
    seat's own, ``privileged`` is ground truth for trainers, ``instructions`` appear only after
    reset, ``action_valid`` only in the info of the seat that just acted.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi"],
        "name": "text_aec_v0",
        "is_parallelizable": False,
        "render_fps": 1,
    }

    # --- Set by subclasses ---
    family: ClassVar[str] = "game"
    """Short lowercase name, used in task ids and RNG streams. Never change it once released."""
    seats: ClassVar[tuple[str, ...]] = ("player_0", "player_1")
    """The seats, in PettingZoo's ``possible_agents`` order."""
    action_tag: ClassVar[str] = "action"
    """The tag that wraps an action."""
    example_actions: ClassVar[tuple[str, ...]] = ()
    """Valid-looking tagged actions for ``action_space(seat).sample()``."""
    difficulty_defaults: ClassVar[Mapping[str, Any]] = BASE_DIFFICULTY
    """Every difficulty knob and its default value (include :data:`BASE_DIFFICULTY`)."""
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {}
    """Named presets of knobs, ``level -> overrides``."""
    default_max_turns: ClassVar[int] = 100
    """Turn cap when the registry passes none."""
    search_depth: ClassVar[int | None] = None
    """Minimax depth of the reference player of a board game (``None``: exact search)."""
    reference_opponent: ClassVar[str] = "random"
    """Agent spec of the game's scripted opponent of reference (``minimax`` for board games,
    ``negotiator`` for bargaining): what ``turngym eval`` plays against unless told otherwise."""
    _integer_draws: ClassVar[Callable[..., Any] | None] = None
    """As :attr:`turngym.core.TextEnv._integer_draws`: the game's own ``generate_task`` when
    it only calls ``rng.integers(n)``, so reset may hand it a generator that skips building
    NumPy's (a subclass that overrides ``generate_task`` gets NumPy's again)."""
    spec_id: str | None = None
    """The registered id, set by :func:`~turngym.envs.multiagent.registry.make_multiagent`."""

    def __init__(
        self,
        *,
        render_mode: str | None = None,
        max_turns: int | None = None,
        level: int | None = None,
        **difficulty: Any,
    ) -> None:
        """Create the env.

        Args:
            render_mode: ``None`` or ``"ansi"`` (``render()`` returns the text of the seat
                to move).
            max_turns: Turn cap for the whole game; past it every seat is truncated.
            level: A difficulty preset from :attr:`levels`.
            **difficulty: Knob overrides (see :attr:`difficulty_defaults`).

        Raises:
            ValueError: An unknown render mode, level or knob, or an invalid knob value.
        """
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'ansi' or None.")
        self.render_mode = render_mode
        self.max_turns = int(max_turns or self.default_max_turns)
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.difficulty = resolve_difficulty(
            self.difficulty_defaults, self.levels, level=level, overrides=difficulty
        )
        self._check_all(self.difficulty)
        self._difficulty_json = canonical_json(self.difficulty)
        self.possible_agents = list(self.seats)
        self.agents: list[str] = []
        space = TextSpace()
        actions = TextSpace(examples=self.example_actions)
        self.observation_spaces = dict.fromkeys(self.seats, space)
        self.action_spaces = dict.fromkeys(self.seats, actions)
        self._rng: np.random.Generator | None = None
        self._rng_seed: int | None = None
        self.episode_difficulty: dict[str, Any] = dict(self.difficulty)
        self.task: dict[str, Any] = {}
        self.task_id = ""
        self.split = "train"
        self.turn = 0

    @classmethod
    def action_vocabulary(cls) -> tuple[str, ...]:
        """The action texts a restricted decoder may produce (as ``TextEnv.action_vocabulary``).

        The contents of the :attr:`example_actions` tags, in order and without repeats.

        Example:
            >>> from turngym.envs.multiagent.tictactoe import TicTacToe
            >>> TicTacToe.action_vocabulary()
            ('1', '2', '3', '4', '5', '6', '7', '8', '9')
        """
        parsed = (parse_action(example, cls.action_tag) for example in cls.example_actions)
        return tuple(dict.fromkeys(p.content for p in parsed if p.ok and p.content))

    # --- Hooks for subclasses -----------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` with an actionable message if a game knob value is invalid."""

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Return a new JSON-serialisable task dict drawn with ``rng`` only."""
        raise NotImplementedError

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Set up the game state from a task dict; raise ``ValueError`` if it is malformed."""
        raise NotImplementedError

    def to_move(self) -> str:
        """Return the seat whose turn it is."""
        raise NotImplementedError

    def instructions(self, seat: str) -> str:
        """Return the system text for ``seat``: rules, action grammar, one example."""
        raise NotImplementedError

    def render_text(self, seat: str) -> str:
        """Return the current state as ``seat`` may see it."""
        raise NotImplementedError

    def apply(self, seat: str, command: str) -> Move:
        """Apply the content of ``seat``'s action tag (never raise on bad input)."""
        raise NotImplementedError

    def forfeit(self, seat: str) -> Move:
        """End the game because ``seat`` made ``max_invalid`` refused actions in a row."""
        raise NotImplementedError

    def state_key(self) -> str:
        """Return the canonical key of the game state (equal states, equal keys)."""
        raise NotImplementedError

    def score(self, seat: str) -> float:
        """Return ``seat``'s score of the current state, in [0, 1]."""
        raise NotImplementedError

    def success(self, seat: str) -> bool:
        """Whether ``seat`` has succeeded (default: its score is 1)."""
        return self.score(seat) >= 1.0

    def legal_actions(self, seat: str) -> list[str]:
        """Return the tagged actions that are legal for ``seat`` now (random agents draw here)."""
        return list(self.example_actions)

    def privileged(self, seat: str) -> dict[str, Any]:
        """Return ground truth for trainers about ``seat``'s game; never shown to any seat."""
        return {}

    def metrics(self) -> dict[str, Any]:
        """Return game numbers for the info dict."""
        return {}

    def oracle_action(self, seat: str) -> str:
        """Return the action of the game's reference player (a solver or scripted strategy)."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle")

    def position(self) -> Any:
        """Return the board position, for search-based opponents (board games only)."""
        raise TypeError(f"{type(self).__name__} is not a board game: it has no position.")

    def action_for(self, move: Any) -> str:
        """Return the tagged action text of a move of :meth:`position` (board games only)."""
        raise TypeError(f"{type(self).__name__} is not a board game: it has no moves.")

    def private_view(self, seat: str) -> Any:
        """Return what ``seat`` privately knows (games with hidden information only)."""
        raise TypeError(f"{type(self).__name__} has no private per-seat view.")

    def privacy_variants(self, task: Mapping[str, Any], seat: str) -> list[dict[str, Any]]:
        """Return tasks that differ from ``task`` only in what ``seat`` must not see.

        The leak test replays one action script on each and requires ``seat``'s instructions
        and observations to be identical. Perfect-information games return ``[]``.
        """
        return []

    @property
    def np_random(self) -> np.random.Generator:
        """The generator that draws a task seed when ``reset`` gets none.

        Seeded by ``reset(seed=...)``; built on first use, since a seeded reset needs none.
        """
        if self._rng is None:
            self._rng = np.random.default_rng(self._rng_seed)
        return self._rng

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self._rng, self._rng_seed = value, None

    # --- PettingZoo API -----------------------------------------------------------------------
    def observation_space(self, agent: str) -> TextSpace:
        """The (shared) text observation space; the same object on every call."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> TextSpace:
        """The (shared) text action space; ``sample()`` draws an example action."""
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Start a game on the task selected by ``(options["split"], seed)``.

        Raises:
            ValueError: An unknown split, level or knob, or a malformed task.
        """
        options = dict(options) if options else {}
        unknown = sorted(set(options) - _RESET_OPTION_KEYS) if options else ()
        if unknown:
            warnings.warn(f"{type(self).__name__}.reset ignores unknown options {unknown}",
                          stacklevel=2)  # fmt: skip
            for key in unknown:
                del options[key]
        if seed is not None:
            self._rng, self._rng_seed = None, seed  # built by np_random when first needed
        else:
            seed = int(self.np_random.integers(2**31 - 1))
        self.episode_difficulty = self._validated_difficulty(options)
        self.split = options.get("split", "train")
        self.task, fingerprint = self._select_task(seed, options)
        self.task_id = f"{self.family}-{fingerprint[:12]}"  # task_id_of(family, task)
        self.turn = 0
        self.load_task(self.task)
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self._inbox: dict[str, list[str]] = {seat: [] for seat in self.agents}
        self._refused = dict.fromkeys(self.agents, 0)
        self.agent_selection = self.to_move()
        self._skip_agent_selection = None
        self.infos = self._infos()
        for seat in self.agents:
            self.infos[seat][INSTRUCTIONS] = self.instructions(seat)

    def validate_options(self, options: Mapping[str, Any]) -> None:
        """Check reset options without resetting, so a bad config fails before any work.

        Raises:
            ValueError: Unknown option keys, split, level or knobs, or an invalid knob value.
        """
        unknown = sorted(set(options) - _RESET_OPTION_KEYS)
        if unknown:
            raise ValueError(
                f"Unknown reset option(s) {unknown}; known: {sorted(_RESET_OPTION_KEYS)}."
            )
        self._validated_difficulty(options)

    def observe(self, agent: str) -> TextObservation:
        """Return ``agent``'s view: messages since its last action, then the state."""
        inbox = self._inbox.get(agent) or ()
        body = self.render_text(agent)
        return TextObservation("\n".join([*inbox, "", body]) if inbox else body)

    def step(self, action: Any) -> None:
        """Apply the action of ``agent_selection``; malformed or illegal actions never raise."""
        seat = self.agent_selection
        if self.terminations[seat] or self.truncations[seat]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[seat] = 0.0
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self.turn += 1
        move = self._parse_and_apply(seat, action)
        components: dict[str, float] = {}
        if not move.valid:
            self._refused[seat] += 1
            penalty = float(self.episode_difficulty["invalid_penalty"])
            self.rewards[seat] += penalty
            components["invalid_action"] = penalty
            if self._refused[seat] >= int(self.episode_difficulty["max_invalid"]):
                forfeit = self.forfeit(seat)
                move = Move(False, f"{move.message}\n{forfeit.message}".strip(),
                            forfeit.announcement, forfeit.rewards, terminated=True)  # fmt: skip
        else:
            self._refused[seat] = 0
        for other, reward in move.rewards.items():
            self.rewards[other] += float(reward)
        components["game"] = float(move.rewards.get(seat, 0.0))
        self._deliver(seat, move)
        if move.terminated:
            self.terminations = dict.fromkeys(self.agents, True)
        elif self.turn >= self.max_turns:
            self.truncations = dict.fromkeys(self.agents, True)
        else:
            self.agent_selection = self.to_move()
        self._accumulate_rewards()
        self.infos = self._infos()
        self.infos[seat][ACTION_VALID] = move.valid
        self.infos[seat][REWARD_COMPONENTS] = components

    def render(self) -> str | None:
        """Return the view of the seat to move in ``"ansi"`` mode, else ``None``."""
        if self.render_mode != "ansi" or not self.agents:
            return None
        return str(self.observe(self.agent_selection))

    def close(self) -> None:
        """Nothing to release (defined because ``render`` is, as PettingZoo's test requires)."""

    # --- Snapshot / restore -------------------------------------------------------------------
    def get_state(self) -> bytes:
        """Snapshot everything that determines the rest of the game."""
        skip = {"observation_spaces", "action_spaces"}
        return pickle.dumps({k: v for k, v in self.__dict__.items() if k not in skip})

    def set_state(self, state: bytes) -> None:
        """Restore a snapshot from :meth:`get_state` (of an env of the same class)."""
        self.__dict__.update(pickle.loads(state))

    # --- Internals ----------------------------------------------------------------------------
    def _parse_and_apply(self, seat: str, action: Any) -> Move:
        if not isinstance(action, str):
            action = ""  # PettingZoo's tests may pass numbers; they are refused like bad text
        content, error = parse_fields(action, self.action_tag, self.action_space(seat).max_chars)
        if content is not None:
            move = self.apply(seat, content)
        else:
            example = self.example_actions[0] if self.example_actions else ""
            message = f"Invalid action: {error}. Answer like {example}."
            move = Move(valid=False, message=message)
        if not move.valid:
            left = int(self.episode_difficulty["max_invalid"]) - self._refused[seat] - 1
            note = f"Refused ({left} more refused action(s) in a row forfeit the game)."
            move = Move(False, f"{move.message} {note}" if left > 0 else move.message)
        return move

    def _deliver(self, seat: str, move: Move) -> None:
        self._inbox[seat] = [move.message] if move.message else []
        if move.announcement:
            for other in self.agents:
                if other != seat:
                    self._inbox[other].append(move.announcement)

    def _infos(self) -> dict[str, dict[str, Any]]:
        """Every seat's info; the state key and metrics do not depend on the seat."""
        key, metrics, task_id = self.state_key(), self.metrics(), self.task_id
        success, score, privileged = self.success, self.score, self.privileged
        return {
            seat: {
                TASK_ID: task_id,
                STATE_KEY: key,
                SUCCESS: bool(success(seat)),
                SCORE: float(score(seat)),
                PRIVILEGED: privileged(seat),
                METRICS: dict(metrics),
            }
            for seat in self.agents
        }

    def _check_all(self, difficulty: Mapping[str, Any]) -> None:
        if float(difficulty["invalid_penalty"]) > 0:
            raise ValueError("invalid_penalty must be <= 0 (it is added to the reward).")
        if int(difficulty["max_invalid"]) < 1:
            raise ValueError("max_invalid must be >= 1 refused action before forfeiting.")
        self.check_difficulty(difficulty)

    def _validated_difficulty(self, options: Mapping[str, Any]) -> dict[str, Any]:
        split = options.get("split", "train")
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; expected one of {list(SPLITS)}.")
        if options.get("level") is None and not options.get("difficulty"):
            return self.difficulty
        difficulty = resolve_difficulty(
            self.difficulty_defaults, self.levels, level=options.get("level"),
            overrides=options.get("difficulty"), base=self.difficulty,
        )  # fmt: skip
        self._check_all(difficulty)
        return difficulty

    def _select_task(self, seed: int, options: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """The game's task (a fresh copy ``load_task`` may keep) and its fingerprint."""
        if "task" in options:
            task = options["task"]
            if not isinstance(task, Mapping):
                raise ValueError(f"options['task'] must be a task dict, got {type(task).__name__}.")
            copied: dict[str, Any] = json.loads(canonical_json(task))
            return copied, task_fingerprint(copied)
        difficulty, split = self.episode_difficulty, self.split
        # The seats of a game, and the G games of a group, reset to the same task: draw each
        # (class, split, seed, knobs) once, like single-agent envs do.
        as_json = (
            self._difficulty_json if difficulty is self.difficulty else canonical_json(difficulty)
        )
        return cached_draw(
            (type(self), split, seed, as_json),
            lambda rng: self.generate_task(rng, difficulty),
            self.family,
            lazy=type(self).generate_task is type(self)._integer_draws,
        )
