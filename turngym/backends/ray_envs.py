"""Env instances living in Ray actors, placed by what the env declares it costs.

An :class:`EnvHost` actor holds env instances by number and resets or steps a batch of them
per call, so one tick of the rollout engine costs one round trip per actor, not one per
episode. The driver addresses an instance through an :class:`ActorEnv` handle; a
:class:`HostPool` owns the actors, spreads handles over them and replaces an actor that dies.

**Placement** (:func:`plan_placement`). An env declares the CPUs one instance keeps busy while
it steps in ``metadata["turngym.cpus"]`` (default: 1 for envs marked ``metadata["turngym.slow"]``,
:data:`CHEAP_ENV_CPUS` otherwise). Every actor asks Ray for the CPUs of the instances it hosts,
capped at 1 because an actor steps its instances one after another in one process. So:

* a slow env gets one actor per instance (its steps run in parallel across actors), and only
  as many instances are live at once as the cluster's CPUs cover;
* a cheap env is packed, at least :data:`MIN_ENVS_PER_HOST` instances per actor and at most one
  actor per cluster CPU, which keeps the per-tick round trips few.

**Failures.** An exception inside an env comes back described in the actor (the same text the
local backend records); an actor that dies (a crashed env process, a killed worker, a lost
node) fails every call in flight on it with an :class:`EnvFailure`, and the pool starts a
fresh actor in its place. Instances are built lazily on their first reset, so the handles that
were idle on the dead actor simply rebuild their env on the replacement.

**Wire.** A call carries one pickled batch each way (numbers and per-item values in, results
out): Ray serialises the items of a list one by one, which for a microsecond env costs more
than the step. Env-aware agents' conversations stay in the actors (only an episode's first
one travels), and a warm actor keeps its env instances for the next rollout. An actor on the
driver's node gets the per-tick batches over a direct channel rather than as Ray calls
(:mod:`turngym.backends.ray_channel`: a round trip of ~0.04-0.08 ms instead of ~1.3 ms).
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium

from turngym._rollout_common import close_quietly
from turngym.backends.ray_channel import (
    CLOSE,
    REPLY_ERROR,
    REQUEST_CODES,
    Pending,
    channel_enabled,
    connect,
    new_folder,
    remove_folder,
    wait_replies,
)
from turngym.backends.ray_host import EnvFailure, EnvHost, pack, unpack

__all__ = [
    "CPUS_KEY",
    "CHEAP_ENV_CPUS",
    "MIN_ENVS_PER_HOST",
    "Placement",
    "plan_placement",
    "EnvFailure",
    "EnvHost",
    "ActorEnv",
    "HostPool",
    "Calls",
    "release_warm",
]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its error text for terminals

CPUS_KEY = "turngym.cpus"
"""Env metadata key: CPUs one instance keeps busy while it steps (a float > 0)."""

CHEAP_ENV_CPUS = 1 / 64
"""Default CPUs per instance of an env that is not marked slow: 64 instances fill one actor."""

MIN_ENVS_PER_HOST = 64
"""Cheap envs are packed at least this many per actor, so a tick costs few round trips."""


@dataclass(frozen=True, slots=True)
class Placement:
    """How the instances of one env are spread over actors.

    Attributes:
        hosts: Number of actors.
        envs_per_host: Instances one actor may hold at once.
        host_cpus: CPUs each actor asks Ray for.
        slow: Whether the env is slow (one instance per actor).
    """

    hosts: int
    envs_per_host: int
    host_cpus: float
    slow: bool

    @property
    def capacity(self) -> int:
        """Instances that can be live at once."""
        return self.hosts * self.envs_per_host


def plan_placement(metadata: Mapping[str, Any], concurrency: int, cpus: float) -> Placement:
    """Place ``concurrency`` instances of an env with this ``metadata`` on ``cpus`` CPUs.

    Args:
        metadata: The env's ``metadata`` (``turngym.slow``, ``turngym.cpus``).
        concurrency: Instances wanted at once (live episodes).
        cpus: CPUs the cluster declares.

    Raises:
        ValueError: A non-positive declared cost, or one instance needs more CPUs than the
            cluster has.

    Example:
        >>> plan_placement({}, 512, 2.0)
        Placement(hosts=2, envs_per_host=256, host_cpus=1.0, slow=False)
        >>> plan_placement({"turngym.slow": True}, 512, 2.0)
        Placement(hosts=2, envs_per_host=1, host_cpus=1.0, slow=True)
    """
    slow = bool(metadata.get("turngym.slow", False))
    cost = float(metadata.get(CPUS_KEY, 1.0 if slow else CHEAP_ENV_CPUS))
    if not cost > 0:
        raise ValueError(f'metadata["{CPUS_KEY}"] must be > 0 CPUs per env, got {cost}')
    if cost > cpus:
        raise ValueError(
            f"one env instance declares {cost} CPUs but the Ray cluster has {cpus}; add nodes "
            f'or lower metadata["{CPUS_KEY}"]'
        )
    concurrency = max(1, concurrency)
    if slow:
        hosts = max(1, min(concurrency, int(cpus // cost)))
        return Placement(hosts, 1, min(1.0, cost), True)
    hosts = max(1, min(math.ceil(concurrency / MIN_ENVS_PER_HOST), int(cpus)))
    per_host = math.ceil(concurrency / hosts)
    return Placement(hosts, per_host, min(1.0, cost * per_host), False)


class _Host:
    """One actor slot of a pool: the current actor, its channel, and the handles on it."""

    def __init__(self, pool: HostPool) -> None:
        self.pool = pool
        self.handles = 0
        self._start()

    def _start(self) -> None:
        self.actor, self.folder = self.pool.spawn()
        self.conn: Any = None
        self._opening = None
        if channel_enabled():  # asked now, read on first use: the actor starts meanwhile
            if self.folder is None:
                self.folder = new_folder()
                _FOLDERS.add(self.folder)
            self._opening = self.actor.open_channel.remote(self.pool.node, self.folder)

    def link(self) -> Any:
        """The channel to the actor (opened on first use), or ``None``: use Ray calls."""
        if self._opening is not None:
            opening, self._opening = self._opening, None
            try:
                where = self.pool.ray.get(opening)
            except Exception:  # the actor died starting: its next Ray call says so
                return None
            if where is not None:
                self.conn = connect(*where)
        return self.conn

    def close_env(self, number: int) -> None:
        """Close one instance in the actor, without waiting."""
        if self.conn is None:
            self.actor.close.remote([number])
            return
        try:
            self.conn.send_bytes(CLOSE + pack([number]))
        except OSError:  # a dead actor: nothing left to close
            pass

    def unlink(self) -> None:
        """Close the driver's end of the channel (the actor serves the next one)."""
        if self.conn is not None:
            close_quietly(self.conn)
            self.conn = None

    def stop(self) -> None:
        """Kill the actor (if it still runs) and remove its channel's socket folder."""
        self.unlink()
        _kill(self.pool.ray, self.actor, self.folder)

    def replace(self) -> None:
        """Kill the actor (if it still runs) and start a fresh one in its place."""
        self.stop()
        self._start()


