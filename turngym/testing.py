"""Conformance checks every env must pass: Gymnasium's own checker plus turngym's text checks.

The public checkers of the extension points live here: :func:`check_env` for envs (below) and
:func:`check_estimator` for credit estimators (:mod:`turngym.trainers.credit.testing`,
re-exported); the multi-agent env checker is :mod:`turngym.envs.multiagent.testing`.

``check_env(env_id)`` runs, in order (each check is a small function below):

==================  ===========================================================================
gymnasium           ``gymnasium.utils.env_checker.check_env`` on the unwrapped env
info_keys           reserved info keys present with the right types after reset and step,
                    and the privileged keys the env declares (e.g. ``gold_answers``)
determinism         two envs, same (split, seed, actions) → identical episodes
splits              task ids of train/validation/test seeds never overlap
snapshot            ``get_state`` then ``set_state`` replays the same continuation
leaks               the env's own ``leak_check`` passes on every text the agent sees
fuzz                malformed actions (random unicode, huge strings, nested/unclosed tags)
                    never raise and are reported invalid (hypothesis when installed)
time_limit          ``TimeLimit`` truncates exactly at ``max_episode_steps``
pickle              a pickled env continues identically
oracle              the env's own ``oracle_action`` succeeds on a few tasks of the split (envs
                    without an oracle pass)
==================  ===========================================================================

Example:
    >>> report = check_env("turngym/FrozenLake-v0", fuzz_examples=20)
    >>> report.ok
    True
"""

from __future__ import annotations

import math
import pickle
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from turngym.core import (
    ACTION_VALID,
    GOLD_ANSWERS,
    INSTRUCTIONS,
    METRICS,
    PRIVILEGED,
    REWARD_COMPONENTS,
    SCORE,
    STATE_KEY,
    SUCCESS,
    TASK_ID,
    TextEnv,
    TextSpace,
    clear_task_cache,
)
from turngym.registry import make
from turngym.trainers.credit.testing import EstimatorCheckError, check_estimator

__all__ = [
    "CheckResult",
    "CheckReport",
    "EnvCheckError",
    "check_env",
    "run_checks",
    "fuzz_actions",
    "EstimatorCheckError",
    "check_estimator",
]


class EnvCheckError(AssertionError):
    """Raised by a check that failed; the message says what and how to reproduce."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check: passed or not, with the reason."""

    name: str
    ok: bool
    message: str = ""


@dataclass(slots=True)
class CheckReport:
    """All checks of one env."""

    env_id: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(r.ok for r in self.results)

    def raise_if_failed(self) -> None:
        """Raise :class:`EnvCheckError` listing the failed checks."""
        failed = [f"{r.name}: {r.message}" for r in self.results if not r.ok]
        if failed:
            raise EnvCheckError(
                f"{self.env_id} failed {len(failed)} check(s):\n" + "\n".join(failed)
            )


def _examples(env: gymnasium.Env) -> tuple[str, ...]:
    space = env.action_space
    return space.examples if isinstance(space, TextSpace) and space.examples else ("",)


def _play(env: gymnasium.Env, actions: list[str]) -> list[tuple[Any, ...]]:
    """Step through ``actions`` until the episode ends; return comparable step records."""
    record = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        record.append((obs, float(reward), terminated, truncated, _comparable(info)))
        if terminated or truncated:
            break
    return record


def _comparable(info: dict[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in info.items()))


def _random_actions(env: gymnasium.Env, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(_examples(env)) for _ in range(n)]


# --- The checks ---------------------------------------------------------------------------------
def _check_gymnasium(make_env: Callable[[], gymnasium.Env], **_unused: Any) -> None:
    env = make_env()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its advisory warnings are not failures
        gymnasium_check_env(env.unwrapped)
    env.close()


