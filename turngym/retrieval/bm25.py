"""Okapi BM25 over plain numpy arrays, with a disk cache keyed by the corpus content.

The score of document ``d`` for query ``q`` is the classic BM25 sum (Robertson & Zaragoza,
2009, "The Probabilistic Relevance Framework: BM25 and Beyond", Foundations and Trends in
Information Retrieval 3(4), section 3.4)::

    score(d, q) = sum over distinct terms t of q of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

with the Robertson/Spärck Jones idf in the non-negative form Lucene uses,
``idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))``, so a term found in most documents
still counts a little instead of pushing scores below zero.

Each term's per-document weight (everything but the sum) is computed once at build time, so a
query is one ``scores[doc_ids] += weights`` per query term followed by a top-k selection.
Postings are a dict ``term -> (start, stop)`` into two flat arrays (document ids and weights),
which pickle and load quickly. Ties are broken by document order, so rankings are the same on
every machine.

Both caches are bounded: the process keeps the :data:`MEMORY_INDEXES` most recently used
indexes, and the disk cache keeps at most ``$TURNGYM_CACHE_MAX_BYTES`` (default
:data:`DEFAULT_DISK_BYTES`) of index files, least recently used deleted first. Indexes are
read or built one at a time, so concurrent requests for one corpus build it once.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_STOPWORDS",
    "BM25Index",
    "tokenize",
    "cache_dir",
    "load_or_build",
    "clear_memory_cache",
    "MEMORY_INDEXES",
    "DEFAULT_DISK_BYTES",
    "disk_limit",
]

DEFAULT_STOPWORDS: frozenset[str] = frozenset(
    "a an and are as at be by for from has have i in is it its me my need of on or our "
    "that the their this to want was we with you your".split()
)
"""A short English stopword list (function words only; product words are never dropped)."""

_WORD = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")
_CACHE_VERSION = 1  # bump when the on-disk format or the scoring changes
_MEMORY: OrderedDict[str, BM25Index] = OrderedDict()
_MEMORY_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()
MEMORY_INDEXES = 8
"""Indexes kept in memory per process (least recently used forgotten first)."""
DEFAULT_DISK_BYTES = 2 << 30
"""Default bound of the disk cache (2 GiB); ``$TURNGYM_CACHE_MAX_BYTES`` overrides it."""


def tokenize(text: str, stopwords: Iterable[str] | None = DEFAULT_STOPWORDS) -> list[str]:
    """Lower-case ``text`` and split it into words, dropping ``stopwords``.

    Words are runs of letters and digits; an inner ``-`` or ``.`` keeps a word whole
    (``x-large``, ``1.7``), so option values stay single tokens.

    Example:
        >>> tokenize("I need a Slim-Fit shirt, size XL!")
        ['slim-fit', 'shirt', 'size', 'xl']
    """
    words = _WORD.findall(text.lower())
    if not stopwords:
        return words
    stop = stopwords if isinstance(stopwords, (set, frozenset)) else frozenset(stopwords)
    return [w for w in words if w not in stop]


class BM25Index:
    """An Okapi BM25 index over a list of documents (strings).

    Build with :meth:`build` (or :func:`load_or_build` to use the disk cache), then call
    :meth:`search`.

    Example:
        >>> index = BM25Index.build(["red apple", "green apple pie", "blue car"])
        >>> index.search("apple pie", k=2)
        [1, 0]
    """

    def __init__(
        self,
        vocab: dict[str, tuple[int, int]],
        doc_ids: np.ndarray,
        weights: np.ndarray,
        n_docs: int,
        *,
        k1: float,
        b: float,
        stopwords: frozenset[str] | None,
    ) -> None:
        """Wrap prebuilt postings; use :meth:`build` instead of calling this directly.

        Args:
            vocab: ``term -> (start, stop)`` slice of ``doc_ids``/``weights``.
            doc_ids: Document index of every posting (int32), grouped by term.
            weights: Precomputed BM25 weight of every posting (float64).
            n_docs: Number of documents.
            k1: Term-frequency saturation.
            b: Length normalisation.
            stopwords: Words the tokenizer drops (``None``: none).
        """
        self.vocab = vocab
        self.doc_ids = doc_ids
        self.weights = weights
        self.n_docs = int(n_docs)
        self.k1 = float(k1)
        self.b = float(b)
        self.stopwords = stopwords

    @classmethod
    def build(
        cls,
        docs: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: Iterable[str] | None = DEFAULT_STOPWORDS,
    ) -> BM25Index:
        """Index ``docs``.

        Args:
            docs: The documents; their positions are the ids :meth:`search` returns.
            k1: Term-frequency saturation (``>= 0``; 1.2-2.0 is usual).
            b: Length normalisation in ``[0, 1]`` (0: none, 1: full).
            stopwords: Words to drop (``None`` keeps every word).

        Returns:
            The index.

        Raises:
            ValueError: ``k1`` or ``b`` out of range.
        """
        if not k1 >= 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1; got k1={k1}, b={b}.")
        stop = frozenset(stopwords) if stopwords else None
        postings: dict[str, list[tuple[int, int]]] = {}
        lengths = np.zeros(len(docs), dtype=np.float64)
        for index, doc in enumerate(docs):
            counts = Counter(tokenize(doc, stop))
            lengths[index] = sum(counts.values())
            for term, tf in counts.items():
                postings.setdefault(term, []).append((index, tf))
        n_docs = len(docs)
        avgdl = float(lengths.mean()) if n_docs and lengths.sum() > 0 else 1.0
        norm = k1 * (1.0 - b + b * lengths / avgdl)  # per-document length term
        vocab: dict[str, tuple[int, int]] = {}
        id_parts, weight_parts, start = [], [], 0
        for term in sorted(postings):  # sorted: the same arrays on every machine
            pairs = np.asarray(postings[term], dtype=np.int64)
            term_docs, freq = pairs[:, 0], pairs[:, 1].astype(np.float64)
            df = len(term_docs)
            idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            id_parts.append(term_docs.astype(np.int32))
            weight_parts.append(idf * freq * (k1 + 1.0) / (freq + norm[term_docs]))
            vocab[term] = (start, start + df)
            start += df
        doc_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int32)
        weights = np.concatenate(weight_parts) if weight_parts else np.zeros(0)
        return cls(vocab, doc_ids, weights, n_docs, k1=k1, b=b, stopwords=stop)

    def scores(self, query: str) -> np.ndarray:
        """Return the BM25 score of every document for ``query`` (repeated words count once)."""
        scores = np.zeros(self.n_docs, dtype=np.float64)
        for term in dict.fromkeys(tokenize(query, self.stopwords)):
            span = self.vocab.get(term)
            if span is not None:
                # Within one term's postings every document appears once, so += is exact.
                scores[self.doc_ids[span[0] : span[1]]] += self.weights[span[0] : span[1]]
        return scores

    def search(self, query: str, k: int = 10) -> list[int]:
        """Return the ids of the ``k`` best documents with a positive score, best first.

        Equal scores keep document order, so the ranking is deterministic.
        """
        return [doc for doc, _ in self.search_with_scores(query, k)]

    def search_with_scores(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """Like :meth:`search`, with each document's BM25 score: ``[(doc id, score), ...]``.

        Example:
            >>> index = BM25Index.build(["red apple", "green apple pie", "blue car"])
            >>> [doc for doc, score in index.search_with_scores("pie", k=5)]
            [1]
        """
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        if len(hits) == 0 or k <= 0:
            return []
        if len(hits) > k:
            # Keep every document that ties with the k-th score, then sort exactly.
            kth = np.partition(scores[hits], len(hits) - k)[len(hits) - k]
            hits = hits[scores[hits] >= kth]
        order = np.lexsort((hits, -scores[hits]))
        return [(int(i), float(scores[i])) for i in hits[order][:k]]


def cache_dir() -> Path:
    """Return the cache folder: ``$TURNGYM_CACHE`` if set, else ``~/.cache/turngym``."""
    root = os.environ.get("TURNGYM_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "turngym"


def _corpus_key(docs: Sequence[str], k1: float, b: float, stopwords: Iterable[str] | None) -> str:
    digest = hashlib.sha256()
    stop = sorted(stopwords) if stopwords else []
    digest.update(repr((_CACHE_VERSION, float(k1), float(b), stop, len(docs))).encode())
    for doc in docs:
        digest.update(doc.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def load_or_build(
    docs: Sequence[str],
    *,
    k1: float = 1.5,
    b: float = 0.75,
    stopwords: Iterable[str] | None = DEFAULT_STOPWORDS,
    use_disk: bool = True,
) -> BM25Index:
    """Return the index of ``docs``: from memory, else from the disk cache, else built.

    The cache key is a SHA-256 of the documents and the parameters, so a changed corpus never
    reads a stale index. Files are written atomically (temp file, then rename); an unreadable
    cache file is rebuilt, never trusted.

    Args:
        docs: The documents.
        k1: See :meth:`BM25Index.build`.
        b: See :meth:`BM25Index.build`.
        stopwords: See :meth:`BM25Index.build`.
        use_disk: Read and write ``cache_dir() / "bm25"`` (memory cache only if False).

    Returns:
        The index (shared: do not mutate it).
    """
    key = _corpus_key(docs, k1, b, stopwords)
    cached = _remembered(key)
    if cached is not None:
        return cached
    # One index is read or built at a time: threads that miss the same corpus at once (a
    # server's burst of resets) wait for the first and share its index, rather than each
    # holding a copy of it, and the memory of builds in flight is one index's.
    with _BUILD_LOCK:
        cached = _remembered(key)
        if cached is not None:
            return cached
        path = cache_dir() / "bm25" / f"{key}.pkl"
        index = _read(path) if use_disk else None
        if index is None:
            index = BM25Index.build(docs, k1=k1, b=b, stopwords=stopwords)
            if use_disk:
                _write(path, index)
                _prune_disk(path.parent, keep=path)
        with _MEMORY_LOCK:
            _MEMORY[key] = index
            while len(_MEMORY) > MEMORY_INDEXES:
                _MEMORY.popitem(last=False)
    return index


def _remembered(key: str) -> BM25Index | None:
    """The in-memory index of ``key`` (now the most recently used), if kept."""
    with _MEMORY_LOCK:
        cached = _MEMORY.get(key)
        if cached is not None:
            _MEMORY.move_to_end(key)
    return cached


def clear_memory_cache() -> None:
    """Forget the in-process indexes (the disk cache stays)."""
    with _MEMORY_LOCK:
        _MEMORY.clear()


def _read(path: Path) -> BM25Index | None:
    try:
        with path.open("rb") as handle:
            index = pickle.load(handle)
        os.utime(path)  # recently used: the disk cache forgets least recently used files first
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    return index if isinstance(index, BM25Index) else None


def disk_limit() -> int:
    """Bytes the disk cache may hold: ``$TURNGYM_CACHE_MAX_BYTES`` or :data:`DEFAULT_DISK_BYTES`."""
    raw = os.environ.get("TURNGYM_CACHE_MAX_BYTES", "")
    try:
        return max(0, int(raw)) if raw.strip() else DEFAULT_DISK_BYTES
    except ValueError:
        return DEFAULT_DISK_BYTES


def _prune_disk(folder: Path, keep: Path) -> None:
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


def _write(path: Path, index: BM25Index) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(index, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:  # a read-only home is not an error: the index is still in memory
        return