class ActorEnv:
    """Driver-side handle of one env instance in a :class:`HostPool` actor."""

    def __init__(self, host: _Host, number: int) -> None:
        self.host = host
        self.number = number
        self.closed = False

    def close(self) -> None:
        """Forget the instance; the actor closes it (fire and forget)."""
        if self.closed:
            return
        self.closed = True
        self.host.handles -= 1
        self.host.close_env(self.number)


# Actors of the last finished rollout, kept for the next one with the same env and placement
# (a trainer collects every iteration): {key: [(actor, its channel's socket folder)]}.
# Starting an actor costs seconds.
_WARM: dict[tuple, list[tuple[Any, str | None]]] = {}
_LIVE_POOLS = [0]
# Env instance numbers, unique in this process: a late close request of an earlier rollout
# can never reach an instance of the next one on the same warm actor.
_NUMBERS = itertools.count(1)
# Socket folders of this driver's same-node actors: removed at exit, when the actors are gone.
_FOLDERS: set[str] = set()


@atexit.register
def _remove_folders() -> None:
    for folder in list(_FOLDERS):
        remove_folder(folder)


Calls = dict[Any, tuple[_Host, list[int], float | None]]
"""Actor calls in flight: ``{ref: (host, positions of its items, earliest deadline)}``; a
call sent over a channel is keyed by its :class:`~turngym.backends.ray_channel.Pending`."""