def _check_info_keys(make_env: Callable[[], gymnasium.Env], split: str, **_unused: Any) -> None:
    env = make_env()
    _, info = env.reset(seed=0, options={"split": split})
    expected = {TASK_ID: str, INSTRUCTIONS: str, SUCCESS: bool, SCORE: float}
    expected.update({PRIVILEGED: dict, METRICS: dict})
    for key, kind in expected.items():
        if not isinstance(info.get(key), kind):
            raise EnvCheckError(
                f"reset info[{key!r}] should be {kind.__name__}, got {info.get(key)!r}"
            )
    hash(info[STATE_KEY])
    _check_declared_privileged(env.unwrapped, info, "reset")
    *_, step_info = env.step(_examples(env)[0])
    _check_declared_privileged(env.unwrapped, step_info, "step")
    for key, kind in {ACTION_VALID: bool, REWARD_COMPONENTS: dict, STATE_KEY: object}.items():
        if key not in step_info or not isinstance(step_info[key], kind):
            raise EnvCheckError(f"step info[{key!r}] missing or not {kind.__name__}")
    if not 0.0 <= step_info[SCORE] <= 1.0:
        raise EnvCheckError(f"info['score'] must be in [0, 1], got {step_info[SCORE]}")
    for action in _random_actions(env, 30, 0):
        _, reward, terminated, truncated, info = env.step(action)
        parts = info.get(REWARD_COMPONENTS) or {}
        if parts and not math.isclose(sum(parts.values()), float(reward), abs_tol=1e-9):
            raise EnvCheckError(f"reward_components {parts} do not add up to the reward {reward}")
        if terminated or truncated:
            break


def _check_declared_privileged(env: Any, info: dict[str, Any], when: str) -> None:
    """The reserved privileged keys an env declares are filled, with the documented types."""
    declared: frozenset[str] = getattr(env, "privileged_keys", frozenset())
    if GOLD_ANSWERS not in declared:
        return
    golds = info.get(PRIVILEGED, {}).get(GOLD_ANSWERS)
    if not isinstance(golds, list) or not all(isinstance(g, str) and g for g in golds):
        raise EnvCheckError(
            f"{when} info['privileged'][{GOLD_ANSWERS!r}] should be a list of non-empty "
            f"strings (the env declares it in privileged_keys), got {golds!r}"
        )
    if "{answer}" not in getattr(env, "answer_template", ""):
        raise EnvCheckError(
            f"the env declares {GOLD_ANSWERS!r} but its answer_template "
            f"{getattr(env, 'answer_template', '')!r} has no '{{answer}}' slot"
        )


def _check_determinism(make_env: Callable[[], gymnasium.Env], split: str, **_unused: Any) -> None:
    for seed in (0, 1, 7):
        a, b = make_env(), make_env()
        clear_task_cache()  # each env must draw its task itself, not read the other's draw
        obs_a, info_a = a.reset(seed=seed, options={"split": split})
        clear_task_cache()
        obs_b, info_b = b.reset(seed=seed, options={"split": split})
        if (obs_a, _comparable(info_a)) != (obs_b, _comparable(info_b)):
            raise EnvCheckError(f"reset(seed={seed}) differs between two fresh envs")
        actions = _random_actions(a, 40, seed)
        if _play(a, actions) != _play(b, actions):
            raise EnvCheckError(f"seed {seed}: the same actions gave different episodes")


def _check_splits(make_env: Callable[[], gymnasium.Env], n_tasks: int, **_unused: Any) -> None:
    env = make_env()
    ids: dict[str, set[str]] = {}
    for split in ("train", "validation", "test"):
        ids[split] = {
            env.reset(seed=s, options={"split": split})[1][TASK_ID] for s in range(n_tasks)
        }
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        shared = ids[a] & ids[b]
        if shared:
            raise EnvCheckError(f"splits {a} and {b} share tasks {sorted(shared)[:3]}")


def _check_snapshot(make_env: Callable[[], gymnasium.Env], split: str, **_unused: Any) -> None:
    env = make_env()
    base: Any = env.unwrapped  # duck-typed: any env with get_state/set_state
    for seed in (0, 3):
        env.reset(seed=seed, options={"split": split})
        actions = _random_actions(env, 30, seed)
        prefix = _play(env, actions[:2])
        if prefix and (prefix[-1][2] or prefix[-1][3]):
            continue  # ended within two moves: nothing to branch from
        snapshot = base.get_state()
        first = _play(base, actions[2:])
        base.set_state(snapshot)
        second = _play(base, actions[2:])
        if first != second:
            raise EnvCheckError(f"seed {seed}: restore-then-step did not replay the same steps")


