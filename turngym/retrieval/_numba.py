"""The compiled BM25 backend: a numba kernel over the postings of a ``BM25Index``.

It is the ``fast`` extra's backend, imported only when used.

Per query it adds the terms' weights into a float64 accumulator in query order, exactly as the
numpy backend does (so the scores are bit-identical), remembers which documents it touched,
and keeps the ``k`` best in a small sorted buffer ordered by (score descending, document id
ascending), the same tie rule as the numpy backend. One thread; compiled once per machine
(``cache=True``), on the first call.

**Early stop (MaxScore).** A query whose rare terms already separate the best documents
need not read its common terms' long posting lists (Turtle & Flood, 1995, "Query evaluation:
strategies and optimizations", IP&M 31(6)). The kernel reads terms rarest first; once the
``k``-th best partial score exceeds the sum of the unread terms' largest weights (with a
relative margin of 1e-9 for rounding), no unread document can reach the top ``k``, so only
the documents already touched compete. Their exact scores are then added up again in query
order (each weight found by binary search in its term's sorted postings), so the numbers and
the ranking are exactly those of the full evaluation. A query that never stops early reads
what it has read so far again, in query order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numba
import numpy as np

__all__ = ["Postings", "search_postings"]

_SLACK = 1e-9
"""Relative margin of the early-stop test (float64 rounding is ~1e-16 relative)."""


class Postings(Protocol):
    """The posting arrays the kernel reads: a :class:`turngym.retrieval.bm25.BM25Index`.

    A protocol, so that this module need not import the index's (one-way dependencies).
    """

    indptr: np.ndarray
    doc_ids: np.ndarray
    weights: np.ndarray
    n_docs: int

    def term_maxima(self) -> np.ndarray:
        """The largest weight of every term (float64)."""
        ...


@numba.njit(cache=True, nogil=True)
def _top_k(indptr, doc_ids, weights, term_max, n_docs, q_ptr, q_terms, k,  # noqa: D103
           out_docs, out_scores, out_n):  # fmt: skip
    acc = np.zeros(n_docs, dtype=np.float64)
    touched = np.empty(n_docs, dtype=np.int32)
    for q in range(len(q_ptr) - 1):
        terms = q_terms[q_ptr[q] : q_ptr[q + 1]]
        n = _pruned(indptr, doc_ids, weights, term_max, acc, touched, terms, k,
                    out_docs[q], out_scores[q])  # fmt: skip
        if n < 0:
            n = _exhaustive(indptr, doc_ids, weights, acc, touched, n_docs, terms, k,
                            out_docs[q], out_scores[q])  # fmt: skip
        out_n[q] = n


@numba.njit(cache=True, nogil=True)
def _exhaustive(indptr, doc_ids, weights, acc, touched, n_docs, terms, k, docs, scores):
    """Every posting of every term, in query order; the ``k`` best kept."""
    postings = 0
    for t in terms:
        postings += indptr[t + 1] - indptr[t]
    # Many postings: scan every document in order (sequential memory) rather than the
    # touched list (random access). Either way the same scores, kept by the same rule.
    dense = postings * 4 > n_docs
    m = 0
    for t in terms:
        if dense:
            for p in range(indptr[t], indptr[t + 1]):
                acc[doc_ids[p]] += weights[p]
            continue
        for p in range(indptr[t], indptr[t + 1]):
            d = doc_ids[p]
            if acc[d] == 0.0:  # every weight is > 0: 0 means "not touched yet"
                touched[m] = d
                m += 1
            acc[d] += weights[p]
    n = 0
    count = n_docs if dense else m
    for i in range(count):
        d = i if dense else touched[i]
        s = acc[d]
        if s != 0.0:
            acc[d] = 0.0
            n = _offer(d, s, n, k, docs, scores)
    return n


@numba.njit(cache=True, nogil=True)
def _pruned(indptr, doc_ids, weights, term_max, acc, touched, terms, k, docs, scores):
    """The early-stop evaluation (module docstring); -1 if it cannot stop before the end.

    ``acc`` is left all zero either way.
    """
    m_terms = len(terms)
    if m_terms < 2:
        return -1
    order = np.argsort(indptr[terms + 1] - indptr[terms], kind="mergesort")  # rarest first
    rest = np.zeros(m_terms, dtype=np.float64)  # rest[i]: bound of the terms after i
    for i in range(m_terms - 2, -1, -1):
        rest[i] = rest[i + 1] + term_max[terms[order[i + 1]]]
    m = 0
    stop = -1
    for i in range(m_terms - 1):
        t = terms[order[i]]
        for p in range(indptr[t], indptr[t + 1]):
            d = doc_ids[p]
            if acc[d] == 0.0:
                touched[m] = d
                m += 1
            acc[d] += weights[p]
        if m >= k and rest[i] * (1.0 + _SLACK) < _kth_best(acc, touched, m, k) * (1.0 - _SLACK):
            stop = i
            break
    n = -1
    if stop >= 0:
        alive = _narrow(indptr, doc_ids, weights, acc, touched, m, terms, order, rest, stop, k)
        n = 0
        for i in range(alive):
            d = touched[i]
            n = _offer(d, _exact(indptr, doc_ids, weights, terms, d), n, k, docs, scores)
    for i in range(m):
        acc[touched[i]] = 0.0
    return n


@numba.njit(cache=True, nogil=True)
def _narrow(indptr, doc_ids, weights, acc, touched, m, terms, order, rest, stop, k):
    """Read the unread terms for the touched documents only, dropping hopeless ones.

    After each term, a document whose partial score plus the bound of the terms still unread
    falls short of the ``k``-th best partial score cannot make the top ``k``. The survivors
    are moved to the front of ``touched`` (the rest keep their slots, to be cleared); returns
    how many survive.
    """
    alive = m
    for i in range(stop, len(terms)):
        if i > stop:  # read term order[i] for the survivors
            t = terms[order[i]]
            for j in range(alive):
                d = touched[j]
                acc[d] += _weight(indptr, doc_ids, weights, t, d)
        floor = _kth_best(acc, touched, alive, k) * (1.0 - _SLACK) - rest[i] * (1.0 + _SLACK)
        kept = 0
        for j in range(alive):
            d = touched[j]
            if acc[d] >= floor:
                touched[j], touched[kept] = touched[kept], d
                kept += 1
        alive = kept
    return alive


@numba.njit(cache=True, nogil=True, inline="always")
def _weight(indptr, doc_ids, weights, t, d):
    """The weight of term ``t`` in document ``d`` (0 if absent): binary search."""
    lo, hi = indptr[t], indptr[t + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if doc_ids[mid] < d:
            lo = mid + 1
        else:
            hi = mid
    if lo < indptr[t + 1] and doc_ids[lo] == d:
        return np.float64(weights[lo])
    return 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _exact(indptr, doc_ids, weights, terms, d):
    """The score of document ``d``: its weights added in query order (binary searches)."""
    s = 0.0
    for t in terms:
        s += _weight(indptr, doc_ids, weights, t, d)
    return s


@numba.njit(cache=True, nogil=True)
def _kth_best(acc, touched, m, k):
    """The ``k``-th largest ``acc`` over ``touched[:m]`` (``m >= k``)."""
    best = np.full(k, -1.0)
    for i in range(m):
        s = acc[touched[i]]
        if s > best[k - 1]:
            pos = k - 1
            while pos > 0 and best[pos - 1] < s:
                best[pos] = best[pos - 1]
                pos -= 1
            best[pos] = s
    return best[k - 1]


@numba.njit(cache=True, nogil=True, inline="always")
def _offer(d, s, n, k, docs, scores):
    """Insert ``(d, s)`` into the sorted buffer of ``n`` (score descending, id ascending)."""
    if n == k:  # full: skip anything not better than the worst kept
        if s < scores[k - 1] or (s == scores[k - 1] and d > docs[k - 1]):
            return n
        n -= 1
    pos = n
    while pos > 0:
        if scores[pos - 1] > s or (scores[pos - 1] == s and docs[pos - 1] < d):
            break
        scores[pos] = scores[pos - 1]
        docs[pos] = docs[pos - 1]
        pos -= 1
    scores[pos] = s
    docs[pos] = d
    return n + 1


def search_postings(
    index: Postings, term_lists: Sequence[list[int]], k: int
) -> list[list[tuple[int, float]]]:
    """The ``k`` best ``(doc id, score)`` of every query given as term ids."""
    q_ptr = np.zeros(len(term_lists) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in term_lists], out=q_ptr[1:])
    flat = [t for terms in term_lists for t in terms]
    q_terms = np.asarray(flat, dtype=np.int64) if flat else np.zeros(0, np.int64)
    out_docs = np.zeros((len(term_lists), k), dtype=np.int32)
    out_scores = np.zeros((len(term_lists), k), dtype=np.float64)
    out_n = np.zeros(len(term_lists), dtype=np.int64)
    _top_k(index.indptr, index.doc_ids, index.weights, index.term_maxima(), index.n_docs,
           q_ptr, q_terms, k, out_docs, out_scores, out_n)  # fmt: skip
    docs, scores, counts = out_docs.tolist(), out_scores.tolist(), out_n.tolist()
    return [
        list(zip(d[:n], s[:n], strict=True)) for d, s, n in zip(docs, scores, counts, strict=True)
    ]
