"""BM25 over a generated 100,000-passage SearchQA corpus: turngym's index next to bm25s.

Rows (one thread, top-3, medians of ``--repeats``):

* turngym, numpy backend: one query at a time (``search_with_scores``) and batched
  (``search_many``); turngym, numba backend (the ``fast`` extra): batched.
* bm25s (Lù, 2024, arXiv:2407.03618) when installed, numpy and numba backends, batched
  ``retrieve(..., n_threads=1)``. It indexes turngym's own tokens, so both libraries index the
  same postings and must return the same documents (the "same top-3" column).

Queries are the SearchQA oracle's real queries (entity name + relation words, as in
Search-R1's agent loop, Jin et al., 2025). Memory is the resident set size after indexing
minus before, in a fresh process per library, with the token lists dropped and garbage
collected (what a process keeps). Targets (issue 22): the numba backend >= bm25s+numba's
batched queries/s, numpy >= 3x bm25s numpy's, memory <= bm25s's. The machine may be shared
with other jobs: time is the process's CPU time (all its threads).

    python benchmarks/retrieval.py [--size 100000] [--queries 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def corpus_and_queries(size: int, n_queries: int) -> tuple[list[str], list[str]]:
    """The SearchQA passages (title + text) and oracle-style queries."""
    from turngym.envs.search.world import RELATIONS, get_world

    world = get_world(0, size)
    docs = [f"{t}\n{x}" for t, x in zip(world.titles, world.texts, strict=True)]
    rng, queries = random.Random(0), []
    for _ in range(n_queries):
        entity = world.entities[rng.randrange(len(world.entities))]
        words = rng.choice([r.query for r in RELATIONS.values() if r.subject == entity.kind])
        queries.append(f"{entity.name} {words}")
    return docs, queries


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rate(run, n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()  # every thread's CPU time: a library may use workers
        run()
        times.append(time.process_time() - start)
    return n / statistics.median(times)


def child(library: str, size: int, n_queries: int, repeats: int) -> dict:
    """Build one library's index in this (fresh) process; return its figures."""
    from turngym.retrieval.bm25 import BM25Index, tokenize

    docs, queries = corpus_and_queries(size, n_queries)
    gc.collect()
    before, start = rss_mb(), time.perf_counter()
    if library == "turngym":
        index = BM25Index.build(docs)
        build = time.perf_counter() - start
        gc.collect()
        out = {"build_s": build, "memory_mb": rss_mb() - before}
        index.search_many(queries[:8], 3, backend="numba")  # compile (cached on disk) first
        from turngym.retrieval import bm25

        bm25.DEFAULT_BACKEND = "numpy"  # what one search at a time uses
        out["single"] = _rate(lambda: [index.search_with_scores(q, 3) for q in queries],
                              n_queries, repeats)  # fmt: skip
        for backend in ("numpy", "numba"):
            out[backend] = _rate(lambda b=backend: index.search_many(queries, 3, backend=b),
                                 n_queries, repeats)  # fmt: skip
        hits = index.search_many(queries, 3)
        out["top3"], out["scores3"] = (
            [[d for d, _ in h] for h in hits],
            [[s for _, s in h] for h in hits],
        )
        return out
    import bm25s

    tokens = [tokenize(d) for d in docs]
    start = time.perf_counter()
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(tokens, show_progress=False)
    build = time.perf_counter() - start
    del tokens
    gc.collect()
    out = {"build_s": build, "memory_mb": rss_mb() - before}
    query_tokens = [tokenize(q) or ["<empty>"] for q in queries]
    for backend in ("numpy", "numba"):
        retriever.backend = backend

        def run(b=backend):
            return retriever.retrieve(query_tokens, k=3, backend_selection=b, n_threads=1,
                                      show_progress=False)  # fmt: skip

        run()  # numba compiles on the first call
        out[backend] = _rate(run, n_queries, repeats)
    retriever.backend = "numpy"
    found, scores = run("numpy")
    out["top3"] = found.tolist()
    out["scores3"] = scores.tolist()
    return out


def main() -> None:
    """Run each library in its own process and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="passages in the corpus")
    parser.add_argument("--queries", type=int, default=2000, help="queries per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.queries, args.repeats)))
        return
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TURNGYM_CACHE": cache}
        for library in ("turngym", "bm25s"):
            cmd = [sys.executable, __file__, "--child", library, "--size", str(args.size),
                   "--queries", str(args.queries), "--repeats", str(args.repeats)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if done.returncode:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                results[library] = {"error": last[:90]}
            else:
                results[library] = json.loads(done.stdout.strip().splitlines()[-1])
    ours, peer = results["turngym"], results["bm25s"]
    print(f"BM25 over {args.size:,} passages, {args.queries:,} queries, top-3, one thread, "
          f"medians of {args.repeats} (process CPU time; the machine may be shared)\n")  # fmt: skip
    print("| library | backend | queries/s | build s | memory after indexing MB |")
    print("|---|---|---:|---:|---:|")
    mem, build = f"{ours['memory_mb']:.0f}", f"{ours['build_s']:.1f}"
    print(f"| turngym | numpy, one query at a time | {ours['single']:,.0f} | {build} | {mem} |")
    print(f"| turngym | numpy, search_many | {ours['numpy']:,.0f} | {build} | {mem} |")
    print(f"| turngym | numba, search_many | {ours['numba']:,.0f} | {build} | {mem} |")
    if "error" in peer:
        print(f"| bm25s | - | skipped: {peer['error']} | - | - |")
        return
    pm, pb = f"{peer['memory_mb']:.0f}", f"{peer['build_s']:.1f}"
    print(f"| bm25s | numpy, retrieve | {peer['numpy']:,.0f} | {pb} | {pm} |")
    print(f"| bm25s | numba, retrieve | {peer['numba']:,.0f} | {pb} | {pm} |")
    # bm25s's "lucene" scores leave out Lucene's constant factor (k1 + 1); rankings are the same
    # up to the order of tied documents (turngym: by document id; bm25s: unspecified).
    agree = [
        len(a) == len(b) and np.allclose(np.array(a) / 2.5, b[: len(a)], rtol=1e-5)
        for a, b in zip(ours["scores3"], peer["scores3"], strict=True)
    ]
    same = np.mean([a == b for a, b in zip(ours["top3"], peer["top3"], strict=True)])
    print(f"\nratios: numba {ours['numba'] / peer['numba']:.2f}x bm25s+numba (target >= 1), "
          f"numpy {ours['numpy'] / peer['numpy']:.2f}x bm25s numpy (target >= 3), memory "
          f"{ours['memory_mb'] / peer['memory_mb']:.2f}x (target <= 1)\nsame top-3 scores "
          f"(bm25s / 2.5) for {np.mean(agree):.1%} of the queries; same documents in the same "
          f"order for {same:.1%} (otherwise: tied documents in another order)")  # fmt: skip


if __name__ == "__main__":
    main()