DEATH_WAIT_S = 10.0
"""How long the driver waits for Ray to confirm an actor's death when its channel closes."""

POLL_S = 0.001
"""While calls wait both on Ray and on channels, how long each Ray wait lasts (multi-node)."""


class HostPool:
    """The actors of one rollout: spawns, places handles, batches calls, replaces the dead.

    On :meth:`close` the actors are kept warm for the next rollout of the same env with the
    same placement (their env instances go idle; the next rollout's agent replaces this one's),
    unless another rollout is running at the same time, whose actors may be waiting for the
    CPUs these hold. Actors of any other env are stopped when a pool starts.
    """

    def __init__(self, ray: Any, make_env: Callable[[], gymnasium.Env], placement: Placement,
                 agent: Any = None) -> None:  # fmt: skip
        self.ray = ray
        self.placement = placement
        self._remote = ray.remote(EnvHost).options(num_cpus=placement.host_cpus, max_restarts=0)
        self._factory = ray.put(make_env)
        self._agent = ray.put(agent)
        context = ray.get_runtime_context()
        self.node = context.get_node_id()
        self._key = (context.gcs_address, context.get_job_id(), placement.host_cpus,
                     hashlib.sha256(ray.cloudpickle.dumps(make_env)).hexdigest())  # fmt: skip
        for key in [k for k in _WARM if k != self._key]:  # they would hold CPUs we need
            for actor, folder in _WARM.pop(key):
                _kill(ray, actor, folder)
        _LIVE_POOLS[0] += 1
        self.hosts = [_Host(self) for _ in range(placement.hosts)]
        self.replaced = 0

    def spawn(self) -> tuple[Any, str | None]:
        """Start one actor for this rollout (a warm one when there is one) and hand it the agent.

        Returns the actor and its channel's socket folder (a warm actor's; ``None`` for a new one).
        """
        warm = _WARM.get(self._key)
        # In the order they were kept: the i-th actor of the last rollout is the i-th again, so
        # a rollout of the same seeds sends each episode to the actor that drew its task before
        # (tasks and solved maps are cached per process).
        actor, folder = warm.pop(0) if warm else (self._remote.remote(self._factory), None)
        actor.start.remote(self._agent)  # actor calls run in order: before any reset
        return actor, folder

    def new_env(self) -> ActorEnv:
        """A handle on the least-loaded actor (its instance is built on first reset)."""
        host = min(self.hosts, key=lambda h: h.handles)
        if host.handles >= self.placement.envs_per_host:
            raise RuntimeError(f"all {self.placement.capacity} env slots of the pool are in use")
        host.handles += 1
        return ActorEnv(host, next(_NUMBERS))

    def call(self, method: str, handles: Sequence[Any], values: Sequence[Any], shared: Any = None,
             deadlines: Sequence[float | None] | None = None,
             timeout_message: str = "episode timed out") -> list[Any]:  # fmt: skip
        """Run ``method`` on every handle with its value, one call per actor; results in order.

        :meth:`submit`, then :meth:`gather` everything.
        """
        out: list[Any] = [None] * len(handles)
        for positions, results in self.gather(self.submit(method, handles, values, shared,
                                                          deadlines), timeout_message):  # fmt: skip
            for p, value in zip(positions, results, strict=True):
                out[p] = value
        return out

    def submit(self, method: str, handles: Sequence[Any], values: Sequence[Any],
               shared: Any = None,
               deadlines: Sequence[float | None] | None = None) -> Calls:  # fmt: skip
        """Start ``method`` on every handle with its value, one call per actor; don't wait.

        Each handle is an :class:`ActorEnv` (typed ``Any``: the engine's slots hold them where
        the local backend holds envs); an actor gets ``(numbers, values, shared)`` for its
        handles. ``deadlines`` (``time.monotonic()`` values, one per handle) bound the wait in
        :meth:`gather`.
        """
        calls: Calls = {}
        code = REQUEST_CODES.get(method)
        for host, positions in _by_host(handles):
            batch = ([handles[p].number for p in positions], [values[p] for p in positions], shared)
            due = [d for p in positions if (d := deadlines[p]) is not None] if deadlines else []
            conn = host.link() if code is not None else None
            if code is not None and conn is not None:
                key: Any = Pending.send(conn, code + pack(batch))
            else:
                key = getattr(host.actor, method).remote(pack(batch))
            calls[key] = (host, positions, min(due) if due else None)
        return calls

    def stream(self, method: str, handles: Sequence[Any], values: Sequence[Any]
               ) -> Iterator[list[tuple[Any, list[int], Any]]]:  # fmt: skip
        """Start the generator ``method`` like :meth:`submit` and yield its batches by tick.

        Each tick is a list of ``(host, positions, results)``, one per actor still yielding;
        an actor that died appears once as ``(host, [], EnvFailure)`` (its episodes end with
        that error) and is replaced. No deadlines: a generator runs until it is done.
        """
        streams = []
        for host, positions in _by_host(handles):
            batch = ([handles[p].number for p in positions], [values[p] for p in positions], None)
            where = {handles[p].number: p for p in positions}
            streams.append((host, where, getattr(host.actor, method).remote(pack(batch))))
        return self._ticks(streams)

    def _ticks(self, streams: list[tuple[_Host, dict[int, int], Any]]
               ) -> Iterator[list[tuple[Any, list[int], Any]]]:  # fmt: skip
        # An actor hands over several ticks at a time; the driver takes them one by one.
        playing = [(host, where, generator, deque[Any]()) for host, where, generator in streams]
        while playing:
            tick: list[tuple[Any, list[int], Any]] = []
            going = []
            for host, where, generator, ticks in playing:
                if not ticks:
                    try:
                        ticks.extend(unpack(self.ray.get(next(generator))))
                    except StopIteration:
                        continue
                    except self.ray.exceptions.RayActorError as err:
                        self._replace(host)
                        tick.append((host, [], _died(err)))
                        continue
                numbers, results = ticks.popleft()
                tick.append((host, [where[n] for n in numbers], results))
                going.append((host, where, generator, ticks))
            playing = going
            if tick:
                yield tick

    def gather(self, calls: Calls, timeout_message: str = "episode timed out"
               ) -> Iterator[tuple[list[int], list[Any]]]:  # fmt: skip
        """Yield ``(positions, results)`` per actor call of :meth:`submit`, as each finishes.

        A call still running when its earliest deadline passes is abandoned, its items get
        ``TimeoutError(timeout_message)``, and the actor (stuck in an env) is replaced.
        """
        calls = dict(calls)
        while calls:
            dues = [due for _, _, due in calls.values() if due is not None]
            wait = max(0.0, min(dues) - time.monotonic()) if dues else None
            for ref in self._ready(list(calls), wait):
                host, positions, _ = calls.pop(ref)
                yield positions, self._results(ref, host, len(positions))
            now = time.monotonic()
            for ref in [r for r, (_, _, due) in calls.items() if due is not None and due <= now]:
                host, positions, _ = calls.pop(ref)
                self._replace(host)
                yield positions, [TimeoutError(timeout_message)] * len(positions)

    def _ready(self, keys: list[Any], wait: float | None) -> list[Any]:
        """Some finished calls among ``keys`` (channel replies or Ray refs), within ``wait``."""
        pending = [k for k in keys if isinstance(k, Pending)]
        refs = [k for k in keys if not isinstance(k, Pending)]
        if pending:
            ready = wait_replies(pending, 0.0 if refs else wait)
            if ready or not refs:
                return ready
            wait = POLL_S if wait is None else min(wait, POLL_S)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=wait)
        return list(ready)

    def _results(self, ref: Any, host: _Host, n: int) -> list[Any]:
        try:
            packed = ref.reply() if isinstance(ref, Pending) else self.ray.get(ref)
        except (EOFError, OSError) as err:  # the channel closed: the actor's process is gone
            died = self._why_dead(host, err)
            self._replace(host)
            return [died] * n
        except self.ray.exceptions.RayActorError as err:
            self._replace(host)
            return [_died(err)] * n
        if packed[:1] == REPLY_ERROR:  # what a Ray call would raise as a task error
            raise RuntimeError(f"env actor refused a batch: {packed[1:].decode(errors='replace')}")
        values: list[Any] = unpack(packed)
        return values

    def _why_dead(self, host: _Host, err: BaseException) -> EnvFailure:
        """Ray's account of an actor whose channel closed: the words a failed Ray call gives.

        Episodes then record the same error whichever way the driver talked to the actor.
        """
        try:
            self.ray.get(host.actor.__ray_ready__.remote(), timeout=DEATH_WAIT_S)
        except self.ray.exceptions.RayActorError as ray_err:
            return _died(ray_err)
        except Exception:  # Ray has not noticed yet (or the actor lives): say what we saw
            pass
        return EnvFailure(f"{type(err).__name__}: env actor died (its channel closed)")

    def _replace(self, host: _Host) -> None:
        host.replace()
        self.replaced += 1

    def close(self) -> None:
        """Keep the actors warm for the next rollout, or stop them (see the class docstring)."""
        _LIVE_POOLS[0] -= 1
        keep = _LIVE_POOLS[0] == 0
        for host in self.hosts:
            if keep:
                host.unlink()
                host.actor.start.remote(None)  # idle the envs, drop the agent copy
                _WARM.setdefault(self._key, []).append((host.actor, host.folder))
            else:
                host.stop()


