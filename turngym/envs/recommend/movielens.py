"""Build SeqRec tasks from MovieLens-format rating files the user already has.

Nothing is downloaded or shipped (MovieLens is non-commercial and ml-1m may not be
redistributed; docs/environments.md#seqrec). Supported layouts, detected from the folder:

* ml-latest / ml-latest-small / ml-25m: ``ratings.csv`` (``userId,movieId,rating,timestamp``)
  and ``movies.csv`` (``movieId,title,genres`` with ``|``-separated genres, quoted titles).
* ml-1m: ``ratings.dat`` and ``movies.dat`` (``::``-separated, same columns).
* ml-100k: ``u.data`` (tab-separated ``user item rating timestamp``) and ``u.item``
  (``|``-separated, latin-1; 19 genre flags from column 6).

A task per user (:func:`movielens_tasks`): the user's ratings in time order (ties by movie id);
the last ``holdout`` share of them is the *future*; the history is the last ``history_len``
items before it (oldest first); the relevant set is the future items rated ``>= min_rating``
(best rated first, then earliest); the pool is the relevant items (at most ``max_relevant``)
plus movies the user never rated, drawn uniformly with the user's own seeded Generator, up to
``pool_size``, sorted by title. Users without a relevant future item or with a history shorter
than ``min_history`` are skipped.

Example:
    >>> from turngym.envs.recommend.movielens import movielens_tasks, write_tasks
    >>> tasks = movielens_tasks("~/data/ml-latest-small")  # doctest: +SKIP
    >>> write_tasks(tasks, "ml_tasks.jsonl")  # doctest: +SKIP
    >>> env = turngym.make("turngym/SeqRec-v0", tasks_file="ml_tasks.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MovieLens", "load_movielens", "movielens_tasks", "write_tasks"]

_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MovieLens:
    """Parsed ratings and movies.

    Attributes:
        ratings: ``(user, movie, rating, timestamp)`` rows.
        movies: ``movie id -> (title, genres)``.
    """

    ratings: tuple[tuple[int, int, float, int], ...]
    movies: dict[int, tuple[str, tuple[str, ...]]]


def _genres(text: str) -> tuple[str, ...]:
    return tuple(g for g in text.split("|") if g and g != "(no genres listed)")


def _read_csv(folder: Path) -> MovieLens:
    with open(folder / "movies.csv", newline="", encoding="utf-8") as handle:
        movies = {int(r["movieId"]): (r["title"].strip(), _genres(r["genres"]))
                  for r in csv.DictReader(handle)}  # fmt: skip
    with open(folder / "ratings.csv", newline="", encoding="utf-8") as handle:
        ratings = tuple(
            (int(r["userId"]), int(r["movieId"]), float(r["rating"]), int(r["timestamp"]))
            for r in csv.DictReader(handle)
        )
    return MovieLens(ratings, movies)


def _read_dat(folder: Path) -> MovieLens:
    movies = {}
    for line in (folder / "movies.dat").read_text(encoding="latin-1").splitlines():
        if line.strip():
            movie, title, genres = line.split("::")
            movies[int(movie)] = (title.strip(), _genres(genres))
    ratings = []
    for line in (folder / "ratings.dat").read_text(encoding="latin-1").splitlines():
        if line.strip():
            user, movie, rating, stamp = line.split("::")
            ratings.append((int(user), int(movie), float(rating), int(stamp)))
    return MovieLens(tuple(ratings), movies)


def _read_100k(folder: Path) -> MovieLens:
    movies = {}
    for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
        if line.strip():
            cells = line.split("|")
            flags = cells[5:24]
            genres = tuple(g for g, f in zip(_ML100K_GENRES, flags, strict=False) if f == "1")
            movies[int(cells[0])] = (cells[1].strip(), tuple(g for g in genres if g != "unknown"))
    ratings = []
    for line in (folder / "u.data").read_text(encoding="latin-1").splitlines():
        if line.strip():
            user, movie, rating, stamp = line.split()
            ratings.append((int(user), int(movie), float(rating), int(stamp)))
    return MovieLens(tuple(ratings), movies)


def load_movielens(folder: str | Path) -> MovieLens:
    """Read a MovieLens folder in any of the supported layouts (see the module docstring).

    Raises:
        FileNotFoundError: The folder has none of the supported file pairs.
        ValueError: A row is malformed (with the file layout named).
    """
    path = Path(folder).expanduser()
    layouts = (("ratings.csv", "movies.csv", _read_csv), ("ratings.dat", "movies.dat", _read_dat),
               ("u.data", "u.item", _read_100k))  # fmt: skip
    for ratings, movies, reader in layouts:
        if (path / ratings).is_file() and (path / movies).is_file():
            try:
                return reader(path)
            except (KeyError, ValueError, IndexError) as err:
                raise ValueError(f"{path}: malformed {ratings}/{movies} ({err!r}).") from err
    raise FileNotFoundError(
        f"{path} has no MovieLens files: expected ratings.csv + movies.csv, "
        "ratings.dat + movies.dat, or u.data + u.item."
    )


def _user_task(
    rows: list[tuple[int, float, int]],
    data: MovieLens,
    rng: np.random.Generator,
    options: dict[str, Any],
) -> dict[str, Any] | None:
    """One user's task from their ``(movie, rating, timestamp)`` rows, or ``None``."""
    rows = sorted((r for r in rows if r[0] in data.movies), key=lambda r: (r[2], r[0]))
    n_future = max(1, round(len(rows) * options["holdout"]))
    past, future = rows[:-n_future], rows[-n_future:]
    history = past[-options["history_len"] :]
    if len(history) < options["min_history"]:
        return None
    good = sorted((r for r in future if r[1] >= options["min_rating"]), key=lambda r: -r[1])
    relevant = [r[0] for r in good[: options["max_relevant"]]]
    if not relevant:
        return None
    rated = {r[0] for r in rows}
    unrated = np.array(sorted(m for m in data.movies if m not in rated))
    n_neg = min(len(unrated), max(0, options["pool_size"] - len(relevant)))
    negatives = rng.choice(unrated, size=n_neg, replace=False).tolist() if n_neg else []
    pool = sorted({*relevant, *negatives}, key=lambda m: (data.movies[m][0], m))
    position = {m: p for p, m in enumerate(pool)}

    def item(movie: int) -> dict[str, Any]:
        title, genres = data.movies[movie]
        return {"title": title, "genres": list(genres)}

    return {
        "history": [item(r[0]) for r in history],
        "pool": [item(m) for m in pool],
        "relevant": [position[m] for m in relevant],
    }