def _check_leaks(make_env: Callable[[], gymnasium.Env], split: str, **_unused: Any) -> None:
    env = make_env()
    base: Any = env.unwrapped  # duck-typed: any env with leak_check
    for seed in range(5):
        obs, info = env.reset(seed=seed, options={"split": split})
        texts = [info.get(INSTRUCTIONS, ""), obs]
        for action in _random_actions(env, 20, seed) + ["<action>?</action>", "no tags"]:
            obs, _reward, terminated, truncated, _info = env.step(action)
            texts.append(obs)
            if terminated or truncated:
                break
        for text in texts:
            problems = base.leak_check(text)
            if problems:
                raise EnvCheckError(f"seed {seed}: {problems[0]}: {text[:200]!r}")


def fuzz_actions(seed: int = 0, n: int = 100) -> Iterator[str]:
    """Yield adversarial action strings: unicode noise, huge strings, broken and nested tags."""
    rng = random.Random(seed)
    fixed = [
        "",
        " ",
        "\x00",
        "<action>",
        "</action>",
        "<action></action>",
        "<action><action>up</action>",
        "<action>up",
        "up</action>",
        "<ACTION>UP</ACTION>",
        "<think>unclosed <action>up</action>",
        "<action>" * 500,
        "x" * 100_000,
        "<action>" + "y" * 50_000 + "</action>",
        "<action>" + "z " * 2_000 + "</action>",
        "🙂" * 1000,
        "<action>🙂" * 300 + "</action>" * 300,
        "<action>\u202e\u0000</action>",
        "<tool_call>{not json</tool_call>",
        "<search></search>",
    ]
    yield from fixed
    alphabet = "<>/actionthink{}[]\"' \n\tupdownleftright0123456789🙂é\u0000"
    for _ in range(max(0, n - len(fixed))):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))


def _step_must_not_raise(env: gymnasium.Env, action: str) -> None:
    obs, reward, terminated, truncated, info = env.step(action)
    if not isinstance(obs, str) or not math.isfinite(float(reward)):
        raise EnvCheckError(
            f"step({action[:60]!r}) returned obs {type(obs).__name__}, reward {reward}"
        )
    if terminated or truncated:
        env.reset(seed=0)


def _check_fuzz(
    make_env: Callable[[], gymnasium.Env], split: str, fuzz_examples: int, **_unused: Any
) -> None:
    env = make_env().unwrapped
    env.reset(seed=0, options={"split": split})
    for action in fuzz_actions(n=fuzz_examples):
        _step_must_not_raise(env, action)
    info = env.step("this is not a tagged action")[-1]
    if info.get(ACTION_VALID, True):
        raise EnvCheckError("an untagged action was reported valid")
    try:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st
    except ImportError:  # the built-in corpus above already ran
        return

    tags = st.sampled_from(["<action>", "</action>", "<think>", "</think>", "<answer>", "<search>"])
    pieces = st.lists(st.one_of(st.text(max_size=200), tags), max_size=12).map("".join)

    @settings(max_examples=fuzz_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.one_of(st.text(), pieces))
    def fuzz(action: str) -> None:
        _step_must_not_raise(env, action)

    fuzz()


def _check_time_limit(make_env: Callable[[], gymnasium.Env], split: str, **_unused: Any) -> None:
    env = make_env()
    limit = env.spec.max_episode_steps if env.spec is not None else None
    if limit is None:
        return
    env.reset(seed=0, options={"split": split})
    for turn in range(1, limit + 1):
        terminated, truncated = env.step("no action tag: invalid, so nothing happens")[2:4]
        if terminated:
            raise EnvCheckError("an invalid action terminated the episode")
        if truncated != (turn == limit):
            raise EnvCheckError(f"truncated={truncated} at turn {turn}; expected only at {limit}")


