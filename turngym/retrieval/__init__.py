"""Small, dependency-free retrieval building blocks shared by search-style envs.

:mod:`turngym.retrieval.bm25` holds an Okapi BM25 index (Robertson & Zaragoza, 2009) over
plain numpy arrays with an on-disk cache keyed by the corpus content. The Shop env (WebShop,
Yao et al., 2022) searches its catalogue with it; search-QA envs reuse it for passages.
"""

from __future__ import annotations

from turngym.retrieval.bm25 import (
    DEFAULT_STOPWORDS,
    BM25Index,
    cache_dir,
    clear_memory_cache,
    load_or_build,
    tokenize,
)

__all__ = [
    "DEFAULT_STOPWORDS",
    "BM25Index",
    "cache_dir",
    "clear_memory_cache",
    "load_or_build",
    "tokenize",
]
