"""Conformance checks for multi-agent envs: PettingZoo's ``api_test`` plus turngym's checks.

``check_multiagent_env(env_id)`` is the multi-agent twin of :func:`turngym.testing.check_env`
and returns the same :class:`~turngym.testing.CheckReport`. Checks, in order:

==================  ===========================================================================
pettingzoo          ``pettingzoo.test.api_test`` (Terry et al., 2021), shipped with PettingZoo
info_keys           reserved info keys with the right types for every seat after reset and step
determinism         two envs, same (split, seed, actions) → identical games for every seat
splits              task ids of train/validation/test seeds never overlap
privacy             a seat's instructions and observations do not change when only what it must
                    not see changes (the env's ``privacy_variants``: the other seat's values)
fuzz                malformed actions never raise, are refused, and keep the same seat to move
forfeit             ``max_invalid`` refused actions in a row end the game, not as a win
time_limit          the game is truncated for every seat at once at ``max_turns``
snapshot            ``get_state`` then ``set_state`` replays the same continuation
pickle              a pickled env continues identically
==================  ===========================================================================

Example:
    >>> check_multiagent_env("turngym/TicTacToe-v0", fuzz_examples=10).ok
    True
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import random
import warnings
from collections.abc import Callable
from typing import Any

from turngym.core import ACTION_VALID, INSTRUCTIONS, METRICS, PRIVILEGED, SCORE, SUCCESS, TASK_ID
from turngym.envs.multiagent.base import TextAECEnv
from turngym.envs.multiagent.registry import make_multiagent
from turngym.testing import CheckReport, EnvCheckError, fuzz_actions, run_checks

__all__ = ["MULTIAGENT_CHECKS", "check_multiagent_env", "play_script"]

Factory = Callable[[], TextAECEnv]


def play_script(env: TextAECEnv, seed: int, n: int = 60, bad_share: float = 0.2) -> list[str]:
    """Play (and return) up to ``n`` actions: legal ones, and a share of malformed ones."""
    rng, actions = random.Random(seed), list[str]()
    while env.agents and len(actions) < n and not _over(env):
        seat = env.agent_selection
        legal = env.legal_actions(seat)
        bad = rng.random() < bad_share or not legal
        action = rng.choice(["", "no tags", *env.example_actions]) if bad else rng.choice(legal)
        env.step(action)
        actions.append(action)
    return actions


def _over(env: TextAECEnv) -> bool:
    return all(env.terminations.values()) or any(env.truncations.values())


def _record(env: TextAECEnv, actions: list[str]) -> list[tuple[Any, ...]]:
    """Replay ``actions``; return every seat's view, rewards, flags and infos after each."""
    out = []
    for action in actions:
        if _over(env):
            break
        env.step(action)
        views = tuple(str(env.observe(seat)) for seat in env.possible_agents)
        infos = repr(sorted((s, repr(sorted(i.items()))) for s, i in env.infos.items()))
        out.append((views, dict(env.rewards), dict(env.terminations), dict(env.truncations), infos))
    return out


def _check_pettingzoo(make_env: Factory, **_: Any) -> None:
    from pettingzoo.test import api_test

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # advisory (numpy observations, Box spaces): not failures
        api_test(make_env(), num_cycles=200)


def _check_info_keys(make_env: Factory, split: str, **_: Any) -> None:
    env = make_env()
    env.reset(seed=0, options={"split": split})
    expected = {TASK_ID: str, INSTRUCTIONS: str, SUCCESS: bool, SCORE: float, PRIVILEGED: dict,
                METRICS: dict}  # fmt: skip
    for seat in env.possible_agents:
        for key, kind in expected.items():
            if not isinstance(env.infos[seat].get(key), kind):
                raise EnvCheckError(f"reset infos[{seat!r}][{key!r}] should be {kind.__name__}")
    mover = env.agent_selection
    env.step(env.legal_actions(mover)[0])
    if not isinstance(env.infos[mover].get(ACTION_VALID), bool):
        raise EnvCheckError("the mover's step info has no bool action_valid")
    for seat in env.possible_agents:
        if not 0.0 <= env.infos[seat][SCORE] <= 1.0 or not math.isfinite(env.rewards[seat]):
            raise EnvCheckError(f"{seat}: score outside [0, 1] or a non-finite reward")
        hash(env.infos[seat]["state_key"])


