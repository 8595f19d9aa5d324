"""Procedural movie catalogue, latent-factor users, title matching and ranking metrics.

Everything the recommendation envs share, all drawn from seeded ``numpy`` Generators:

* **Catalogue.** Invented titles from our own word lists (``"Glass Harbor (1987)"``), a
  release year, one to three genres, and a latent vector per item: the mean of its genres'
  prototype vectors plus Gaussian noise (so genres shown to the agent carry real signal).
* **Users.** A latent preference vector: a weighted mix of one to three favourite genres'
  prototypes plus noise. The true utility of item ``i`` for user ``u`` is the dot product
  ``s(u, i) = <u, v_i>``; a user's history is drawn without replacement from
  ``softmax(s / temperature)`` over the catalogue, and the relevant set of a candidate pool is
  its top-``R`` items by ``s`` (plus optional Gaussian noise, the user's drift between history
  and future).
* **Titles.** :func:`normalize_title` and :class:`TitleIndex` match what a language model
  writes to catalogue entries: case, accents, punctuation and spacing are ignored, the
  ``(Year)`` suffix is optional when the bare title is unique, and MovieLens's trailing
  articles (``"Matrix, The (1999)"``) also match ``"The Matrix"``.
* **Metrics.** Per-rank hits, Recall@k and NDCG@k with binary relevance (Järvelin &
  Kekäläinen, 2002, "Cumulated gain-based evaluation of IR techniques", ACM TOIS 20(4)), in
  the exact form of Rank-GRPO's evaluation (Zhu et al., ConvRec-R1).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from turngym._shared_cache import shared_lru

__all__ = [
    "GENRES",
    "Catalogue",
    "make_catalogue",
    "make_titles",
    "draw_user",
    "normalize_title",
    "TitleIndex",
    "split_ranked_list",
    "rank_hits",
    "rank_gains",
    "recall_at_k",
    "ndcg_at_k",
]

GENRES: tuple[str, ...] = (
    "action", "adventure", "animation", "comedy", "crime", "documentary",
    "drama", "fantasy", "horror", "romance", "sci-fi", "thriller",
)  # fmt: skip
"""The genres of the synthetic catalogue."""

_ADJECTIVES = (
    "amber", "broken", "crimson", "distant", "electric", "fallen", "forgotten", "glass",
    "golden", "hidden", "hollow", "iron", "last", "lonely", "midnight", "northern", "paper",
    "quiet", "restless", "scarlet", "secret", "silent", "silver", "sleeping", "stolen",
    "strange", "sudden", "summer", "velvet", "wandering", "wild", "winter", "wooden", "burning",
    "frozen", "painted", "bitter", "endless", "hungry", "lucky",
)  # fmt: skip
_NOUNS = (
    "harbor", "letters", "garden", "signal", "river", "empire", "orchard", "station", "mirror",
    "frontier", "lantern", "city", "engine", "island", "canyon", "choir", "highway", "orbit",
    "kingdom", "circus", "lighthouse", "season", "compass", "machine", "forest", "ballroom",
    "citadel", "voyage", "masquerade", "archive", "bridge", "meadow", "tide", "crown",
    "carnival", "tower", "desert", "echo", "horizon", "promise",
)  # fmt: skip
_TITLE_FORMS = ("{A} {N}", "The {A} {N}", "{N} of the {A} {M}", "A {A} {N}")

_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(.*), (the|a|an)$", re.IGNORECASE)
_ENUMERATION = re.compile(r"^\s*(?:(?:no\.?\s*|#)?\d{1,3}\s*[.):\]-]+|[-*\u2022]+)\s*")
_GENRE_TAIL = re.compile(r"\s*[\[|\u2014].*$")
_ID_ITEM = re.compile(r"^#?\s*i(\d{1,5})$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """A synthetic catalogue: per item a title with year, genres and a latent vector.

    Attributes:
        titles: ``"Title (Year)"`` strings, unique.
        genres: Per item, its genres (sorted tuple).
        vectors: ``(n_items, dim)`` latent item vectors.
        prototypes: ``(len(GENRES), dim)`` genre prototype vectors.
    """

    titles: tuple[str, ...]
    genres: tuple[tuple[str, ...], ...]
    vectors: np.ndarray
    prototypes: np.ndarray


def make_titles(rng: np.random.Generator, n: int) -> list[str]:
    """Draw ``n`` distinct ``"Title (Year)"`` strings from the word lists (years 1950-2023)."""
    titles: list[str] = []
    seen: set[str] = set()
    while len(titles) < n:
        form = _TITLE_FORMS[int(rng.integers(len(_TITLE_FORMS)))]
        a, n1, n2 = (int(x) for x in rng.integers(len(_NOUNS), size=3))
        text = form.format(A=_ADJECTIVES[a].title(), N=_NOUNS[n1].title(), M=_NOUNS[n2].title())
        if text.startswith("A ") and text[2] in "AEIOU":
            text = "An" + text[1:]
        base = normalize_title(text)
        if base in seen:
            continue
        seen.add(base)
        titles.append(f"{text} ({1950 + int(rng.integers(74))})")
    return titles


@shared_lru(maxsize=8)  # concurrent builds of one new catalogue build it once
def make_catalogue(seed: int, n_items: int, dim: int = 16, item_noise: float = 0.5) -> Catalogue:
    """Build (and cache) the catalogue of ``seed``; the same arguments give the same catalogue.

    Args:
        seed: Seed of the catalogue's own Generator.
        n_items: Number of items (at most 4,000: titles must stay unique).
        dim: Latent dimension.
        item_noise: Standard deviation of the per-item noise added to the genre mean.
    """
    rng = np.random.default_rng(np.random.SeedSequence([0x5EC12EC, seed, n_items, dim]))
    prototypes = rng.normal(size=(len(GENRES), dim)) / math.sqrt(dim) * 2.0
    titles = make_titles(rng, n_items)
    genres, vectors = [], np.empty((n_items, dim))
    for i in range(n_items):
        count = 1 + int(rng.choice(3, p=(0.45, 0.4, 0.15)))
        chosen = sorted(int(g) for g in rng.choice(len(GENRES), size=count, replace=False))
        genres.append(tuple(GENRES[g] for g in chosen))
        noise = rng.normal(size=dim) * item_noise / math.sqrt(dim) * 2.0
        vectors[i] = prototypes[chosen].mean(axis=0) + noise
    vectors.setflags(write=False)
    prototypes.setflags(write=False)
    return Catalogue(tuple(titles), tuple(genres), vectors, prototypes)


def draw_user(
    rng: np.random.Generator, catalogue: Catalogue, user_noise: float = 0.3
) -> np.ndarray:
    """A latent user vector: a Dirichlet-weighted mix of 1-3 favourite genres plus noise."""
    n_fav = 1 + int(rng.integers(3))
    favourites = rng.choice(len(GENRES), size=n_fav, replace=False)
    weights = rng.dirichlet(np.ones(n_fav))
    dim = catalogue.prototypes.shape[1]
    noise = rng.normal(size=dim) * user_noise / math.sqrt(dim) * 2.0
    return weights @ catalogue.prototypes[favourites] + noise


# --- Titles -----------------------------------------------------------------------------------
def normalize_title(text: str) -> str:
    """Casefold, strip accents, turn every run of non-alphanumerics into one space.

    Example:
        >>> normalize_title("  Glass   HARBOR: (1987)"), normalize_title("Amélie!")
        ('glass harbor 1987', 'amelie')
    """
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    return " ".join(re.findall(r"[a-z0-9]+", plain))


def _title_keys(title: str) -> tuple[list[str], list[str]]:
    """``(exact, bare)`` normalised spellings of a catalogue title: with and without year."""
    year = _YEAR_SUFFIX.search(title)
    bare = title[: year.start()] if year else title
    spellings = [bare]
    moved = _TRAILING_ARTICLE.match(bare.strip())
    if moved:  # MovieLens writes "Matrix, The (1999)"
        spellings.append(f"{moved.group(2)} {moved.group(1)}")
    keys = [k for k in (normalize_title(b) for b in spellings) if k]
    if not year:
        return keys, []
    return [f"{k} {year.group(1)}" for k in keys], keys


class TitleIndex:
    """Maps what an agent writes to catalogue positions (``None`` when out of catalogue).

    A full ``"Title (Year)"`` always matches its item; the bare title (or the MovieLens
    article-first spelling) matches only when exactly one item has it. ``i<number>`` (or
    ``#i<number>``) names the item with that display number.

    Example:
        >>> index = TitleIndex(["Glass Harbor (1987)", "Glass Harbor (2001)", "Iron Tide (1990)"])
        >>> index.find("glass  harbor (2001)"), index.find("iron tide"), index.find("Glass Harbor")
        (1, 2, None)
        >>> index.find("i3"), index.find("Nothing Like It")
        (2, None)
    """

    def __init__(self, titles: Sequence[str]) -> None:
        """Index ``titles`` (display order: item ``i<n>`` is ``titles[n - 1]``)."""
        self.n = len(titles)
        owners: dict[str, set[int]] = {}
        exact: dict[str, int] = {}
        for position, title in enumerate(titles):
            full, bare = _title_keys(title)
            for key in full:
                exact.setdefault(key, position)
            for key in bare:
                owners.setdefault(key, set()).add(position)
        self._keys = {k: next(iter(v)) for k, v in owners.items() if len(v) == 1}
        self._keys.update(exact)

    def find(self, text: str) -> int | None:
        """Return the position of the item ``text`` names, or ``None``."""
        by_id = _ID_ITEM.match(text.strip())
        if by_id:
            number = int(by_id.group(1))
            return number - 1 if 1 <= number <= self.n else None
        key = normalize_title(text)
        return self._keys.get(key) if key else None


def split_ranked_list(text: str, limit: int = 200) -> list[str]:
    r"""Split an answer into item strings: one per line or ``;``, enumeration removed.

    A trailing ``[genres]`` or ``| genres`` part (copied from the listing) is dropped; empty
    items are skipped; at most ``limit`` items are returned.

    Example:
        >>> split_ranked_list("1. Iron Tide (1990) [drama]; 2) glass harbor\n- i3")
        ['Iron Tide (1990)', 'glass harbor', 'i3']
    """
    items = []
    for piece in re.split(r"[;\n]", text):
        item = _ENUMERATION.sub("", piece, count=1)
        item = _GENRE_TAIL.sub("", item).strip().strip("\"'*`").strip()
        if item:
            items.append(item)
            if len(items) >= limit:
                break
    return items


# --- Metrics ----------------------------------------------------------------------------------
def rank_hits(
    ranked: Sequence[int | None],
    relevant: set[int] | frozenset[int],
    seen: frozenset[int] = frozenset(),
) -> list[int]:
    """Hit indicator per rank: 1 iff the item is in the catalogue, unseen, new, and relevant.

    Out-of-catalogue (``None``), already-seen and repeated items earn 0, as in Rank-GRPO's
    ``evaluate_direct_match_aligned`` (each relevant item can be matched once).

    Example:
        >>> rank_hits([3, None, 3, 5, 1], relevant={3, 5, 7}, seen=frozenset({1}))
        [1, 0, 0, 1, 0]
    """
    used: set[int] = set()
    hits = []
    for item in ranked:
        hit = item is not None and item not in seen and item not in used and item in relevant
        hits.append(int(hit))
        if item is not None:
            used.add(item)
    return hits


def _discount(rank: int) -> float:
    """``1 / log2(rank + 1)`` for a 1-based rank (rank 1 -> 1)."""
    return 1.0 / math.log2(rank + 1)


def rank_gains(hits: Sequence[int]) -> list[float]:
    """Discounted gain per rank, ``hit_i / log2(i + 1)``; their sum is DCG.

    Example:
        >>> [round(g, 4) for g in rank_gains([1, 0, 1])]
        [1.0, 0.0, 0.5]
    """
    return [h * _discount(i) for i, h in enumerate(hits, start=1)]


def recall_at_k(hits: Sequence[int], n_relevant: int, k: int) -> float:
    """``Recall@k = sum(hits[:k]) / |relevant|`` (0 when nothing is relevant).

    Example:
        >>> recall_at_k([1, 0, 1, 1], n_relevant=4, k=3)
        0.5
    """
    return sum(hits[:k]) / n_relevant if n_relevant > 0 else 0.0


def ndcg_at_k(hits: Sequence[int], n_relevant: int, k: int) -> float:
    """``NDCG@k = DCG@k / IDCG@k`` with binary gains (Järvelin & Kekäläinen, 2002).

    ``DCG@k = sum_{i<=k} hit_i / log2(i + 1)``; the ideal list puts ``min(|relevant|, k)``
    hits first.

    Example:
        >>> round(ndcg_at_k([0, 1, 0], n_relevant=1, k=3), 4)
        0.6309
    """
    ideal = sum(_discount(i) for i in range(1, min(n_relevant, k) + 1))
    if ideal == 0.0:
        return 0.0
    return sum(rank_gains(hits[:k])) / ideal
