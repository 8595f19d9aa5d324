"""A procedural knowledge base of fictional entities, rendered as a passage corpus.

The design follows the multi-hop datasets the search-agent papers train on: HotpotQA (Yang et
al., 2018) and 2WikiMultihopQA (Ho et al., 2020) build questions from facts split across
Wikipedia paragraphs; Search-R1 (Jin et al., 2025) retrieves such paragraphs with BM25 or e5.
Here the "Wikipedia" is invented (:mod:`turngym.envs.search.names`): people, organisations,
cities and works with attributes and relations, one passage per entity (facts shuffled, each
phrased with one of several templates), plus distractor passages (people sharing a surname,
works sharing a title, "people from" lists, surname pages, festival pages) that make BM25 rank
confusable passages next to the right one.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from typing import Any

from turngym._shared_cache import shared_lru
from turngym.envs.search.names import NameMaker

__all__ = ["RELATIONS", "Relation", "Entity", "World", "get_world", "extract_fact"]


@dataclass(frozen=True, slots=True)
class Relation:
    """One fact type: who has it, what its value is, and how text and questions phrase it.

    Attributes:
        name: Key in :attr:`Entity.facts`.
        subject: Entity kind that has the fact.
        target: Entity kind of the value, or ``"year"``/``"country"`` for a plain attribute.
        phrase: Question noun phrase around ``{x}`` (the subject's phrase).
        templates: Sentences stating the fact (``{s}`` subject name, ``{v}`` value).
        query: Words an oracle adds to the subject's name when it searches for the fact.
    """

    name: str
    subject: str
    target: str
    phrase: str
    templates: tuple[str, ...]
    query: str

    @property
    def entity_valued(self) -> bool:
        """Whether the value is another entity (a bridge) rather than an attribute."""
        return self.target in ("person", "org", "city")


_CREATOR_TEMPLATES = {
    "film": ("{s} is a film directed by {v}.", "{v} directed the film {s}."),
    "novel": ("{s} is a novel written by {v}.", "{v} wrote the novel {s}."),
    "album": ("{s} is an album recorded by {v}.", "{v} recorded the album {s}."),
}
_CREATOR_PHRASE = {"film": "the director of {x}", "novel": "the author of {x}",
                   "album": "the artist who recorded {x}"}  # fmt: skip
WORK_KINDS: tuple[str, ...] = ("film", "novel", "album")

RELATIONS: dict[str, Relation] = {r.name: r for r in (
    Relation("birthplace", "person", "city", "the city where {x} was born",
             ("{s} was born in the city of {v}.", "{s}'s birthplace is {v}.",
              "The hometown of {s} is {v}."), "born city birthplace"),
    Relation("employer", "person", "org", "the organisation that employs {x}",
             ("{s} works for {v}.", "{s} is employed by {v}.", "{s} holds a position at {v}."),
             "works employed position"),
    Relation("birth_year", "person", "year", "the year in which {x} was born",
             ("{s} was born in the year {v}.", "The birth year of {s} is {v}."), "born year"),
    Relation("founder", "org", "person", "the person who founded {x}",
             ("{s} was founded by {v}.", "{v} founded {s}."), "founded by"),
    Relation("hq", "org", "city", "the city where {x} is headquartered",
             ("{s} is headquartered in {v}.", "The headquarters of {s} are in {v}."),
             "headquartered headquarters"),
    Relation("founded", "org", "year", "the year in which {x} was founded",
             ("{s} was founded in {v}.", "{s} was established in the year {v}."),
             "founded established year"),
    Relation("country", "city", "country", "the country in which {x} lies",
             ("{s} is a city in {v}.", "{s} lies in the country of {v}."), "city country"),
    Relation("settled", "city", "year", "the year in which {x} was first settled",
             ("{s} was first settled in {v}.", "The settlement of {s} dates to {v}."),
             "settled settlement"),
    Relation("creator", "work", "person", "", (), "directed written recorded by"),
    Relation("release", "work", "year", "the year in which {x} was released",
             ("{s} was released in {v}.", "{s} first appeared in {v}."), "released appeared"),
)}  # fmt: skip
_OCCUPATIONS = tuple(
    "painter engineer historian composer surveyor botanist architect cartographer physician "
    "weaver astronomer poet".split()
)


@dataclass(slots=True)
class Entity:
    """One fictional entity; entity-valued facts hold the index of the target entity."""

    kind: str
    name: str
    title: str
    subkind: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    doc: int = -1


def templates_of(entity: Entity, relation: str) -> tuple[str, ...]:
    """The sentence templates of ``relation`` for ``entity`` (works depend on their kind)."""
    if relation == "creator":
        return _CREATOR_TEMPLATES[entity.subkind]
    return RELATIONS[relation].templates


def phrase_of(entity: Entity, relation: str) -> str:
    """The question noun phrase of ``relation`` (around ``{x}``) for ``entity``."""
    if relation == "creator":
        return _CREATOR_PHRASE[entity.subkind]
    return RELATIONS[relation].phrase


def anchor_phrase(entity: Entity) -> str:
    """How a question names ``entity``: ``the film Glass Harbor``, ``the city of Orvel``..."""
    if entity.kind == "work":
        return f"the {entity.subkind} {entity.name}"
    if entity.kind == "city":
        return f"the city of {entity.name}"
    return entity.name


@dataclass(slots=True)
class World:
    """The entities and the passages (title, text) rendered from them."""

    seed: int
    size: int
    entities: list[Entity]
    titles: list[str]
    texts: list[str]

    def value_text(self, entity: Entity, relation: str) -> str:
        """The surface string of a fact's value (an entity's name, or the attribute)."""
        value = entity.facts[relation]
        return self.entities[value].name if RELATIONS[relation].entity_valued else str(value)


def _draw_entities(rng: random.Random, size: int) -> list[Entity]:
    names = NameMaker(rng)
    n_city, n_org = max(8, size // 25), max(6, size // 10)
    n_person, n_work = max(20, size * 2 // 5), max(10, size // 4)
    countries = [names.place() for _ in range(max(4, n_city // 8))]
    cities = [Entity("city", n, n) for n in (names.place() for _ in range(n_city))]
    orgs = [Entity("org", n, n) for n in (names.org() for _ in range(n_org))]
    surnames = [names.word(2) for _ in range(max(5, n_person // 4))]
    people = [Entity("person", n, n) for n in (names.person(surnames) for _ in range(n_person))]
    works: list[Entity] = []
    work_titles: set[str] = set()
    for _ in range(n_work):
        kind = rng.choice(WORK_KINDS)
        twin = rng.choice(works) if works and rng.random() < 0.15 else None  # a title clash
        name = twin.name if twin is not None else names.title()
        if f"{name} ({kind})" in work_titles:
            name = names.title()
        work_titles.add(f"{name} ({kind})")
        works.append(Entity("work", name, f"{name} ({kind})", subkind=kind))
    entities = cities + orgs + people + works
    base_org, base_person = n_city, n_city + n_org
    for city in cities:
        city.facts = {"country": rng.choice(countries), "settled": rng.randint(1000, 1800),
                      "population": rng.randint(2, 900) * 1000}  # fmt: skip
    for org in orgs:
        org.facts = {"founder": base_person + rng.randrange(n_person),
                     "hq": rng.randrange(n_city), "founded": rng.randint(1800, 2000)}  # fmt: skip
    for person in people:
        person.facts = {"birthplace": rng.randrange(n_city),
                        "employer": base_org + rng.randrange(n_org),
                        "birth_year": rng.randint(1850, 1995),
                        "occupation": rng.choice(_OCCUPATIONS)}  # fmt: skip
    for work in works:
        work.facts = {"creator": base_person + rng.randrange(n_person),
                      "release": rng.randint(1920, 2022)}  # fmt: skip
    return entities


def _render(rng: random.Random, entities: list[Entity], entity: Entity) -> str:
    sentences = []
    for relation in sorted(entity.facts):
        if relation == "occupation":
            sentences.append(f"{entity.name} is a {entity.facts[relation]} by profession.")
        elif relation == "population":
            sentences.append(f"{entity.name} has about {entity.facts[relation]} inhabitants.")
        else:
            value = entity.facts[relation]
            text = entities[value].name if RELATIONS[relation].entity_valued else str(value)
            template = rng.choice(templates_of(entity, relation))
            sentences.append(template.format(s=entity.name, v=text))
    rng.shuffle(sentences)
    return " ".join(sentences)


def _distractors(rng: random.Random, entities: list[Entity], count: int) -> list[tuple[str, str]]:
    """Lists of people by city and by surname, and festival pages: names without the facts."""
    by_city: dict[int, list[str]] = {}
    by_surname: dict[str, list[str]] = {}
    for e in entities:
        if e.kind == "person":
            by_city.setdefault(e.facts["birthplace"], []).append(e.name)
            by_surname.setdefault(e.name.split()[-1], []).append(e.name)
    docs = []
    for city, people in sorted(by_city.items()):
        listed = ", ".join(people[:6])
        docs.append(
            (
                f"People from {entities[city].name}",
                f"Notable people associated with {entities[city].name} include {listed}.",
            )
        )
    for surname, people in sorted(by_surname.items()):
        docs.append((f"{surname} (surname)", f"{surname} is a family name. People with the "
                     f"name include {', '.join(people[:6])}."))  # fmt: skip
    cities = [e.name for e in entities if e.kind == "city"]
    while len(docs) < count:
        word = NameMaker(rng).word(2)
        home = rng.choice(cities)
        docs.append(
            (
                f"{word} Festival",
                f"The {word} Festival is a yearly fair held in {home}. "
                f"It draws visitors from across the region every {rng.choice(_SEASONS)}.",
            )
        )
    rng.shuffle(docs)
    return docs[:count]


_SEASONS = ("spring", "summer", "autumn", "winter")


@shared_lru(maxsize=8)  # concurrent resets on one new world build it once
def get_world(seed: int = 0, size: int = 5000) -> World:
    """Return the world of ``(seed, size)``: ``size`` passages (built once per process).

    Example:
        >>> world = get_world(0, 500)
        >>> len(world.texts), world.texts == get_world(0, 500).texts
        (500, True)
    """
    rng = random.Random(f"searchqa-world/{int(seed)}/{int(size)}")
    entities = _draw_entities(rng, size)
    titles: list[str] = []
    texts: list[str] = []
    for entity in entities[:size]:
        entity.doc = len(titles)
        titles.append(entity.title)
        texts.append(_render(rng, entities, entity))
    for title, text in _distractors(rng, entities, size - len(titles)):
        titles.append(title)
        texts.append(text)
    return World(int(seed), int(size), entities, titles, texts)


@functools.lru_cache(maxsize=256)
def _fact_patterns(subject: str, relation: str, kind: str) -> tuple[re.Pattern[str], ...]:
    entity = Entity("work" if kind else RELATIONS[relation].subject, subject, subject, kind)
    patterns = []
    for template in templates_of(entity, relation):
        parts = [re.escape(p) for p in template.split("{v}")]
        regex = r"(?<![^\s.])" + r"([^.]+?)".join(parts).replace(re.escape("{s}"), "{s}")
        patterns.append(re.compile(regex.replace("{s}", re.escape(subject))))
    return tuple(patterns)


def extract_fact(text: str, subject: str, relation: str, work_kind: str = "") -> str | None:
    """Read the value of ``relation`` for ``subject`` from passage ``text``, or ``None``.

    This is how the oracle *reads* retrieved passages: it matches the fact templates with the
    value left open, so it learns a bridge entity only from text the retriever returned.

    Example:
        >>> extract_fact("Ann Bo works for Velmo Guild. Ann Bo is a poet.", "Ann Bo", "employer")
        'Velmo Guild'
    """
    for pattern in _fact_patterns(subject, relation, work_kind):
        match = pattern.search(text)
        if match:
            return match.group(1).strip()
    return None