def _check_pickle(make_env: Callable[[], gymnasium.Env], split: str, **_unused: Any) -> None:
    env = make_env()
    env.reset(seed=2, options={"split": split})
    clone = pickle.loads(pickle.dumps(env))
    actions = _random_actions(env, 10, 2)
    if _play(env, actions) != _play(clone, actions):
        raise EnvCheckError("a pickled copy did not continue identically")


def _check_oracle(make_env: Callable[[], gymnasium.Env], split: str, **_unused: Any) -> None:
    """The env's oracle must succeed on three tasks: a broken install or grader shows here."""
    env = make_env()
    base = env.unwrapped
    if not isinstance(base, TextEnv) or type(base).oracle_action is TextEnv.oracle_action:
        return  # no oracle to check
    limit = (env.spec.max_episode_steps if env.spec is not None else None) or 200
    failed = []
    for seed in range(3):
        _, info = env.reset(seed=seed, options={"split": split})
        for _ in range(limit):
            _, _, terminated, truncated, info = env.step(base.oracle_action())
            if terminated or truncated:
                break
        if not info.get(SUCCESS):
            failed.append(f"seed {seed}, last observation {base.render_text()[-300:]!r}")
    env.close()
    if failed:
        raise EnvCheckError(f"the oracle failed {len(failed)} of 3 {split} tasks: {failed[0]}")


CHECKS: dict[str, Callable[..., None]] = {
    "gymnasium": _check_gymnasium,
    "info_keys": _check_info_keys,
    "determinism": _check_determinism,
    "splits": _check_splits,
    "snapshot": _check_snapshot,
    "leaks": _check_leaks,
    "fuzz": _check_fuzz,
    "time_limit": _check_time_limit,
    "pickle": _check_pickle,
    "oracle": _check_oracle,
}
"""Every check, by name, in the order they run."""


def run_checks(
    checks: dict[str, Callable[..., None]],
    make_env: Callable[[], Any],
    env_id: str,
    only: Sequence[str] | None,
    **kwargs: Any,
) -> CheckReport:
    """Run named checks (all, or ``only`` these) on an env factory; collect pass/fail.

    Each check raises to fail; its exception becomes the result's message. Shared by
    :func:`check_env` and the multi-agent checker.

    Raises:
        ValueError: ``only`` names a check that does not exist.
    """
    unknown = sorted(set(only or []) - set(checks))
    if unknown:
        raise ValueError(f"Unknown check(s) {unknown}; known: {list(checks)}")
    report = CheckReport(env_id)
    for name, check in checks.items():
        if only and name not in only:
            continue
        try:
            check(make_env, **kwargs)
        except Exception as err:
            report.results.append(CheckResult(name, False, f"{type(err).__name__}: {err}"))
        else:
            report.results.append(CheckResult(name, True))
    return report


def check_env(
    env: str | Callable[[], gymnasium.Env],
    *,
    split: str = "test",
    n_tasks: int = 30,
    fuzz_examples: int = 100,
    only: list[str] | None = None,
    raise_on_failure: bool = False,
    **env_kwargs: Any,
) -> CheckReport:
    """Run every conformance check on an env and return the report.

    Args:
        env: A registered env id, or a factory returning a fresh env.
        split: The split most checks draw tasks from.
        n_tasks: Seeds per split for the disjointness check.
        fuzz_examples: Number of fuzzed actions (built-in corpus and hypothesis each).
        only: Run just these checks (names of :data:`CHECKS`).
        raise_on_failure: Raise :class:`EnvCheckError` instead of returning a failed report.
        **env_kwargs: Passed to ``turngym.make`` when ``env`` is an id.

    Returns:
        A :class:`CheckReport` with one result per check.
    """
    if isinstance(env, str):
        env_id = env
        make(env_id, **env_kwargs).close()  # unknown ids fail here, with suggestions

        def make_env() -> gymnasium.Env:
            return make(env_id, **env_kwargs)
    else:
        make_env = env
        probe = make_env()
        env_id = probe.spec.id if probe.spec is not None else type(probe.unwrapped).__name__
        probe.close()
    report = run_checks(CHECKS, make_env, env_id, only, split=split, n_tasks=n_tasks,
                        fuzz_examples=fuzz_examples)  # fmt: skip
    if raise_on_failure:
        report.raise_if_failed()
    return report
