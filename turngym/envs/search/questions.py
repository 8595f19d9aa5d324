"""Multi-hop questions over the fictional world, and the SQuAD / Search-R1 answer metrics.

Question styles follow HotpotQA (Yang et al., 2018) and 2WikiMultihopQA (Ho et al., 2020):

* **bridge** (2 hops): "What is the city where the director of the film X was born?" — the
  bridge entity (the director) is named only in the first passage.
* **composition** (3-4 hops): the same chain, longer (MuSiQue-style decompositions).
* **comparison** (bridge-comparison, 2 hops per side): "Which was founded earlier: the
  organisation that employs A, or the organisation that employs B?" — the answer is one of the
  two bridge entities, so it never appears in the question.

Metrics are those of SQuAD (Rajpurkar et al., 2016) as used by Search-R1 (Jin et al., 2025,
``verl/utils/reward_score/qa_em.py``): lower-case, drop punctuation and articles, squeeze
whitespace; exact match, substring match and token F1 against the best gold alias.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from turngym.envs.search.world import (
    RELATIONS,
    Entity,
    World,
    anchor_phrase,
    phrase_of,
)

__all__ = ["normalize_answer", "exact_match", "sub_exact_match", "f1_score", "make_question",
           "aliases_of"]  # fmt: skip

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)
# Relations whose value can be compared ("earlier") for comparison questions: bridge -> year.
_COMPARABLE = {"person": "birth_year", "org": "founded", "city": "settled"}
_COMPARE_WORDS = {"birth_year": ("Who was born earlier", "Who was born later"),
                  "founded": ("Which was founded earlier", "Which was founded later"),
                  "settled": ("Which was settled earlier", "Which was settled later")}  # fmt: skip


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, strip punctuation and articles, squeeze whitespace.

    Example:
        >>> normalize_answer("  The Velmora-Institute! ")
        'velmorainstitute'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold, else 0.0.

    Example:
        >>> exact_match("the Orvel", ["Orvel"]), exact_match("Orvel City", ["Orvel"])
        (1.0, 0.0)
    """
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def sub_exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 if any normalised gold is a substring of the normalised prediction (Search-R1 SubEM)."""
    pred = normalize_answer(prediction)
    return float(any(normalize_answer(g) in pred for g in golds if normalize_answer(g)))


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """Best token-level F1 between the prediction and any gold (SQuAD).

    Example:
        >>> round(f1_score("Tomas Verdell Jr", ["Tomas Verdell"]), 3)
        0.8
    """
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def aliases_of(world: World, kind: str, value: Any) -> list[str]:
    """Gold strings for a value: the name plus the short forms a reader would accept."""
    if kind == "year":
        return [str(value)]
    if kind == "country":
        return [str(value), f"Republic of {value}"]
    entity = world.entities[value]
    if kind == "person":
        given, surname = entity.name.split(" ", 1)
        return [entity.name, f"{given[0]}. {surname}"]
    if kind == "city":
        return [entity.name, f"{entity.name} City"]
    return [entity.name]


def _walk(world: World, rng: np.random.Generator, start: Entity, hops: int) -> list[str] | None:
    """Relations of a random ``hops``-step path from ``start`` that never revisits an entity."""
    relations: list[str] = []
    seen, current = {id(start)}, start
    for step in range(hops):
        last = step == hops - 1
        options = [r.name for r in RELATIONS.values() if r.subject == current.kind
                   and (r.entity_valued or last)]  # fmt: skip
        if not options:
            return None
        relation = options[int(rng.integers(len(options)))]
        relations.append(relation)
        if RELATIONS[relation].entity_valued:
            current = world.entities[current.facts[relation]]
            if id(current) in seen:
                return None
            seen.add(id(current))
    return relations


def _wh(relation: str) -> str:
    return "Who is" if RELATIONS[relation].target == "person" else "What is"


def _follow(world: World, anchor: Entity, relations: Sequence[str]) -> list[dict[str, Any]]:
    """The decomposition of a path: one sub-question, answer and gold passage per hop."""
    steps, current, phrase = [], anchor, anchor_phrase(anchor)
    for relation in relations:
        sub = phrase_of(current, relation).format(x=phrase)
        value = world.value_text(current, relation)
        steps.append({"relation": relation, "subject": current.name, "kind": current.subkind,
                      "question": f"{_wh(relation)} {sub}?", "answer": value,
                      "doc": current.doc})  # fmt: skip
        phrase = sub
        if RELATIONS[relation].entity_valued:
            current = world.entities[current.facts[relation]]
    return steps


def _chain_task(world: World, rng: np.random.Generator, hops: int) -> dict[str, Any] | None:
    anchor = world.entities[int(rng.integers(len(world.entities)))]
    relations = _walk(world, rng, anchor, hops)
    if relations is None:
        return None
    steps = _follow(world, anchor, relations)
    last, relation = steps[-1], RELATIONS[relations[-1]]
    holder = anchor
    for r in relations[:-1]:
        holder = world.entities[holder.facts[r]]
    golds = aliases_of(world, relation.target, holder.facts[relations[-1]])
    return {"type": "bridge" if hops == 2 else "composition", "hops": hops,
            "question": last["question"], "answers": golds,
            "paths": [{"anchor": anchor.name, "anchor_title": anchor.title,
                       "kind": anchor.subkind, "steps": steps}],
            "compare": None}  # fmt: skip


def _comparison_task(world: World, rng: np.random.Generator) -> dict[str, Any] | None:
    a = world.entities[int(rng.integers(len(world.entities)))]
    options = [r.name for r in RELATIONS.values() if r.subject == a.kind and r.entity_valued]
    if not options:
        return None
    relation = options[int(rng.integers(len(options)))]
    pool = [i for i in range(len(world.entities)) if world.entities[i].kind == a.kind]
    b = world.entities[pool[int(rng.integers(len(pool)))]]
    ta, tb = world.entities[a.facts[relation]], world.entities[b.facts[relation]]
    attr = _COMPARABLE[ta.kind]
    if a is b or ta is tb or ta.facts[attr] == tb.facts[attr]:
        return None
    earlier = bool(rng.integers(2))
    question_head = _COMPARE_WORDS[attr][0 if earlier else 1]
    pa, pb = (phrase_of(e, relation).format(x=anchor_phrase(e)) for e in (a, b))
    winner = min((ta, tb), key=lambda e: e.facts[attr] * (1 if earlier else -1))
    paths = [{"anchor": e.name, "anchor_title": e.title, "kind": e.subkind,
              "steps": _follow(world, e, [relation, attr])} for e in (a, b)]  # fmt: skip
    return {"type": "comparison", "hops": 2, "question": f"{question_head}: {pa}, or {pb}?",
            "answers": aliases_of(world, winner.kind, world.entities.index(winner)),
            "paths": paths, "compare": "min" if earlier else "max"}  # fmt: skip


def make_question(
    world: World, rng: np.random.Generator, *, max_hops: int = 3, comparison_rate: float = 0.25
) -> dict[str, Any]:
    """Draw one answerable question whose gold answer does not occur in the question.

    Args:
        world: The knowledge base.
        rng: The only source of randomness.
        max_hops: Longest bridge/composition chain (2-4).
        comparison_rate: Share of comparison questions.

    Returns:
        ``{"type", "hops", "question", "answers", "paths", "compare"}``; each path lists its
        anchor and per-hop ``{"relation", "subject", "question", "answer", "doc"}``.
    """
    for _ in range(1000):
        if rng.random() < comparison_rate:
            task = _comparison_task(world, rng)
        else:
            task = _chain_task(world, rng, int(rng.integers(2, max_hops + 1)))
        if task is not None and not _answer_in(task["answers"], task["question"]):
            return task
    raise RuntimeError("make_question: no valid question in 1000 draws")


def _answer_in(golds: Sequence[str], text: str) -> bool:
    """Whether any normalised gold occurs as whole words in the normalised ``text``."""
    haystack = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(g)} " in haystack for g in golds if normalize_answer(g))
