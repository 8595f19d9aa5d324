"""The leaderboard store: finished runs' results in SQLite (default) or PostgreSQL.

Rows come only from results files (``results.json`` and ``episodes.jsonl``;
docs/design.md#leaderboard-and-ci-gate), and every row is recomputed from the episodes and
checked against ``results.json`` (:func:`~turngym.leaderboard.validate.check_submission`). A
submission is refused, and nothing is written, when a field has the wrong type or a value
outside its metric's range, a row does not match its episodes, its results lack provenance or
episodes, its name is taken, the same run is already on the board, or an env on the board
changed under the same id (another version or task fingerprint).

One SQLAlchemy Core code path serves both databases. Concurrent writers are safe: SQLite
writes take the database lock at the start of the transaction (``BEGIN IMMEDIATE``) and wait for
it (busy timeout); on PostgreSQL, unique constraints settle races between transactions.

The tables and the engine are set up in :mod:`turngym.leaderboard.schema`; the per-episode
records and the agent matching shared with the gate come from :mod:`turngym.leaderboard.episodes`.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from turngym.evals.results import (
    EPISODE_METRICS,
    SEAT_METRICS,
    ResultsError,
    RunResults,
    load_results,
    seat_label,
)
from turngym.evals.stats import MetricSummary
from turngym.leaderboard import views
from turngym.leaderboard.episodes import EpisodeRecord, env_label, read_run_episodes
from turngym.leaderboard.schema import add_missing_columns, make_engine, missing_columns
from turngym.leaderboard.schema import entries as _entries
from turngym.leaderboard.schema import envs as _envs
from turngym.leaderboard.schema import episode_metrics as _episodes
from turngym.leaderboard.schema import metadata as _meta
from turngym.leaderboard.schema import submissions as _submissions
from turngym.leaderboard.validate import SubmissionInvalid, check_submission

__all__ = ["LeaderboardError", "SubmissionError", "Submission", "LeaderboardStore", "database_url"]


class LeaderboardError(ValueError):
    """The leaderboard cannot be opened, or a name on it does not exist."""


class SubmissionError(LeaderboardError):
    """A run was refused by the leaderboard (nothing was written)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A run accepted by the leaderboard.

    Attributes:
        id: Database id.
        name: Unique name on the board.
        kind: ``"eval"`` or ``"bench"``.
        submitted: ISO 8601 UTC time of submission.
        entries: Number of (env entry, agent) rows.
        episodes: Number of per-episode metric vectors stored (0 without ``episodes.jsonl``).
    """

    id: int
    name: str
    kind: str
    submitted: str
    entries: int
    episodes: int


def database_url(url_or_path: str | Path) -> str:
    """The SQLAlchemy URL for a store argument: a plain path is a SQLite file.

    Example:
        >>> database_url("postgresql+psycopg://me@db/board")
        'postgresql+psycopg://me@db/board'
    """
    text = str(url_or_path)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


class LeaderboardStore:
    """Submitted runs and the queries the CLI, the web page and the gate read.

    Args:
        url_or_path: A SQLite file path (created when missing), or any SQLAlchemy URL such as
            ``postgresql+psycopg://user:pw@host/db``.

    Raises:
        LeaderboardError: The database cannot be opened (bad URL, server down, no directory).

    Example:
        >>> import tempfile, os
        >>> with LeaderboardStore(os.path.join(tempfile.mkdtemp(), "lb.db")) as store:
        ...     store.submissions()
        []
    """

    def __init__(self, url_or_path: str | Path = "leaderboard.db") -> None:
        url = database_url(url_or_path)
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as err:
            raise LeaderboardError(f"not a database URL or path: {url_or_path!r} ({err})") from err
        self.url: str = parsed.render_as_string(hide_password=True)
        """The database URL with its password hidden (for messages)."""
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            folder = Path(parsed.database).parent
            if not folder.is_dir():
                raise LeaderboardError(f"cannot create the leaderboard {parsed.database}: "
                                       f"directory {folder} does not exist")  # fmt: skip
        try:
            self._engine = make_engine(parsed)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise LeaderboardError(f"cannot use {self.url}: {err}") from err
        self._create_tables()

    def _create_tables(self) -> None:
        # Opening an existing board only reads. Creating takes the write lock (SQLite) so
        # that concurrent openers queue; on PostgreSQL two creators can both see a table
        # missing, the loser's CREATE fails, and its second look finds the tables there.
        for attempt in range(2):
            try:
                with self._read() as conn:
                    if set(sa.inspect(conn).get_table_names()) >= set(_meta.tables) and \
                            not missing_columns(conn):  # fmt: skip
                        return
                with self._write() as conn:
                    _meta.create_all(conn)
                    add_missing_columns(conn)
                return
            except sa.exc.DBAPIError as err:
                if attempt:
                    raise LeaderboardError(f"cannot open the leaderboard at {self.url}: "
                                           f"{err.orig}") from err  # fmt: skip

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> LeaderboardStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LeaderboardStore({self.url!r})"

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(turngym_write=True)  # BEGIN IMMEDIATE on SQLite
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._engine.connect() as conn:
            yield conn

    # --- Writing ------------------------------------------------------------------------------
    def submit(self, run_dir: str | Path, name: str | None = None) -> Submission:
        """Add a finished run to the board, reading only its results files.

        Args:
            run_dir: The run directory (``results.json`` required, ``episodes.jsonl`` kept when
                present so the run can serve as a gate baseline).
            name: Unique name on the board (default: the directory's name).

        Returns:
            The accepted :class:`Submission`.

        Raises:
            SubmissionError: The results are missing, corrupt, without provenance or episodes,
                or invalid (a value out of range, a row its episodes do not give: the message
                names the row); the name or the run is already on the board; or an env
                changed under the same id. Nothing is written then.
        """
        run_dir = Path(run_dir)
        if run_dir.is_file():
            run_dir = run_dir.parent
        try:
            results = load_results(run_dir)
            episodes = read_run_episodes(run_dir, results)
            recomputed = check_submission(results, episodes)
        except ResultsError as err:
            raise SubmissionError(f"{err} — only finished `turngym eval`/`bench` runs with "
                                  "provenance can be submitted") from err  # fmt: skip
        except SubmissionInvalid as err:
            raise SubmissionError(f"{run_dir}: refused, {err}") from err
        name = name if name is not None else run_dir.resolve().name
        if not name.strip() or len(name) > 200:
            raise SubmissionError(f"invalid submission name {name!r}: use 1-200 characters")
        # A concurrent writer may commit a conflicting row between the checks and the inserts;
        # the unique constraints then abort ours, and one retry re-runs the checks to say why.
        for attempt in range(2):
            try:
                with self._write() as conn:
                    return self._insert(conn, results, episodes, recomputed, name, run_dir)
            except sa.exc.IntegrityError as err:
                if attempt:
                    raise SubmissionError(f"{name!r} conflicts with a concurrent submission: "
                                          f"{err.orig}") from err  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert(self, conn: sa.Connection, results: RunResults,
                episodes: dict[tuple[str, str], list[EpisodeRecord]],
                recomputed: dict[tuple[str, str], dict[str, MetricSummary]], name: str,
                run_dir: Path) -> Submission:  # fmt: skip
        prov = results.provenance
        run_hash = _run_hash(results)
        if conn.scalar(sa.select(_submissions.c.id).where(_submissions.c.name == name)):
            raise SubmissionError(f"a submission named {name!r} is already on the board at "
                                  f"{self.url}; pick another name (--name)")  # fmt: skip
        same = conn.scalar(
            sa.select(_submissions.c.name).where(_submissions.c.run_hash == run_hash))
        if same is not None:
            raise SubmissionError(f"this run is already on the board as {same!r} (same "
                                  "provenance and entries); nothing to do")  # fmt: skip
        new_envs = self._check_envs(conn, results, name)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        key = conn.execute(_submissions.insert().values(
            name=name, kind=results.kind, submitted_at=now, run_hash=run_hash,
            turngym_version=str(prov.get("turngym_version")), git_sha=prov.get("git_sha"),
            provenance=prov, source=str(run_dir.resolve()),
        )).inserted_primary_key  # fmt: skip
        assert key is not None  # an insert into a table with a primary key
        sid = key[0]
        if new_envs:
            conn.execute(_envs.insert(), new_envs)
        conn.execute(_entries.insert(), [{
            "submission_id": sid, "entry_key": e.key, "env_id": e.env_id,
            "env_version": e.env_version, "env_kwargs_hash": e.env_kwargs_hash,
            "env_fingerprint": e.env_fingerprint, "env_kwargs": e.env_kwargs,
            "options": e.options, "split": e.split, "agent": e.agent,
            "agent_config": e.agent_config, "seeds": e.seeds,
            "episodes_per_seed": e.episodes_per_seed,
            "metrics": {k: v.to_dict() for k, v in recomputed[(e.key, e.agent)].items()},
            "curve": e.curve, "seat": e.seat, "opponent": e.opponent,
        } for e in results.entries])  # fmt: skip
        rows = [{"submission_id": sid, "entry_key": key, "agent": agent, "episode_key": r.key,
                 "task_id": r.task_id, "seed": r.seed, "run_seed": r.run_seed,
                 "metrics": r.metrics}
                for (key, agent), records in episodes.items() for r in records]  # fmt: skip
        if rows:
            conn.execute(_episodes.insert(), rows)
        return Submission(sid, name, results.kind, now, len(results.entries), len(rows))

    def _check_envs(self, conn: sa.Connection, results: RunResults, name: str) -> list[dict]:
        """Refuse envs whose version or task fingerprint differs from the board's.

        The fingerprint is compared per env configuration (id and kwargs hash), because reset
        options such as the level change the tasks and so the fingerprint.

        Returns:
            Rows for the configurations new to the board.
        """
        ids = {e.env_id for e in results.entries}
        board = {row.entry_key: dict(row._mapping) for row in conn.execute(
            sa.select(_envs).where(_envs.c.env_id.in_(ids)))}  # fmt: skip
        new: dict[str, dict] = {}
        for e in results.entries:
            old = board.get(e.key) or next(
                (r for r in board.values() if r["env_id"] == e.env_id), None)
            if old is not None and (old["env_version"] != e.env_version or (
                    old["entry_key"] == e.key and old["env_fingerprint"] != e.env_fingerprint)):
                raise SubmissionError(
                    f"env changed: results for {e.env_id} v{old['env_version']} fingerprint "
                    f"{old['env_fingerprint']} are on the board (first from "
                    f"{old['first_submission']!r}); these have v{e.env_version} fingerprint "
                    f"{e.env_fingerprint} — bump the env version or start a new board")
            if e.key not in board:
                board[e.key] = new[e.key] = {
                    "entry_key": e.key, "env_id": e.env_id, "env_version": e.env_version,
                    "env_fingerprint": e.env_fingerprint, "first_submission": name}
        return list(new.values())

    # --- Reading ------------------------------------------------------------------------------
    def submissions(self) -> list[dict[str, Any]]:
        """Every submission, oldest first: name, kind, submitted, git_sha, version, source."""
        query = sa.select(_submissions).order_by(_submissions.c.submitted_at, _submissions.c.id)
        with self._read() as conn:
            return [{"name": r.name, "kind": r.kind, "submitted": r.submitted_at,
                     "git_sha": r.git_sha, "turngym_version": r.turngym_version,
                     "source": r.source, "provenance": r.provenance}
                    for r in conn.execute(query)]  # fmt: skip

    def entries(self, name: str | None = None) -> list[dict[str, Any]]:
        """The (env entry, agent) rows of one submission, or of all.

        Each row has ``run``, ``kind``, ``submitted``, ``git_sha``, ``turngym_version``,
        ``key``, ``env`` (label), the entry's fields and ``metrics`` as
        :class:`~turngym.evals.stats.MetricSummary` objects; ``seat`` and ``opponent`` for games.

        Raises:
            LeaderboardError: No submission of that name.
        """
        s, e = _submissions, _entries
        query = sa.select(e, s.c.name, s.c.kind, s.c.submitted_at, s.c.git_sha,
                          s.c.turngym_version).join(s, e.c.submission_id == s.c.id)  # fmt: skip
        with self._read() as conn:
            if name is not None:
                query = query.where(e.c.submission_id == self._submission_id(conn, name))
            rows = conn.execute(query.order_by(s.c.submitted_at, e.c.id)).all()
        return [{
            "run": r.name, "kind": r.kind, "submitted": r.submitted_at, "git_sha": r.git_sha,
            "turngym_version": r.turngym_version, "key": r.entry_key,
            "env": env_label(r.env_id, r.env_kwargs, r.options) + seat_label(r.seat, r.opponent),
            "env_id": r.env_id, "seat": r.seat, "opponent": r.opponent,
            "env_version": r.env_version, "env_kwargs_hash": r.env_kwargs_hash,
            "env_fingerprint": r.env_fingerprint, "env_kwargs": r.env_kwargs,
            "options": r.options, "split": r.split, "agent": r.agent,
            "agent_config": r.agent_config, "seeds": r.seeds,
            "episodes_per_seed": r.episodes_per_seed, "curve": r.curve,
            "metrics": {k: MetricSummary.from_dict(v) for k, v in r.metrics.items()},
        } for r in rows]  # fmt: skip

    def episodes(
        self, name: str, entry_key: str | None = None, agent: str | None = None
    ) -> list[tuple[str, str, EpisodeRecord]]:
        """The per-episode metric vectors of a submission as ``(entry_key, agent, record)``.

        Raises:
            LeaderboardError: No submission of that name.
        """
        t = _episodes
        with self._read() as conn:
            query = sa.select(t).where(t.c.submission_id == self._submission_id(conn, name))
            if entry_key is not None:
                query = query.where(t.c.entry_key == entry_key)
            if agent is not None:
                query = query.where(t.c.agent == agent)
            rows = conn.execute(query.order_by(t.c.id)).all()
        return [(r.entry_key, r.agent, EpisodeRecord(r.episode_key, r.task_id, r.seed,
                                                     r.run_seed, dict(r.metrics)))
                for r in rows]  # fmt: skip

    def episode_values(
        self, name: str, entry_key: str, agent: str, metric: str = "success"
    ) -> dict[str, float]:
        """``{episode key: value of metric}`` for one (entry, agent) of a submission."""
        _check_metric(metric)
        return {r.key: r.metrics[metric] for _, _, r in self.episodes(name, entry_key, agent)}

    def _submission_id(self, conn: sa.Connection, name: str) -> int:
        sid = conn.scalar(sa.select(_submissions.c.id).where(_submissions.c.name == name))
        if sid is not None:
            return int(sid)
        names = list(conn.scalars(sa.select(_submissions.c.name)))
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else (
            f"; the board has {len(names)} submissions (`turngym leaderboard show`)")
        raise LeaderboardError(f"no submission named {name!r} on {self.url}{hint}")

    # --- Views (computed in turngym.leaderboard.views) -----------------------------------------
    def rows(self, env_id: str | None = None, metric: str = "success") -> list[dict[str, Any]]:
        """One row per (submission, env entry, agent), best first per env (see views)."""
        _check_metric(metric)
        return views.table_rows(self.entries(), env_id, metric)

    def compare(self, name_a: str, name_b: str, metric: str = "success") -> list[dict[str, Any]]:
        """Two submissions side by side: :func:`~turngym.leaderboard.views.side_by_side`."""
        _check_metric(metric)
        return views.side_by_side(self.entries(name_a), self.entries(name_b), metric)

    def page_data(self, metric: str = "success") -> dict[str, Any]:
        """What the leaderboard page shows: :func:`~turngym.leaderboard.views.page_data`."""
        _check_metric(metric)
        return views.page_data(self.entries(), metric)


def _check_metric(metric: str) -> None:
    if metric not in EPISODE_METRICS and metric not in SEAT_METRICS:
        raise LeaderboardError(f"unknown metric {metric!r}; choose from "
                               f"{', '.join([*EPISODE_METRICS, *SEAT_METRICS])}")  # fmt: skip


def _run_hash(results: RunResults) -> str:
    """Identity of a run: its provenance (date, command, git sha) and its entries."""
    prov = results.provenance
    blob = json.dumps({"date": prov.get("date"), "command": prov.get("command"),
                       "git_sha": prov.get("git_sha"),
                       "entries": sorted(json.dumps(e.to_dict(), sort_keys=True)
                                         for e in results.entries)},
                      sort_keys=True, default=repr)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()
