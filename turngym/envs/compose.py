"""Composed tasks: chain N tasks of registered envs into one episode and one context.

MEM1 (Zhou et al., 2025, arXiv:2506.15841) trains agents for long multi-objective episodes by
composing several questions into one task, so that the agent must keep what matters from
earlier objectives while it works on later ones. :class:`Composed` does this for any
registered :class:`~turngym.core.TextEnv`: the episode holds one sub-task per entry of
``envs``, each drawn from its own env in the same split as the composed task, and all of them
are stated up front in the instructions.

* ``mode="sequential"``: sub-task 1 runs until it ends (its own termination or its turn
  budget), then sub-task 2 starts, and so on.
* ``mode="interleaved"``: the sub-tasks take turns, round robin over those not finished; each
  observation shows only the active sub-task's latest text, so the agent must remember where
  the others stand.

Actions go unchanged to the active sub-env (each keeps its own action grammar). The reward of a
turn is the sub-env's reward; ``reward_components`` are the sub-env's, prefixed ``tK/``. The
composed ``score`` is the mean of the sub-task scores and ``success`` means every sub-task
succeeded. A sub-task's turn budget is ``turns_per_task`` (0: its env's registered limit);
when the last sub-task runs out of turns the episode is *truncated*, so register a composed
env with ``max_episode_steps`` = the sum of the budgets.

**Reserved info keys** (top level of ``info``, after reset and every step; SCRL-style
per-subproblem credit, arXiv:2605.22074, reads them):

=====================  ==========================================================================
``subtask``            index of the sub-task this turn acted on (after reset: the first active one)
``subtask_end``        True when this turn ended that sub-task (a boundary); False after reset
``subtask_scores``     list of every sub-task's score now (final once a sub-task has ended)
``subtask_success``    list of every sub-task's success flag now
=====================  ==========================================================================

**State key**: the active sub-task, each sub-task's turns used and end flag, and the sub-envs'
own state keys. **Privileged**: each sub-env's privileged dict. **Leak check**: every sub-env's
own leak check.

Example:
    >>> env = Composed(envs=["turngym/FrozenLake-v0", "turngym/FrozenLake-v0"])
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> info["subtask"], info["subtask_scores"]
    (0, [0.0, 0.0])
    >>> while not info["success"]:
    ...     obs, reward, done, _, info = env.step(env.oracle_action())
    >>> info["subtask_success"], done
    ([True, True], True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium
import numpy as np
from gymnasium.envs.registration import load_env_creator

import turngym.envs  # noqa: F401  (registers the ids sub-tasks are drawn from)
from turngym.core import ACTION_VALID, METRICS, PRIVILEGED, REWARD_COMPONENTS, STATE_KEY, TextEnv

__all__ = ["Composed", "SUBTASK", "SUBTASK_END", "SUBTASK_SCORES", "SUBTASK_SUCCESS",
           "COMPOSE_INFO_KEYS"]  # fmt: skip

SUBTASK = "subtask"
"""Index of the sub-task the turn acted on (after reset: the first active one)."""
SUBTASK_END = "subtask_end"
"""Whether this turn ended that sub-task: the sub-task boundaries of the episode."""
SUBTASK_SCORES = "subtask_scores"
"""Every sub-task's current score (final once it ended), in order."""
SUBTASK_SUCCESS = "subtask_success"
"""Every sub-task's current success flag, in order."""
COMPOSE_INFO_KEYS: tuple[str, ...] = (SUBTASK, SUBTASK_END, SUBTASK_SCORES, SUBTASK_SUCCESS)
"""The info keys a composed env adds to the reserved keys of :mod:`turngym.core`."""

_MODES = ("sequential", "interleaved")


def _build(env_id: str, kwargs: Mapping[str, Any]) -> tuple[TextEnv, int]:
    """Instantiate a registered text env without wrappers; return it and its turn limit."""
    try:
        spec = gymnasium.spec(env_id)
    except gymnasium.error.Error as err:
        raise ValueError(f"Composed: unknown env id {env_id!r} ({err}).") from err
    entry = spec.entry_point
    if entry is None:
        raise ValueError(f"Composed: {env_id} has no entry point, so it cannot be built.")
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    env = creator(**{**spec.kwargs, **kwargs})
    if not isinstance(env, TextEnv):
        raise ValueError(f"Composed: {env_id} is not a turngym TextEnv, so it has no tasks.")
    return env, int(spec.max_episode_steps or 50)


