"""The body of the Ray actors that host env instances (see :mod:`turngym.backends.ray_envs`).

An :class:`EnvHost` holds env instances by number and resets or steps a batch of them per
call. Every call takes and returns one packed batch (:func:`pack`), and env-aware agents act
here, next to their envs, keeping each episode's conversation.
"""

from __future__ import annotations

import pickle
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gymnasium

from turngym.backends.ray_channel import CLOSE, REQUEST_CODES, ChannelServer
from turngym.tick import prepare_tick
from turngym.types import Conversation

__all__ = ["EnvFailure", "EnvHost", "INLINE_BYTES", "pack", "unpack"]


class EnvFailure(Exception):
    """An env call that failed in (or with) its actor; ``description`` is what gets recorded."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class EnvHost:
    """A Ray actor body: env instances by number, reset and stepped in batches.

    Every method takes and returns one pickled blob (:func:`pack`): Ray would otherwise
    serialise each item of a batch on its own, which costs more than stepping a cheap env.

    Env-aware reference agents (random, oracle) read the env objects, so they act here, next to
    their envs (:meth:`act_step`); the agent is a copy made when the actor starts, which keeps
    each episode's random stream (it is keyed by episode id) in the actor hosting the episode.
    The actor also keeps each episode's conversation, extending it with every step as the
    driver does, so a tick ships only the episode numbers, not every conversation so far.

    A driver on the same node sends the per-tick calls over the actor's channel
    (:meth:`open_channel`, :mod:`turngym.backends.ray_channel`) rather than through Ray; every
    method runs under one lock, whichever way it was called.
    """

    def __init__(self, make_env: Callable[[], gymnasium.Env]) -> None:
        self.make_env = make_env
        self.agent: Any = None
        self.envs: dict[int, gymnasium.Env] = {}
        self.idle: list[gymnasium.Env] = []  # a previous rollout's instances, reused on reset
        self.talks: dict[int, Conversation] = {}
        self.lock = threading.RLock()
        self.channel: ChannelServer | None = None

    def open_channel(self, node: str, folder: str) -> tuple[str, bytes] | None:
        """Start (once) the channel and return its ``(address, key)``.

        ``None`` when the driver is on another node (``node`` is its Ray node id) or the
        socket cannot be made in its ``folder``: the driver then keeps to Ray calls.
        """
        import ray

        if node != ray.get_runtime_context().get_node_id():
            return None
        with self.lock:
            if self.channel is None:
                try:
                    self.channel = ChannelServer(self._request, self.lock, folder)
                except OSError:
                    return None
            return self.channel.address, self.channel.authkey

    def _request(self, request: bytes) -> bytes | None:
        """Answer one channel request: a method's first letter, then its packed batch."""
        kind, payload = request[:1], request[1:]
        if kind == CLOSE:  # fire and forget, as through Ray
            self.close(unpack(payload))
            return None
        method = _CHANNEL_METHODS.get(kind)
        if method is None:
            raise ValueError(f"unknown channel request {kind!r}")
        reply: bytes = method(self, payload)
        return reply

    def start(self, agent: Any) -> None:
        """Begin a rollout: take its agent copy; the previous rollout's instances go idle.

        An idle instance is reset before it plays again, which is all the local backend
        assumes when it reuses an env for the next episode, so keeping them only saves
        building envs anew for every rollout.
        """
        with self.lock:
            self.idle.extend(self.envs.values())
            self.envs.clear()
            self.talks.clear()
            self.agent = agent

    def reset(self, payload: bytes) -> bytes:
        """Reset instances: ``(numbers, seeds, options)``; an instance is built on first use."""
        with self.lock:
            return self._reset(*unpack(payload))

    def _reset(self, numbers: Sequence[int], seeds: Sequence[Any], options: Any) -> bytes:
        out: list[Any] = []
        for number, seed in zip(numbers, seeds, strict=True):
            self.talks.pop(number, None)
            try:
                env = self.envs.get(number)
                if env is None:
                    env = self.envs[number] = self.idle.pop() if self.idle else self.make_env()
                out.append(env.reset(seed=seed, options=dict(options)))
            except Exception as err:
                self.close([number])
                out.append(_failure(err))
        return pack(out)

    def step(self, payload: bytes) -> bytes:
        """Step instances: ``(numbers, action texts, None)``; exceptions become failures."""
        numbers, texts, _ = unpack(payload)
        with self.lock:
            return pack(self._step(numbers, texts))

    def _step(self, numbers: Sequence[int], texts: Sequence[str]) -> list[Any]:
        envs = [self.envs.get(number) for number in numbers]
        known = [(env.unwrapped, text) for env, text in zip(envs, texts, strict=True) if env]
        prepare_tick([env for env, _ in known], [text for _, text in known])
        out: list[Any] = []
        for number, env, text in zip(numbers, envs, texts, strict=True):
            try:
                if env is None:
                    raise KeyError(f"no env instance {number} in this actor")
                out.append(env.step(text))
            except Exception as err:
                out.append(_failure(err))
        return out

    def act_step(self, payload: bytes) -> bytes:
        """Let the env-aware agent act, then step: ``(numbers, first conversations, None)``.

        An episode's first conversation comes from the driver (``None`` afterwards: the actor
        extends its own copy). Returns one ``(ActionResult, step outcome)`` per item, or an
        :class:`EnvFailure`.
        """
        numbers, firsts, _ = unpack(payload)
        with self.lock:
            self._take(numbers, firsts)
            return pack(self._act(numbers))

    def play(self, payload: bytes) -> Iterator[bytes]:
        """Play episodes to their end: ``(numbers, (first conversation, turns left), None)``.

        The env-aware agent acts on this actor's unfinished episodes together, tick after
        tick (the batches :meth:`act_step` would see), until each episode terminates, is
        truncated by its env, fails or has played its turns. A Ray generator: it yields the
        ticks played so far, each ``(numbers, act_step results)``, at least every
        :data:`YIELD_EVERY_S`, so the driver records them while the next ones play.
        """
        numbers, items, _ = unpack(payload)
        with self.lock:
            self._take(numbers, [first for first, _ in items])
        left = {number: turns for number, (_, turns) in zip(numbers, items, strict=True)}
        live = list(numbers)
        ticks: list[tuple[list[int], list[Any]]] = []
        since = time.monotonic()
        while live:
            with self.lock:  # not across the yields below
                results = self._act(live)
            ticks.append((live, results))
            if time.monotonic() - since >= YIELD_EVERY_S:
                yield pack(ticks)
                ticks, since = [], time.monotonic()
            still = []
            for number, result in zip(live, results, strict=True):
                left[number] -= 1
                if isinstance(result, EnvFailure) or result[1][2] or result[1][3]:
                    continue  # failed, terminated or truncated
                if left[number] > 0:
                    still.append(number)
            live = still
        if ticks:
            yield pack(ticks)

    def _take(self, numbers: Sequence[int], firsts: Sequence[Conversation | None]) -> None:
        for number, first in zip(numbers, firsts, strict=True):
            if first is not None:
                self.talks[number] = first

    def _act(self, numbers: Sequence[int]) -> list[Any]:
        try:
            talks = [self.talks[number] for number in numbers]
            envs = [self.envs[number] for number in numbers]
            actions = self.agent.act_batch_with_envs(talks, envs)
        except Exception as err:  # the agent failed: every episode of the batch records it
            return [_failure(err)] * len(numbers)
        outcomes = self._step(numbers, [a.text for a in actions])
        out: list[Any] = []
        for number, talk, action, outcome in zip(numbers, talks, actions, outcomes, strict=True):
            if isinstance(outcome, EnvFailure):
                self.talks.pop(number, None)
                out.append(outcome)
                continue
            self.talks[number] = Conversation(
                talk.instructions, (*talk.turns, (talk.observation, action.text)), outcome[0],
                talk.episode_id, talk.task_id, talk.agent_id,
            )  # fmt: skip
            out.append((action, outcome))
        return out

    def close(self, numbers: Sequence[int]) -> None:
        """Close and forget these instances (unknown numbers are ignored)."""
        with self.lock:
            for number in numbers:
                self.talks.pop(number, None)
                env = self.envs.pop(number, None)
                if env is not None:
                    try:
                        env.close()
                    except Exception:  # a broken env's close must not fail the actor
                        pass


