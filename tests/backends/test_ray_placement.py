"""The Ray backend's pure parts (no cluster): placement arithmetic, backend names, job needs."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turngym.backends import check_backend
from turngym.backends.ray_bench import job_resources
from turngym.backends.ray_envs import CPUS_KEY, MIN_ENVS_PER_HOST, Placement, plan_placement


def test_cheap_envs_are_packed_one_actor_per_cpu_at_most():
    assert plan_placement({}, 512, 2.0) == Placement(2, 256, 1.0, False)
    # Few episodes: one actor, asking only for the CPUs its instances declare (10/64).
    assert plan_placement({}, 10, 8.0) == Placement(1, 10, 10 / 64, False)
    # 130 instances on 8 CPUs: ceil(130 / 64) = 3 actors of 44.
    assert plan_placement({}, 130, 8.0) == Placement(3, 44, 44 / 64, False)


def test_slow_envs_get_an_actor_each_and_only_as_many_as_the_cpus_cover():
    assert plan_placement({"turngym.slow": True}, 512, 2.0) == Placement(2, 1, 1.0, True)
    assert plan_placement({"turngym.slow": True}, 3, 16.0) == Placement(3, 1, 1.0, True)
    declared = {"turngym.slow": True, CPUS_KEY: 0.25}
    assert plan_placement(declared, 512, 2.0) == Placement(8, 1, 0.25, True)


def test_bad_declared_costs_fail_with_one_line():
    with pytest.raises(ValueError, match="must be > 0"):
        plan_placement({CPUS_KEY: 0}, 4, 2.0)
    with pytest.raises(ValueError, match="declares 4.0 CPUs but the Ray cluster has 2.0"):
        plan_placement({"turngym.slow": True, CPUS_KEY: 4}, 4, 2.0)


@given(
    concurrency=st.integers(1, 5000),
    cpus=st.integers(1, 64),
    slow=st.booleans(),
    cost=st.sampled_from([None, 0.01, 0.25, 1.0]),
)
def test_placement_never_asks_for_more_cpus_than_the_cluster_has(concurrency, cpus, slow, cost):
    metadata = {"turngym.slow": slow, **({} if cost is None else {CPUS_KEY: cost})}
    p = plan_placement(metadata, concurrency, float(cpus))
    assert p.hosts * p.host_cpus <= cpus + 1e-9
    assert 0 < p.host_cpus <= 1.0
    if slow:
        assert p.envs_per_host == 1 and p.capacity == min(concurrency, int(cpus // (cost or 1.0)))
    else:  # every episode gets an instance, spread evenly, few actors
        assert p.capacity >= concurrency > (p.envs_per_host - 1) * p.hosts
        assert p.hosts <= min(cpus, math.ceil(concurrency / MIN_ENVS_PER_HOST))


def test_backend_names_are_checked():
    assert check_backend("local") == "local"
    with pytest.raises(ValueError, match="unknown backend 'rey'; choose one of local, ray"):
        check_backend("rey")


def test_training_jobs_declare_their_cpus_and_gpus():
    assert job_resources({"threads": 1, "config": {"device": "cpu"}}) == {
        "num_cpus": 1.0,
        "num_gpus": 0.0,
    }
    assert job_resources({"threads": 4, "config": {"device": "cuda"}})["num_gpus"] == 1.0
