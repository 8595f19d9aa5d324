"""A bounded LRU cache whose concurrent misses of one key compute it once.

:func:`functools.lru_cache` is thread-safe but not single-flight: when many threads miss the
same key at once, each computes the value, and all of them are held in memory until the
slowest finishes. For the data an env builds from its knobs (a corpus, a catalogue, a search
index: hundreds of MB each) that multiplies memory by the number of threads asking at once;
a server runs env builds and resets in a pool of worker threads, so one burst of resets on an
uncached preset would build it once per thread. :func:`shared_lru` builds each value once:
the first thread to miss computes it, the others wait for it and share the result (a failed
build is not cached; the next caller tries again).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, ParamSpec, TypeVar

__all__ = ["SharedLRU", "shared_lru"]

P = ParamSpec("P")
T = TypeVar("T")


class SharedLRU(Generic[P, T]):
    """``fn`` memoised: at most ``maxsize`` values (least recently used forgotten first).

    Keys are the call's arguments as given (``f(1)`` and ``f(x=1)`` are different keys, as
    with :func:`functools.lru_cache`); they must be hashable.
    """

    def __init__(self, fn: Callable[P, T], maxsize: int) -> None:
        """Wrap ``fn``."""
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._fn, self.maxsize = fn, maxsize
        self._values: OrderedDict[Hashable, T] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """The cached value for these arguments, computed once however many threads ask."""
        key: Hashable = (args, tuple(sorted(kwargs.items()))) if kwargs else args
        while True:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
                    return self._values[key]
                building = self._building.get(key)
                mine = building is None
                if building is None:
                    building = self._building[key] = threading.Lock()
                    building.acquire()
            if mine:
                return self._build(key, building, args, kwargs)
            with building:  # another thread builds it: wait, then read it (or build, if it failed)
                pass

    def _build(self, key: Hashable, building: threading.Lock, args: Any, kwargs: Any) -> T:
        try:
            value = self._fn(*args, **kwargs)
            with self._lock:
                self._values[key] = value
                while len(self._values) > self.maxsize:
                    self._values.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._building[key]
            building.release()

    def cache_clear(self) -> None:
        """Forget every value (calls in flight still finish and cache theirs)."""
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        """Values kept now."""
        return len(self._values)


def shared_lru(maxsize: int) -> Callable[[Callable[P, T]], SharedLRU[P, T]]:
    """Decorator form of :class:`SharedLRU`.

    Example:
        >>> calls = []
        >>> @shared_lru(maxsize=2)
        ... def square(x: int) -> int:
        ...     calls.append(x)
        ...     return x * x
        >>> square(3), square(3), calls
        (9, 9, [3])
    """

    def wrap(fn: Callable[P, T]) -> SharedLRU[P, T]:
        return SharedLRU(fn, maxsize)

    return wrap