class Composed(TextEnv):
    """N sub-tasks from registered envs in one episode, sequential or interleaved.

    Difficulty knobs: ``envs`` (list of registered text env ids, 1-8 entries; repeat an id for
    several of its tasks), ``env_kwargs`` (one dict per entry, or empty: constructor arguments
    of each sub-env, e.g. ``{"level": 1}``), ``mode`` (``sequential``/``interleaved``),
    ``turns_per_task`` (0-500; 0 = each env's registered limit).
    """

    family: ClassVar[str] = "composed"
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "envs": ["turngym/SearchQA-v0", "turngym/SearchQA-v0"],
        "env_kwargs": [],
        "mode": "sequential",
        "turns_per_task": 0,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {}
    # They choose which envs are built and with which constructor arguments (file paths, corpus
    # sizes...): a server takes them from untrusted clients only as registered.
    costly_knobs: ClassVar[frozenset[str]] = frozenset({"envs", "env_kwargs"})

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.subs: list[TextEnv] = []
        self.budgets: list[int] = []
        self._built: tuple[str, str] = ("", "")
        self._build_subs(self.difficulty)
        self.active = 0
        self.used: list[int] = []
        self.ended: list[bool] = []
        self.last_obs: list[str] = []
        self.sub_info: list[dict[str, Any]] = []

    # --- Sub-envs ------------------------------------------------------------------------------
    def _build_subs(self, d: Mapping[str, Any]) -> None:
        key = (repr(list(d["envs"])), repr(list(d["env_kwargs"])))
        if key == self._built:
            return
        kwargs = list(d["env_kwargs"]) or [{}] * len(d["envs"])
        built = [_build(env_id, kw) for env_id, kw in zip(d["envs"], kwargs, strict=True)]
        self.subs = [env for env, _ in built]
        limit = int(d["turns_per_task"])
        self.budgets = [limit or spec_limit for _, spec_limit in built]
        self._built = key
        examples = [a for env in self.subs for a in env.example_actions]
        self.action_space = type(self.action_space)(examples=tuple(dict.fromkeys(examples)))

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` for unknown ids, mismatched kwargs, or a bad mode or budget."""
        envs, kwargs = difficulty["envs"], difficulty["env_kwargs"]
        if not isinstance(envs, list | tuple) or not 1 <= len(envs) <= 8:
            raise ValueError(f"Composed: envs={envs!r}; use a list of 1 to 8 env ids.")
        if not isinstance(kwargs, list | tuple) or (kwargs and len(kwargs) != len(envs)):
            raise ValueError("Composed: env_kwargs must be empty or one dict per entry of envs.")
        for env_id in envs:
            if not isinstance(env_id, str) or env_id not in gymnasium.registry:
                raise ValueError(f"Composed: {env_id!r} is not a registered env id.")
        if difficulty["mode"] not in _MODES:
            raise ValueError(f"Composed: mode={difficulty['mode']!r}; use one of {list(_MODES)}.")
        turns = difficulty["turns_per_task"]
        if isinstance(turns, bool) or not isinstance(turns, int) or not 0 <= turns <= 500:
            raise ValueError(f"Composed: turns_per_task={turns!r}; use an integer from 0 to 500.")

    # --- Tasks -----------------------------------------------------------------------------------
    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """One task per sub-env, each drawn by that env in this episode's split.

        Drawing inside the same split keeps the split guarantee: a test composed task is made
        of the sub-envs' test tasks only. (The split is part of the task cache key, so reading
        it here keeps cached draws exact.)
        """
        self._build_subs(difficulty)
        subtasks = []
        for env_id, env in zip(difficulty["envs"], self.subs, strict=True):
            env.reset(seed=int(rng.integers(2**31 - 1)), options={"split": self.split})
            subtasks.append({"env": env_id, "task": env.task})
        return {"subtasks": subtasks}

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Reset every sub-env on its sub-task."""
        self._build_subs(self.episode_difficulty)
        subtasks = task.get("subtasks")
        envs = list(self.episode_difficulty["envs"])
        if not isinstance(subtasks, list) or [s.get("env") for s in subtasks] != envs:
            raise ValueError(f'A Composed task is {{"subtasks": [{{"env": id, "task": {{...}}}}, '
                             f"...]}} with the env ids {envs} in order.")  # fmt: skip
        self.last_obs, self.sub_info = [], []
        for env, sub in zip(self.subs, subtasks, strict=True):
            obs, info = env.reset(options={"task": sub["task"]})
            self.last_obs.append(obs)
            self.sub_info.append(info)
        self.active, self.used, self.ended = 0, [0] * len(self.subs), [False] * len(self.subs)

    # --- Dynamics --------------------------------------------------------------------------------
    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Route the action to the active sub-env, then move on as the mode says."""
        self.turn += 1
        if all(self.ended):
            self._last_obs = "The episode is over."
            info = self._full_info(self.active, False)
            info[ACTION_VALID], info[REWARD_COMPONENTS] = False, {}
            return self._last_obs, 0.0, False, True, info
        k, env = self.active, self.subs[self.active]
        obs, reward, terminated, truncated, sub_info = env.step(action)
        self.used[k] += 1
        self.last_obs[k], self.sub_info[k] = obs, sub_info
        ending = bool(terminated or truncated or self.used[k] >= self.budgets[k])
        if self.episode_difficulty["mode"] == "interleaved":
            obs = f"(Task {k + 1}) {obs}"
        if ending:
            self.ended[k] = True
            obs += f"\n\n[Task {k + 1} is over: score {float(sub_info['score']):.2f}.]"
        self._advance(ending)
        if not all(self.ended) and self.active != k:
            obs += "\n\n" + self._header(self.active) + self.last_obs[self.active]
        self._last_obs = obs
        done = all(self.ended)
        info = self._full_info(k, ending)
        info[ACTION_VALID] = bool(sub_info.get(ACTION_VALID, True))
        info[REWARD_COMPONENTS] = {f"t{k + 1}/{name}": value
                                   for name, value in sub_info.get(REWARD_COMPONENTS, {}).items()}
        info[METRICS] = {**info[METRICS], "action_effective":
                         sub_info.get(METRICS, {}).get("action_effective", True)}  # fmt: skip
        # Running out of turns on the last sub-task is a time-out, not an ending of the task.
        timed_out = done and not terminated and self.used[k] >= self.budgets[k]
        return obs, float(reward), done and not timed_out, timed_out, info

    def _advance(self, ending: bool) -> None:
        n = len(self.subs)
        if self.episode_difficulty["mode"] == "sequential" and not ending:
            return
        for shift in range(1, n + 1):
            nxt = (self.active + shift) % n
            if not self.ended[nxt]:
                self.active = nxt
                return

    def _header(self, k: int) -> str:
        return f"[Task {k + 1} of {len(self.subs)}, turn {self.used[k] + 1}]\n"

    def _full_info(self, k: int, ending: bool) -> dict[str, Any]:
        info = self._info()
        info.update({SUBTASK: k, SUBTASK_END: ending,
                     SUBTASK_SCORES: [float(i["score"]) for i in self.sub_info],
                     SUBTASK_SUCCESS: [bool(i["success"]) for i in self.sub_info]})  # fmt: skip
        return info

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:  # fmt: skip
        """Start the episode: the first sub-task's observation, and the compose info keys."""
        obs, info = super().reset(seed=seed, options=options)
        info.update({SUBTASK: 0, SUBTASK_END: False,
                     SUBTASK_SCORES: [float(i["score"]) for i in self.sub_info],
                     SUBTASK_SUCCESS: [bool(i["success"]) for i in self.sub_info]})  # fmt: skip
        return obs, info

    def apply(self, command: str) -> Any:
        """Unused: :meth:`step` hands whole actions to the sub-envs."""
        raise NotImplementedError("Composed routes actions in step()")

    # --- Views -----------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The composition rules, then every sub-task's own instructions, numbered."""
        n, mode = len(self.subs), self.episode_difficulty["mode"]
        if mode == "sequential":
            order = "one after the other: task 1 until it ends, then task 2, and so on"
        else:
            order = "in turns, round robin: each observation names the task your answer goes to"
        parts = [
            f"This episode holds {n} tasks. You work on them {order}. Each task keeps its own "
            "rules and action format; your final score is the mean of the task scores. Earlier "
            "observations are not repeated, so remember what you learn."
        ]
        for k, env in enumerate(self.subs):
            budget = self.budgets[k]
            parts.append(f"=== Task {k + 1} of {n} (at most {budget} turns) ===\n"
                         f"{env.instructions()}")  # fmt: skip
        return "\n\n".join(parts)

    def render_text(self) -> str:
        """The active sub-task's header and observation."""
        return self._header(self.active) + self.last_obs[self.active]

    def state_key(self) -> str:
        """Active index, per-task turns used and end flags, and the sub-envs' state keys."""
        # A sub-env's state changes only when it steps, so the key its last info carries is
        # its current one (read there: recomputing it for every sub-env costs every step).
        subs = zip(self.used, self.ended, self.sub_info, strict=True)
        parts = [f"{u}{'x' if e else ''}:{info[STATE_KEY]}" for u, e, info in subs]
        return f"{self.active}|" + "||".join(parts)

    def score(self) -> float:
        """Mean of the sub-task scores."""
        if not self.sub_info:
            return 0.0
        return float(np.mean([float(i["score"]) for i in self.sub_info]))

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        info["success"] = bool(self.sub_info) and all(bool(i["success"]) for i in self.sub_info)
        return info

    def privileged(self) -> dict[str, Any]:
        """Each sub-env's privileged dict, in order (from its last info, as for the state key)."""
        # Copied: the dicts handed out must not alias the ones kept for the next step.
        return {"subtasks": [dict(info[PRIVILEGED]) for info in self.sub_info]}

    def metrics(self) -> dict[str, Any]:
        """Sub-tasks ended and succeeded, and each sub-env's metrics."""
        return {"subtasks": len(self.subs), "ended": sum(self.ended),
                "succeeded": sum(bool(i["success"]) for i in self.sub_info),
                "per_subtask": [dict(i.get(METRICS, {})) for i in self.sub_info]}  # fmt: skip

    def oracle_action(self) -> str:
        """The active sub-env's oracle action."""
        return self.subs[self.active].oracle_action()

    def leak_check(self, text: str) -> list[str]:
        """Every sub-env's own leak check, labelled by task."""
        return [f"task {k + 1}: {p}" for k, env in enumerate(self.subs)
                for p in env.leak_check(text)]  # fmt: skip


def composed_ids() -> Sequence[str]:
    """The registered composed presets (for listings and tests)."""
    return sorted(k for k, spec in gymnasium.registry.items()
                  if spec.entry_point == "turngym.envs.compose:Composed")  # fmt: skip