def movielens_tasks(
    source: str | Path | MovieLens,
    *,
    history_len: int = 10,
    min_history: int = 3,
    holdout: float = 0.2,
    min_rating: float = 4.0,
    max_relevant: int = 10,
    pool_size: int = 50,
    seed: int = 0,
    max_users: int | None = None,
) -> list[dict[str, Any]]:
    """Build one SeqRec task per eligible user (see the module docstring for the rules).

    Args:
        source: A MovieLens folder or an already loaded :class:`MovieLens`.
        history_len: Most recent past items shown.
        min_history: Skip users with fewer past items.
        holdout: Share of each user's ratings (at least one) that is the future.
        min_rating: A future item is relevant if rated at least this.
        max_relevant: Keep at most this many relevant items.
        pool_size: Candidates per task (relevant items plus sampled unrated movies).
        seed: Seeds the negative sampling (with the user id, so users are independent).
        max_users: Stop after this many tasks (users in id order).

    Returns:
        Task dicts for :class:`~turngym.envs.recommend.seqrec.SeqRec`.
    """
    data = source if isinstance(source, MovieLens) else load_movielens(source)
    by_user: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
    for user, movie, rating, stamp in data.ratings:
        by_user[user].append((movie, rating, stamp))
    options = {
        "history_len": history_len,
        "min_history": min_history,
        "holdout": holdout,
        "min_rating": min_rating,
        "max_relevant": max_relevant,
        "pool_size": pool_size,
    }
    tasks = []
    for user in sorted(by_user):
        rng = np.random.default_rng(np.random.SeedSequence([seed, user]))
        task = _user_task(by_user[user], data, rng, options)
        if task is not None:
            tasks.append(task)
            if max_users is not None and len(tasks) >= max_users:
                break
    return tasks


def write_tasks(tasks: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write tasks as JSONL for ``turngym.make(..., tasks_file=path)``; return the path."""
    out = Path(path)
    out.write_text("".join(json.dumps(t, sort_keys=True) + "\n" for t in tasks), encoding="utf-8")
    return out