_CHANNEL_METHODS: dict[bytes, Callable[[EnvHost, bytes], bytes]] = {
    code: getattr(EnvHost, method) for method, code in REQUEST_CODES.items()
}
"""The methods channel requests call, by their first byte."""


YIELD_EVERY_S = 0.005
"""How often :meth:`EnvHost.play` hands the ticks it played to the driver. Every hand-over is
a message to the driver that the actor waits on, which on a busy machine costs milliseconds:
about one per tick for a slow env, many ticks of a cheap env per message."""

INLINE_BYTES = 64 * 1024
"""Batches larger than this are compressed. Ray hands a small value over inline, in the reply
itself, but moves one over its ``max_direct_call_object_size`` (100 KiB by default) through the
object store, which costs a few milliseconds per call; rollout batches repeat themselves a lot
(every reset's instructions, the same info keys), so they compress well and quickly."""


def pack(values: Any) -> bytes:
    """One pickle for a whole batch (Ray passes bytes on without looking inside them)."""
    data = pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > INLINE_BYTES:
        return b"z" + zlib.compress(data, 1)
    return b"p" + data


def unpack(packed: bytes) -> Any:
    """The batch :func:`pack` packed."""
    view = memoryview(packed)[1:]
    return pickle.loads(zlib.decompress(view) if packed[:1] == b"z" else view)


def _failure(err: BaseException) -> EnvFailure:
    from turngym._rollout_common import describe_error  # the local wording: results match

    return EnvFailure(describe_error(err))
