"""The bounded single-flight cache behind env data and BM25 indexes (issue 18).

A server builds envs and resets them in a pool of threads; a burst of resets on data nobody
has built yet (a corpus, a catalogue, an index) must build it once, not once per thread.
"""

from __future__ import annotations

import threading

import pytest

from turngym._shared_cache import SharedLRU, shared_lru
from turngym.retrieval import bm25


def test_known_answer_lru_order_and_clear():
    calls: list[int] = []

    @shared_lru(maxsize=2)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    assert [double(1), double(2), double(1), double(3)] == [2, 4, 2, 6]  # 3 evicts 2, not 1
    assert calls == [1, 2, 3] and len(double) == 2
    double(1)
    double(2)  # forgotten: computed again
    assert calls == [1, 2, 3, 2]
    double.cache_clear()
    double(1)
    assert calls == [1, 2, 3, 2, 1]
    with pytest.raises(ValueError, match="maxsize"):
        SharedLRU(double, 0)


def _together(n: int, fn, *args) -> list:
    """Call ``fn(*args)`` from ``n`` threads released at once; return the results."""
    start, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        start.wait()
        results[i] = fn(*args)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_misses_of_one_key_compute_it_once():
    calls, release = [], threading.Event()

    @shared_lru(maxsize=4)
    def build(key: str) -> object:
        calls.append(key)
        release.wait(5)  # every other thread asks while this one is still building
        return object()

    timer = threading.Timer(0.3, release.set)
    timer.start()
    results = _together(16, build, "corpus")
    assert calls == ["corpus"] and all(r is results[0] for r in results)


def test_different_keys_build_at_the_same_time_and_failures_are_not_cached():
    both = threading.Barrier(2, timeout=5)  # broken (an error) if the builds were serialised
    failed: list[str] = []

    @shared_lru(maxsize=4)
    def build(key: str) -> str:
        if key == "bad" and not failed:
            failed.append(key)
            raise RuntimeError("the first build of 'bad' fails")
        if key in ("a", "b"):
            both.wait()
        return key.upper()

    results: dict[str, str] = {}
    threads = [threading.Thread(target=lambda k=k: results.update({k: build(k)}))
               for k in ("a", "b")]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"a": "A", "b": "B"}
    with pytest.raises(RuntimeError, match="fails"):
        build("bad")
    assert build("bad") == "BAD"  # the failure was not kept: built again


def test_bm25_indexes_of_one_corpus_are_built_once_under_concurrency(monkeypatch, tmp_path):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path))
    bm25.clear_memory_cache()
    built = []
    real = bm25.BM25Index.build

    def counting(docs, **kwargs):
        built.append(len(docs))
        return real(docs, **kwargs)

    monkeypatch.setattr(bm25.BM25Index, "build", staticmethod(counting))
    docs = [f"passage {i} about topic{i % 7}" for i in range(2000)]
    indexes = _together(12, bm25.load_or_build, docs)
    assert built == [2000] and all(index is indexes[0] for index in indexes)
    bm25.clear_memory_cache()
