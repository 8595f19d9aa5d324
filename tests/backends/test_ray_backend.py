"""The Ray backend on a real local Ray cluster (2 CPUs): same episodes and results as local.

One cluster serves the whole module (starting one takes tens of seconds on a busy machine)
and is shut down at the end. Every test here is slow-marked.
"""

import asyncio
import io
import json
import os
import re
import signal
import sys
import threading

import pytest

ray = pytest.importorskip("ray")

import toy_envs  # noqa: E402
from toy_envs import Counter, SlowCounter  # noqa: E402

from turngym.agents import OracleAgent, RandomAgent  # noqa: E402
from turngym.agents.base import ActionResult, BaseAgent  # noqa: E402
from turngym.backends import ray_envs  # noqa: E402
from turngym.backends.ray_channel import ENV_SWITCH, THREAD_NAME  # noqa: E402
from turngym.backends.ray_envs import CPUS_KEY, release_warm  # noqa: E402
from turngym.cli import main  # noqa: E402
from turngym.rollout import acollect, collect  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# The toy envs live in tests/, which Ray's workers cannot import: ship them by value.
ray.cloudpickle.register_pickle_by_value(toy_envs)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class KillableCounter(Counter):
    """Counter whose ``die`` command kills the process stepping it (a crashing native env)."""

    def apply(self, command: str):
        if command == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().apply(command)


class SlowKillableCounter(KillableCounter):
    # Half a CPU each: four single-instance actors fit the 2-CPU cluster.
    metadata = {**Counter.metadata, "turngym.slow": True, CPUS_KEY: 0.5}


class HintAgent(BaseAgent):
    """Follows the counter's public hint; says ``die`` at turn 1 of the episodes listed."""

    def __init__(self, kill=()):
        self.kill = set(kill)

    def act_batch(self, conversations):
        out = []
        for c in conversations:
            if c.episode_id in self.kill and len(c.turns) == 1:
                out.append(ActionResult("<action>die</action>"))
            else:
                move = "dec" if "(lower)" in c.observation else "inc"
                out.append(ActionResult(f"<action>{move}</action>"))
        return out


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    release_warm()
    ray.shutdown()


def _plain(groups):
    """Episodes as dicts, without their wall-clock times."""
    out = []
    for group in groups:
        for ep in group.episodes:
            d = ep.to_dict()
            d["metrics"].pop("wall_time_s", None)
            out.append((group.group_id, d))
    return out


@pytest.mark.parametrize("env", ["turngym/FrozenLake-v0", "turngym/Wordle-v0"])
@pytest.mark.parametrize("agent", [lambda: RandomAgent(seed=3), OracleAgent, HintAgent])
def test_collect_on_ray_plays_the_same_episodes_as_local(env, agent):
    # Refills reuse envs; once nothing is queued an env-aware agent plays on in the actors.
    kwargs = {"group_size": 2, "max_concurrent": 5, "split": "train"}
    order = {"local": [], "ray": []}
    local = collect(env, agent(), [4, 9, 11, 30], on_episode=lambda e: order["local"].append(
        e.episode_id), **kwargs)  # fmt: skip
    remote = collect(env, agent(), [4, 9, 11, 30], backend="ray", on_episode=lambda e: order[
        "ray"].append(e.episode_id), **kwargs)  # fmt: skip
    assert _plain(remote) == _plain(local)
    assert order["ray"] == order["local"]  # episodes finish in the same order
    assert sum(len(ep.turns) for g in remote for ep in g.episodes) > 8


def test_acollect_and_a_slow_env_factory_match_local():
    make = lambda: SlowCounter()  # noqa: E731
    local = collect(make, RandomAgent(seed=1), 6, group_size=2, max_turns=8)
    remote = asyncio.run(
        acollect(make, RandomAgent(seed=1), 6, group_size=2, max_turns=8, backend="ray")
    )
    assert _plain(remote) == _plain(local)


def test_env_exceptions_are_recorded_with_the_local_wording():
    make = lambda: Counter(fail_at_turn=2)  # noqa: E731
    local = collect(make, HintAgent(), 3, max_turns=10)
    remote = collect(make, HintAgent(), 3, max_turns=10, backend="ray")
    assert _plain(remote) == _plain(local)
    errors = [ep.error for g in remote for ep in g.episodes]
    assert all(e and e.startswith("RuntimeError: simulated env crash (at ") for e in errors)


