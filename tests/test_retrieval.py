"""Known-answer and cache tests for turngym.retrieval.bm25 (Robertson & Zaragoza, 2009)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from turngym.retrieval import bm25
from turngym.retrieval.bm25 import BM25Index, load_or_build, tokenize

CORPUS = [
    "red apple pie",  # 0
    "green apple",  # 1
    "apple apple apple juice",  # 2
    "blue car with red seats and a long description of the interior",  # 3
    "banana bread",  # 4
]


@pytest.fixture(autouse=True)
def temp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path / "cache"))
    bm25.clear_memory_cache()
    yield tmp_path / "cache"
    bm25.clear_memory_cache()


def reference_score(docs, query, doc, k1=1.5, b=0.75):
    """BM25 written out term by term, straight from the formula."""
    tokens = [tokenize(d) for d in docs]
    avgdl = sum(map(len, tokens)) / len(tokens)
    total = 0.0
    for term in dict.fromkeys(tokenize(query)):
        df = sum(term in t for t in tokens)
        if not df:
            continue
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        tf = tokens[doc].count(term)
        total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(tokens[doc]) / avgdl))
    return total


def test_tokenize_lowercases_drops_stopwords_and_keeps_hyphenated_words():
    assert tokenize("The X-Large Shirt, for ME!") == ["x-large", "shirt"]
    assert tokenize("The shirt", stopwords=None) == ["the", "shirt"]


def test_scores_match_the_formula():
    index = BM25Index.build(CORPUS)
    for query in ("apple pie", "red", "apple juice apple", "nothing here"):
        scores = index.scores(query)
        for doc in range(len(CORPUS)):
            assert scores[doc] == pytest.approx(reference_score(CORPUS, query, doc))


def test_known_ranking():
    index = BM25Index.build(CORPUS)
    # "pie" is rare, so doc 0 wins; doc 2 has tf=3 of apple (saturated) and beats doc 1.
    assert index.search("apple pie", k=3) == [0, 2, 1]
    assert index.search("red", k=5) == [0, 3]  # the short document first
    assert index.search("zebra") == []
    assert index.search("apple", k=0) == []


def test_ties_keep_document_order():
    index = BM25Index.build(["same words", "same words", "same words", "other"])
    assert index.search("same", k=2) == [0, 1]


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="k1"):
        BM25Index.build(CORPUS, b=1.5)


def test_disk_cache_is_reused_and_keyed_by_content(temp_cache, monkeypatch):
    first = load_or_build(CORPUS)
    files = list((temp_cache / "bm25").glob("*.pkl"))
    assert len(files) == 1
    assert load_or_build(CORPUS) is first  # memory cache
    bm25.clear_memory_cache()

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although the disk cache holds the index")

    monkeypatch.setattr(BM25Index, "build", no_build)
    reloaded = load_or_build(CORPUS)
    assert reloaded.search("apple pie", k=3) == [0, 2, 1]
    monkeypatch.undo()
    monkeypatch.setenv("TURNGYM_CACHE", str(temp_cache))
    load_or_build([*CORPUS, "one more document"])  # a changed corpus gets its own file
    assert len(list((temp_cache / "bm25").glob("*.pkl"))) == 2


def test_corrupt_cache_file_is_rebuilt(temp_cache):
    load_or_build(CORPUS)
    (path,) = (temp_cache / "bm25").glob("*.pkl")
    path.write_bytes(b"not a pickle")
    bm25.clear_memory_cache()
    assert load_or_build(CORPUS).search("apple pie", k=1) == [0]


def test_search_with_scores_matches_search():
    from turngym.retrieval.bm25 import BM25Index

    index = BM25Index.build(["red apple", "green apple pie", "blue car", "apple apple"])
    hits = index.search_with_scores("apple pie", k=3)
    assert [doc for doc, _ in hits] == index.search("apple pie", k=3)
    assert hits[0][1] >= hits[1][1] >= hits[2][1] > 0
    assert index.search_with_scores("zebra") == []


# --- Bounded caches (issue 18: a server's clients must not grow them without bound) ---------
def test_memory_cache_keeps_only_the_most_recent_indexes(monkeypatch):
    monkeypatch.setattr(bm25, "MEMORY_INDEXES", 2)
    bm25.clear_memory_cache()
    corpora = [[f"doc {i} word{j}" for j in range(5)] for i in range(3)]
    first = load_or_build(corpora[0], use_disk=False)
    load_or_build(corpora[1], use_disk=False)
    assert load_or_build(corpora[0], use_disk=False) is first  # used again: most recent now
    load_or_build(corpora[2], use_disk=False)  # evicts corpora[1], the least recently used
    assert len(bm25._MEMORY) == 2
    assert load_or_build(corpora[0], use_disk=False) is first
    bm25.clear_memory_cache()


def test_disk_cache_forgets_least_recently_used_files_beyond_its_bound(temp_cache, monkeypatch):
    docs = [[f"doc {i} {w}" for w in ("alpha", "beta", "gamma", "delta") * 50] for i in range(4)]
    load_or_build(docs[0])
    one_file = max(p.stat().st_size for p in (temp_cache / "bm25").glob("*.pkl"))
    monkeypatch.setenv("TURNGYM_CACHE_MAX_BYTES", str(int(2.5 * one_file)))
    for corpus in docs[1:]:
        bm25.clear_memory_cache()
        load_or_build(corpus)
    files = list((temp_cache / "bm25").glob("*.pkl"))
    assert len(files) == 2 and sum(p.stat().st_size for p in files) <= 2.5 * one_file
    bm25.clear_memory_cache()
    assert load_or_build(docs[3]).search("delta", 1)  # the newest is still there (read back)


def test_generated_corpora_are_a_bounded_lru():
    from turngym.envs.search import corpus

    for seed in range(corpus._KEEP + 2):
        corpus.generated_corpus(1000 + seed, 500)
    assert len(corpus._CORPORA) <= corpus._KEEP
    assert ("generated", 1000 + corpus._KEEP + 1, 500) in corpus._CORPORA
# --- Postings, backends, batches ----------------------------------------------------------------
def _random_corpus(seed: int, n: int = 300) -> list[str]:
    import random

    rng = random.Random(seed)
    words = [f"w{i}" for i in range(40)]  # few words: many equal scores
    return [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(n)]


def test_postings_are_compact_float32_csr():
    index = BM25Index.build(CORPUS)
    assert index.doc_ids.dtype == "int32" and index.weights.dtype == "float32"
    assert len(index.indptr) == len(index.vocab) + 1 and index.indptr[-1] == len(index.doc_ids)
    apple = index.vocab["apple"]
    assert index.doc_ids[index.indptr[apple] : index.indptr[apple + 1]].tolist() == [0, 1, 2]
    assert index.nbytes() == 8 * len(index.doc_ids) + 8 * len(index.indptr)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_many_matches_single_searches_on_both_backends(seed, monkeypatch):
    docs = _random_corpus(seed)
    index = BM25Index.build(docs)
    queries = ["w1 w2", "w3", "w4 w4 w5 w6", "nothing", "w7 w1 w9 w10 w11", ""]
    monkeypatch.setattr(bm25, "DEFAULT_BACKEND", "numpy")
    single = [index.search_with_scores(q, 7) for q in queries]
    assert index.search_many(queries, 7, backend="numpy") == single
    scores = [index.scores(q) for q in queries]
    for hits, dense in zip(single, scores, strict=True):
        ranked = sorted((-float(s), d) for d, s in enumerate(dense) if s > 0)[:7]
        assert [(d, -s) for s, d in ranked] == hits  # best first, ties by document id
    pytest.importorskip("numba")
    assert index.search_many(queries, 7, backend="numba") == single


@pytest.mark.parametrize("seed", range(3))
def test_early_stop_gives_the_full_evaluation_exactly(seed):
    """Rare words next to very common ones (the case the early stop prunes): every result is
    the dense score vector's top k, same floats, ties by document id."""
    import random

    rng = random.Random(seed)
    common, rare = [f"c{i}" for i in range(3)], [f"r{i}" for i in range(150)]
    docs = [" ".join(rng.choices(common, k=rng.randint(1, 6))
                     + rng.choices(rare, k=rng.randint(0, 2))) for _ in range(400)]  # fmt: skip
    index = BM25Index.build(docs)
    queries = [" ".join(rng.sample(rare, rng.randint(1, 3)) + rng.sample(common, rng.randint(1, 3)))
               for _ in range(40)]  # fmt: skip
    for k in (1, 3, 10):
        expected = []
        for query in queries:
            dense = index.scores(query)
            ranked = sorted((-float(s), d) for d, s in enumerate(dense) if s > 0)[:k]
            expected.append([(d, -s) for s, d in ranked])
        assert index.search_many(queries, k, backend="numpy") == expected
        stopped = [index._search_pruned(np.asarray(index.term_ids(q)), k) for q in queries]
        if k < 10:  # the early stop needs k touched documents: ten rare words seldom have them
            assert sum(s is not None for s in stopped) >= len(queries) // 8  # it did stop
        if bm25._numba_available():
            assert index.search_many(queries, k, backend="numba") == expected


