"""Tasks, splits and difficulty: how a (split, seed) pair becomes one concrete task.

A *task* is a JSON-serialisable dict that fully describes a puzzle instance (the map, the
boxes, the question). Three rules make benchmark numbers trustworthy:

* **Deterministic.** The task for ``(env family, split, seed, difficulty)`` is drawn from a
  ``numpy`` generator seeded from a stable hash of those values, never from a global RNG, so it
  is the same on every machine.
* **Disjoint splits.** A task's split is a function of its *content*: the SHA-256 of its
  canonical JSON falls into the train, validation or test bucket. A generator keeps drawing
  until it lands in the requested bucket, so the same puzzle can never appear in two splits,
  even when two seeds happen to generate it.
* **Stable ids.** ``task_id`` is ``"<family>-<first 12 hex digits of that hash>"``: equal
  tasks give equal ids on any machine and in any version of the env id.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SPLITS",
    "SPLIT_SHARES",
    "canonical_json",
    "task_fingerprint",
    "task_id_of",
    "split_of",
    "task_rng",
    "draw_task",
    "resolve_difficulty",
    "load_tasks_file",
    "read_json_objects",
    "cached_task",
    "clear_task_cache",
]

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""The three splits, in order. Train on ``train``, tune on ``validation``, report ``test``."""

SPLIT_SHARES: Mapping[str, float] = {"train": 0.6, "validation": 0.2, "test": 0.2}
"""Share of the hash space that belongs to each split (sums to 1)."""

# Buckets on a 0..9999 scale derived from SPLIT_SHARES: train [0, 6000), validation
# [6000, 8000), test [8000, 10000).
_BUCKETS: dict[str, tuple[int, int]] = {}
_low = 0
for _name in SPLITS:
    _high = _low + round(SPLIT_SHARES[_name] * 10_000)
    _BUCKETS[_name] = (_low, _high)
    _low = _high


def canonical_json(value: Any) -> str:
    """Serialise ``value`` to JSON with sorted keys and no whitespace (a stable fingerprint)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def task_fingerprint(task: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of a task's canonical JSON."""
    return hashlib.sha256(canonical_json(task).encode()).hexdigest()


def task_id_of(family: str, task: Mapping[str, Any]) -> str:
    """Return the stable id of a task, e.g. ``"sokoban-3fa2c9d1e0b4"``."""
    return f"{family}-{task_fingerprint(task)[:12]}"


def split_of(task: Mapping[str, Any]) -> str:
    """Return the split a task belongs to, from the hash of its content alone."""
    bucket = int(task_fingerprint(task)[:8], 16) % 10_000
    for name, (low, high) in _BUCKETS.items():
        if low <= bucket < high:
            return name
    raise AssertionError("split buckets do not cover 0..9999")  # unreachable


def _check_split(split: str) -> str:
    if split not in SPLITS:
        hint = difflib.get_close_matches(str(split), SPLITS, n=1)
        extra = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"Unknown split {split!r}; expected one of {list(SPLITS)}.{extra}")
    return split


@functools.lru_cache(maxsize=256)
def _family_word(family: str) -> int:
    return int(hashlib.sha256(family.encode()).hexdigest()[:16], 16)