def test_a_killed_slow_env_actor_is_replaced_and_its_episode_records_the_error():
    # 4 actors (one instance each) for 10 episodes: the killed actor's replacement plays the
    # episodes queued after it.
    groups = collect(SlowKillableCounter, HintAgent(kill={"test/2@0/0"}), 10, max_turns=15,
                     backend="ray")  # fmt: skip
    by_seed = {g.episodes[0].seed: g.episodes[0] for g in groups}
    killed = by_seed.pop(2)
    assert "env actor died" in killed.error and len(killed.turns) == 1
    assert all(ep.error is None and ep.success for ep in by_seed.values())


class ThreadCounter(Counter):
    """Counter that says which thread of its process steps it (in its metrics)."""

    def metrics(self):
        return {**super().metrics(), "thread": threading.current_thread().name}


def _warm_folders():
    return [folder for actors in ray_envs._WARM.values() for _, folder in actors]


def test_same_node_actors_step_over_their_channel_and_ray_calls_play_the_same(monkeypatch):
    kwargs = {"max_concurrent": 70, "max_turns": 6}  # two actors
    local = collect(ThreadCounter, HintAgent(), 80, **kwargs)
    release_warm()
    channel = collect(ThreadCounter, HintAgent(), 80, backend="ray", **kwargs)
    threads = {t.info["metrics"]["thread"] for g in channel for ep in g.episodes for t in ep.turns}
    assert threads == {THREAD_NAME}
    folders = _warm_folders()
    assert len(folders) == 2 and all(os.path.exists(os.path.join(f, "channel")) for f in folders)
    release_warm()
    assert not any(os.path.exists(f) for f in folders)  # removed with their actors

    monkeypatch.setenv(ENV_SWITCH, "0")
    calls = collect(ThreadCounter, HintAgent(), 80, backend="ray", **kwargs)
    assert THREAD_NAME not in {t.info["metrics"]["thread"] for g in calls for ep in g.episodes
                               for t in ep.turns}  # fmt: skip
    assert _warm_folders() == [None, None]
    release_warm()

    def same(groups):  # the thread differs; every other field is the local backend's
        plain = _plain(groups)
        for _, episode in plain:
            for turn in episode["turns"]:
                turn["info"]["metrics"].pop("thread")
        return plain

    assert same(channel) == same(calls) == same(local)


def test_a_killed_cheap_env_actor_fails_the_episodes_it_hosted_and_the_rest_go_on(monkeypatch):
    # One actor hosts the 4 live episodes; it dies on episode 0's second turn. Over the
    # channel and over Ray calls alike, with the same words (Ray's account of the death).
    said = {}
    for channel in ("1", "0"):
        monkeypatch.setenv(ENV_SWITCH, channel)
        groups = collect(KillableCounter, HintAgent(kill={"test/0@0/0"}), 12, max_concurrent=4,
                         max_turns=15, backend="ray")  # fmt: skip
        episodes = [g.episodes[0] for g in groups]
        failed = [ep.seed for ep in episodes if ep.error is not None]
        assert failed == [0, 1, 2, 3]
        assert all("env actor died" in episodes[s].error for s in failed)
        assert all(ep.success for ep in episodes[4:])
        said[channel] = {episodes[s].error.split(" (")[0] for s in failed}
    assert said["1"] == said["0"] and len(said["1"]) == 1, said


class DyingHintAgent(HintAgent):
    """The hint follower as an env-aware agent: it plays inside the actors."""

    def act_batch_with_envs(self, conversations, envs):
        return self.act_batch(conversations)


def test_an_actor_dying_while_it_plays_on_fails_its_episodes_and_is_replaced():
    # Nothing queued: the env-aware agent plays the 6 episodes on in their one actor, which
    # dies on episode 0's second turn; the turns it handed over before are recorded.
    groups = collect(KillableCounter, DyingHintAgent(kill={"test/0@0/0"}), 6, max_turns=15,
                     backend="ray")  # fmt: skip
    episodes = [g.episodes[0] for g in groups]
    assert all("env actor died" in ep.error and len(ep.turns) <= 1 for ep in episodes)
    again = collect(KillableCounter, DyingHintAgent(), 6, max_turns=15, backend="ray")
    assert all(g.episodes[0].success for g in again)


class WhereCounter(Counter):
    """Counter that says which process steps it (in its metrics)."""

    def metrics(self):
        return {**super().metrics(), "pid": os.getpid()}


def test_warm_actors_see_the_same_episodes_again():
    # 130 live episodes: two actors. Rolling out the same seeds again sends each episode to
    # the actor that played it before (whose process has that task drawn and cached).
    def where():
        groups = collect(WhereCounter, HintAgent(), 130, max_turns=3, backend="ray")
        return [g.episodes[0].turns[0].info["metrics"]["pid"] for g in groups]

    first = where()
    assert len(set(first)) == 2
    assert where() == first


