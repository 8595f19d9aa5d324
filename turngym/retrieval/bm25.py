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

import functools
import hashlib
import importlib
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from turngym.retrieval.disk_cache import (
    DEFAULT_DISK_BYTES,
    cache_dir,
    disk_limit,
    prune,
    read_pickle,
    write_pickle,
)

__all__ = [
    "DEFAULT_STOPWORDS",
    "DEFAULT_BACKEND",
    "BM25Index",
    "resolve_backend",
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

DEFAULT_BACKEND = "auto"
"""The backend of searches that name none (``"auto"``, ``"numpy"`` or ``"numba"``)."""

_WORD = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")
_CACHE_VERSION = 2  # bump when the on-disk format or the scoring changes
_MEMORY: OrderedDict[str, BM25Index] = OrderedDict()
_MEMORY_LOCK = threading.Lock()
_BUILD_LOCK = threading.Lock()
MEMORY_INDEXES = 8
"""Indexes kept in memory per process (least recently used forgotten first)."""


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
    :meth:`search`, or :meth:`search_many` for several queries at once.

    Postings are compressed-sparse rows by term: ``vocab[term]`` is a term id ``t``, and
    ``doc_ids[indptr[t]:indptr[t + 1]]`` (int32, increasing) with ``weights[...]`` (float32)
    are the documents holding it and their precomputed BM25 weights: 8 bytes a posting.
    Scores add the query terms' weights in float64, in query order, so every backend gives
    the same numbers; equal scores rank by document id.

    Example:
        >>> index = BM25Index.build(["red apple", "green apple pie", "blue car"])
        >>> index.search("apple pie", k=2)
        [1, 0]
    """

    def __init__(
        self,
        vocab: dict[str, int],
        indptr: np.ndarray,
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
            vocab: ``term -> term id``.
            indptr: Per term id, where its postings start (and the total at the end; int64).
            doc_ids: Document of every posting (int32), grouped by term, increasing.
            weights: Precomputed BM25 weight of every posting (float32).
            n_docs: Number of documents.
            k1: Term-frequency saturation.
            b: Length normalisation.
            stopwords: Words the tokenizer drops (``None``: none).
        """
        self.vocab = vocab
        self.indptr = indptr
        self.doc_ids = doc_ids
        self.weights = weights
        self.n_docs = int(n_docs)
        self.k1 = float(k1)
        self.b = float(b)
        self.stopwords = stopwords
        self._init_runtime()

    def _init_runtime(self) -> None:
        # The results a batch prefetched for the next single queries (see :meth:`prefetch`).
        self._prefetched: dict[tuple[str, int], list[tuple[int, float]]] = {}
        self._term_max: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_prefetched"], state["_term_max"]
        return state

    def term_maxima(self) -> np.ndarray:
        """The largest weight of every term id (float64; computed once, on first use)."""
        if self._term_max is None:
            starts = self.indptr[:-1]
            self._term_max = (
                np.maximum.reduceat(self.weights, starts).astype(np.float64)
                if len(starts) else np.zeros(0, np.float64)
            )  # fmt: skip
        return self._term_max

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

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

        Tokens go straight into two compact int32 buffers (term id, document), which one sort
        turns into postings; no Python object per posting is ever made, so building leaves
        no garbage behind.

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
        first_seen: dict[str, int] = {}
        term_col, lengths = array("i"), np.zeros(len(docs), dtype=np.float64)
        for index, doc in enumerate(docs):
            ids = [first_seen.setdefault(t, len(first_seen)) for t in tokenize(doc, stop)]
            term_col.extend(ids)
            lengths[index] = len(ids)
        terms = np.frombuffer(term_col, dtype=np.int32) if term_col else np.zeros(0, np.int32)
        owners = np.repeat(np.arange(len(docs), dtype=np.int64), lengths.astype(np.int64))
        # Term ids in sorted-term order, so the arrays are the same on every machine.
        names = sorted(first_seen)
        rank = np.empty(len(names), dtype=np.int64)
        rank[[first_seen[t] for t in names]] = np.arange(len(names))
        keys = rank[terms] * max(len(docs), 1) + owners
        del term_col, terms, owners
        keys.sort()
        starts = np.flatnonzero(np.diff(keys, prepend=-1))  # first posting of each (term, doc)
        tf = np.diff(np.append(starts, len(keys))).astype(np.float64)
        keys = keys[starts]
        term_of, doc_of = np.divmod(keys, max(len(docs), 1))
        del keys, starts
        n_docs, n_terms = len(docs), len(names)
        df = np.bincount(term_of, minlength=n_terms)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        avgdl = float(lengths.mean()) if n_docs and lengths.sum() > 0 else 1.0
        norm = k1 * (1.0 - b + b * lengths / avgdl)  # per-document length term
        weights = (idf[term_of] * tf * (k1 + 1.0) / (tf + norm[doc_of])).astype(np.float32)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        vocab = {term: i for i, term in enumerate(names)}
        return cls(vocab, indptr, doc_of.astype(np.int32), weights, n_docs,
                   k1=k1, b=b, stopwords=stop)  # fmt: skip

    # --- Queries ------------------------------------------------------------------------------
    def term_ids(self, query: str) -> list[int]:
        """The ids of the query's known terms, each once, in query order."""
        vocab = self.vocab
        return [vocab[t] for t in dict.fromkeys(tokenize(query, self.stopwords)) if t in vocab]

    def scores(self, query: str) -> np.ndarray:
        """Return the BM25 score of every document for ``query`` (repeated words count once)."""
        scores = np.zeros(self.n_docs, dtype=np.float64)
        for term in self.term_ids(query):
            span = slice(self.indptr[term], self.indptr[term + 1])
            # Within one term's postings every document appears once, so += is exact.
            scores[self.doc_ids[span]] += self.weights[span]
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
        ready = self._prefetched.get((query, k))
        if ready is not None:
            return list(ready)
        return self.search_many([query], k)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 10, *, backend: str | None = None
    ) -> list[list[tuple[int, float]]]:
        """:meth:`search_with_scores` for every query, in one call (the batched API).

        Args:
            queries: The queries.
            k: Documents per query.
            backend: ``"numpy"``, ``"numba"`` (compiled; the ``fast`` extra), ``"auto"``
                (numba when installed) or ``None`` for :data:`DEFAULT_BACKEND`. Every backend
                returns exactly the same results.

        Returns:
            Per query, ``[(doc id, score), ...]`` best first.
        """
        term_lists = [self.term_ids(q) for q in queries]
        if k <= 0:
            return [[] for _ in queries]
        if resolve_backend(backend or DEFAULT_BACKEND) == "numba":
            from turngym.retrieval._numba import search_postings

            return search_postings(self, term_lists, k)
        return [self._search_numpy(terms, k) for terms in term_lists]

    def prefetch(self, queries: Sequence[str], k: int) -> None:
        """Answer ``queries`` in one batch now; the next single searches for them are lookups.

        Envs that search call this from :meth:`turngym.core.TextEnv.before_steps` with every
        query of a rollout tick. Only the last batch is kept (the index never changes, so a
        kept result is always the right one).
        """
        unique = list(dict.fromkeys(queries))
        self._prefetched = dict(zip([(q, k) for q in unique], self.search_many(unique, k),
                                    strict=True))  # fmt: skip

    def _search_numpy(self, terms: list[int], k: int) -> list[tuple[int, float]]:
        if not terms:
            return []
        if len(terms) > 1:
            pruned = self._search_pruned(np.asarray(terms, dtype=np.int64), k)
            if pruned is not None:
                return pruned
        spans = [slice(self.indptr[t], self.indptr[t + 1]) for t in terms]
        docs: np.ndarray
        scores: np.ndarray
        if len(spans) == 1:  # one term: its postings are the scores, each document once
            docs = self.doc_ids[spans[0]]
            scores = self.weights[spans[0]].astype(np.float64)
        else:
            # One C pass adds every posting in query-term order (as the numba backend does);
            # every weight is > 0, so the non-zero entries are the touched documents.
            ids = np.concatenate([self.doc_ids[span] for span in spans])
            dense = np.bincount(
                ids, weights=np.concatenate([self.weights[span] for span in spans]),
                minlength=self.n_docs,
            )  # fmt: skip
            docs = np.flatnonzero(dense)
            scores = dense[docs]
        if len(docs) > k:
            kth = np.partition(scores, len(docs) - k)[len(docs) - k]
            keep = scores >= kth  # every document tied with the k-th stays in the running
            docs, scores = docs[keep], scores[keep]
        order = np.lexsort((docs, -scores))[:k]
        return [(int(d), float(s)) for d, s in zip(docs[order], scores[order], strict=True)]

    def _search_pruned(self, terms: np.ndarray, k: int) -> list[tuple[int, float]] | None:
        """The numba kernel's early stop (MaxScore; see :mod:`turngym.retrieval._numba`).

        Terms are read rarest first until the ``k``-th best partial score beats what the
        unread terms can add at most; then the unread terms are looked up for the touched
        documents only, hopeless ones dropped after each, and the survivors' scores added up
        again in query order (exactly the full evaluation's numbers). ``None`` when it cannot
        stop before reading a quarter of the documents' worth of postings.
        """
        starts, ends = self.indptr[terms], self.indptr[terms + 1]
        order = np.argsort(ends - starts, kind="stable")
        maxima = self.term_maxima()[terms[order]]
        rest = np.append(np.cumsum(maxima[::-1])[::-1][1:], 0.0)  # bound of the terms after i
        slack, read, stop = 1e-9, 0, -1
        for i in range(len(terms) - 1):
            read += int(ends[order[i]] - starts[order[i]])
            if read * 4 > self.n_docs:
                return None
            spans = [slice(starts[j], ends[j]) for j in order[: i + 1]]
            docs, inverse = np.unique(np.concatenate([self.doc_ids[s] for s in spans]),
                                      return_inverse=True)  # fmt: skip
            partial = np.bincount(inverse, np.concatenate([self.weights[s] for s in spans]))
            if len(docs) >= k and rest[i] * (1 + slack) < _kth(partial, k) * (1 - slack):
                stop = i
                break
        if stop < 0:
            return None
        for i in range(stop, len(terms)):
            if i > stop:
                partial = partial + self._weights_of(int(terms[order[i]]), docs)
            keep = partial >= _kth(partial, k) * (1 - slack) - rest[i] * (1 + slack)
            docs, partial = docs[keep], partial[keep]
        exact = np.zeros(len(docs), dtype=np.float64)
        for t in terms:  # query order, as the full evaluation adds them
            exact += self._weights_of(int(t), docs)
        ranked = np.lexsort((docs, -exact))[:k]
        return [(int(d), float(s)) for d, s in zip(docs[ranked], exact[ranked], strict=True)]

    def _weights_of(self, term: int, docs: np.ndarray) -> np.ndarray:
        """The weight of ``term`` in each of ``docs`` (sorted ids; 0 where absent), float64."""
        span = slice(self.indptr[term], self.indptr[term + 1])
        ids = self.doc_ids[span]
        pos = np.minimum(np.searchsorted(ids, docs), len(ids) - 1)
        return np.where(ids[pos] == docs, self.weights[span][pos].astype(np.float64), 0.0)

    def nbytes(self) -> int:
        """Bytes held by the posting arrays (the vocabulary dict not included)."""
        return self.indptr.nbytes + self.doc_ids.nbytes + self.weights.nbytes


