"""Every registered env passes turngym's checker and Gymnasium's own check_env."""

from __future__ import annotations

import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

import turngym
from turngym.agents import OracleAgent
from turngym.core import TextEnv
from turngym.registry import env_registry
from turngym.rollout import collect
from turngym.testing import CHECKS, check_env


def _param(env_id: str) -> object:
    # Envs that declare themselves slow (one subprocess per step, e.g. KernelGen) take tens of
    # seconds here: they run with the slow suite (CI runs it too), not the default one.
    entry = gymnasium.spec(env_id).entry_point
    creator = (gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str)
               else entry)  # fmt: skip
    slow = bool(getattr(creator, "metadata", {}).get("turngym.slow", False))
    return pytest.param(env_id, marks=pytest.mark.slow) if slow else env_id


# Adapted suites (textarena/...) have no oracle and their own slow tests
# (tests/envs/test_adapters_*.py); this file covers turngym's own envs.
ENV_IDS = [_param(env_id) for env_id in env_registry.names() if env_id.startswith("turngym/")]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id):
    env = turngym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gymnasium_check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_turngym_check_env(env_id):
    report = check_env(env_id, fuzz_examples=40, n_tasks=15)
    assert [r.name for r in report.results] == list(CHECKS)
    report.raise_if_failed()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_solves_test_tasks(env_id):
    groups = collect(env_id, OracleAgent(), tasks=20, group_size=1, split="test")
    failed = [ep for g in groups for ep in g.episodes if not ep.success or ep.error is not None]
    assert not failed, "\n".join(_why(ep) for ep in failed)


def _why(ep) -> str:
    """What a failed oracle episode says about itself (a CI log is all there is to go on)."""
    last = ep.turns[-1] if ep.turns else None
    said = last.observation[-700:] if last else ""
    metrics = dict(last.info.get("metrics", {})) if last else {}
    return (f"{ep.episode_id} {ep.task_id}: error={ep.error!r} outcome={ep.outcome} "
            f"turns={len(ep.turns)} metrics={metrics}\n  last observation: {said!r}")  # fmt: skip


def test_checker_catches_a_broken_env(counter_id):
    """The checker itself must be able to fail: an env whose reset ignores the seed."""
    from toy_envs import Counter

    class Unseeded(Counter):
        calls = 0

        def generate_task(self, rng, difficulty):
            Unseeded.calls += 1
            return {"target": 1 + Unseeded.calls % 9}

    report = check_env(lambda: Unseeded(), only=["determinism"])
    assert not report.ok and "differs" in report.results[0].message


def test_checker_catches_a_leak():
    from toy_envs import Counter

    class Leaky(Counter):
        def render_text(self):
            return super().render_text() + f" psst: THE-TARGET-IS-{self.target}"

    report = check_env(lambda: Leaky(), only=["leaks"])
    assert not report.ok and "secret" in report.results[0].message


def test_checker_catches_a_raising_step():
    from toy_envs import Counter

    class Fragile(Counter):
        def apply(self, command):
            if len(command) > 50:
                raise IndexError("too long")
            return super().apply(command)

    report = check_env(lambda: Fragile(), only=["fuzz"])
    assert not report.ok and "IndexError" in report.results[0].message


def test_checker_catches_a_broken_oracle():
    """``turngym check`` fails an env whose oracle does not succeed (issue 17), and passes one
    without an oracle."""
    from toy_envs import Counter

    class WrongWay(Counter):
        def oracle_action(self):
            return "<action>dec</action>"

    report = check_env(lambda: WrongWay(), only=["oracle"])
    assert not report.ok and "the oracle failed 3 of 3" in report.results[0].message
    assert check_env(lambda: Counter(), only=["oracle"]).ok

    class NoOracle(Counter):
        oracle_action = TextEnv.oracle_action

    assert check_env(lambda: NoOracle(), only=["oracle"]).ok
