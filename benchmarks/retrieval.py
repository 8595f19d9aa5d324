"""BM25 retrieval speed on a generated 100,000-passage SearchQA corpus (issue 6).

Targets: index build <= 60 s, reload from the disk cache <= 2 s, median query <= 10 ms on one
core. Queries are the oracle's real queries (entity name + relation words, as in Search-R1's
agent loop, Jin et al., 2025). Run ``python benchmarks/retrieval.py [--size N] [--queries Q]``;
the cache lives in a temporary folder, so every run measures a cold build.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import numpy as np


def main() -> None:
    """Build, reload and query the index; print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000, help="passages in the corpus")
    parser.add_argument("--queries", type=int, default=2000, help="timed queries")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TURNGYM_CACHE"] = cache
        from turngym.envs.search.corpus import Corpus
        from turngym.envs.search.world import RELATIONS, get_world
        from turngym.retrieval.bm25 import clear_memory_cache, load_or_build

        start = time.perf_counter()
        world = get_world(0, args.size)
        generate = time.perf_counter() - start
        corpus = Corpus([str(i) for i in range(len(world.titles))], world.titles, world.texts)
        docs = [f"{t}\n{x}" for t, x in zip(corpus.titles, corpus.texts, strict=True)]
        start = time.perf_counter()
        index = load_or_build(docs)
        build = time.perf_counter() - start
        clear_memory_cache()
        start = time.perf_counter()
        index = load_or_build(docs)
        reload = time.perf_counter() - start
        rng = random.Random(0)
        entities = world.entities
        latencies = []
        for _ in range(args.queries):
            entity = entities[rng.randrange(len(entities))]
            words = rng.choice([r.query for r in RELATIONS.values() if r.subject == entity.kind])
            query = f"{entity.name} {words}"
            start = time.perf_counter()
            index.search_with_scores(query, 3)
            latencies.append(time.perf_counter() - start)
    ms = np.array(latencies) * 1000
    rows = [("corpus generation", f"{generate:.2f} s", "-"),
            ("index build (cold, writes cache)", f"{build:.2f} s", "<= 60 s"),
            ("index reload from disk cache", f"{reload:.2f} s", "<= 2 s"),
            ("query latency p50 (top-3)", f"{np.percentile(ms, 50):.2f} ms", "<= 10 ms"),
            ("query latency p99 (top-3)", f"{np.percentile(ms, 99):.2f} ms", "-")]  # fmt: skip
    print(
        f"BM25 over {len(docs):,} passages, {len(index.vocab):,} terms, "
        f"{len(index.doc_ids):,} postings; {args.queries} queries, one thread"
    )
    print(f"| {'step':<34} | {'time':>10} | {'target':>8} |")
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 10}|")
    for name, value, target in rows:
        print(f"| {name:<34} | {value:>10} | {target:>8} |")


if __name__ == "__main__":
    main()