def task_rng(family: str, split: str, seed: int, attempt: int = 0) -> np.random.Generator:
    """Return the generator that draws candidate ``attempt`` for ``(family, split, seed)``.

    The entropy comes from SHA-256 of the family name, never from Python's salted ``hash``.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    entropy = [_family_word(family), SPLITS.index(_check_split(split)), int(seed), int(attempt)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def draw_task(
    generate: Callable[[np.random.Generator], dict[str, Any]],
    *,
    family: str,
    split: str,
    seed: int,
    max_attempts: int = 2_000,
) -> dict[str, Any]:
    """Draw the task of ``(family, split, seed)``, retrying until it lands in ``split``.

    Args:
        generate: Builds one candidate task from a generator (all randomness from it).
        family: Env family name, part of the RNG stream and the task id.
        split: The requested split.
        seed: Selects the task within the split.
        max_attempts: Give up after this many candidates (a difficulty with almost no
            distinct tasks cannot fill three disjoint splits).

    Returns:
        The task dict.

    Raises:
        RuntimeError: No candidate landed in ``split`` within ``max_attempts``.
    """
    _check_split(split)
    for attempt in range(max_attempts):
        task = generate(task_rng(family, split, seed, attempt))
        if split_of(task) == split:
            return task
    raise RuntimeError(
        f"{family}: no task of split {split!r} found for seed {seed} in {max_attempts} "
        "attempts. The difficulty settings probably admit too few distinct tasks; "
        "raise the size or the number of objects."
    )


def resolve_difficulty(
    defaults: Mapping[str, Any],
    levels: Mapping[int, Mapping[str, Any]],
    *,
    level: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge difficulty knobs: ``defaults`` < ``base`` < ``levels[level]`` < ``overrides``.

    Raises:
        ValueError: An unknown level, or a knob the env does not have (with a suggestion).
    """
    merged = dict(defaults)
    merged.update(base or {})
    if level is not None:
        if level not in levels:
            raise ValueError(f"Unknown level {level!r}; this env has levels {sorted(levels)}.")
        merged.update(levels[level])
    merged.update(overrides or {})
    unknown = sorted(set(merged) - set(defaults))
    if unknown:
        hints = [difflib.get_close_matches(k, list(defaults), n=1) for k in unknown]
        said = ", ".join(
            f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
            for k, h in zip(unknown, hints, strict=True)
        )
        raise ValueError(f"Unknown difficulty knob(s) {said}; known knobs: {sorted(defaults)}.")
    return merged


def read_json_objects(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a user's JSONL file.

    Raises:
        ValueError: A line is not valid JSON or not an object (with its line number).
    """
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg}).") from err
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}.")
        rows.append((number, row))
    return rows


def load_tasks_file(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Load user tasks from JSONL, grouped by split.

    Each line is either a task dict, or ``{"task": {...}, "split": "test"}``. A line without a
    split is assigned by :func:`split_of`, so user files keep the disjointness guarantee.

    Raises:
        ValueError: A line is not valid JSON or names an unknown split (with its line number).
    """
    by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for _, row in read_json_objects(path):
        task = row["task"] if "task" in row else row
        split = _check_split(row.get("split", split_of(task)))
        by_split[split].append(task)
    return by_split


# Drawn tasks by (env class, split, seed, difficulty JSON) -> task JSON. Sound because
# generate_task must depend on nothing but its rng and difficulty (see its docstring).
_TASK_CACHE: dict[tuple[type, str, int, str], str] = {}
_TASK_CACHE_SIZE = 4096
_TASK_CACHE_LOCK = threading.Lock()


def clear_task_cache() -> None:
    """Forget every cached task draw (the checker does, to test generators themselves)."""
    _TASK_CACHE.clear()


def cached_task(
    key: tuple[type, str, int, str], draw: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The task ``draw()`` returns for ``key`` = (env class, split, seed, difficulty JSON).

    Each key is drawn once per process (the last 4096 are kept) and every call returns a
    fresh copy, which the env may keep and change. Sound because a task may depend on nothing
    but its key (see :meth:`turngym.core.TextEnv.generate_task`).
    """
    cached = _TASK_CACHE.get(key)
    if cached is None:
        cached = canonical_json(draw())
        with _TASK_CACHE_LOCK:  # envs stepped from worker threads share the cache
            _TASK_CACHE[key] = cached
            if len(_TASK_CACHE) > _TASK_CACHE_SIZE:
                del _TASK_CACHE[next(iter(_TASK_CACHE))]  # oldest first (dicts keep order)
    fresh: dict[str, Any] = json.loads(cached)
    return fresh