def _kth(values: np.ndarray, k: int) -> float:
    """The ``k``-th largest of ``values`` (or the smallest, when there are fewer)."""
    if len(values) <= k:
        return float(values.min()) if len(values) else 0.0
    return float(np.partition(values, len(values) - k)[len(values) - k])


def resolve_backend(backend: str) -> str:
    """``"numpy"`` or ``"numba"`` for a backend name (``"auto"``: numba when installed).

    Raises:
        ValueError: An unknown name, or ``"numba"`` without numba installed.
    """
    if backend not in ("auto", "numpy", "numba"):
        raise ValueError(f"Unknown BM25 backend {backend!r}; use 'auto', 'numpy' or 'numba'.")
    if backend == "numpy":
        return "numpy"
    available = _numba_available()
    if backend == "numba" and not available:
        raise ValueError("The numba backend needs numba: pip install 'turngym[fast]'.")
    return "numba" if available else "numpy"


@functools.cache
def _numba_available() -> bool:
    """Whether numba imports (installed but broken, e.g. built for another numpy: no)."""
    try:
        importlib.import_module("numba")
    except Exception:  # noqa: BLE001  (any failure means: use the numpy backend)
        return False
    return True


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
        index = read_pickle(path, BM25Index) if use_disk else None
        if index is None:
            index = BM25Index.build(docs, k1=k1, b=b, stopwords=stopwords)
            if use_disk:
                write_pickle(path, index)
                prune(path.parent, keep=path)
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
