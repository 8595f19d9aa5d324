"""The per-process cache of drawn tasks, and the split tables that serve fresh draws.

:func:`cached_draw` is the envs' reset path: a task drawn for ``(env class, split, seed,
difficulty)`` is kept (the ``G`` envs of a group, and every seat of a game, reset to the same
task), and a fresh draw of an integer-draw generator goes through its
:class:`~turngym._split_table.SplitTable` once that is warm. Both give exactly the task
:func:`turngym.tasks.draw_task` draws.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from turngym._seed_sequence import uint32_words
from turngym._split_table import Recorder, SplitTable
from turngym.tasks import (
    _CANONICAL,
    MAX_ATTEMPTS,
    SPLITS,
    _candidate_rngs,
    _draw,
    _encode_candidate,
    _split_of_fingerprint,
    _split_stream,
)

__all__ = ["cached_task", "cached_draw", "clear_task_cache"]


# Drawn tasks by (env class, split, seed, difficulty JSON). Sound because generate_task must
# depend on nothing but its rng and difficulty (see its docstring).
_TASK_CACHE: OrderedDict[tuple[type, str, int, str], _Drawn] = OrderedDict()
_TASK_CACHE_SIZE = 4096
_TASK_CACHE_LOCK = threading.Lock()


class _Drawn:
    """A cached task: its canonical JSON, its fingerprint, and how to hand out a fresh copy.

    A copy must equal ``json.loads(text)`` (keys sorted, tuples as lists). Most drawn tasks
    are flat (string keys, JSON scalars): those are kept in that form and copied with
    ``dict`` (~0.2 us against ~3 us for parsing); anything else is parsed again.
    """

    __slots__ = ("text", "fingerprint", "_flat")

    def __init__(self, text: str, fingerprint: str, task: Any) -> None:
        self.text = text
        self.fingerprint = fingerprint
        self._flat = dict(sorted(task.items())) if _is_flat(task) else None

    def copy(self) -> dict[str, Any]:
        if self._flat is not None:
            return dict(self._flat)
        fresh: dict[str, Any] = json.loads(self.text)
        return fresh


_SCALARS = frozenset({str, int, bool, type(None)})


def _is_flat(task: Any) -> bool:
    """A dict of string keys and values whose JSON round trip gives them back unchanged."""
    return type(task) is dict and all(
        type(key) is str
        and (type(value) in _SCALARS or (type(value) is float and math.isfinite(value)))
        for key, value in task.items()
    )


def clear_task_cache() -> None:
    """Forget every cached task draw and split table (the checker does, to test generators)."""
    _TASK_CACHE.clear()
    _TABLES.clear()


def _remember(key: tuple[type, str, int, str], drawn: _Drawn) -> None:
    with _TASK_CACHE_LOCK:  # envs stepped from worker threads share the cache
        _TASK_CACHE[key] = drawn
        if len(_TASK_CACHE) > _TASK_CACHE_SIZE:
            _TASK_CACHE.popitem(last=False)  # the oldest (O(1), unlike a plain dict's front)


def cached_task(
    key: tuple[type, str, int, str], draw: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The task ``draw()`` returns for ``key`` = (env class, split, seed, difficulty JSON).

    Each key is drawn once per process (the last 4096 are kept) and every call returns a
    fresh copy (as ``json.loads`` of its canonical JSON), which the env may keep and change.
    Sound because a task may depend on nothing but its key (see
    :meth:`turngym.core.TextEnv.generate_task`).
    """
    drawn = _TASK_CACHE.get(key)
    if drawn is None:
        task = draw()
        text = _CANONICAL.encode(task)
        drawn = _Drawn(text, hashlib.sha256(text.encode()).hexdigest(), task)
        _remember(key, drawn)
    return drawn.copy()


