r"""Passage corpora for SearchQA: generated or user-supplied, BM25-indexed, served like Search-R1.

A :class:`Corpus` is a list of passages ``(id, title, text)`` with a BM25 index from
:mod:`turngym.retrieval.bm25` (built once, cached on disk under ``$TURNGYM_CACHE`` and shared
by every env instance of the process; the process keeps its few most recently used corpora).
Search results are rendered exactly as Search-R1 (Jin et al., 2025,
``search_r1/llm_agent/generation.py``) shows them::

    Doc 1(Title: Glass Harbor (film)) Glass Harbor is a film directed by Tomas Verdell. ...

and :func:`search_r1_retrieve` answers Search-R1's retrieval-server request
(``search_r1/search/retrieval_server.py``): ``{"queries": [...], "topk": k,
"return_scores": bool}`` -> ``{"result": [[{"document": {"id", "contents"}, "score"}, ...]]}``
(without scores, each hit is the bare document), where ``contents`` is
``'"Title"\nText'`` as in Search-R1's wiki-18 corpus.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.retrieval.bm25 import BM25Index, load_or_build
from turngym.tasks import SPLITS, read_json_objects, split_of

__all__ = ["Corpus", "get_corpus", "generated_corpus", "load_corpus_file", "load_qa_file",
           "search_r1_retrieve", "MAX_TOPK"]  # fmt: skip

MAX_TOPK = 50
"""The most documents one ``/retrieve`` query may ask for."""
_MAX_QUERIES = 256
_CORPORA: OrderedDict[tuple[Any, ...], Corpus] = OrderedDict()
_LOCK = threading.Lock()
_KEEP = 4  # corpora kept per process, least recently used forgotten first


@dataclass(eq=False)
class Corpus:
    """Passages plus their BM25 index (built lazily, then shared)."""

    ids: list[str]
    titles: list[str]
    texts: list[str]
    _index: BM25Index | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> BM25Index:
        """The BM25 index over ``title + text`` (disk-cached by content hash)."""
        if self._index is None:
            docs = [f"{t}\n{x}" for t, x in zip(self.titles, self.texts, strict=True)]
            self._index = load_or_build(docs)
        return self._index

    def search(self, query: str, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` best passages for ``query`` as ``(position, BM25 score)``, best first."""
        return self.index.search_with_scores(query[:1000], k)

    def contents(self, position: int) -> str:
        r"""Search-R1's ``contents`` string of a passage: ``'"Title"\nText'``."""
        return f'"{self.titles[position]}"\n{self.texts[position]}'

    def render(self, positions: Sequence[int]) -> str:
        """Search-R1's rendering of retrieved passages, ``Doc i(Title: ...) text`` lines."""
        return "".join(f"Doc {i}(Title: {self.titles[p]}) {self.texts[p]}\n"
                       for i, p in enumerate(positions, 1))  # fmt: skip


def generated_corpus(seed: int, size: int) -> Corpus:
    """The corpus of the generated world ``(seed, size)``, shared per process."""
    from turngym.envs.search.world import get_world

    def build() -> Corpus:
        world = get_world(seed, size)
        return Corpus([str(i) for i in range(len(world.titles))], world.titles, world.texts)

    return _shared(("generated", int(seed), int(size)), build)


def get_corpus(corpus_file: str | Path | None, seed: int, size: int) -> Corpus:
    """The user's corpus when ``corpus_file`` is given, else the generated one."""
    if corpus_file is None:
        return generated_corpus(seed, size)
    path = Path(corpus_file).resolve()
    stat = path.stat()
    return _shared(("file", str(path), stat.st_mtime_ns, stat.st_size),
                   lambda: load_corpus_file(path))  # fmt: skip


def _shared(key: tuple[Any, ...], build: Any) -> Corpus:
    """The corpus of ``key``: kept if recently used, else built (a bounded LRU)."""
    with _LOCK:
        corpus = _CORPORA.get(key)
        if corpus is None:
            corpus = _CORPORA[key] = build()
        _CORPORA.move_to_end(key)
        while len(_CORPORA) > _KEEP:
            _CORPORA.popitem(last=False)
    return corpus


