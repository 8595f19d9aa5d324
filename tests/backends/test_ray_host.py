"""The Ray env actor's body without Ray: its wire format and the episodes it plays itself.

:class:`~turngym.backends.ray_host.EnvHost` is a plain class that Ray turns into an actor, so
its batching, its kept conversations and its play-to-the-end generator are checked here, in
process, against the local engine (the Ray round trips are in test_ray_backend.py).
"""

import pickle

from hypothesis import given
from hypothesis import strategies as st
from toy_envs import Counter

from turngym.agents import RandomAgent
from turngym.backends.ray_host import INLINE_BYTES, EnvFailure, EnvHost, pack, unpack
from turngym.rollout import collect
from turngym.types import Conversation


def _host(agent=None, make=Counter):
    host = EnvHost(make)
    host.start(agent)
    return host


def _reset(host, numbers, seeds):
    return unpack(host.reset(pack((numbers, seeds, {"split": "test"}))))


def _first(obs, info, episode_id):
    return Conversation(info["instructions"], (), obs, episode_id, info["task_id"], "agent")


@given(st.lists(st.text(max_size=40) | st.integers() | st.floats(allow_nan=False), max_size=30))
def test_a_small_batch_travels_as_a_plain_pickle(values):
    packed = pack(values)
    assert packed[:1] == b"p" and unpack(packed) == values


def test_a_large_batch_is_compressed_below_rays_inline_limit():
    # 300 resets' worth of the same instructions: Ray would move the raw pickle through its
    # object store (over 100 KiB); compressed it stays in the reply.
    # (each episode's instructions are an equal but distinct string, as envs build them)
    values = [("obs", {"instructions": "".join(["walk to the goal "] * 40), "seed": i})
              for i in range(300)]  # fmt: skip
    assert len(pickle.dumps(values)) > 100 * 1024
    packed = pack(values)
    assert packed[:1] == b"z" and len(packed) < INLINE_BYTES
    assert unpack(packed) == values


def test_a_step_batch_gives_what_the_envs_give_and_failures_in_place():
    host = _host(make=lambda: Counter(fail_at_turn=2))
    _reset(host, [1, 2], [0, 1])
    first = unpack(host.step(pack(([1, 2], ["<action>inc</action>", "nonsense"], None))))
    reference = Counter(fail_at_turn=2)
    reference.reset(seed=0, options={"split": "test"})
    assert first[0] == reference.step("<action>inc</action>")
    assert first[1][4]["action_valid"] is False
    second = unpack(host.step(pack(([1, 7], ["<action>inc</action>"] * 2, None))))
    assert isinstance(second[0], EnvFailure) and "simulated env crash" in second[0].description
    assert isinstance(second[1], EnvFailure) and "no env instance 7" in second[1].description


def test_the_actor_keeps_each_conversation_as_the_driver_would():
    host = _host(RandomAgent(seed=5))
    (obs, info), = _reset(host, [1], [3])  # fmt: skip
    first = _first(obs, info, "test/3@0/0")
    (action, outcome), = unpack(host.act_step(pack(([1], [first], None))))  # fmt: skip
    (action2, _), = unpack(host.act_step(pack(([1], [None], None))))  # fmt: skip
    expected = Conversation(first.instructions, ((obs, action.text),), outcome[0],
                            "test/3@0/0", first.task_id, "agent")  # fmt: skip
    assert host.talks[1].turns[:1] == expected.turns
    assert host.talks[1].turns[1][0] == expected.observation
    assert host.talks[1].turns[1][1] == action2.text


def test_play_hands_over_every_tick_and_stops_each_episode_where_the_engine_does():
    # The local engine with a 3-turn limit is the reference: same actions, same ends.
    local = collect(Counter, RandomAgent(seed=2), 6, max_turns=3)
    host = _host(RandomAgent(seed=2))
    numbers = list(range(6))
    resets = _reset(host, numbers, numbers)
    items = [(_first(obs, info, f"test/{n}@0/0"), 3)
             for n, (obs, info) in zip(numbers, resets, strict=True)]  # fmt: skip
    ticks = [tick for blob in host.play(pack((numbers, items, None))) for tick in unpack(blob)]
    played = {n: [] for n in numbers}
    for live, results in ticks:
        assert live == sorted(live)  # the batch keeps the driver's order
        for n, (action, outcome) in zip(live, results, strict=True):
            played[n].append((action.text, outcome[1]))
    for n, group in enumerate(local):
        episode = group.episodes[0]
        assert played[n] == [(t.action, t.reward) for t in episode.turns]
    assert len(ticks) == max(len(g.episodes[0].turns) for g in local) <= 3


def test_a_new_rollout_reuses_the_previous_instances():
    built = []

    def make():
        built.append(Counter())
        return built[-1]

    host = _host(make=make)
    _reset(host, [1, 2], [0, 1])
    host.start(None)
    _reset(host, [5, 6, 7], [0, 1, 2])
    assert len(built) == 3 and set(host.envs.values()) == set(built)
