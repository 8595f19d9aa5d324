"""Tree rollouts: branches share a real prefix with their parent and differ after it."""

from __future__ import annotations

import pytest

from turngym.agents import RandomAgent
from turngym.rollout_tree import TREE_BRANCH_TURN, TREE_NODE, TREE_PARENT, collect_tree
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator

ENV = "turngym/FrozenLake-v0"
OPTIONS = {"difficulty": {"size": 4}}


def _check_tree(groups, group_size, branches):
    """Every branch replays its parent's prefix exactly and then continues on its own."""
    n_branched = 0
    for group in groups:
        assert len(group.episodes) == group_size + branches
        for member, ep in enumerate(group.episodes):
            assert ep.error is None, ep.error
            if member < group_size:
                assert TREE_PARENT not in ep.metrics
                continue
            parent = group.episodes[int(ep.metrics[TREE_PARENT])]
            turn = int(ep.metrics[TREE_BRANCH_TURN])
            # Identical observations (and the very same turns) up to the branch turn ...
            assert [t.observation for t in ep.turns[: turn + 1]] == \
                [t.observation for t in parent.turns[: turn + 1]]  # fmt: skip
            assert ep.turns[:turn] == parent.turns[:turn]
            assert ep.turns[turn].state_key == parent.turns[turn].state_key
            # ... and its own turns from the branch turn on.
            own = [t.info[TREE_NODE] for t in ep.turns[turn:]]
            assert not set(own) & {t.info[TREE_NODE] for t in parent.turns}
            n_branched += turn > 0
    return n_branched


@pytest.mark.parametrize("select", ["uniform", "uncertainty", "uct"])
def test_branches_share_the_prefix_in_process(select):
    groups = collect_tree(ENV, RandomAgent(seed=1), 3, 2, branches=3, rounds=2, select=select,
                          options=OPTIONS, seed=4)  # fmt: skip
    assert _check_tree(groups, 2, 3) > 0


def test_branch_continues_from_the_restored_state():
    """Replaying the branch's own actions from a fresh reset reproduces its observations."""
    import turngym

    groups = collect_tree(ENV, RandomAgent(seed=3), 2, 2, branches=2, select="uniform",
                          options=OPTIONS, seed=1)  # fmt: skip
    for group in groups:
        for ep in group.episodes:
            env = turngym.make(ENV)
            obs, _ = env.reset(seed=ep.seed, options={"split": "test", **OPTIONS})
            for turn in ep.turns:
                assert obs == turn.observation
                obs, *_ = env.step(turn.action)


def test_tree_rollouts_are_deterministic():
    def run():
        groups = collect_tree(ENV, RandomAgent(seed=2), 2, 2, branches=2, select="uct",
                              options=OPTIONS, seed=9)  # fmt: skip
        return [[(t.action, t.info[TREE_NODE]) for t in ep.turns] for g in groups
                for ep in g.episodes]  # fmt: skip

    assert run() == run()


def test_tree_grpo_on_a_tree_weights_each_node_once():
    groups = collect_tree(ENV, RandomAgent(seed=5), 4, 2, branches=4, options=OPTIONS, seed=2)
    batch = TurnBatch.from_groups(groups)
    credit = resolve_estimator("tree_grpo", {})(batch, CreditContext())
    nodes = [t.info[TREE_NODE] for g in groups for ep in g.episodes for t in ep.turns]
    trained = [n for n, w in zip(nodes, credit.weights, strict=True) if w > 0]
    assert sorted(trained) == sorted(set(nodes))


def test_bad_arguments_fail_fast():
    with pytest.raises(ValueError, match="branches"):
        collect_tree(ENV, RandomAgent(), 1, 2, branches=-1)
    with pytest.raises(ValueError, match="select"):
        collect_tree(ENV, RandomAgent(), 1, 2, branches=1, select="best")


@pytest.mark.slow
@pytest.mark.integration
def test_branches_share_the_prefix_on_a_served_env():
    from server._loopback import serve_app

    with serve_app([ENV]) as served:
        groups = collect_tree(served.remote(ENV), RandomAgent(seed=1), 2, 2, branches=3,
                              rounds=2, select="uncertainty", options=OPTIONS, seed=4)  # fmt: skip
    assert _check_tree(groups, 2, 3) > 0
    local = collect_tree(ENV, RandomAgent(seed=1), 2, 2, branches=3, rounds=2,
                         select="uncertainty", options=OPTIONS, seed=4)  # fmt: skip
    # The served env is the same env: the same seeds give the same trees.
    assert [[t.observation for t in ep.turns] for g in groups for ep in g.episodes] == \
        [[t.observation for t in ep.turns] for g in local for ep in g.episodes]  # fmt: skip
