"""The on-disk cache of built indexes: where it lives, how big it may grow, how files are kept.

Files are written atomically (a temp file, then a rename), read back only when they unpickle to
the expected type, touched on every read, and pruned least recently used first once the folder
holds more than :func:`disk_limit` bytes. ``$TURNGYM_CACHE`` moves the cache folder.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DEFAULT_DISK_BYTES", "cache_dir", "disk_limit", "prune", "read_pickle",
           "write_pickle"]  # fmt: skip

T = TypeVar("T")

DEFAULT_DISK_BYTES = 2 << 30
"""Default bound of the disk cache (2 GiB); ``$TURNGYM_CACHE_MAX_BYTES`` overrides it."""


def cache_dir() -> Path:
    """Return the cache folder: ``$TURNGYM_CACHE`` if set, else ``~/.cache/turngym``."""
    root = os.environ.get("TURNGYM_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "turngym"


def read_pickle(path: Path, kind: type[T]) -> T | None:
    """The ``kind`` object pickled at ``path``, or ``None`` (missing, unreadable, another type)."""
    try:
        with path.open("rb") as handle:
            index = pickle.load(handle)
        os.utime(path)  # recently used: the disk cache forgets least recently used files first
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    return index if isinstance(index, kind) else None


def disk_limit() -> int:
    """Bytes the disk cache may hold: ``$TURNGYM_CACHE_MAX_BYTES`` or :data:`DEFAULT_DISK_BYTES`."""
    raw = os.environ.get("TURNGYM_CACHE_MAX_BYTES", "")
    try:
        return max(0, int(raw)) if raw.strip() else DEFAULT_DISK_BYTES
    except ValueError:
        return DEFAULT_DISK_BYTES


def prune(folder: Path, keep: Path) -> None:
    """Delete the least recently used index files until the folder fits :func:`disk_limit`."""
    try:
        files = [(p.stat().st_mtime_ns, p.stat().st_size, p) for p in folder.glob("*.pkl")]
    except OSError:  # another process pruned at the same time: try again next write
        return
    total, limit = sum(size for _, size, _ in files), disk_limit()
    for _, size, path in sorted(files, key=lambda f: (f[0], str(f[2]))):
        if total <= limit:
            break
        if path == keep:
            continue
        try:
            path.unlink()
            total -= size
        except OSError:
            continue


def write_pickle(path: Path, index: Any) -> None:
    """Pickle ``index`` to ``path`` atomically (temp file, then rename); an OSError is ignored."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(index, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:  # a read-only home is not an error: the index is still in memory
        return
