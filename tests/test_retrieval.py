"""Known-answer and cache tests for turngym.retrieval.bm25 (Robertson & Zaragoza, 2009)."""

from __future__ import annotations

import math

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
