"""GuessMyCity: find the hidden world city with yes/no questions.

The procedural, model-free version of LMRL-Gym's *Guess My City* (Abdulhai et al., 2023;
docs/environments.md#twentyquestions-and-guessmycity): the env hides one of 109 large world
cities from a shipped table
(``data/guess_my_city.txt``: country, continent, coordinates, urban population, languages,
capital/coastal/Olympic flags; turngym's own compilation of facts) and a rule-based answerer
replies ``Yes.`` or ``No.`` to exactly the question asked. The questions are derived from the
table: continent, country, hemispheres, tropics, distance from the equator, coast, capital,
Summer Olympics, population bands, official or main languages and first letter. The grammar,
the rewards, the oracle and the leak check are those of
:class:`~turngym.envs.games.guessing.AttributeGuessingGame`.

Example:
    >>> import gymnasium, turngym.envs
    >>> env = gymnasium.make("turngym/GuessMyCity-v0")
    >>> task = {"secret": "Lima", "candidates": ["Lima", "Paris", "Tokyo"]}
    >>> _ = env.reset(options={"task": task})
    >>> print(env.step("<action>Is it in the Northern Hemisphere?</action>")[0].splitlines()[0])
    Is it in the Northern Hemisphere? No.
    >>> env.step("<action>guess: lima</action>")[1:3]
    (1.0, True)
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import ClassVar

from turngym.envs.games.guessing import (
    Attribute,
    AttributeGuessingGame,
    KnowledgeBase,
    normalize,
    read_table,
)

__all__ = ["GuessMyCity", "load_cities"]

_TROPIC = 23.44  # latitude of the tropics of Cancer and Capricorn, degrees
_FAR_FROM_EQUATOR = 40.0
_POPULATION_BANDS = (2, 5, 10, 20)  # millions
_WITH_THE = {
    "United States",
    "United Kingdom",
    "Netherlands",
    "Philippines",
    "United Arab Emirates",
    "Czech Republic",
    "Democratic Republic of the Congo",
}
_FIXED = (
    Attribute("north", "Is it in the Northern Hemisphere?"),
    Attribute("east", "Is it east of the Greenwich meridian?"),
    Attribute("tropics", "Is it in the tropics, between the Tropics of Cancer and Capricorn?"),
    Attribute("far_from_equator", "Is it more than 40 degrees of latitude from the equator?"),
    Attribute("coastal", "Is it on a sea or ocean coast?"),
    Attribute("capital", "Is it the capital of its country?"),
    Attribute("olympics", "Has it hosted the Summer Olympic Games?"),
    *(
        Attribute(f"pop_over_{n}m", f"Do more than {n} million people live in its urban area?")
        for n in _POPULATION_BANDS
    ),
)


def _key(name: str) -> str:
    return normalize(name).replace(" ", "_")


def _city_facts(row: list[str]) -> set[str]:
    """The true keys of one table row (country, continent and languages as keys)."""
    _, country, continent, lat, lon, population, languages, flags = row
    latitude, longitude, millions = float(lat), float(lon), float(population)
    keys = {_key(country), _key(continent), *languages.split(), *flags.split()}
    keys |= {f"pop_over_{n}m" for n in _POPULATION_BANDS if millions > n}
    keys |= {
        name
        for name, true in (
            ("north", latitude > 0),
            ("east", longitude > 0),
            ("tropics", abs(latitude) < _TROPIC),
            ("far_from_equator", abs(latitude) > _FAR_FROM_EQUATOR),
        )
        if true
    }
    return keys


@functools.cache
def load_cities() -> KnowledgeBase:
    """Load the shipped city table and derive every attribute from it.

    Languages become questions only when at least two countries in the table share them
    (otherwise the country question already asks the same thing).
    """
    rows = read_table("guess_my_city.txt")
    if any(len(row) != 8 for row in rows):
        raise ValueError("guess_my_city.txt: every city line needs 8 '|'-separated fields.")
    countries = sorted({row[1] for row in rows})
    continents = sorted({row[2] for row in rows})
    speakers: defaultdict[str, set[str]] = defaultdict(set)
    for row in rows:
        for language in row[6].split():
            speakers[language].add(row[1])
    languages = sorted(lang for lang, where in speakers.items() if len(where) >= 2)
    attributes = [
        *_FIXED,
        *(Attribute(_key(c), f"Is it in {c}?", "continent") for c in continents),
        *(
            Attribute(
                lang, f"Is {lang.capitalize()} an official or main language there?", "language"
            )
            for lang in languages
        ),
        *(
            Attribute(_key(c), f"Is it in {'the ' if c in _WITH_THE else ''}{c}?", "country")
            for c in countries
        ),
    ]
    known = {a.key for a in attributes}
    cities = []
    for row in rows:
        name, *aliases = [n.strip() for n in row[0].split(";")]
        cities.append((name, aliases, _city_facts(row) & known))
    return KnowledgeBase.build(cities, attributes)


class GuessMyCity(AttributeGuessingGame):
    """Guess My City over 109 world cities (LMRL-Gym's game without a language model).

    Knobs and levels are those of
    :class:`~turngym.envs.games.guessing.AttributeGuessingGame`: 0 = 10 shown candidates,
    1 = 25 (default), 2 = 50, 3 = all 109 shown, 4 = all 109 hidden (LMRL-Gym's setting).
    A guess may use the city's name or an alias (``Bombay``), in any case, with or without
    accents.

    Leak check: the city's name and aliases, in any case, accents or spacing and inside
    longer words, never appear in a text the agent sees before it guesses the city (the
    alphabetical candidate list of the instructions excepted).

    Example:
        >>> env = GuessMyCity(level=0)
        >>> obs, info = env.reset(seed=0, options={"split": "test"})
        >>> info["privileged"]["candidates_left"]
        10
    """

    family: ClassVar[str] = "guessmycity"
    thing: ClassVar[str] = "city"
    title: ClassVar[str] = "Guess My City"
    hidden_hint: ClassVar[str] = "It is one of the world's large or well-known cities."
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>ask: europe</action>",
        "<action>Is it the capital of its country?</action>",
        "<action>guess: NAME</action>",
    )

    @classmethod
    def knowledge_base(cls) -> KnowledgeBase:
        """The shipped cities (cached)."""
        return load_cities()
