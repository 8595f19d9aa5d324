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
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from turngym._seed_sequence import LazyGenerator, Stream, generator, uint32_words

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
    "check_int_knobs",
    "MAX_ATTEMPTS",
    "load_tasks_file",
    "read_json_objects",
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


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True) builds on
# every call; one encoder serves every call (encode keeps no state between calls).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


MAX_ATTEMPTS = 2_000
"""Candidates a draw tries before giving up (a difficulty with too few distinct tasks)."""


def _reject(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _reusable_encoder() -> Callable[[Any, int], Any] | None:
    """The C encoder behind ``_CANONICAL.encode``, built once, or ``None`` where unavailable.

    ``JSONEncoder.encode`` builds this object (and a closure) on every call; built once, it
    encodes a small task in a third of the time. It skips the circular-reference check, so
    the draw falls back to ``_CANONICAL`` on any error, which then raises the usual one. Its
    constructor is private and has changed across Python versions: any mismatch, including
    a different text for a probe, means ``None``.
    """
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore

        encoder = c_make_encoder(None, _reject, encode_basestring_ascii, None, ":", ",",
                                 True, False, True)  # fmt: skip
        probe = {"b": [1, 2.5, None, True, "é\n", float("nan")], "a": {"x": -0.0, "": []}}
        if "".join(encoder(probe, 0)) != _CANONICAL.encode(probe):
            return None
        return encoder
    except Exception:  # an interpreter without the C module, or another signature
        return None


_FAST_ENCODER = _reusable_encoder()


def _encode_candidate(task: Any) -> str:
    """``canonical_json(task)`` for a freshly generated task (the draw's hot path)."""
    if _FAST_ENCODER is not None:
        try:
            return "".join(_FAST_ENCODER(task, 0))
        except Exception:  # the checked encoder below raises the usual error
            pass
    return _CANONICAL.encode(task)


def canonical_json(value: Any) -> str:
    """Serialise ``value`` to JSON with sorted keys and no whitespace (a stable fingerprint)."""
    return _CANONICAL.encode(value)


def task_fingerprint(task: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of a task's canonical JSON."""
    return hashlib.sha256(_CANONICAL.encode(task).encode()).hexdigest()


def task_id_of(family: str, task: Mapping[str, Any]) -> str:
    """Return the stable id of a task, e.g. ``"sokoban-3fa2c9d1e0b4"``."""
    return f"{family}-{task_fingerprint(task)[:12]}"


def split_of(task: Mapping[str, Any]) -> str:
    """Return the split a task belongs to, from the hash of its content alone."""
    return _split_of_fingerprint(task_fingerprint(task))


def _split_of_fingerprint(fingerprint: str) -> str:
    bucket = int(fingerprint[:8], 16) % 10_000
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

    It is ``np.random.default_rng(np.random.SeedSequence([w, split index, seed, attempt]))``
    with ``w`` the first 64 bits of SHA-256 of the family name (never Python's salted
    ``hash``), built without SeedSequence's overhead (:mod:`turngym._seed_sequence`).
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    _check_split(split)
    return next(_candidate_rngs(family, split, int(seed), int(attempt)))


def _task_rng(entropy: list[int]) -> np.random.Generator:
    """The generator of ``SeedSequence(entropy)``, ``entropy`` = [family word, split, ...]."""
    words = uint32_words(entropy)
    return generator(entropy, _stream(tuple(words[:3])).state(words[3:]))


def _candidate_rngs(
    family: str, split: str, seed: int, first: int = 0, lazy: bool = False
) -> Iterator[Any]:
    """``task_rng(family, split, seed, attempt)`` for attempt ``first``, ``first + 1``, ...

    With ``lazy``, :class:`~turngym._seed_sequence.LazyGenerator` s of the same numbers.
    """
    word, index, stream = _split_stream(family, SPLITS.index(split))
    build = LazyGenerator if lazy else generator
    pool = stream.pool_of(seed) if stream is not None and 0 <= seed < 2**32 else None
    for attempt in itertools.count(first):
        entropy = [word, index, seed, attempt]
        if pool is not None and 0 <= attempt < 2**32:
            yield build(entropy, Stream.finish(pool, attempt))
        else:
            yield _task_rng(entropy)


@functools.lru_cache(maxsize=256)
def _split_stream(family: str, index: int) -> tuple[int, int, Stream | None]:
    """The family word, the split index, and their stream when they make three 32-bit words.

    Three words is the common case (a family word of two words, below 2**32 only by a 1 in
    4 billion chance); the seed and the attempt then take one word each up to 2**32.
    """
    word = _family_word(family)
    words = uint32_words([word, index])
    return word, index, _stream(tuple(words)) if len(words) == 3 else None


@functools.lru_cache(maxsize=256)
def _stream(head: tuple[int, ...]) -> Stream:
    """The precomputed pooling of the first three entropy words (family word and split)."""
    return Stream(head)


def draw_task(
    generate: Callable[[np.random.Generator], dict[str, Any]],
    *,
    family: str,
    split: str,
    seed: int,
    max_attempts: int = MAX_ATTEMPTS,
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
    task: dict[str, Any] = _draw(generate, family, split, seed, max_attempts)[2]
    return task


def _draw(
    generate: Callable[[np.random.Generator], dict[str, Any]],
    family: str,
    split: str,
    seed: int,
    max_attempts: int = MAX_ATTEMPTS,
    lazy: bool = False,
) -> tuple[str, str, dict[str, Any]]:
    """:func:`draw_task`'s canonical JSON and fingerprint, and the task."""
    _check_split(split)
    if seed < 0 and max_attempts > 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    rngs = _candidate_rngs(family, split, int(seed), lazy=lazy)
    candidates = itertools.islice(rngs, max(0, max_attempts))
    for rng in candidates:
        task = generate(rng)
        text = _encode_candidate(task)
        fingerprint = hashlib.sha256(text.encode()).hexdigest()
        if _split_of_fingerprint(fingerprint) == split:
            return text, fingerprint, task
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


def check_int_knobs(
    env_name: str, difficulty: Mapping[str, Any], ranges: Mapping[str, tuple[Any, ...]]
) -> None:
    """Raise ``ValueError`` for the first integer knob outside its inclusive range.

    Args:
        env_name: Named in the message.
        difficulty: The knobs to check.
        ranges: ``knob -> (low, high)`` or ``(low, high, meaning)``.

    Example:
        >>> check_int_knobs("Demo", {"size": 99}, {"size": (3, 10, "board side")})
        Traceback (most recent call last):
        ...
        ValueError: Demo: size=99 is invalid; use an integer from 3 to 10 (board side).
    """
    for name, (low, high, *meaning) in ranges.items():
        value = difficulty[name]
        # bool is an Integral too, but True as a board size is a bug, not a 1.
        if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
            hint = f" ({meaning[0]})" if meaning else ""
            raise ValueError(f"{env_name}: {name}={value!r} is invalid; use an integer from "
                             f"{low} to {high}{hint}.")  # fmt: skip


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
