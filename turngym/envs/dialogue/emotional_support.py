"""EmotionalSupport: comfort a simulated help-seeker; a judge scores every turn.

MAPO's setting (arXiv 2603.06194; EMPA, arXiv 2603.00552): long-horizon emotional-support
dialogue in which a judge gives dense per-turn feedback. The seeker
(:mod:`~turngym.envs.dialogue.support_world`) holds a hidden situation (three facts with
concrete details), a core need and a latent state ``(distress, trust, understood)``; it reacts
to each reply by the support strategies the reply uses (ESConv's: questions, restatement,
reflection of feelings, affirmation, suggestions, information), is hurt by minimising,
judgement, clichés, repetition and unsafe advice, and tells the next fact only once it trusts
the supporter enough and is invited to share.

**Action grammar.** One supporter message inside ``<action>...</action>``, free text.

**Judge and reward.** Each turn's reward is the judge's score of that turn, also in
``info["judge_score"]`` (the env's :attr:`~EmotionalSupport.judge_key`, which trainers turn
into ``CreditContext.judge``). The default rule judge scores the change in the seeker's
wellbeing ``((1 - distress) + trust + understood) / 3``; ``judge="openai:<model>@<url>"``
asks an OpenAI-compatible model instead (:mod:`~turngym.envs.dialogue.support_judge`, cached
and seeded), while the seeker stays the rule model. ``info["rule_judge_score"]`` always holds
the rule judge's score. The score (and outcome) is the current wellbeing; the episode ends
with success when it reaches :attr:`~EmotionalSupport.success_score` (0.7), and without when
trust falls below 0.05 (the seeker leaves) or at the turn limit.

**Leak check.** No text names a detail of a fact the seeker has not told yet.

**Oracle.** A one-step lookahead through the seeker model over replies built from strategy
blocks: it asks, reflects and restates while facts are untold, then validates and, once
trusted, suggests the situation's fitting next step, never repeating itself.

Example:
    >>> env = EmotionalSupport()
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> obs.startswith("Seeker:")
    True
    >>> _, reward, *_, info = env.step(env.oracle_action())
    >>> reward > 0, info["judge_score"] == reward
    (True, True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import numpy as np

from turngym.core import TextEnv, Transition, check_int_knobs
from turngym.envs.dialogue.support_judge import JudgeInput, make_judge
from turngym.envs.dialogue.support_world import (
    NEEDS,
    SITUATIONS,
    STRATEGIES,
    candidate_replies,
    draw_persona,
    react,
    wellbeing,
)

__all__ = ["EmotionalSupport", "JUDGE_SCORE"]

JUDGE_SCORE = "judge_score"
"""Info key (every step): the judge's score of the last turn (0 for an invalid action)."""

_LEAVE = 0.05
_CLOSING = "Thank you. Talking this through really helped; I feel calmer now."
_GOODBYE = "I don't think this is helping. I'm going to go."