def test_term_maxima_bound_every_weight():
    index = BM25Index.build(_random_corpus(5))
    maxima = index.term_maxima()
    for t in range(len(index.vocab)):
        span = slice(index.indptr[t], index.indptr[t + 1])
        assert maxima[t] == float(index.weights[span].max())


def test_prefetched_results_serve_the_next_single_searches(monkeypatch):
    index = BM25Index.build(_random_corpus(3))
    expected = index.search_with_scores("w1 w2", 5)
    index.prefetch(["w1 w2", "w3", "w1 w2"], 5)

    def no_search(*args, **kwargs):
        raise AssertionError("searched again although the batch answered this query")

    monkeypatch.setattr(index, "search_many", no_search)
    assert index.search_with_scores("w1 w2", 5) == expected
    assert index.search_with_scores("w1 w2", 5) == expected  # served as often as asked


def test_auto_backend_falls_back_to_numpy_without_numba(monkeypatch):
    index = BM25Index.build(_random_corpus(4))
    queries = ["w1 w2", "w3 w5", "nothing"]
    expected = index.search_many(queries, 5, backend="numpy")
    monkeypatch.setitem(sys.modules, "numba", None)  # "import numba" now raises ImportError
    bm25._numba_available.cache_clear()
    try:
        assert bm25.resolve_backend("auto") == "numpy"
        assert index.search_many(queries, 5, backend="auto") == expected
        with pytest.raises(ValueError, match=r"turngym\[fast\]"):
            index.search_many(queries, 5, backend="numba")
    finally:
        bm25._numba_available.cache_clear()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        BM25Index.build(CORPUS).search_many(["apple"], 3, backend="gpu")


def test_index_pickles_without_its_scratch_buffers():
    import pickle

    index = BM25Index.build(CORPUS)
    index.search("apple pie red", 2)  # allocates the per-thread scratch arrays
    copy = pickle.loads(pickle.dumps(index))
    assert copy.search_with_scores("apple pie", 3) == index.search_with_scores("apple pie", 3)