def cached_draw(
    key: tuple[type, str, int, str],
    generate: Callable[[np.random.Generator], dict[str, Any]],
    family: str,
    lazy: bool = False,
) -> tuple[dict[str, Any], str]:
    """:func:`cached_task` of :func:`draw_task` for ``key``, and the task's fingerprint.

    The envs' reset path: ``key`` = (env class, split, seed, difficulty JSON), ``generate``
    as for :func:`draw_task`. The fingerprint gives the task id without hashing it again.
    ``lazy``: ``generate`` gets a :class:`~turngym._seed_sequence.LazyGenerator` (the same
    numbers; for generators that mostly call ``rng.integers(n)``).
    """
    drawn = _TASK_CACHE.get(key)
    if drawn is None:
        drawn = _table_draw(key, generate, family) if lazy else None
        if drawn is None:
            drawn = _Drawn(*_draw(generate, family, key[1], key[2], lazy=lazy))
        _remember(key, drawn)
    return drawn.copy(), drawn.fingerprint


# Split tables of integer-draw generators by (env class, difficulty JSON, family): see
# turngym._split_table. At most 64 (a table holds up to MAX_CELLS drawn tasks).
_TABLES: dict[tuple[type, str, str], SplitTable] = {}
_TABLE_LOCK = threading.Lock()


def _table_draw(key: tuple[type, str, int, str], generate: Callable[[Any], dict[str, Any]],
                family: str) -> _Drawn | None:  # fmt: skip
    """The draw of ``key`` through its split table, or ``None``: take the Python path."""
    cls, split, seed, difficulty_json = key
    table = _TABLES.get((cls, difficulty_json, family))
    if table is None:
        if len(_TABLES) >= 64:
            return None
        table = _TABLES.setdefault((cls, difficulty_json, family), SplitTable())
    if not 0 <= seed < 2**32 or not table.wanted():
        return None
    want, attempt = SPLITS.index(split), 0
    head = _head_words(family, want)
    if head is None:  # a family word below 2**32 (1 in 4 billion): the Python path
        return None
    with _TABLE_LOCK:  # envs stepped from worker threads share the tables
        while not table.off:
            expected = None
            if table.bounds is not None:
                attempt, found = table.search(head, seed, want, attempt, MAX_ATTEMPTS)
                if attempt >= MAX_ATTEMPTS:
                    return None  # the Python path says why
                if found >= 0:
                    drawn: _Drawn = table.drawn[found]
                    return drawn
                expected = -1 - found
            learned = _learn(table, generate, family, split, seed, attempt, expected)
            if learned is not None and learned[1] == want:
                drawn = table.drawn[learned[0]]
                return drawn
            attempt += 1
    return None


@functools.lru_cache(maxsize=256)
def _head_words(family: str, split_index: int) -> tuple[int, int, int] | None:
    """The three entropy words of a family and split, or ``None`` if they are not three."""
    word, index, _ = _split_stream(family, split_index)
    words = uint32_words([word, index])
    return (words[0], words[1], words[2]) if len(words) == 3 else None


def _learn(table: SplitTable, generate: Callable[[Any], dict[str, Any]], family: str,
           split: str, seed: int, attempt: int, expected: int | None) -> tuple[int, int] | None:
    """Draw one candidate in Python and store it: ``(index, split code)``, or ``None``.

    ``None`` turns the table off: the generator used its rng otherwise than the table's
    bounds, or the compiled draws (``expected`` index) were not NumPy's.
    """
    rng = Recorder(next(_candidate_rngs(family, split, seed, attempt, lazy=True)))
    task = generate(rng)
    bounds = [n for n, _ in rng.calls]
    if table.bounds is None and not rng.other:
        table.learn_bounds(bounds)
    if rng.other or table.off or bounds != table.bounds.tolist():  # type: ignore[union-attr]
        table.off = True
        return None
    index = table.index_of([value for _, value in rng.calls])
    if expected is not None and index != expected:
        table.off = True
        return None
    text = _encode_candidate(task)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()
    code = SPLITS.index(_split_of_fingerprint(fingerprint))
    table.remember(index, code, _Drawn(text, fingerprint, task))
    return index, code