class EmotionalSupport(TextEnv):
    """Support a simulated help-seeker; the per-turn judge score is the reward.

    Difficulty knobs (:attr:`difficulty_defaults`): ``situations`` and ``needs`` (which to
    draw from), ``n_facts`` (1-3 facts to uncover), ``trust_start`` (0.1-0.6, also the trust
    needed for the first disclosure), ``disclosure_step`` (0-0.3, extra trust per further
    fact), ``advice_trust`` (0-1, trust below which suggestions backfire), ``diminish``
    (0.3-1, the factor by which a strategy's effect shrinks each time it is reused) and
    ``responsiveness`` (0.1-2, scale of every effect: lower means a longer conversation).

    Levels: 0 = two facts, trusting and responsive seeker; 1 = default; 2 = guarded seeker;
    3 = guarded, slow to trust and to respond, strategies wear out fast.
    """

    family: ClassVar[str] = "support"
    judge_key: ClassVar[str] = JUDGE_SCORE
    """The per-turn judge score trainers read (``InfoJudge``)."""
    success_score: ClassVar[float] = 0.7
    example_actions: ClassVar[tuple[str, ...]] = (
        "<action>That sounds really hard. What happened?</action>",
        "<action>I see.</action>",
        "<action>At least it could be worse.</action>",
        "<action>You could try to think about something else.</action>",
        "<action>Everything happens for a reason.</action>",
        "<action>How are you feeling about it now?</action>",
        "<action>It makes sense that you feel upset.</action>",
        "<action>Just relax and calm down.</action>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "situations": sorted(SITUATIONS),
        "needs": list(NEEDS),
        "n_facts": 3,
        "trust_start": 0.3,
        "disclosure_step": 0.12,
        "advice_trust": 0.5,
        "diminish": 0.7,
        "responsiveness": 0.8,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"n_facts": 2, "trust_start": 0.4, "advice_trust": 0.45, "responsiveness": 1.0},
        1: {},
        2: {"trust_start": 0.25, "disclosure_step": 0.15, "advice_trust": 0.6,
            "responsiveness": 0.6},
        3: {"trust_start": 0.2, "disclosure_step": 0.18, "advice_trust": 0.65, "diminish": 0.5,
            "responsiveness": 0.5},
    }  # fmt: skip

    def __init__(self, *, judge: str = "rule", **kwargs: Any) -> None:
        """Create the env.

        Args:
            judge: ``"rule"`` (default) or ``"openai:<model>@<base url>[?options]"``.
            **kwargs: Those of :class:`~turngym.core.TextEnv` (``level``, knobs...).

        Raises:
            ValueError: An unknown judge spec or a bad knob.
        """
        super().__init__(**kwargs)
        self.judge = make_judge(judge)
        self.persona: dict[str, Any] = {}
        self.state: dict[str, float] = {}
        self.revealed = 0
        self.used: dict[str, int] = {}
        self.replies: list[str] = []
        self.transcript: list[str] = []
        self.seeker_line = ""
        self.over = False
        self.last_judge = self.last_rule = 0.0

    # --- Tasks --------------------------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid values."""
        check_int_knobs("EmotionalSupport", difficulty, {"n_facts": (1, 3, "facts to uncover")})
        for name, pool in (("situations", SITUATIONS), ("needs", NEEDS)):
            value = difficulty[name]
            if isinstance(value, str) or not value or any(v not in pool for v in value):
                raise ValueError(f"EmotionalSupport: {name} must be a non-empty list from "
                                 f"{sorted(pool)}.")  # fmt: skip
        bounds = {"trust_start": (0.1, 0.6), "disclosure_step": (0.0, 0.3),
                  "advice_trust": (0.0, 1.0), "diminish": (0.3, 1.0),
                  "responsiveness": (0.1, 2.0)}  # fmt: skip
        for name, (low, high) in bounds.items():
            value = difficulty[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                low <= value <= high
            ):
                raise ValueError(f"EmotionalSupport: {name}={value!r}; use a number from "
                                 f"{low} to {high}.")  # fmt: skip

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a persona (see :func:`~turngym.envs.dialogue.support_world.draw_persona`)."""
        return draw_persona(rng, sorted(difficulty["situations"]), list(difficulty["needs"]),
                            int(difficulty["n_facts"]), float(difficulty["trust_start"]),
                            float(difficulty["disclosure_step"]))  # fmt: skip

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the persona and start the conversation with the seeker's vague opening."""
        try:
            assert task["situation"] in SITUATIONS and task["need"] in NEEDS
            facts = [{"text": str(f["text"]), "secrets": [str(s) for s in f["secrets"]]}
                     for f in task["facts"]]  # fmt: skip
            thresholds = [float(t) for t in task["thresholds"]]
            state = {k: float(task["state"][k]) for k in ("distress", "trust", "understood")}
            assert facts and len(thresholds) == len(facts)
        except (KeyError, TypeError, ValueError, AssertionError) as err:
            raise ValueError(
                'An EmotionalSupport task is {"situation", "need", "facts": [{"text", '
                '"secrets"}], "thresholds", "state": {"distress", "trust", "understood"}} '
                f"({type(err).__name__}: {err})."
            ) from err
        self.persona = {"situation": task["situation"], "need": task["need"], "facts": facts,
                        "thresholds": thresholds}  # fmt: skip
        self.state, self.revealed, self.used = state, 0, {}
        self.replies, self.over = [], False
        self.seeker_line = SITUATIONS[task["situation"]]["opening"]
        self.transcript = [f"Seeker: {self.seeker_line}"]
        self.last_judge = self.last_rule = 0.0

    # --- Dynamics -----------------------------------------------------------------------------
    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One turn (see :meth:`TextEnv.step`), plus ``info["judge_score"]`` and the rule's."""
        self.last_judge = self.last_rule = 0.0
        obs, reward, terminated, truncated, info = super().step(action)
        info[JUDGE_SCORE] = self.last_judge
        info["rule_judge_score"] = self.last_rule
        return obs, reward, terminated, truncated, info

    def apply(self, command: str) -> Transition:
        """Let the seeker react to one reply; the judge scores the turn."""
        if self.over:
            return Transition(terminated=True, effective=False, message="The conversation is over.")
        reply = " ".join(command.split())
        before = wellbeing(self.state)
        reaction = react(reply, self.persona, self.state, self.revealed, self.used,
                         self.replies, self.episode_difficulty)  # fmt: skip
        after = wellbeing(reaction.state)
        turn = JudgeInput("\n".join(self.transcript), reply, reaction.reply, before, after)
        self.last_rule = round(after - before, 6)
        self.last_judge = float(self.judge.score(turn))
        for name in reaction.effects:
            if name in STRATEGIES:
                self.used[name] = self.used.get(name, 0) + 1
        self.state, self.revealed = reaction.state, reaction.revealed
        self.replies.append(reply)
        line = reaction.reply
        if after >= self.success_score:
            line, self.over = f"{line} {_CLOSING}", True
        elif self.state["trust"] < _LEAVE:
            line, self.over = f"{line} {_GOODBYE}", True
        self.seeker_line = line
        self.transcript += [f"Supporter: {reply}", f"Seeker: {line}"]
        return Transition(reward=self.last_judge, terminated=self.over,
                          reward_components={"judge": self.last_judge})  # fmt: skip

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The role, the grammar and one example; nothing about this seeker."""
        return "\n".join([
            "You are a supporter talking with someone who is going through a hard time.",
            "Help them feel understood and better: ask open questions about what happened, "
            "reflect their feelings, validate them, and suggest next steps only once they have "
            "opened up and trust you. Avoid minimising, judging, cliches, repeating yourself "
            "and unsafe advice.",
            "Write one message per turn inside action tags, for example: "
            "<action>That sounds really hard. What happened?</action>",
        ])  # fmt: skip

    def render_text(self) -> str:
        """The seeker's latest line."""
        return f"Seeker: {self.seeker_line}"

    def state_key(self) -> str:
        """Facts told, the state rounded to 0.05, and whether the conversation is over."""
        s = {k: round(v * 20) / 20 for k, v in self.state.items()}
        return (f"told={self.revealed}|d={s['distress']:.2f}|t={s['trust']:.2f}|"
                f"u={s['understood']:.2f}|over={int(self.over)}")  # fmt: skip

    def score(self) -> float:
        """The seeker's wellbeing in [0, 1]."""
        return round(wellbeing(self.state), 6) if self.state else 0.0

    def privileged(self) -> dict[str, Any]:
        """The persona (situation, need, facts, thresholds) and the latent state."""
        return {"situation": self.persona.get("situation"), "need": self.persona.get("need"),
                "facts": [f["text"] for f in self.persona.get("facts", [])],
                "thresholds": list(self.persona.get("thresholds", [])),
                "state": dict(self.state)}  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """Facts told, replies given, strategy use counts and the judge's fallbacks."""
        return {"facts_told": self.revealed, "facts": len(self.persona.get("facts", [])),
                "replies": len(self.replies), "strategies_used": dict(self.used),
                "judge_fallbacks": int(getattr(self.judge, "fallbacks", 0))}  # fmt: skip

    # --- Oracle and leak check ----------------------------------------------------------------
    def oracle_action(self) -> str:
        """The candidate reply that raises the seeker's wellbeing most right now.

        A one-step lookahead through the seeker model over
        :func:`~turngym.envs.dialogue.support_world.candidate_replies` (ties: the first);
        it explores while facts are untold, validates, and suggests once it is trusted, and
        it never repeats itself because repetition would score lower.
        """
        if not self.persona:
            return "<action>How are you feeling?</action>"
        told = [s for f in self.persona["facts"][: self.revealed] for s in f["secrets"]]
        best, best_gain = "", -np.inf
        for reply in candidate_replies(self.persona["situation"], told):
            reaction = react(reply, self.persona, self.state, self.revealed, self.used,
                             self.replies, self.episode_difficulty)  # fmt: skip
            gain = wellbeing(reaction.state) + 0.02 * (reaction.revealed - self.revealed)
            if gain > best_gain:
                best, best_gain = reply, gain
        return f"<action>{best}</action>"

    def leak_check(self, text: str) -> list[str]:
        """Flag ``text`` if it names a detail of a fact the seeker has not told yet."""
        lowered = text.lower()
        for fact in self.persona.get("facts", [])[self.revealed :]:
            for secret in fact["secrets"]:
                if re.search(rf"\b{re.escape(secret.lower())}\b", lowered):
                    return [f"an untold detail ({secret!r}) appears in the text"]
        return []

    # --- Snapshots ----------------------------------------------------------------------------
    def get_state(self) -> bytes:
        """Snapshot the episode (the judge, with its HTTP client and cache, is not part of it)."""
        judge, self.judge = self.judge, None  # type: ignore[assignment]
        try:
            return super().get_state()
        finally:
            self.judge = judge

    def set_state(self, state: bytes) -> None:
        """Restore a snapshot from :meth:`get_state`, keeping this env's judge."""
        judge = self.judge
        super().set_state(state)
        self.judge = judge