def test_an_episode_timeout_cuts_a_stuck_slow_env():
    make = lambda: SlowCounter(sleep=3.0)  # noqa: E731
    groups = collect(make, HintAgent(), 1, max_turns=5, episode_timeout=1.0, backend="ray")
    episode = groups[0].episodes[0]
    assert episode.error == "TimeoutError: episode exceeded 1.0 s"
    assert not episode.success


def test_multi_agent_envs_are_refused_on_ray():
    with pytest.raises(ValueError, match="multi-agent envs and seat mappings run on the local"):
        collect("turngym/FrozenLake-v0", {"a": RandomAgent()}, 1, backend="ray")


def _eval(tmp_path, name, *extra):
    out = tmp_path / name
    buf = io.StringIO()
    code = main(["eval", "smoke", "--agents", "random", "oracle", "--episodes", "2",
                 "--out", str(out), *extra], stdout=buf)  # fmt: skip
    assert code == 0, buf.getvalue()
    results = json.loads((out / "results.json").read_text())
    results["provenance"].pop("date")
    episodes = sorted((json.loads(line) for line in (out / "episodes.jsonl").open()),
                      key=lambda r: r["key"])  # fmt: skip
    for record in episodes:
        record["metrics"].pop("wall_time_s")
    return results, episodes


def test_turngym_eval_smoke_on_ray_writes_the_local_results(tmp_path):
    local_results, local_episodes = _eval(tmp_path, "local")
    ray_results, ray_episodes = _eval(tmp_path, "ray", "--backend", "ray")
    assert ray_results == local_results
    assert ray_episodes == local_episodes
    assert len(local_episodes) == 2 * len(local_results["entries"])  # 2 episodes per entry


def test_kernel_evaluations_as_ray_tasks_match_local():
    from turngym.backends.ray_kernel import evaluate_candidates
    from turngym.envs.kernel import tasks as kt
    from turngym.envs.kernel.env import reference_as_candidate

    reference, oracle = kt.render("relu", {"B": 8, "D": 64})
    wrong = oracle.replace("clamp_min(x, 0.0)", "clamp_min(x, 0.5)")
    requests = [
        {"reference": reference, "candidate": reference_as_candidate(reference), "seeds": (0,)},
        {"reference": reference, "candidate": oracle, "seeds": (0,)},
        {"reference": reference, "candidate": "class ModelNew(:\n    pass", "seeds": (0,)},
        {"reference": reference, "candidate": wrong, "seeds": (0,)},
    ]
    local = evaluate_candidates(requests, max_workers=2)
    remote = evaluate_candidates(requests, backend="ray")
    statuses = [r["status"] for r in remote]
    assert statuses == ["correct", "correct", "compile_error", "incorrect"]
    assert [_verdict(r) for r in remote] == [_verdict(r) for r in local]


def _verdict(result):
    """An evaluation without what depends on the process that ran it: the sandbox's CPU
    seconds and the uid it drew from the pool (the isolation it applied stays compared)."""
    sandbox = dict(result.get("sandbox") or {})
    sandbox.pop("cpu_seconds", None)
    sandbox["notes"] = [re.sub(r"uid-\d+", "uid-N", n) for n in sandbox.get("notes", [])]
    return {**result, "sandbox": sandbox}


def test_bench_training_runs_as_ray_tasks_give_the_local_results(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    from turngym.evals.bench import DEFAULT_RECIPE, BenchSpec, run_bench
    from turngym.evals.suites import EvalEntry

    spec = BenchSpec(
        estimators=("grpo",), seeds=(0,), env_steps=30, eval_every=1, eval_tasks=3,
        envs=(EvalEntry("turngym/FrozenLake-v0", options={"difficulty": {"size": 3}},
                        episodes=3),),
        recipe={**DEFAULT_RECIPE, "tasks_per_iteration": 2, "group_size": 2}, baselines=(),
    )  # fmt: skip
    local = run_bench(spec, tmp_path / "local", workers=1, submit=False, progress="off")
    remote = run_bench(spec, tmp_path / "ray", workers=1, submit=False, progress="off",
                       backend="ray")  # fmt: skip
    assert remote.table == local.table
    strip = lambda r: [(e.agent, e.metrics["success"].mean, e.curve) for e in r.entries]  # noqa: E731
    assert strip(remote.results) == strip(local.results)