def _check_determinism(make_env: Factory, split: str, **_: Any) -> None:
    for seed in (0, 1, 7):
        a, b = make_env(), make_env()
        a.reset(seed=seed, options={"split": split})
        b.reset(seed=seed, options={"split": split})
        if [str(a.observe(s)) for s in a.possible_agents] != [
            str(b.observe(s)) for s in b.possible_agents
        ] or repr(a.infos) != repr(b.infos):
            raise EnvCheckError(f"reset(seed={seed}) differs between two fresh envs")
        probe = make_env()
        probe.reset(seed=seed, options={"split": split})
        actions = play_script(probe, seed)
        if _record(a, actions) != _record(b, actions):
            raise EnvCheckError(f"seed {seed}: the same actions gave different games")


def _check_splits(make_env: Factory, n_tasks: int, **_: Any) -> None:
    env, ids = make_env(), {}
    for split in ("train", "validation", "test"):
        found = set()
        for seed in range(n_tasks):
            env.reset(seed=seed, options={"split": split})
            found.add(env.task_id)
        ids[split] = found
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        if ids[a] & ids[b]:
            raise EnvCheckError(f"splits {a} and {b} share tasks {sorted(ids[a] & ids[b])[:3]}")


def _seat_view(env: TextAECEnv, task: dict, seat: str, actions: list[str]) -> list[str]:
    env.reset(options={"task": task})
    texts = [env.infos[seat][INSTRUCTIONS], str(env.observe(seat))]
    for action in actions:
        if _over(env):
            break
        env.step(action)
        texts.append(str(env.observe(seat)))
    return texts


def _check_privacy(make_env: Factory, split: str, **_: Any) -> None:
    env = make_env()
    for seed in range(5):
        env.reset(seed=seed, options={"split": split})
        task = dict(env.task)
        actions = play_script(env, seed, bad_share=0.1)
        for seat in env.possible_agents:
            reference = _seat_view(env, task, seat, actions)
            for variant in env.privacy_variants(task, seat):
                if _seat_view(env, variant, seat, actions) != reference:
                    raise EnvCheckError(
                        f"seed {seed}: {seat}'s view changed with information hidden from it "
                        f"(task {variant})"
                    )


def _check_fuzz(make_env: Factory, split: str, fuzz_examples: int, **_: Any) -> None:
    env = make_env()
    env.reset(seed=0, options={"split": split})
    for action in [*fuzz_actions(n=fuzz_examples), 7, None, b"<action>1</action>"]:
        if _over(env):
            env.reset(seed=0, options={"split": split})
        seat = env.agent_selection
        if env.step(action) is not None:  # type: ignore[func-returns-value]  # (the check)
            raise EnvCheckError("step() must return None (PettingZoo AEC)")
        refused = not env.infos[seat].get(ACTION_VALID, True)
        if refused and env.agent_selection != seat and not _over(env):
            raise EnvCheckError(f"a refused action {str(action)[:60]!r} passed the turn")
        if not isinstance(action, str) and not refused:
            raise EnvCheckError(f"a non-string action {action!r} was accepted")
    env.reset(seed=0, options={"split": split})
    seat = env.agent_selection
    env.step("this is not a tagged action")
    if env.infos[seat].get(ACTION_VALID, True):
        raise EnvCheckError("an untagged action was reported valid")


