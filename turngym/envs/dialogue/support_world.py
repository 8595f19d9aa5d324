"""The help-seeker of EmotionalSupport: personas, strategy recognition, state dynamics.

A transparent, deterministic seeker in the spirit of ESConv (Liu et al., 2021, "Towards
Emotional Support Dialog Systems": strategies such as questions, restatement, reflection of
feelings, affirmation, suggestions, information) and of MAPO's EMPA setting (a simulated user
with a latent psychological state that a judge reads turn by turn; arXiv 2603.06194,
2603.00552).

* :func:`draw_persona` draws a hidden situation (three facts with concrete details, revealed
  one at a time once the seeker trusts the supporter enough and is invited to share), a core
  need (``validation``, ``exploration`` or ``advice``) and a starting state.
* :func:`recognise` finds strategies and faults in free text with small lexicons: open and
  closed questions, reflection of feelings, restatement (naming a detail the seeker already
  told: hard to fake), validation, reassurance, suggestions, information, self-disclosure;
  minimising, clichés, judgement, unsafe advice, repetition of an earlier reply.
* :func:`react` moves the latent state ``(distress, trust, understood)`` by each strategy's
  effect (larger for the strategy that meets the need, smaller each time it is reused;
  suggestions before enough trust and understanding backfire) and returns the seeker's reply.
  :func:`wellbeing` summarises the state in [0, 1]; its change is the judge's score.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SITUATIONS",
    "NEEDS",
    "STRATEGIES",
    "FAULTS",
    "draw_persona",
    "candidate_replies",
    "recognise",
    "react",
    "wellbeing",
    "Reaction",
]

NEEDS = ("validation", "exploration", "advice")
"""What helps a seeker most: being affirmed, being asked and heard, or practical ideas."""

# Situation: vague opening, emotion word, three facts (templates with their own slots, whose
# values are the hidden details), slot values, and advice that fits.
SITUATIONS: Mapping[str, Mapping[str, Any]] = {
    "job_loss": {
        "opening": "I've been feeling really low since something happened at work.",
        "emotion": "scared",
        "facts": ("I lost my job at the {place} last week.",
                  "My manager {boss} gave everyone only two days of notice.",
                  "I'm worried I can't pay the {bill} next month."),
        "slots": {"place": ("bakery", "warehouse", "bookshop", "garage"),
                  "boss": ("Mr Okafor", "Ms Lindqvist", "Mr Haddad", "Ms Petrova"),
                  "bill": ("rent", "mortgage", "car loan", "tuition")},
        "advice": "make a list of places to apply and ask a friend to look over your CV",
    },
    "breakup": {
        "opening": "I'm having a hard time with something personal.",
        "emotion": "heartbroken",
        "facts": ("My partner {partner} ended our relationship.",
                  "We had been together since we met at {venue}.",
                  "Now I can't stop looking at our photos from {trip}."),
        "slots": {"partner": ("Jonas", "Amara", "Teodor", "Selin"),
                  "venue": ("university", "a choir", "a climbing gym", "summer camp"),
                  "trip": ("Lisbon", "the lake cabin", "Kyoto", "the coast")},
        "advice": "put the photos away for now and plan a small outing with a friend",
    },
    "exam": {
        "opening": "Something at school is weighing on me.",
        "emotion": "ashamed",
        "facts": ("I failed my {subject} exam.",
                  "My teacher {teacher} said I might have to repeat the course.",
                  "My {relative} keeps asking about my grades."),
        "slots": {"subject": ("chemistry", "statistics", "anatomy", "accounting"),
                  "teacher": ("Dr Brandt", "Mrs Achebe", "Mr Novak", "Dr Saito"),
                  "relative": ("mother", "father", "grandmother", "uncle")},
        "advice": "ask about a resit plan and set a small study schedule for each week",
    },
    "friend_conflict": {
        "opening": "I had a falling out and I keep replaying it.",
        "emotion": "hurt",
        "facts": ("My best friend {friend} and I had a big argument.",
                  "It started over the {event} I forgot about.",
                  "Now {friend2} from our group is not talking to me either."),
        "slots": {"friend": ("Priya", "Marco", "Ines", "Kwame"),
                  "event": ("birthday dinner", "concert", "housewarming", "wedding toast"),
                  "friend2": ("Lukas", "Noor", "Dario", "Hana")},
        "advice": "send a short message that apologises for forgetting and asks to talk",
    },
    "loneliness": {
        "opening": "Lately I just feel alone most of the time.",
        "emotion": "lonely",
        "facts": ("I moved to {city} three months ago.",
                  "I only talk to my coworker {coworker} and that's about it.",
                  "Back home I used to play in a {hobby} every week."),
        "slots": {"city": ("Rotterdam", "Calgary", "Leeds", "Adelaide"),
                  "coworker": ("Benedikt", "Yara", "Ottavio", "Mei"),
                  "hobby": ("brass band", "football league", "chess club", "jazz trio")},
        "advice": "look for a local group for your hobby and invite your coworker for coffee",
    },
    "caregiving": {
        "opening": "My family situation has been really stressful.",
        "emotion": "exhausted",
        "facts": ("My {relative} was diagnosed with {illness}.",
                  "I drive to the {clinic} three times a week.",
                  "My sibling {sibling} hasn't offered to help at all."),
        "slots": {"relative": ("father", "mother", "grandfather", "aunt"),
                  "illness": ("diabetes", "Parkinson's", "a heart condition", "dementia"),
                  "clinic": ("hospital in town", "rehab centre", "clinic downtown",
                             "specialist"),
                  "sibling": ("Rafael", "Greta", "Tobias", "Leila")},
        "advice": "write down the tasks and ask your sibling to take one specific day",
    },
}
"""Situation name -> opening, emotion, fact templates, slot values and fitting advice."""

STRATEGIES = ("question_open", "question_closed", "reflection", "restatement", "validation",
              "reassurance", "suggestion", "information", "self_disclosure")  # fmt: skip
"""Support strategies recognised in a reply (ESConv's categories, split where it matters)."""
FAULTS = ("minimising", "cliche", "judgemental", "unsafe", "repetition", "too_short")
"""Faults penalised in a reply."""

_EMOTIONS = ("sad", "scared", "afraid", "anxious", "worried", "hurt", "alone", "lonely", "angry",
             "frustrated", "overwhelmed", "exhausted", "tired", "ashamed", "heartbroken", "upset",
             "stressed", "lost", "hopeless", "down", "low", "painful", "hard",
             "difficult")  # fmt: skip
_LEXICON: Mapping[str, str] = {
    "question_open": r"\b(what|how|why|tell me|could you (share|tell)|would you like to (talk|"
                     r"share)|say more|can you describe)\b[^?]*\?",
    "reflection": r"\b(sounds like|it seems|you (must|might|may) (feel|be feeling)|you('re| are)"
                  r" feeling|you feel|i can hear|that sounds)\b",
    "validation": r"\b(makes (a lot of |complete )?sense|understandable|(is|are) valid|anyone "
                  r"would|natural to feel|it'?s (okay|ok) to|of course you)\b",
    "reassurance": r"\b(not alone|can get through|will get (better|easier)|here for you|doing "
                   r"your best|proud of you|you matter)\b",
    "suggestion": r"\b(you could|maybe (try|you could)|have you (considered|thought about)|how "
                  r"about|one idea|it might help to|what if you|consider)\b",
    "information": r"\b(many people|it'?s (common|normal)|research|studies|often)\b",
    "self_disclosure": r"\b(i'?ve (been|felt|had)|i once|when i was)\b",
    "minimising": r"\b(at least|not a big deal|get over it|calm down|don'?t be sad|stop "
                  r"worrying|could be worse|just relax|no big deal|cheer up)\b",
    "cliche": r"\b(everything happens for a reason|time heals|bright side|plenty of fish|what "
              r"doesn'?t kill you)\b",
    "judgemental": r"\b(your (own )?fault|should have|that'?s stupid|overreacting|what were you "
                   r"thinking|too sensitive)\b",
    "unsafe": r"\b(drink (it|your \w+) away|get drunk|skip (your )?(meds|medication)|stop taking|"
              r"hurt (yourself|them|him|her)|revenge|get even|stop eating|don'?t tell anyone|"
              r"quit everything|punch)\b",
}
_PATTERNS = {k: re.compile(v, re.IGNORECASE) for k, v in _LEXICON.items()}
_EMOTION = re.compile(r"\b(" + "|".join(_EMOTIONS) + r")\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z']+")

# Effect of each strategy / fault on (distress, trust, understood), before need and reuse.
_EFFECTS: Mapping[str, tuple[float, float, float]] = {
    "question_open": (-0.01, 0.07, 0.04),
    "question_closed": (0.0, 0.02, 0.01),
    "reflection": (-0.05, 0.04, 0.09),
    "restatement": (-0.02, 0.05, 0.10),
    "validation": (-0.07, 0.04, 0.05),
    "reassurance": (-0.05, 0.03, 0.01),
    "suggestion": (-0.12, 0.02, 0.02),
    "information": (-0.03, 0.01, 0.01),
    "self_disclosure": (0.0, 0.02, 0.0),
    "premature_advice": (0.05, -0.08, -0.03),
    "minimising": (0.08, -0.10, -0.06),
    "cliche": (0.04, -0.06, -0.04),
    "judgemental": (0.10, -0.14, -0.05),
    "unsafe": (0.20, -0.30, -0.05),
    "repetition": (0.03, -0.08, -0.03),
    "too_short": (0.0, -0.03, -0.01),
}
_NEED_BONUS: Mapping[str, tuple[str, ...]] = {
    "validation": ("validation", "reassurance", "reflection"),
    "exploration": ("question_open", "restatement", "reflection"),
    "advice": ("suggestion", "information"),
}


def draw_persona(rng: np.random.Generator, situations: Sequence[str], needs: Sequence[str],
                 n_facts: int, trust_start: float,
                 disclosure_step: float) -> dict[str, Any]:  # fmt: skip
    """A hidden persona: situation, facts with their secret details, need, starting state."""
    name = situations[int(rng.integers(len(situations)))]
    spec = SITUATIONS[name]
    values = {slot: str(opts[int(rng.integers(len(opts)))]) for slot, opts in spec["slots"].items()}
    facts = []
    for template in spec["facts"][:n_facts]:
        slots = re.findall(r"{(\w+)}", template)
        facts.append({"text": template.format(**values), "secrets": [values[s] for s in slots]})
    return {
        "situation": name,
        "need": needs[int(rng.integers(len(needs)))],
        "facts": facts,
        "thresholds": [round(trust_start + disclosure_step * k, 3) for k in range(len(facts))],
        "state": {"distress": round(float(rng.uniform(0.65, 0.9)), 3),
                  "trust": round(trust_start - float(rng.uniform(0.0, 0.05)), 3),
                  "understood": round(float(rng.uniform(0.0, 0.15)), 3)},
    }  # fmt: skip


@functools.lru_cache(maxsize=16_384)  # replies recur: the oracle scores the same candidates
def _trigrams(text: str) -> frozenset[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return frozenset(tuple(words[i : i + 3]) for i in range(len(words) - 2))


@functools.lru_cache(maxsize=16_384)
def _lexical(reply: str) -> tuple[tuple[str, bool], ...]:
    """The lexicon matches of a reply (cached: they depend on the text alone)."""
    found = {name: bool(_PATTERNS[name].search(reply)) for name in _PATTERNS}
    found["reflection"] = found["reflection"] and bool(_EMOTION.search(reply))
    found["question_closed"] = "?" in reply and not found["question_open"]
    found["too_short"] = len(_WORD.findall(reply.lower())) < 3
    return tuple(found.items())


def recognise(reply: str, revealed_secrets: Sequence[str],
              past_replies: Sequence[str]) -> dict[str, bool]:  # fmt: skip
    """Which strategies and faults ``reply`` shows (every name of STRATEGIES and FAULTS).

    Example:
        >>> found = recognise("That sounds so hard. What happened at the bakery?", ["bakery"], [])
        >>> sorted(k for k, v in found.items() if v)
        ['question_open', 'reflection', 'restatement']
    """
    found = dict(_lexical(reply))
    lowered = reply.lower()
    found["restatement"] = any(
        re.search(rf"\b{re.escape(s.lower())}\b", lowered) for s in revealed_secrets
    )
    grams = _trigrams(reply)
    found["repetition"] = bool(grams) and any(
        len(grams & (old := _trigrams(past))) >= 0.5 * min(len(grams), len(old)) > 0
        for past in past_replies
    )
    return found


def wellbeing(state: Mapping[str, float]) -> float:
    """``((1 - distress) + trust + understood) / 3``, in [0, 1]."""
    return (1.0 - state["distress"] + state["trust"] + state["understood"]) / 3.0


@dataclass(frozen=True)
class Reaction:
    """What one supporter reply did: the new state, the effects applied, the seeker's text."""

    state: dict[str, float]
    effects: dict[str, float]
    reply: str
    revealed: int


def _effects(found: Mapping[str, bool], persona: Mapping[str, Any], state: Mapping[str, float],
             used: Mapping[str, int], knobs: Mapping[str, Any]) -> dict[str, float]:  # fmt: skip
    """Strength of each applied effect: need bonus, reuse decay, premature advice."""
    out: dict[str, float] = {}
    for name in (*STRATEGIES, *FAULTS):
        if not found.get(name):
            continue
        if name == "suggestion" and (state["trust"] < knobs["advice_trust"]
                                     or state["understood"] < 0.35):  # fmt: skip
            out["premature_advice"] = 1.0
            continue
        weight = 1.0
        if name in STRATEGIES:
            weight *= float(knobs["diminish"]) ** used.get(name, 0)
            if name in _NEED_BONUS[persona["need"]]:
                weight *= 1.6
        out[name] = weight
    if found.get("unsafe") or found.get("repetition"):  # a harmful or copied reply helps nothing
        out = {k: v for k, v in out.items() if k not in STRATEGIES}
    return out


def react(reply: str, persona: Mapping[str, Any], state: Mapping[str, float], revealed: int,
          used: Mapping[str, int], past_replies: Sequence[str],
          knobs: Mapping[str, Any]) -> Reaction:  # fmt: skip
    """Apply one supporter reply: recognise it, move the state, maybe disclose, answer."""
    secrets = [s for fact in persona["facts"][:revealed] for s in fact["secrets"]]
    found = recognise(reply, secrets, past_replies)
    effects = _effects(found, persona, state, used, knobs)
    new = dict(state)
    scale = float(knobs["responsiveness"])
    for name, weight in effects.items():
        for key, delta in zip(("distress", "trust", "understood"), _EFFECTS[name], strict=True):
            new[key] = new[key] + scale * weight * delta
    new = {k: round(min(1.0, max(0.0, v)), 6) for k, v in new.items()}
    invited = found["question_open"] or found["reflection"] or found["restatement"]
    disclose = (revealed < len(persona["facts"]) and invited and not found["unsafe"]
                and new["trust"] >= persona["thresholds"][revealed])  # fmt: skip
    lines = [_reaction_line(effects, len(past_replies))]
    if disclose:
        lines.append(persona["facts"][revealed]["text"])
    return Reaction(new, effects, " ".join(lines), revealed + int(disclose))


_LINES = {
    "unsafe": ("That doesn't sound like a good idea at all.", "I'm not going to do that."),
    "judgemental": ("That makes me feel worse about myself.", "Wow. Okay."),
    "minimising": ("It is a big deal to me, though.", "You don't really get it."),
    "cliche": ("People keep saying that.", "That doesn't really help."),
    "premature_advice": ("I'm not ready to think about fixing it yet.",
                         "You don't even know the whole story."),
    "repetition": ("You already said that.", "You keep saying the same thing."),
    "suggestion": ("Hm, I could try that.", "That might actually help."),
    "validation": ("Thank you for saying that.", "It helps to hear that."),
    "reassurance": ("I hope you're right.", "That's comforting."),
    "reflection": ("Yes, that's exactly how it feels.", "Yeah. It really does."),
    "restatement": ("Right, that's what's been on my mind.", "Exactly."),
    "question_open": ("Well...", "Let me think."),
}


def _reaction_line(effects: Mapping[str, float], turn: int) -> str:
    """The seeker's reaction to the strongest effect (deterministic wording)."""
    for name in _LINES:  # faults first: they dominate how a reply lands
        if name in effects:
            options = _LINES[name]
            return options[turn % len(options)]
    return ("Okay.", "I don't know.", "Mm.")[turn % 3]


def candidate_replies(situation: str, told: Sequence[str]) -> list[str]:
    """Supportive replies built from strategy blocks, for the oracle's one-step lookahead.

    Every pair of distinct blocks (a reflection, a restatement of a recent detail, an open
    question, a validation, a reassurance, a piece of information or the situation's fitting
    suggestion), in several wordings, so a greedy chooser can always find one it has not used.
    """
    spec = SITUATIONS[situation]
    emotion = spec["emotion"]
    blocks = [
        f"It sounds like you feel {emotion} right now.",
        f"I can hear how {emotion} you are.",
        f"Feeling {emotion} after all this sounds so hard.",
        *[f"Dealing with {d} sounds painful." for d in told[-3:]],
        *[f"So {d} is a big part of this." for d in told[-3:]],
        "What happened?", "How has this been for you?", "What has been the hardest part?",
        "Could you tell me more about what is going on?", "How are you coping today?",
        "It is understandable that you feel this way.", "Your feelings are valid.",
        "Anyone would feel shaken by this.", "It makes complete sense to feel like this.",
        "You are not alone in this.", "I am here for you.", "You are doing your best.",
        "Many people go through something like this.", "It is common to feel this way.",
        f"One idea: you could {spec['advice']}.",
        f"It might help to {spec['advice']}.",
    ]  # fmt: skip
    return [f"{a} {b}" for i, a in enumerate(blocks) for b in blocks[i + 1 :]]
