"""The text-environment contract: :class:`TextEnv`, :class:`Transition`, the info keys.

A :class:`TextEnv` *is* a ``gymnasium.Env[str, str]`` (docs/design.md#principles): observations
and actions are strings, ``reset`` and ``step`` have Gymnasium's signatures, and every env passes
``gymnasium.utils.env_checker.check_env``. What turngym adds is a per-turn record in ``info``
(the reserved keys below), tasks and splits (:mod:`turngym.tasks`), snapshot/restore, an
oracle, and a leak check.

Writing an env means subclassing :class:`TextEnv` and filling in the "set by subclasses"
hooks; the base class does the bookkeeping that must be identical everywhere (option parsing,
task selection, action tags (:mod:`turngym.text_actions`, re-exported here), invalid actions,
the info dict, snapshots).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, SupportsFloat

import gymnasium
import numpy as np

from turngym._seeding import LazySeeding
from turngym.task_cache import cached_draw, cached_task, clear_task_cache
from turngym.tasks import (
    SPLITS,
    canonical_json,
    check_int_knobs,
    load_tasks_file,
    resolve_difficulty,
    task_fingerprint,
)
from turngym.text_actions import ParsedAction, TextSpace, parse_action, parse_fields

__all__ = [
    "check_int_knobs",
    "TASK_ID",
    "INSTRUCTIONS",
    "STATE_KEY",
    "ACTION_VALID",
    "REWARD_COMPONENTS",
    "SUCCESS",
    "SCORE",
    "PRIVILEGED",
    "METRICS",
    "RESERVED_INFO_KEYS",
    "GOLD_ANSWERS",
    "RESERVED_PRIVILEGED_KEYS",
    "TextSpace",
    "ParsedAction",
    "parse_action",
    "Transition",
    "TextEnv",
    "InvalidActionPenalty",
    "cached_task",
    "clear_task_cache",
]

# --- Reserved info keys (docs/design.md#core-records) ----------------------------------------
TASK_ID = "task_id"
"""Stable id of the current task (reset and every step)."""
INSTRUCTIONS = "instructions"
"""System text: the task, the action grammar and one example (reset only)."""
STATE_KEY = "state_key"
"""Canonical, hashable key of the env state (not of the text history)."""
ACTION_VALID = "action_valid"
"""Whether the last action parsed and applied (step only)."""
REWARD_COMPONENTS = "reward_components"
"""Dict naming the parts that add up to the step reward."""
SUCCESS = "success"
"""Whether the task is solved in the current state."""
SCORE = "score"
"""Task score in [0, 1] of the current state; the final one is the episode outcome."""
PRIVILEGED = "privileged"
"""Ground truth for trainers/evaluators; stripped by the rollout engine before agents see it."""
METRICS = "metrics"
"""Env-specific numbers (e.g. the optimal plan length)."""

RESERVED_INFO_KEYS: tuple[str, ...] = (
    TASK_ID, INSTRUCTIONS, STATE_KEY, ACTION_VALID, REWARD_COMPONENTS, SUCCESS, SCORE, PRIVILEGED,
    METRICS,
)  # fmt: skip

# --- Reserved keys inside info["privileged"] ---------------------------------------------------
GOLD_ANSWERS = "gold_answers"
"""Accepted final answers of the task: a list of strings, the first one canonical (empty when
the task asks for no answer). Probe-based credit methods score the policy's belief in it. An
env that fills it on reset and every step declares it in :attr:`TextEnv.privileged_keys` and
says how an answer is written in :attr:`TextEnv.answer_template`."""

RESERVED_PRIVILEGED_KEYS: tuple[str, ...] = (GOLD_ANSWERS,)

_RESET_OPTION_KEYS = frozenset({"split", "task", "difficulty", "level"})


# --- The env base class -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Transition:
    """What a subclass's :meth:`TextEnv.apply` returns for one parsed command.

    Attributes:
        reward: Immediate reward.
        terminated: The task ended (solved or failed for good).
        valid: Whether the command was legal; an illegal one changes nothing.
        message: Feedback shown above the rendered state (e.g. why it was illegal).
        reward_components: Named parts of ``reward`` (they must add up to it).
        effective: Whether the state changed (RAGEN's ``action_is_effective``).
    """

    reward: float = 0.0
    terminated: bool = False
    valid: bool = True
    message: str = ""
    reward_components: Mapping[str, float] = field(default_factory=dict)
    effective: bool = True


class TextEnv(LazySeeding, gymnasium.Env[str, str]):
    """Base class of every turngym env: a Gymnasium env whose spaces are text.

    ``reset(options=...)`` accepts ``split`` (``"train"``/``"validation"``/``"test"``,
    default ``"train"``), ``task`` (a task dict, bypassing generation), ``difficulty`` (knob
    overrides) and ``level`` (a preset). The seed selects the task within the split.

    Info after reset and after every step holds the reserved keys of this module;
    ``instructions`` only after reset, ``action_valid`` only after a step.
    """

    # Not a ClassVar: gymnasium.Env declares it as an attribute (instances may replace it).
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}
    observation_space: TextSpace
    action_space: TextSpace

    # --- Set by subclasses ---
    family: ClassVar[str] = "text"
    """Short lowercase name, used in task ids and RNG streams. Never change it once released."""
    action_tag: ClassVar[str] = "action"
    """The tag that wraps an action."""
    example_actions: ClassVar[tuple[str, ...]] = ()
    """Valid-looking tagged actions for ``action_space.sample()`` and random agents."""
    action_words: ClassVar[tuple[str, ...]] = ()
    """The texts that go inside the action tag when the env's actions form a small closed set
    (FrozenLake: its four moves). Read by :meth:`action_vocabulary`; empty means "the
    contents of :attr:`example_actions`"."""
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {}
    """Every difficulty knob and its default value."""
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {}
    """Named presets of knobs, ``level -> overrides``."""
    privileged_keys: ClassVar[frozenset[str]] = frozenset()
    """The reserved privileged keys (e.g. :data:`GOLD_ANSWERS`) this env fills on reset and on
    every step. A static declaration, so trainers can refuse a method before any rollout."""
    answer_template: ClassVar[str] = ""
    """How a final answer is written as an action, with ``{answer}`` where it goes, e.g.
    ``"<answer>{answer}</answer>"`` (needed with :data:`GOLD_ANSWERS`)."""
    success_score: ClassVar[float] = 1.0
    """``info["success"]`` is ``score() >= success_score`` (an env whose score grades quality
    above "solved", like KernelGen's correct-and-faster, sets the solved level here)."""
    _integer_draws: ClassVar[Callable[..., Any] | None] = None
    """The env's own :meth:`generate_task` function when it draws only with
    ``rng.integers(n)``: reset then hands it a generator that makes those draws without
    building NumPy's (same numbers; any other use of ``rng`` builds NumPy's and still works).
    A subclass that overrides ``generate_task`` gets NumPy's generator again."""
    costly_knobs: ClassVar[frozenset[str]] = frozenset()
    """Knobs whose values select what the env builds (a corpus, a catalogue, a search index,
    other envs and their constructor arguments) or scale every step's work; ``turngym serve``
    lets untrusted clients set them only to values found in :attr:`difficulty_defaults`,
    :attr:`levels` and the registered kwargs."""

    def __init__(
        self,
        *,
        render_mode: str | None = None,
        level: int | None = None,
        tasks_file: str | Path | None = None,
        **difficulty: Any,
    ) -> None:
        """Create the env.

        Args:
            render_mode: ``None`` or ``"ansi"`` (``render()`` returns the current text).
            level: A difficulty preset from :attr:`levels`.
            tasks_file: JSONL of task dicts to draw from instead of the generator.
            **difficulty: Knob overrides (see :attr:`difficulty_defaults`).

        Raises:
            ValueError: An unknown render mode, level or knob, or an invalid knob value.
        """
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None."
            )
        self.render_mode = render_mode
        self.difficulty = resolve_difficulty(
            self.difficulty_defaults, self.levels, level=level, overrides=difficulty
        )
        self.check_difficulty(self.difficulty)
        self._difficulty_json = canonical_json(self.difficulty)
        self._tasks_file = None if tasks_file is None else load_tasks_file(tasks_file)
        self.observation_space = TextSpace()
        self.action_space = TextSpace(examples=self.example_actions)
        self.episode_difficulty: dict[str, Any] = dict(self.difficulty)
        """The knobs of the current episode: ``difficulty`` plus the reset's level/overrides.
        Envs read knobs that act during play (rewards, moves per turn) from here."""
        self.task: dict[str, Any] = {}
        self.task_id = ""
        self.split = "train"
        self.turn = 0
        self._last_obs = ""

    # --- Hooks for subclasses -----------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` with an actionable message if a knob value is invalid."""

    def generate_task(
        self, rng: np.random.Generator, difficulty: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return a new JSON-serialisable task dict drawn with ``rng`` only.

        It must depend on nothing but ``rng`` and ``difficulty`` (not on instance state):
        that is what makes tasks identical across machines, and drawn tasks cacheable.
        """
        raise NotImplementedError

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Set up the episode state from a task dict; raise ``ValueError`` if it is malformed."""
        raise NotImplementedError

    def instructions(self) -> str:
        """Return the system text: the task, the action grammar and one short example."""
        raise NotImplementedError

    def render_text(self) -> str:
        """Return the observation text of the current state."""
        raise NotImplementedError

    def apply(self, command: str) -> Transition:
        """Apply the content of the action tag and return what happened (never raise)."""
        raise NotImplementedError

    def state_key(self) -> str:
        """Return the canonical key of the current env state."""
        raise NotImplementedError

    def score(self) -> float:
        """Return the task score of the current state, in [0, 1]."""
        raise NotImplementedError

    def privileged(self) -> dict[str, Any]:
        """Return ground truth for trainers; never shown to the agent."""
        return {}

    def metrics(self) -> dict[str, Any]:
        """Return env-specific numbers for the info dict."""
        return {}

    def oracle_action(self) -> str:
        """Return the (tagged) action an optimal player takes now."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle")

    @classmethod
    def before_steps(cls, envs: Sequence[TextEnv], actions: Sequence[str]) -> None:
        """Prepare a rollout tick: every live env of this class and the action it will step.

        The rollout engine steps envs one by one; an env whose steps can share work (a
        batched search over one index) does that work here, once for the whole tick, so
        that each ``step`` finds it done. It must not change any env's state: stepping
        gives the same result whether or not this ran. The default does nothing.
        """

    @classmethod
    def action_vocabulary(cls) -> tuple[str, ...]:
        """The action texts a restricted decoder may produce (an agent's ``allowed_actions``).

        :attr:`action_words` when the env declares them, otherwise the contents of the
        :attr:`example_actions` tags, in order and without repeats.

        Example:
            >>> from turngym.envs.games.frozen_lake import FrozenLake
            >>> FrozenLake.action_vocabulary()
            ('left', 'down', 'right', 'up')
        """
        if cls.action_words:
            return tuple(dict.fromkeys(cls.action_words))
        parsed = (parse_action(example, cls.action_tag) for example in cls.example_actions)
        return tuple(dict.fromkeys(p.content for p in parsed if p.ok and p.content))

    def leak_check(self, text: str) -> list[str]:
        """Return problems if ``text`` (shown to the agent) reveals privileged information.

        The default flags any privileged string value of 8+ characters appearing verbatim.
        Envs override this to state their own, stricter check.
        """
        problems = []
        for key, value in sorted(self.privileged().items()):
            if isinstance(value, str) and len(value) >= 8 and value in text:
                problems.append(f"privileged[{key!r}] appears verbatim in the text")
        return problems

    # --- Gymnasium API ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode on the task selected by ``(options["split"], seed)``.

        Raises:
            ValueError: Unknown option keys, split, level or knobs, or a malformed task.
        """
        self.seed_lazily(seed)
        options = options or {}
        self.episode_difficulty = self._validated_difficulty(options)
        self.split = options.get("split", "train")
        if seed is None:
            seed = int(self.np_random.integers(2**31 - 1))
        self.task, fingerprint = self._select_task(seed, options)
        self.task_id = f"{self.family}-{fingerprint[:12]}"  # task_id_of(family, task)
        self.turn = 0
        self.load_task(self.task)
        self._last_obs = self.render_text()
        info = self._info()
        info[INSTRUCTIONS] = self.instructions()
        return self._last_obs, info

    def validate_options(self, options: Mapping[str, Any]) -> None:
        """Check reset options without resetting, so a bad config fails before any work.

        Raises:
            ValueError: Unknown option keys, split, level or knobs, or an invalid knob value.
        """
        self._validated_difficulty(options)

    def _validated_difficulty(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check the options and return the episode's difficulty knobs."""
        if not options.keys() <= _RESET_OPTION_KEYS:
            unknown = sorted(set(options) - _RESET_OPTION_KEYS)
            raise ValueError(
                f"Unknown reset option(s) {unknown}; known: {sorted(_RESET_OPTION_KEYS)}."
            )
        split = options.get("split", "train")
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; expected one of {list(SPLITS)}.")
        if options.get("level") is None and not options.get("difficulty"):
            return self.difficulty  # checked once in __init__; the common, fast case
        difficulty = resolve_difficulty(
            self.difficulty_defaults,
            self.levels,
            level=options.get("level"),
            overrides=options.get("difficulty"),
            base=self.difficulty,
        )
        self.check_difficulty(difficulty)
        return difficulty

    def _select_task(self, seed: int, options: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """The episode's task (a fresh copy ``load_task`` may keep) and its fingerprint."""
        if "task" in options:
            task = options["task"]
            if not isinstance(task, Mapping):
                raise ValueError(f"options['task'] must be a task dict, got {type(task).__name__}.")
            try:
                copied: dict[str, Any] = json.loads(canonical_json(task))
            except TypeError as err:
                raise ValueError(f"options['task'] must be JSON-serialisable: {err}") from err
            return copied, task_fingerprint(copied)
        if self._tasks_file is not None:
            pool = self._tasks_file[self.split]
            if not pool:
                raise ValueError(f"The tasks file has no task in split {self.split!r}.")
            task = dict(pool[seed % len(pool)])
            return task, task_fingerprint(task)
        difficulty = self.episode_difficulty
        # The G envs of a group reset to the same task, and drawing one can take several
        # candidates (split rejection) plus a solver run; remember recent draws per class.
        if difficulty is self.difficulty:
            difficulty_json = self._difficulty_json
        else:
            difficulty_json = canonical_json(difficulty)
        return cached_draw(
            (type(self), self.split, seed, difficulty_json),
            lambda rng: self.generate_task(rng, difficulty),
            self.family,
            lazy=type(self).generate_task is type(self)._integer_draws,
        )

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply one tagged action. Malformed or illegal actions never raise.

        An invalid action leaves the state unchanged, gives reward 0, sets
        ``info["action_valid"] = False``, counts as a turn, and the observation says what was
        wrong.
        """
        self.turn += 1
        content, error = parse_fields(action, self.action_tag, self.action_space.max_chars)
        if content is not None:
            outcome = self.apply(content)
        else:
            example = self.example_actions[0] if self.example_actions else ""
            outcome = Transition(
                valid=False,
                effective=False,
                message=f"Invalid action: {error}. Answer like {example}",
            )
        body = self.render_text()
        self._last_obs = f"{outcome.message}\n\n{body}" if outcome.message else body
        # The info of _info plus the step's keys, built as one dict (same keys, same order).
        score = float(self.score())
        info = {
            TASK_ID: self.task_id,
            STATE_KEY: self.state_key(),
            SUCCESS: score >= self.success_score,
            SCORE: score,
            PRIVILEGED: self.privileged(),
            METRICS: {**self.metrics(), "action_effective": outcome.effective},
            ACTION_VALID: outcome.valid,
            REWARD_COMPONENTS: dict(outcome.reward_components),
        }
        return self._last_obs, float(outcome.reward), bool(outcome.terminated), False, info

    def _info(self) -> dict[str, Any]:
        score = float(self.score())
        return {
            TASK_ID: self.task_id,
            STATE_KEY: self.state_key(),
            SUCCESS: score >= self.success_score,
            SCORE: score,
            PRIVILEGED: self.privileged(),
            METRICS: self.metrics(),
        }

    def render(self) -> str | None:
        """Return the current observation text in ``"ansi"`` mode, else ``None``."""
        return self._last_obs if self.render_mode == "ansi" else None

    # --- Snapshot / restore -------------------------------------------------------------------
    def get_state(self) -> bytes:
        """Snapshot everything that determines the future of the episode.

        The default pickles the instance ``__dict__`` minus the spaces, so subclasses that keep
        their episode state in plain attributes need not override it.
        """
        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_SNAPSHOTTED}
        state["_np_random_state"] = self.np_random.bit_generator.state
        return pickle.dumps(state)

    def set_state(self, state: bytes) -> None:
        """Restore a snapshot from :meth:`get_state` (of an env of the same class)."""
        data = pickle.loads(state)
        rng_state = data.pop("_np_random_state")
        self.__dict__.update(data)
        self.np_random.bit_generator.state = rng_state


_NOT_SNAPSHOTTED = frozenset(
    {"observation_space", "action_space", "_np_random", "_np_random_seed", "spec", "_tasks_file",
     "_rng_value", "_rng_pending"}
)  # fmt: skip


class InvalidActionPenalty(gymnasium.Wrapper[str, str, str, str]):
    """Add ``penalty`` to the reward of every invalid action (``info["action_valid"]`` False).

    verl-agent subtracts 0.1 per invalid step and RAGEN uses a format penalty of -0.1; the
    penalty is also recorded in ``info["reward_components"]["invalid_action"]``.

    Example:
        >>> import turngym
        >>> env = InvalidActionPenalty(turngym.make("turngym/FrozenLake-v0"), penalty=-0.1)
        >>> _ = env.reset(seed=0)
        >>> env.step("no tags")[1]
        -0.1
    """

    def __init__(self, env: gymnasium.Env[str, str], penalty: float = -0.1) -> None:
        """Wrap ``env``; ``penalty`` is added (so pass a negative number)."""
        super().__init__(env)
        self.penalty = float(penalty)

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and add the penalty when the action was invalid."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not info.get(ACTION_VALID, True):
            reward = float(reward) + self.penalty
            info = dict(info)
            info[REWARD_COMPONENTS] = {
                **info.get(REWARD_COMPONENTS, {}),
                "invalid_action": self.penalty,
            }
        return obs, reward, terminated, truncated, info