def _check_forfeit(make_env: Factory, split: str, **_: Any) -> None:
    env = make_env()
    env.reset(seed=0, options={"split": split})
    seat, limit = env.agent_selection, int(env.episode_difficulty["max_invalid"])
    for turn in range(1, limit + 1):
        if env.agent_selection != seat or _over(env):
            raise EnvCheckError(f"the game moved on after {turn - 1} refused actions")
        env.step("no action tag")
    if not all(env.terminations.values()) or env.infos[seat][SUCCESS]:
        raise EnvCheckError(f"{limit} refused actions in a row did not end the game as a loss")


def _check_time_limit(make_env: Factory, split: str, **_: Any) -> None:
    env = make_env()
    env.max_turns = 3
    env.reset(seed=0, options={"split": split})
    for turn in range(1, 4):
        env.step(env.legal_actions(env.agent_selection)[0])
        if all(env.terminations.values()):
            return  # the game ended by its rules first
        if any(env.truncations.values()) != (turn == 3):
            raise EnvCheckError(f"truncation at turn {turn}; expected only at max_turns=3")
    if not all(env.truncations.values()):
        raise EnvCheckError("truncation must reach every seat at once")


def _check_snapshot(make_env: Factory, split: str, **_: Any) -> None:
    env = make_env()
    for seed in (0, 3):
        env.reset(seed=seed, options={"split": split})
        actions = play_script(make_seeded(make_env, seed, split), seed)
        _record(env, actions[:2])
        snapshot = env.get_state()
        first = _record(env, actions[2:])
        env.set_state(snapshot)
        if _record(env, actions[2:]) != first:
            raise EnvCheckError(f"seed {seed}: restore-then-step did not replay the same steps")


def _check_pickle(make_env: Factory, split: str, **_: Any) -> None:
    env = make_env()
    env.reset(seed=2, options={"split": split})
    clone = pickle.loads(pickle.dumps(env))
    actions = play_script(make_seeded(make_env, 2, split), 2)
    if _record(env, actions) != _record(clone, actions):
        raise EnvCheckError("a pickled copy did not continue identically")


def make_seeded(make_env: Factory, seed: int, split: str) -> TextAECEnv:
    """A fresh env reset to ``(split, seed)``."""
    env = make_env()
    env.reset(seed=seed, options={"split": split})
    return env


MULTIAGENT_CHECKS: dict[str, Callable[..., None]] = {
    "pettingzoo": _check_pettingzoo,
    "info_keys": _check_info_keys,
    "determinism": _check_determinism,
    "splits": _check_splits,
    "privacy": _check_privacy,
    "fuzz": _check_fuzz,
    "forfeit": _check_forfeit,
    "time_limit": _check_time_limit,
    "snapshot": _check_snapshot,
    "pickle": _check_pickle,
}
"""Every multi-agent check, by name, in the order they run."""


def check_multiagent_env(
    env: str | Factory,
    *,
    split: str = "test",
    n_tasks: int = 30,
    fuzz_examples: int = 100,
    only: list[str] | None = None,
    **env_kwargs: Any,
) -> CheckReport:
    """Run every multi-agent conformance check and return the report.

    Args:
        env: A registered multi-agent env id, or a factory returning a fresh env.
        split: The split most checks draw tasks from.
        n_tasks: Seeds per split for the disjointness check.
        fuzz_examples: Number of fuzzed actions.
        only: Run just these checks (names of :data:`MULTIAGENT_CHECKS`).
        **env_kwargs: Passed to ``make_multiagent`` when ``env`` is an id.

    Returns:
        A :class:`~turngym.testing.CheckReport` with one result per check.
    """
    if isinstance(env, str):
        env_id = env
        make_multiagent(env_id, **env_kwargs)  # unknown ids fail here, with suggestions

        def make_env() -> TextAECEnv:
            return make_multiagent(env_id, **env_kwargs)
    else:
        make_env, env_id = env, type(env()).__name__
    return run_checks(MULTIAGENT_CHECKS, make_env, env_id, only, split=split, n_tasks=n_tasks,
                      fuzz_examples=fuzz_examples)  # fmt: skip
