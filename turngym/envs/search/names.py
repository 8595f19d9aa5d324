"""Invented names from our own syllable generator, so no entity exists in any pretrained model.

Search-R1 (Jin et al., 2025) is hard because the answer must be *found*, not remembered; a
procedural corpus keeps that property only if its entities are fictional. Every name here is
built from onset + vowel + coda syllables drawn with a caller-owned ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["NameMaker"]

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p",
           "qu", "r", "s", "sh", "st", "t", "th", "tr", "v", "w", "z")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia", "y")
_CODAS = ("", "", "", "n", "r", "l", "s", "th", "m", "nd", "rk", "x", "v")
_ORG_SUFFIXES = ("Institute", "Works", "Company", "Foundation", "Guild", "Society", "Press",
                 "Laboratories", "Trust", "Collective")  # fmt: skip
_TITLE_NOUNS = tuple(
    "Harbor Garden Winter Lantern River Echo Crown Mirror Orchard Signal Tide Ember Meadow "
    "Citadel Voyage Hollow".split()
)


class NameMaker:
    """Draws unique invented names of several kinds from one seeded generator.

    Example:
        >>> maker = NameMaker(random.Random(0))
        >>> name = maker.person()
        >>> len(name.split()), name == maker.person()
        (2, False)
    """

    def __init__(self, rng: random.Random) -> None:
        """Use ``rng`` (owned by the caller) for every draw."""
        self.rng = rng
        self.taken: set[str] = set()

    def word(self, syllables: int) -> str:
        """Return one capitalised invented word of ``syllables`` syllables (not unique)."""
        rng = self.rng
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                 for _ in range(syllables)]  # fmt: skip
        return "".join(parts).capitalize()

    def unique(self, make: Callable[[], str]) -> str:
        """Call ``make()`` until it returns a name not drawn before."""
        for _ in range(1000):
            name = make()
            if name not in self.taken and name.lower() not in self.taken:
                self.taken.update((name, name.lower()))
                return name
        raise RuntimeError("NameMaker: name space exhausted")

    def person(self, surnames: list[str] | None = None) -> str:
        """A unique ``Given Surname``; the surname comes from ``surnames`` when given."""

        def make() -> str:
            surname = self.rng.choice(surnames) if surnames else self.word(2)
            return f"{self.word(self.rng.choice((1, 2)))} {surname}"

        return self.unique(make)

    def place(self) -> str:
        """A unique one-word place name."""
        return self.unique(lambda: self.word(self.rng.choice((2, 3))))

    def org(self) -> str:
        """A unique organisation name such as ``Velmora Institute``."""
        return self.unique(lambda: f"{self.word(2)} {self.rng.choice(_ORG_SUFFIXES)}")

    def title(self) -> str:
        """A work title such as ``Glass Harbor`` (titles may repeat across kinds)."""
        return self.unique(lambda: f"{self.word(2)} {self.rng.choice(_TITLE_NOUNS)}")