def _by_host(handles: Sequence[Any]) -> list[tuple[_Host, list[int]]]:
    """The positions of ``handles`` grouped by the actor slot hosting them."""
    groups: dict[_Host, list[int]] = {}  # a hot loop: one look-up per handle per tick
    for position, handle in enumerate(handles):
        positions = groups.get(handle.host)
        if positions is None:
            groups[handle.host] = [position]
        else:
            positions.append(position)
    return list(groups.items())


def _died(err: BaseException) -> EnvFailure:
    lines = _ANSI.sub("", str(err)).strip().splitlines()
    reason = f" ({lines[0].strip()})" if lines else ""
    return EnvFailure(f"{type(err).__name__}: env actor died{reason}")


def release_warm() -> None:
    """Stop every actor kept warm between rollouts (frees their CPUs on the cluster)."""
    from turngym.backends.ray_cluster import require_ray

    ray = require_ray()
    for key in list(_WARM):
        for actor, folder in _WARM.pop(key):
            _kill(ray, actor, folder)


def _kill(ray: Any, actor: Any, folder: str | None = None) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already dead, or its cluster is gone: nothing to stop
        pass
    if folder is not None:  # a killed process cannot remove its socket folder itself
        remove_folder(folder)
        _FOLDERS.discard(folder)
