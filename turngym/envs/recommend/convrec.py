"""ConvRec: find a movie a simulated user accepts by asking about their taste.

A rule-based conversational recommender setting in the style of the iEvaLM user simulator
(Wang et al., 2023) and of ConvRec-R1 / Rank-GRPO's conversational requests (see
docs/environments.md#convrec): the user holds hidden preferences (a value for some of the
slots ``genre``, ``era``, ``tone``, ``setting``) and possibly one dislike (a value of another
slot), opens with a vague request (only the broad family of the wanted genre), answers exactly
the question asked, and reacts to each recommendation: accept when the movie fits every
preference and has no disliked value, else reject naming one attribute *of the recommended
movie* that is wrong.

**Action grammar** (inside ``<action>...</action>``):

* ``ask: genre`` | ``ask: era`` | ``ask: tone`` | ``ask: setting`` | ``ask: dislikes``.
* ``recommend: <title>``: a catalogue title (year optional, matched ignoring case and
  punctuation) or its number, ``recommend: i7``.

Anything else (unknown slot, title not in the catalogue) is invalid and uses no turn. The
episode ends when the user accepts (reward 1, score 1) or after ``max_turns`` valid turns
(score 0). Each turn's info carries ``metrics`` (questions, recommendations, movies still
consistent with what the user said) and ``rank_hits`` (``[1]``/``[0]`` on a recommending turn:
accepted or not; the episode's recommendations are Rank-GRPO's ranked list).

**Leak check.** The user's lines (``User: ...``) never name the preferred value of a slot that
has not been asked, nor the disliked value before the agent asked for it (outside a rejection
of a movie that has it). The catalogue, shown once at reset, lists every movie's attributes
but says nothing about the user.

**Oracle.** Asks, in slot order, each question whose answer would rule out a movie still
consistent with what was said, then recommends the first consistent movie: success 100%
whenever ``max_turns >= n_prefs + n_dislikes + 1``.

Example:
    >>> env = ConvRec()
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> done = False
    >>> while not done:
    ...     _, reward, done, _, info = env.step(env.oracle_action())
    >>> reward, info["success"]
    (1.0, True)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import numpy as np

from turngym.core import TextEnv, Transition, check_int_knobs
from turngym.envs.recommend.catalog import TitleIndex, make_titles

__all__ = ["ConvRec", "SLOTS", "RANK_HITS"]

RANK_HITS = "rank_hits"
"""Info key: ``[1]``/``[0]`` on a turn that recommends (accepted or not), else ``[]``."""

SLOTS: dict[str, tuple[str, ...]] = {
    "genre": ("action", "animation", "comedy", "drama", "horror", "romance", "sci-fi", "thriller"),
    "era": ("1950s", "1960s", "1970s", "1980s", "1990s", "2000s", "2010s", "2020s"),
    "tone": ("dark", "lighthearted", "suspenseful", "heartwarming", "quirky"),
    "setting": ("big city", "outer space", "small town", "open sea", "wilderness", "school"),
}
"""Every slot and its values (value words are distinct across slots)."""

_GENRE_FAMILY = {
    "easygoing": ("animation", "comedy", "romance"),
    "gripping": ("action", "horror", "thriller"),
    "thought-provoking": ("drama", "sci-fi"),
}
_FAMILY_OF = {g: family for family, genres in _GENRE_FAMILY.items() for g in genres}
_ASK = re.compile(r"^ask\s*[:\-]?\s*(?:about\s+)?(?:the\s+)?([a-z\- ]+?)\s*\??$", re.IGNORECASE)
_RECOMMEND = re.compile(r"^recommend\s*[:\-]?\s*(.+)$", re.IGNORECASE | re.DOTALL)
_DISLIKES = {"dislikes", "dislike", "dislikes or dealbreakers", "dealbreakers"}


def _phrase(slot: str, value: str) -> str:
    """How the user names a value: ``a sci-fi movie``, ``something from the 1980s``..."""
    return {
        "genre": f"a {value} movie",
        "era": f"something from the {value}",
        "tone": f"something {value}",
        "setting": f"a story set in the {value}" if value != "school" else "a story set at school",
    }[slot]


def _era(title: str) -> str:
    return f"{int(title[-5:-1]) // 10 * 10}s"


class ConvRec(TextEnv):
    """Recommend a movie the simulated user accepts, within ``max_turns`` turns.

    Difficulty knobs (:attr:`difficulty_defaults`): ``n_items`` (5-200 catalogue movies),
    ``n_prefs`` (1-4 slots with a preferred value; genre always among them), ``n_dislikes``
    (0 or 1; needs a slot without preference), ``max_turns`` (1-30 valid turns),
    ``vague_opening`` (the first message names the genre family).

    Levels: 0 = 15 movies, 2 preferences; 1 = default (30 movies, 3 preferences, 1 dislike);
    2 = 60 movies, 4 preferences; 3 = 60 movies, 3 preferences + dislike, 5 turns;
    4 = 100 movies, no vague opening.
    """

    family: ClassVar[str] = "convrec"
    example_actions: ClassVar[tuple[str, ...]] = tuple(
        f"<action>ask: {slot}</action>" for slot in (*SLOTS, "dislikes")
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "n_items": 30,
        "n_prefs": 3,
        "n_dislikes": 1,
        "max_turns": 8,
        "vague_opening": True,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"n_items": 15, "n_prefs": 2, "n_dislikes": 0, "max_turns": 10},
        1: {},
        2: {"n_items": 60, "n_prefs": 4, "n_dislikes": 0},
        3: {"n_items": 60, "n_prefs": 3, "n_dislikes": 1, "max_turns": 5},
        4: {"n_items": 100, "vague_opening": False},
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.items: list[dict[str, str]] = []
        self.prefs: dict[str, str] = {}
        self.dislike: dict[str, str] = {}
        self.asked: list[str] = []
        self.recommended: list[int] = []
        self.said: list[str] = []
        self.accepted = False

    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range."""
        ranges = {
            "n_items": (5, 200),
            "n_prefs": (1, 4),
            "n_dislikes": (0, 1),
            "max_turns": (1, 30),
        }
        check_int_knobs("ConvRec", difficulty, ranges)
        if not isinstance(difficulty["vague_opening"], bool):
            raise ValueError("ConvRec: vague_opening must be True or False.")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a catalogue, a target movie, its preferred slots and a dislike."""
        n = int(difficulty["n_items"])
        items = [{"title": t} for t in sorted(make_titles(rng, n))]
        for item in items:
            for slot in ("genre", "tone", "setting"):
                values = SLOTS[slot]
                item[slot] = values[int(rng.integers(len(values)))]
        target = items[int(rng.integers(n))]
        others = ["era", "tone", "setting"]
        chosen = ["genre"] + sorted(
            rng.choice(others, size=int(difficulty["n_prefs"]) - 1, replace=False).tolist()
        )
        prefs = {slot: self._value(target, slot) for slot in chosen}
        free = [s for s in SLOTS if s not in prefs]
        dislike: dict[str, str] = {}
        if int(difficulty["n_dislikes"]) and free:
            slot = free[int(rng.integers(len(free)))]
            matching = [i for i in items if all(self._value(i, s) == v for s, v in prefs.items())]
            tempting = sorted(
                {self._value(i, slot) for i in matching} - {self._value(target, slot)}
            )
            options = tempting or [v for v in SLOTS[slot] if v != self._value(target, slot)]
            dislike = {slot: options[int(rng.integers(len(options)))]}
        return {"items": items, "prefs": prefs, "dislike": dislike}

    @staticmethod
    def _value(item: Mapping[str, str], slot: str) -> str:
        return _era(item["title"]) if slot == "era" else item[slot]

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the catalogue, preferences and dislike, and start the conversation."""
        try:
            items = [dict(i) for i in task["items"]]
            prefs, dislike = dict(task["prefs"]), dict(task.get("dislike", {}))
            for item in items:
                _era(item["title"])
                assert all(item[s] in SLOTS[s] for s in ("genre", "tone", "setting"))
            assert all(v in SLOTS[s] for s, v in [*prefs.items(), *dislike.items()])
            assert "genre" in prefs and len(dislike) <= 1 and not set(dislike) & set(prefs)
        except (KeyError, TypeError, ValueError, AssertionError) as err:
            raise ValueError(
                'A ConvRec task is {"items": [{"title": "Name (Year)", "genre", "tone", '
                '"setting"}], "prefs": {slot: value, genre required}, "dislike": {slot: value}} '
                f"with values from SLOTS ({type(err).__name__}: {err})."
            ) from err
        self.items, self.prefs, self.dislike = items, prefs, dislike
        self._index = TitleIndex([i["title"] for i in items])
        self.acceptable = [p for p, item in enumerate(items) if self._accepts(item)]
        if not self.acceptable:
            raise ValueError("ConvRec task: no catalogue movie fits the preferences.")
        self.max_turns = int(self.episode_difficulty["max_turns"])
        self.asked, self.recommended, self.accepted, self.exchanges = [], [], False, 0
        self.said = [self._opening()]
        self._privileged = {
            "prefs": dict(sorted(prefs.items())),
            "dislike": dict(dislike),
            "acceptable": [items[p]["title"] for p in self.acceptable],
        }
        picks = np.random.default_rng(len(items) * 7919 + len(self.acceptable)).choice(
            len(items), size=min(4, len(items)), replace=False
        )
        recs = tuple(f"<action>recommend: {items[int(p)]['title']}</action>" for p in picks)
        self.action_space = type(self.action_space)(examples=self.example_actions + recs)

    def _accepts(self, item: Mapping[str, str]) -> bool:
        return all(self._value(item, s) == v for s, v in self.prefs.items()) and not any(
            self._value(item, s) == v for s, v in self.dislike.items()
        )

    def _opening(self) -> str:
        if self.episode_difficulty["vague_opening"]:
            family = _FAMILY_OF[self.prefs["genre"]]
            return f"Hi! I'd like to watch something {family} tonight. Any ideas?"
        return "Hi! Can you recommend me a movie?"

    # --- Dynamics -----------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Answer a question or react to a recommendation."""
        if self._over():
            return Transition(terminated=True, effective=False, message="The chat is over.")
        text = " ".join(command.split())
        ask, rec = _ASK.match(text), _RECOMMEND.match(text)
        if ask:
            slot = ask.group(1).lower()
            if slot not in SLOTS and slot not in _DISLIKES:
                return self._invalid(f"there is no slot {slot[:30]!r} to ask about")
            self.asked.append("dislikes" if slot in _DISLIKES else slot)
            self.said.append(self._answer(self.asked[-1]))
        elif rec:
            position = self._index.find(rec.group(1))
            if position is None:
                return self._invalid("that title is not in the catalogue")
            self.recommended.append(position)
            self.said.append(self._react(position))
        else:
            return self._invalid("use 'ask: <slot>' or 'recommend: <title>'")
        self.exchanges += 1
        if self.accepted:
            return Transition(reward=1.0, terminated=True, reward_components={"accepted": 1.0})
        if self.exchanges >= self.max_turns:
            self.said.append("I think I'll look elsewhere. Bye!")
            return Transition(terminated=True)
        return Transition()

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One turn (see :meth:`TextEnv.step`), plus ``info["rank_hits"]``.

        A turn that recommends (validly) holds ``[1]`` if the user accepted the movie, ``[0]``
        if not; any other turn ``[]``. Over an episode the recommendations form a ranked list
        (Rank-GRPO's per-rank hits; the first recommendation is rank 1).
        """
        before = len(self.recommended)
        obs, reward, terminated, truncated, info = super().step(action)
        info[RANK_HITS] = [int(self.accepted)] if len(self.recommended) > before else []
        return obs, reward, terminated, truncated, info

    def _invalid(self, why: str) -> Transition:
        return Transition(
            valid=False,
            effective=False,
            message=f"Invalid action: {why}. Slots: {', '.join(SLOTS)}, dislikes.",
        )

    def _answer(self, slot: str) -> str:
        """Answer exactly the question asked; never another slot."""
        if slot == "dislikes":
            if not self.dislike:
                return "Nothing in particular."
            ((dslot, value),) = self.dislike.items()
            return f"I really don't want {_phrase(dslot, value)}."
        if slot in self.prefs:
            return f"I'd like {_phrase(slot, self.prefs[slot])}."
        if slot in self.dislike:
            return f"Any {slot} is fine, just not {_phrase(slot, self.dislike[slot])}."
        return f"I don't mind about the {slot}."

    def _react(self, position: int) -> str:
        """Accept, or reject naming the recommended movie's first wrong attribute."""
        item = self.items[position]
        if position in self.acceptable:
            self.accepted = True
            return f"Yes! {item['title']} sounds perfect, I'll watch it."
        for slot in SLOTS:
            value = self._value(item, slot)
            if slot in self.prefs and value != self.prefs[slot]:
                return f"No thanks, I'm not in the mood for {_phrase(slot, value)}."
            if self.dislike.get(slot) == value:
                return f"No thanks, I really don't want {_phrase(slot, value)}."
        raise AssertionError("a rejected movie must break a preference")  # unreachable

    def _over(self) -> bool:
        return self.accepted or self.exchanges >= self.max_turns

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The task, the grammar and one example."""
        return "\n".join(
            [
                "You are a movie recommender chatting with a user. Find a movie from the "
                "catalogue that the user accepts.",
                f"You have {self.max_turns} turns. Each turn, either ask about one slot: "
                "'ask: genre', 'ask: era', 'ask: tone', 'ask: setting' or 'ask: dislikes', or "
                "recommend one catalogue movie: 'recommend: <title>' (or its number, like i7).",
                "The user answers only what you ask. An accepted recommendation gives reward 1 "
                "and ends the chat. Answer in action tags, for example: "
                "<action>ask: genre</action>",
            ]
        )

    def render_text(self) -> str:
        """At reset the catalogue, then the user's latest message and the turns left."""
        lines = []
        if not self.exchanges and not self.asked and not self.recommended:
            lines.append(f"Catalogue ({len(self.items)} movies): title | genre | tone | setting")
            lines += [
                f"i{n} {i['title']} | {i['genre']} | {i['tone']} | {i['setting']}"
                for n, i in enumerate(self.items, 1)
            ]
        lines.append(f"User: {self.said[-1]}")
        lines.append(f"Turns left: {self.max_turns - self.exchanges} of {self.max_turns}.")
        return "\n".join(lines)

    def state_key(self) -> str:
        """Slots asked (sorted set), movies recommended (sorted set), accepted or not."""
        asked = ",".join(sorted(set(self.asked)))
        recs = ",".join(str(p) for p in sorted(set(self.recommended)))
        return f"asked={asked}|recommended={recs}|accepted={int(self.accepted)}"

    def score(self) -> float:
        """1.0 once the user accepted a recommendation, else 0.0."""
        return 1.0 if self.accepted else 0.0

    def privileged(self) -> dict[str, Any]:
        """The preferences, the dislike and the acceptable titles."""
        return {key: copy.copy(value) for key, value in self._privileged.items()}

    def _consistent(self) -> list[int]:
        """Movies consistent with everything the user has said (opening, answers, rejections)."""
        known = {s: v for s, v in self.prefs.items() if s in self.asked}
        banned = {
            s: v for s, v in self.dislike.items() if s in self.asked or "dislikes" in self.asked
        }
        family = self.episode_difficulty["vague_opening"] and _FAMILY_OF[self.prefs["genre"]]
        return [
            p
            for p, item in enumerate(self.items)
            if p not in self.recommended
            and (not family or _FAMILY_OF[item["genre"]] == family)
            and all(self._value(item, s) == v for s, v in known.items())
            and not any(self._value(item, s) == v for s, v in banned.items())
        ]

    def metrics(self) -> dict[str, Any]:
        """Questions, recommendations, consistent and acceptable movie counts."""
        return {
            "questions": len(self.asked),
            "recommendations": len(self.recommended),
            "n_consistent": len(self._consistent()),
            "n_acceptable": len(self.acceptable),
        }

    def oracle_action(self) -> str:
        """Ask each question that still rules a movie out, then recommend a consistent one."""
        consistent = self._consistent()
        slots = [*self.prefs, *self.dislike]
        for slot in sorted(slots, key=list(SLOTS).index):
            if slot in self.asked:
                continue
            truth = self.prefs.get(slot)
            if any(
                (self._value(self.items[p], slot) != truth)
                if truth is not None
                else (self._value(self.items[p], slot) == self.dislike[slot])
                for p in consistent
            ):
                return f"<action>ask: {slot}</action>"
        return f"<action>recommend: {self.items[consistent[0]]['title']}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag a user line naming an unasked preferred value or an unasked, unshown dislike."""
        said = " ".join(
            line[len("User:") :] for line in text.splitlines() if line.startswith("User:")
        ).lower()
        problems = []
        for slot, value in self.prefs.items():
            if slot not in self.asked and re.search(
                rf"(?<![a-z]){re.escape(value)}(?![a-z])", said
            ):
                problems.append(f"the user named the unasked preferred {slot}")
        for slot, value in self.dislike.items():
            shown = (
                slot in self.asked
                or "dislikes" in self.asked
                or any(self._value(self.items[p], slot) == value for p in self.recommended)
            )
            if not shown and re.search(rf"(?<![a-z]){re.escape(value)}(?![a-z])", said):
                problems.append(f"the user named the unasked disliked {slot}")
        return problems
