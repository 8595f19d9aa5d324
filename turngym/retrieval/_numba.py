"""The compiled BM25 backend: a numba kernel over the postings of a ``BM25Index``.

It is the ``fast`` extra's backend, imported only when used.

Per query it adds the terms' weights into a float64 accumulator in query order, exactly as the
numpy backend does (so the scores are bit-identical), remembers which documents it touched,
and keeps the ``k`` best in a small sorted buffer ordered by (score descending, document id
ascending), the same tie rule as the numpy backend. One thread; compiled once per machine
(``cache=True``), on the first call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numba
import numpy as np

__all__ = ["Postings", "search_postings"]


class Postings(Protocol):
    """The posting arrays the kernel reads: a :class:`turngym.retrieval.bm25.BM25Index`.

    A protocol, so that this module need not import the index's (one-way dependencies).
    """

    indptr: np.ndarray
    doc_ids: np.ndarray
    weights: np.ndarray
    n_docs: int


@numba.njit(cache=True, nogil=True)
def _top_k(indptr, doc_ids, weights, n_docs, q_ptr, q_terms, k, out_docs, out_scores, out_n):  # noqa: D103
    acc = np.zeros(n_docs, dtype=np.float64)
    touched = np.empty(n_docs, dtype=np.int32)
    for q in range(len(q_ptr) - 1):
        postings = 0
        for j in range(q_ptr[q], q_ptr[q + 1]):
            postings += indptr[q_terms[j] + 1] - indptr[q_terms[j]]
        # Many postings: scan every document in order (sequential memory) rather than the
        # touched list (random access). Either way the same scores, kept by the same rule.
        dense = postings * 4 > n_docs
        m = 0
        for j in range(q_ptr[q], q_ptr[q + 1]):
            t = q_terms[j]
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
        n = _keep_best(acc, touched, m, n_docs if dense else -1, k, out_docs[q], out_scores[q])
        out_n[q] = n


@numba.njit(cache=True, nogil=True, inline="always")
def _keep_best(acc, touched, m, scan, k, docs, scores):
    """Keep the ``k`` best documents (score descending, id ascending) and clear ``acc``.

    It reads every document when ``scan`` >= 0, else only ``touched[:m]``.
    """
    n = 0
    count = scan if scan >= 0 else m
    for i in range(count):
        d = i if scan >= 0 else touched[i]
        s = acc[d]
        if s == 0.0:
            continue
        acc[d] = 0.0
        if n == k:  # full: skip anything not better than the worst kept
            if s < scores[k - 1] or (s == scores[k - 1] and d > docs[k - 1]):
                continue
            n -= 1
        pos = n  # insertion into the sorted buffer
        while pos > 0:
            if scores[pos - 1] > s or (scores[pos - 1] == s and docs[pos - 1] < d):
                break
            scores[pos] = scores[pos - 1]
            docs[pos] = docs[pos - 1]
            pos -= 1
        scores[pos] = s
        docs[pos] = d
        n += 1
    return n


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
    _top_k(index.indptr, index.doc_ids, index.weights, index.n_docs, q_ptr, q_terms, k,
           out_docs, out_scores, out_n)  # fmt: skip
    docs, scores, counts = out_docs.tolist(), out_scores.tolist(), out_n.tolist()
    return [
        list(zip(d[:n], s[:n], strict=True)) for d, s, n in zip(docs, scores, counts, strict=True)
    ]
