"""The leaderboard's database: its tables and the engine that opens it (SQLite or PostgreSQL).

:class:`~turngym.leaderboard.store.LeaderboardStore` opens the database with
:func:`make_engine`, creates the tables on first use and is their only reader and writer.
Tables (prefixed ``turngym_`` so a shared PostgreSQL database stays tidy):

* :data:`submissions` (``turngym_submissions``): one per submitted run (name, kind,
  provenance, source path);
* :data:`envs` (``turngym_envs``): one per env configuration ever submitted, with the version
  and task fingerprint every later submission must match;
* :data:`entries` (``turngym_entries``): one per (submission, env entry, agent), with the metric
  summaries and the learning curve; a multi-agent game's entry is one seat against one
  opponent (``seat``, ``opponent``; ``NULL`` for single-agent envs);
* :data:`episode_metrics` (``turngym_episode_metrics``): the per-episode metric vectors, so a
  submission can be the baseline of the regression gate.

The engine makes concurrent SQLite writers safe: a write transaction takes the database lock
when it begins (``BEGIN IMMEDIATE``) and waits for it (busy timeout).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["metadata", "submissions", "envs", "entries", "episode_metrics", "make_engine",
           "missing_columns", "add_missing_columns"]  # fmt: skip

metadata = sa.MetaData()
submissions = sa.Table(
    "turngym_submissions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("submitted_at", sa.String(40), nullable=False),
    sa.Column("turngym_version", sa.String(64)),
    sa.Column("git_sha", sa.String(64)),
    # Hash of provenance (date, command, sha) and entries: the same run cannot land twice.
    sa.Column("run_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("provenance", sa.JSON, nullable=False),
    sa.Column("source", sa.Text),
)  # fmt: skip
envs = sa.Table(
    "turngym_envs", metadata,
    sa.Column("entry_key", sa.String(300), primary_key=True),
    sa.Column("env_id", sa.String(200), nullable=False, index=True),
    sa.Column("env_version", sa.Integer),
    sa.Column("env_fingerprint", sa.String(64), nullable=False),
    sa.Column("first_submission", sa.String(200), nullable=False),
)  # fmt: skip
entries = sa.Table(
    "turngym_entries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("submission_id", sa.ForeignKey("turngym_submissions.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("entry_key", sa.String(300), nullable=False),
    sa.Column("env_id", sa.String(200), nullable=False),
    sa.Column("env_version", sa.Integer),
    sa.Column("env_kwargs_hash", sa.String(64), nullable=False),
    sa.Column("env_fingerprint", sa.String(64), nullable=False),
    sa.Column("env_kwargs", sa.JSON, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("split", sa.String(32), nullable=False),
    sa.Column("agent", sa.Text, nullable=False),
    sa.Column("agent_config", sa.JSON, nullable=False),
    sa.Column("seeds", sa.JSON, nullable=False),
    sa.Column("episodes_per_seed", sa.Integer, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("curve", sa.JSON),
    sa.Column("seat", sa.String(64)),
    sa.Column("opponent", sa.Text),
    sa.UniqueConstraint("submission_id", "entry_key", "agent"),
)  # fmt: skip

_ADDED_COLUMNS = {"turngym_entries": ("seat", "opponent")}
"""Nullable columns added after the first release, in boards created before them."""
episode_metrics = sa.Table(
    "turngym_episode_metrics", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("submission_id", sa.ForeignKey("turngym_submissions.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("entry_key", sa.String(300), nullable=False),
    sa.Column("agent", sa.Text, nullable=False),
    sa.Column("episode_key", sa.Text, nullable=False),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("seed", sa.Integer),
    sa.Column("run_seed", sa.Integer),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Index("ix_turngym_episode_metrics_entry", "submission_id", "entry_key", "agent"),
)  # fmt: skip


def missing_columns(conn: sa.Connection) -> list[tuple[str, str]]:
    """``(table, column)`` of :data:`_ADDED_COLUMNS` that an existing board lacks."""
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    missing = []
    for table, names in _ADDED_COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)} if table in tables else None
        missing += [(table, name) for name in names if have is not None and name not in have]
    return missing


def add_missing_columns(conn: sa.Connection) -> None:
    """Add :data:`_ADDED_COLUMNS` to a board created before them (``NULL`` in old rows).

    ``metadata.create_all`` creates missing tables but never alters an existing one; an
    ``ALTER TABLE ... ADD COLUMN`` of a nullable column is the same statement on SQLite and
    PostgreSQL.
    """
    for table, name in missing_columns(conn):
        kind = metadata.tables[table].c[name].type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def make_engine(url: sa.URL) -> sa.Engine:
    """An engine for ``url``; for SQLite, one whose write transactions take the lock up front.

    A transaction on a connection with the execution option ``turngym_write=True`` is a write:
    on SQLite it begins with ``BEGIN IMMEDIATE``; every other one begins with ``BEGIN``.

    Args:
        url: The parsed database URL.

    Returns:
        The engine (on a server such as PostgreSQL, pooled connections are pinged before use).
    """
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    # 30 s busy timeout: a writer waits for another instead of failing with "locked".
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Stop pysqlite from issuing its own deferred BEGIN, so the one below is used.
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A deferred transaction that reads, then writes, can fail at once with "database is
        # locked" when another writer holds the lock (SQLite cannot wait there without a
        # deadlock). IMMEDIATE takes the write lock at BEGIN, where the busy timeout applies.
        write = conn.get_execution_options().get("turngym_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
