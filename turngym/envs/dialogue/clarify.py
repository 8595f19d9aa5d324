"""Clarify: ask a simulated user for the missing details, then carry out their request.

The intent-clarification setting of InfoPO ("InfoPO: Information-Driven Policy Optimization
for User-Centric Agents", arXiv 2603.00656; docs/environments.md#clarify): a user's request is
underspecified, and the agent must ask before it acts. Each task is a form from one domain
(:mod:`~turngym.envs.dialogue.domains`: flight, restaurant, meeting, order) with ``n_slots``
fields; the opening request states ``n_stated`` of them and the rest are hidden. The
rule-based user answers *only* the slot asked about, never volunteers a hidden slot, and
gives a neutral reply to questions it cannot map to exactly one slot.

**Action grammar** (inside ``<action>...</action>``):

* ``ask: SLOT``: a field name (``ask: date``, ``ask: party_size``), its label (``ask: party
  size``) or a free-text question naming exactly one slot (``ask: what time works?``). A
  question about a slot the form does not have gets "I don't mind"; one naming several slots
  or none gets a neutral reply. Every ask is a turn and costs ``question_cost``.
* ``do: {"slot": "value", ...}`` (JSON), or the readable ``do: date=June 3; time=19:30``
  (pairs split on ``;`` or ``,``, key and value on the first ``=`` or ``:``). Keys are field
  names or labels. Values compare ignoring case and punctuation; count slots compare by their
  number (``2``, ``two``, ``2 people``). A missing field counts as wrong; a key that is not a
  field of the form, malformed JSON or an empty ``do`` is invalid (no turn used).

**Reward.** Each question gives ``-question_cost``; ``do`` ends the episode with the task score:
1 if every field is right, else 0, or the fraction of right fields with ``partial_credit``. So
the return is ``score - question_cost * questions``. Running out of ``max_turns`` valid turns
ends the episode with score 0. ``success`` = every field right.

**InfoPO hooks.** ``info["metrics"]["user_reply"]`` is the exact feedback span of the turn and
:data:`MASKED_REPLY` the canonical placeholder, so a trainer can build the masked-feedback
counterfactual ``pi(. | h_t, f_mask)`` of InfoPO's information-gain reward.

**Leak check.** No ``User:`` line names the value of a hidden slot that has not been asked (the
value lists are whole-word disjoint, so this check is exact). **State key**: the domain, the
slots asked with their answers (sorted), and whether the request was carried out.

**Oracle.** Asks each hidden slot once, then acts with the full assignment: success 100%
(``check_difficulty`` ensures ``max_turns >= n_slots - n_stated + 1``).

Example:
    >>> env = Clarify()
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> done = False
    >>> while not done:
    ...     _, reward, done, _, info = env.step(env.oracle_action())
    >>> info["success"], info["score"]
    (True, 1.0)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from turngym.core import GOLD_ANSWERS, TextEnv, TextSpace, Transition, check_int_knobs
from turngym.envs.dialogue.domains import DOMAINS, Domain, Slot, mentions, normalise_value
from turngym.envs.dialogue.domains import values_match as _values_match
from turngym.tasks import task_fingerprint

__all__ = ["Clarify", "MASKED_REPLY", "NEUTRAL_REPLIES"]

MASKED_REPLY = "No information found."
"""InfoPO's masked feedback: replace a turn's ``user_reply`` with this for the counterfactual."""

NEUTRAL_REPLIES: Mapping[str, str] = {
    "unclear": "Sorry, I'm not sure what you're asking.",
    "several": "One question at a time, please.",
    "no_preference": "I don't mind about the {label}.",
    "over": "Never mind, I'll sort it out myself.",
    "all_right": "Perfect, that's exactly what I wanted. Thanks!",
    "some_wrong": "Hmm, that's not what I asked for.",
}
"""Every fixed user line (none names a slot value)."""

_ASK = re.compile(r"^ask\s*[:\-]?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_DO = re.compile(r"^(?:do|submit|execute)\s*[:\-]?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_PAIR_SPLIT = re.compile(r"[;,\n]")
_PAIR = re.compile(r"\s*([^=:]*?)\s*[=:]\s*(.*)$", re.DOTALL)


def _render(value: object) -> str:
    return str(value)[:40]


class Clarify(TextEnv):
    """Ask the user for the hidden details of an underspecified request, then act on it.

    Difficulty knobs (:attr:`difficulty_defaults`): ``domains`` (names from
    :data:`~turngym.envs.dialogue.domains.DOMAINS`), ``n_slots`` (2-6 form fields),
    ``n_stated`` (0-5 fields stated in the request, fewer than ``n_slots``), ``max_turns``
    (1-30 valid turns), ``question_cost`` (0-1 per question), ``partial_credit`` (score the
    fraction of right fields instead of all-or-nothing).

    Levels: 0 = 3 fields, 1 stated; 1 = default (4 fields, 1 stated, 8 turns); 2 = 5 fields,
    1 stated; 3 = 6 fields, 2 stated, 7 turns; 4 = 6 fields, none stated, 7 turns, cost 0.1.
    """

    family: ClassVar[str] = "clarify"
    privileged_keys: ClassVar[frozenset[str]] = frozenset({GOLD_ANSWERS})
    answer_template: ClassVar[str] = "<action>do: {answer}</action>"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>ask: date</action>",
        "<action>ask: time</action>",
        '<action>do: {"date": "June 3", "time": "19:30"}</action>',
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "domains": sorted(DOMAINS),
        "n_slots": 4,
        "n_stated": 1,
        "max_turns": 8,
        "question_cost": 0.05,
        "partial_credit": False,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"n_slots": 3, "n_stated": 1, "max_turns": 6},
        1: {},
        2: {"n_slots": 5, "n_stated": 1, "max_turns": 8},
        3: {"n_slots": 6, "n_stated": 2, "max_turns": 7},
        4: {"n_slots": 6, "n_stated": 0, "max_turns": 7, "question_cost": 0.1},
    }

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.domain: Domain = DOMAINS["flight"]
        self.slots: dict[str, str] = {}
        self.stated: list[str] = []
        self.answers: dict[str, str] = {}
        self.said: list[str] = []
        self.new_lines = 1
        self.questions = 0
        self.used = 0
        self.result: float | None = None
        self.over = False

    # --- Tasks --------------------------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range."""
        check_int_knobs("Clarify", difficulty, {
            "n_slots": (2, 6, "form fields per task"),
            "n_stated": (0, 5, "fields stated in the request"),
            "max_turns": (1, 30, "valid turns, final action included"),
        })  # fmt: skip
        domains = difficulty["domains"]
        if (
            isinstance(domains, str)
            or not isinstance(domains, (list, tuple))
            or not domains
            or any(d not in DOMAINS for d in domains)
        ):
            raise ValueError(f"Clarify: domains must be a non-empty list from {sorted(DOMAINS)}.")
        if difficulty["n_stated"] >= difficulty["n_slots"]:
            raise ValueError("Clarify: n_stated must be smaller than n_slots (nothing to ask).")
        hidden = difficulty["n_slots"] - difficulty["n_stated"]
        if difficulty["max_turns"] < hidden + 1:
            raise ValueError(
                f"Clarify: max_turns={difficulty['max_turns']} leaves no room to ask {hidden} "
                f"hidden slots and act; use max_turns >= {hidden + 1}."
            )
        cost = difficulty["question_cost"]
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 <= cost <= 1:
            raise ValueError(f"Clarify: question_cost={cost!r}; use a number from 0 to 1.")
        if not isinstance(difficulty["partial_credit"], bool):
            raise ValueError("Clarify: partial_credit must be True or False.")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a domain, its form fields, their values and which of them the request states."""
        names = sorted(difficulty["domains"])
        domain = DOMAINS[names[int(rng.integers(len(names)))]]
        picks = sorted(rng.choice(len(domain.slots), size=difficulty["n_slots"], replace=False))
        fields = [domain.slots[int(i)] for i in picks]
        slots: dict[str, str] = {}
        for slot in fields:
            choices = [v for v in slot.values if v not in slots.values()]  # origin != destination
            slots[slot.name] = choices[int(rng.integers(len(choices)))]
        stated = rng.choice(len(fields), size=difficulty["n_stated"], replace=False)
        return {
            "domain": domain.name,
            "slots": slots,
            "stated": [fields[int(i)].name for i in sorted(stated)],
        }

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the task and start the conversation with the request."""
        try:
            domain = DOMAINS[task["domain"]]
            slots = {str(k): str(v) for k, v in dict(task["slots"]).items()}
            stated = [str(s) for s in task.get("stated", [])]
            for name, value in slots.items():
                assert value in domain.slot(name).values, f"{value!r} is not a {name}"
            assert slots and set(stated) <= set(slots) and len(set(stated)) == len(stated)
        except (KeyError, TypeError, ValueError, AssertionError) as err:
            raise ValueError(
                'A Clarify task is {"domain": one of ' + str(sorted(DOMAINS)) + ', "slots": '
                '{field: value}, "stated": [fields named in the request]} with values from '
                f"the domain's lists ({type(err).__name__}: {err})."
            ) from err
        order = [s.name for s in domain.slots]
        self.domain = domain
        self.slots = dict(sorted(slots.items(), key=lambda kv: order.index(kv[0])))
        self.stated = sorted(stated, key=order.index)
        self.max_turns = int(self.episode_difficulty["max_turns"])
        self.cost = float(self.episode_difficulty["question_cost"])
        self.partial_credit = bool(self.episode_difficulty["partial_credit"])
        self.answers, self.questions, self.used, self.result, self.over = {}, 0, 0, None, False
        self.said = [self._request()]
        self.new_lines = 1
        self.action_space = TextSpace(examples=self._examples(task))

    def _request(self) -> str:
        phrases = [self.domain.slot(s).phrase.format(v=self.slots[s]) for s in self.stated]
        return " ".join([self.domain.opening, *phrases]) + "."

    def _examples(self, task: Mapping[str, Any]) -> tuple[str, ...]:
        """Asks about every domain slot, two vague questions and two random final actions."""
        rng = np.random.default_rng(int(task_fingerprint(task)[:16], 16))
        asks = [f"<action>ask: {s.name}</action>" for s in self.domain.slots]
        asks += ["<action>ask: anything else?</action>", "<action>ask: budget</action>"]
        for _ in range(2):
            guess = {
                n: self.domain.slot(n).values[int(rng.integers(len(self.domain.slot(n).values)))]
                for n in self.slots
            }
            asks.append(f"<action>do: {json.dumps(guess)}</action>")
        return tuple(asks)

    # --- Dynamics -----------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Answer a question, or carry out the final action."""
        if self.over:
            return Transition(terminated=True, effective=False, message="The chat is over.")
        text = command.strip()
        ask, do = _ASK.match(text), _DO.match(text)
        if ask:
            return self._ask(ask.group(1))
        if do:
            return self._do(do.group(1))
        return self._invalid("start with 'ask:' or 'do:'")

    def _invalid(self, why: str) -> Transition:
        return Transition(
            valid=False,
            effective=False,
            message=f"Invalid action: {why}. Fields: {', '.join(self.slots)}.",
        )

    def _ask(self, question: str) -> Transition:
        if not question.strip():
            return self._invalid("the question is empty")
        self.questions += 1
        self.used += 1
        slots = self._slots_in(question)
        new = False
        if len(slots) != 1:
            reply = NEUTRAL_REPLIES["several" if slots else "unclear"]
        elif slots[0].name not in self.slots:
            reply = NEUTRAL_REPLIES["no_preference"].format(label=slots[0].label)
        else:
            name = slots[0].name
            new = name not in self.answers
            self.answers[name] = self.slots[name]
            reply = f"{slots[0].label.capitalize()}: {self.slots[name]}."
        self.said.append(reply)
        self.new_lines = 1
        parts = {"question_cost": -self.cost}
        if self.used >= self.max_turns:
            self.over = True
            self.said.append(NEUTRAL_REPLIES["over"])
            self.new_lines = 2
        return Transition(
            reward=-self.cost, terminated=self.over, reward_components=parts, effective=new
        )

    def _slots_in(self, question: str) -> list[Slot]:
        """The slots a question refers to: an exact name or label, else every synonym hit."""
        text = normalise_value(question)
        for slot in self.domain.slots:
            if text in (normalise_value(slot.name), slot.label):
                return [slot]
        return [
            slot
            for slot in self.domain.slots
            if any(mentions(text, w) for w in (slot.name, slot.label, *slot.synonyms))
        ]

    def _do(self, body: str) -> Transition:
        given = self._parse_assignment(body)
        if isinstance(given, str):
            return self._invalid(given)
        self.used += 1
        right = sum(
            name in given and _values_match(self.domain.slot(name), given[name], value)
            for name, value in self.slots.items()
        )
        fraction = right / len(self.slots)
        self.result = fraction if self.partial_credit else float(right == len(self.slots))
        self.over = True
        self.said.append(NEUTRAL_REPLIES["all_right" if fraction == 1 else "some_wrong"])
        self.new_lines = 1
        return Transition(
            reward=self.result, terminated=True, reward_components={"task": self.result}
        )

    def _parse_assignment(self, body: str) -> dict[str, Any] | str:
        """Parse ``{json}`` or ``k=v; k=v`` into ``{field: value}``, or return the error."""
        body = body.strip()
        if not body:
            return 'the final action is empty; use do: {"field": "value", ...}'
        if body.startswith("{"):
            try:
                raw = json.loads(body)
            except (json.JSONDecodeError, RecursionError) as err:
                return f"the JSON does not parse ({type(err).__name__})"
            if not isinstance(raw, dict):
                return "the JSON must be an object of field: value"
            pairs = list(raw.items())
        else:
            pairs = []
            for chunk in _PAIR_SPLIT.split(body):
                if not chunk.strip():
                    continue
                pair = _PAIR.match(chunk)
                pairs.append((pair.group(1), pair.group(2)) if pair else (chunk, None))
        return self._check_keys(pairs)

    def _check_keys(self, pairs: list[tuple[Any, Any]]) -> dict[str, Any] | str:
        by_key = {normalise_value(s.name): s.name for s in self.domain.slots}
        by_key.update({s.label: s.name for s in self.domain.slots})
        given: dict[str, Any] = {}
        for key, value in pairs:
            name = by_key.get(normalise_value(key))
            if name is None or name not in self.slots:
                return f"{_render(key)!r} is not a field of this form"
            if value is None:
                return f"no value for {name}; write {name}=VALUE"
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                return f"the value of {name} must be a string or a number"
            given[name] = value.strip() if isinstance(value, str) else value
        return given if given else "the final action names no field"

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The task, the grammar, the reward and one example."""
        return "\n".join([
            "You are an assistant carrying out a user's request. The request leaves some "
            "details out; ask the user for them, then act.",
            "Each turn, do one of: ask about one form field, e.g. <action>ask: date</action> "
            "(the user answers only what you ask); or carry out the request with every field "
            'filled, e.g. <action>do: {"date": "June 3", "time": "19:30"}</action> (or '
            "<action>do: date=June 3; time=19:30</action>).",
            f"Acting ends the chat: reward 1 if every field is right, else "
            f"{'the fraction of right fields' if self.partial_credit else '0'}. Each question "
            f"costs {self.cost:g}. You have {self.max_turns} turns.",
        ])  # fmt: skip

    def render_text(self) -> str:
        """The user's latest line(s); the request and form fields at reset."""
        lines = []
        if self.used == 0 and len(self.said) == 1:
            lines.append(f"User: {self.said[0]}")
            lines.append(f"Form fields: {', '.join(self.slots)}.")
        else:
            lines += [f"User: {line}" for line in self.said[-self.new_lines :]]
        lines.append(f"Turns left: {self.max_turns - self.used} of {self.max_turns}.")
        return "\n".join(lines)

    def state_key(self) -> str:
        """Domain, asked slots with their answers (sorted), and the final result if any."""
        asked = ",".join(f"{k}={v}" for k, v in sorted(self.answers.items()))
        done = "" if self.result is None else f"{self.result:g}"
        return f"{self.domain.name}|asked={asked}|done={done}|over={int(self.over)}"

    def score(self) -> float:
        """The score of the final action (0 before it)."""
        return 0.0 if self.result is None else float(self.result)

    def hidden(self) -> list[str]:
        """The form fields the request did not state."""
        return [s for s in self.slots if s not in self.stated]

    def privileged(self) -> dict[str, Any]:
        """Slot assignment, stated/hidden fields, minimal questions, gold action and form."""
        return {
            "domain": self.domain.name,
            "slots": dict(self.slots),
            "stated": list(self.stated),
            "hidden": self.hidden(),
            "min_questions": len(self.hidden()),
            "gold_action": f"do: {json.dumps(self.slots)}",
            GOLD_ANSWERS: [json.dumps(self.slots)],  # the filled form, as do: takes it
        }

    def metrics(self) -> dict[str, Any]:
        """Questions asked, hidden slots still unknown, and the user's latest reply."""
        return {
            "questions": self.questions,
            "hidden_unasked": sum(s not in self.answers for s in self.hidden()),
            "user_reply": self.said[-1] if self.said else "",
        }

    def oracle_action(self) -> str:
        """Ask the first hidden slot not yet asked; once all are known, act."""
        for name in self.hidden():
            if name not in self.answers:
                return f"<action>ask: {name}</action>"
        return f"<action>do: {json.dumps(self.slots)}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag a ``User:`` line naming the value of a hidden slot that was not asked."""
        said = "\n".join(
            line[len("User:") :] for line in text.splitlines() if line.startswith("User:")
        )
        return [
            f"the user named the unasked hidden {name}"
            for name in self.hidden()
            if name not in self.answers and mentions(said, self.slots[name])
        ]