def load_corpus_file(path: str | Path) -> Corpus:
    r"""Load a corpus JSONL of passages.

    Each line is ``{"id", "title", "text"}``, or Search-R1's
    ``{"id", "contents": '"Title"\nText'}``.

    Raises:
        ValueError: A malformed line (with its number), or an empty file.
    """
    path = Path(path)
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    for number, row in read_json_objects(path):
        if "contents" in row and "text" not in row:
            title, _, text = str(row["contents"]).partition("\n")
            row = {**row, "title": title.strip('"'), "text": text}
        if not isinstance(row.get("text"), str):
            raise ValueError(f"{path}:{number}: a passage needs a string 'text' (or 'contents').")
        ids.append(str(row.get("id", len(ids))))
        titles.append(str(row.get("title", "")))
        texts.append(row["text"])
    if not ids:
        raise ValueError(f"{path}: the corpus has no passages.")
    return Corpus(ids, titles, texts)


def load_qa_file(path: str | Path, corpus: Corpus) -> dict[str, list[dict[str, Any]]]:
    """Load HotpotQA-style questions as SearchQA tasks, grouped by split.

    Each line is ``{"question", "answer" or "answers", "supporting_facts"?, "type"?,
    "split"?}``; ``supporting_facts`` is HotpotQA's ``[[title, sentence index], ...]`` (or a
    list of titles) and becomes the gold passage positions. Lines without a split are assigned
    by content hash (:func:`turngym.tasks.split_of`), so splits stay disjoint.

    Raises:
        ValueError: A line without a question or an answer, or with an unknown split.
    """
    path = Path(path)
    by_title: dict[str, int] = {}
    for position, title in enumerate(corpus.titles):
        by_title.setdefault(title, position)
    by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for number, row in read_json_objects(path):
        answers = row.get("answers", row.get("answer"))
        answers = [answers] if isinstance(answers, str) else answers
        if not isinstance(row.get("question"), str) or not answers:
            raise ValueError(f"{path}:{number}: needs 'question' and 'answer' or 'answers'.")
        facts = row.get("supporting_facts") or []
        titles = [f[0] if isinstance(f, list | tuple) else f for f in facts]
        docs = sorted({by_title[t] for t in titles if t in by_title})
        task = {"type": str(row.get("type", "user")), "hops": max(1, len(docs)),
                "question": row["question"], "answers": [str(a) for a in answers],
                "paths": [], "compare": None, "supporting": docs}  # fmt: skip
        split = row.get("split", split_of(task))
        if split not in by_split:
            raise ValueError(f"{path}:{number}: unknown split {split!r}.")
        by_split[split].append(task)
    return by_split


def search_r1_retrieve(request: Mapping[str, Any], corpus: Corpus | None = None) -> dict:
    """Answer a Search-R1 ``POST /retrieve`` request over ``corpus`` (default: generated).

    Args:
        request: ``{"queries": [str, ...], "topk": int (default 3), "return_scores": bool}``.
        corpus: The passages to search (default: the generated corpus of seed 0, 5,000).

    Returns:
        ``{"result": [[hit, ...] per query]}`` where a hit is ``{"document": {"id",
        "contents"}, "score": float}`` with ``return_scores``, else the bare document.

    Raises:
        ValueError: A malformed request (what is wrong, in words).

    Example:
        >>> reply = search_r1_retrieve({"queries": ["film directed"], "topk": 2})
        >>> len(reply["result"][0]), sorted(reply["result"][0][0])
        (2, ['contents', 'id'])
    """
    if not isinstance(request, Mapping):
        raise ValueError("the request must be a JSON object")
    queries, topk = request.get("queries"), request.get("topk", 3)
    scores = request.get("return_scores", False)
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError("'queries' must be a list of strings")
    if len(queries) > _MAX_QUERIES:
        raise ValueError(f"at most {_MAX_QUERIES} queries per request")
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= MAX_TOPK:
        raise ValueError(f"'topk' must be an integer from 1 to {MAX_TOPK}")
    if not isinstance(scores, bool):
        raise ValueError("'return_scores' must be true or false")
    corpus = corpus if corpus is not None else generated_corpus(0, 5000)
    result = []
    for query in queries:
        hits = []
        for position, score in corpus.search(query, topk):
            doc = {"id": corpus.ids[position], "contents": corpus.contents(position)}
            hits.append({"document": doc, "score": score} if scores else doc)
        result.append(hits)
    return {"result": result}
