"""TryAgain: answer a puzzle in up to ``max_attempts`` tries, told only to try again.

Unary Feedback as Observation (UFO) from "A Simple 'Try Again' Can Elicit Multi-Turn LLM
Reasoning" (arXiv 2507.14295; code lichengliu03/unary-feedback, ``ragen/env/metamathqa/
env.py``; docs/environments.md#tryagain): after a wrong answer the agent sees nothing but the unary
feedback :data:`FEEDBACK`, no hint of how it was wrong. Puzzles come from our own generators
(:mod:`~turngym.envs.dialogue.puzzles`: arithmetic word problems, ordering puzzles, number
sequences) instead of MetaMathQA.

**Action grammar.** ``<answer>...</answer>`` (the last well-formed tag; ``<think>`` ignored).
Numbers are read with tolerance (``42``, ``42.0``, ``1,024``, ``7/2``, or a text with exactly
one number); orderings are the names in order, any separators (``Cleo, Ada, Ben``). An empty tag
or no tag is invalid and uses no attempt.

**Reward** (UFO, arXiv 2507.14295). With attempts numbered ``t = 0, 1, ...``:

* a correct answer at attempt ``t`` earns ``gamma ** t`` (UFO: ``1 / 2**t``, ``gamma = 0.5``);
  a wrong one earns 0;
* the step that ends the episode (solved, or attempts used up) also adds the repetition
  penalty ``-lambda * (1 - E / T)``, with ``E`` the number of distinct answers and ``T`` the
  number of valid answers given (``repeat_penalty = lambda = 0.5``).

So the return is ``R = sum_t r_t - lambda * (1 - E / T)``. ``info["reward_components"]``
splits it into ``correct`` and ``repetition_penalty``. ``success`` = solved within the budget.

**Leak check.** The gold answer never appears in the question, the instructions or any
feedback (numbers as standalone numbers, orderings as consecutive names); generators reject
puzzles that would. **State key**: attempts used, the distinct answers tried (sorted), solved.

**Oracle.** Answers correctly at the first attempt: success 100%, return 1.

Example:
    >>> env = TryAgain()
    >>> task = {"kind": "sequence", "answer_type": "number", "question":
    ...         "What number comes next in the sequence 2, 4, 6, ...?", "answer": "8"}
    >>> obs, info = env.reset(options={"task": task})
    >>> env.step("<answer>10</answer>")[:2]
    ("Let's try again.", 0.0)
    >>> obs, reward, terminated, *_ = env.step("<answer>8</answer>")
    >>> obs, reward, terminated
    ('Correct!', 0.5, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import numpy as np

from turngym.core import GOLD_ANSWERS, TextEnv, TextSpace, Transition, check_int_knobs
from turngym.envs.dialogue.puzzles import (
    GENERATORS,
    answer_in_text,
    answer_key,
    generate_puzzle,
    is_correct,
)
from turngym.envs.unary import FEEDBACK, repetition_penalty, ufo_return, ufo_step_reward
from turngym.tasks import task_fingerprint

__all__ = ["TryAgain", "FEEDBACK", "ufo_return", "SUBPROBLEM_CORRECT"]

SUBPROBLEM_CORRECT = "subproblem_correct"
"""Info key (every step): one 0/1 verdict per sub-problem of the last valid answer."""

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


class TryAgain(TextEnv):
    """Solve a puzzle within ``max_attempts`` answers; a wrong answer gets only unary feedback.

    Difficulty knobs (:attr:`difficulty_defaults`): ``puzzle_types`` (names from
    :data:`~turngym.envs.dialogue.puzzles.GENERATORS`), ``steps`` (1-6 operations of an
    arithmetic problem), ``max_value`` (20-10000, scale of its numbers), ``n_people`` (3-8 in
    an ordering puzzle), ``extra_facts`` (0-10 redundant facts), ``seq_complexity`` (1-3: tiers
    of sequence rules), ``seq_terms`` (4-8 terms shown), ``max_attempts`` (1-10; UFO: 5),
    ``gamma`` (0-1 attempt discount; UFO: 0.5), ``repeat_penalty`` (0-1, lambda; UFO: 0.5),
    ``subproblems`` (off by default: an arithmetic problem also asks for the count after each
    step, answered as ``c1; c2; ...; answer``, and ``info["subproblem_correct"]`` grades each
    part, the sub-problem structure SCRL normalises over; the attempt is right when the last
    part is).

    Levels: 0 = one-step problems, three people, simple sequences; 1 = default; 2 = four steps,
    five people, every sequence rule; 3 = five steps, six people, four terms shown, three
    attempts; 4 = level 3 with one attempt (the single-turn baseline).
    """

    family: ClassVar[str] = "tryagain"
    action_tag: ClassVar[str] = "answer"
    privileged_keys: ClassVar[frozenset[str]] = frozenset({GOLD_ANSWERS})
    answer_template: ClassVar[str] = "<answer>{answer}</answer>"
    example_actions: ClassVar[tuple[str, ...]] = (
        "<answer>your answer</answer>",
        "<answer>0</answer>",
        "<answer>Ada, Ben, Cleo</answer>",
    )
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "puzzle_types": sorted(GENERATORS),
        "steps": 3,
        "max_value": 100,
        "n_people": 4,
        "extra_facts": 1,
        "seq_complexity": 2,
        "seq_terms": 5,
        "max_attempts": 5,
        "gamma": 0.5,
        "repeat_penalty": 0.5,
        "subproblems": False,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        0: {"steps": 1, "max_value": 20, "n_people": 3, "extra_facts": 0, "seq_complexity": 1},
        1: {},
        2: {"steps": 4, "max_value": 500, "n_people": 5, "extra_facts": 2, "seq_complexity": 3},
        3: {"steps": 5, "max_value": 1000, "n_people": 6, "seq_complexity": 3, "seq_terms": 4,
            "max_attempts": 3},
        4: {"steps": 5, "max_value": 1000, "n_people": 6, "seq_complexity": 3, "seq_terms": 4,
            "max_attempts": 1},
    }  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`."""
        super().__init__(**kwargs)
        self.puzzle: dict[str, Any] = {}
        self.answers: list[str] = []
        self.correct_at: int | None = None
        self.over = False

    # --- Tasks --------------------------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and its valid range."""
        check_int_knobs("TryAgain", difficulty, {
            "steps": (1, 6, "operations in an arithmetic problem"),
            "max_value": (20, 10_000, "scale of arithmetic numbers"),
            "n_people": (3, 8, "people in an ordering puzzle"),
            "extra_facts": (0, 10, "redundant facts in an ordering puzzle"),
            "seq_complexity": (1, 3, "tiers of sequence rules"),
            "seq_terms": (4, 8, "sequence terms shown"),
            "max_attempts": (1, 10, "answers allowed"),
        })  # fmt: skip
        types = difficulty["puzzle_types"]
        if (
            isinstance(types, str)
            or not isinstance(types, (list, tuple))
            or not types
            or any(t not in GENERATORS for t in types)
        ):
            raise ValueError(
                f"TryAgain: puzzle_types must be a non-empty list from {sorted(GENERATORS)}."
            )
        for name in ("gamma", "repeat_penalty"):
            value = difficulty[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (0 <= value <= 1)
            ):
                raise ValueError(f"TryAgain: {name}={value!r}; use a number from 0 to 1.")
        if not isinstance(difficulty["subproblems"], bool):
            raise ValueError("TryAgain: subproblems must be True or False.")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a leak-free puzzle of one of the enabled types."""
        return generate_puzzle(rng, difficulty)

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Check the puzzle and reset the attempts."""
        try:
            puzzle = {k: task[k] for k in ("kind", "answer_type", "question", "answer")}
            assert all(isinstance(v, str) and v.strip() for v in puzzle.values())
            assert puzzle["answer_type"] in ("number", "order", "text")
            assert not answer_in_text(puzzle["answer"], puzzle["answer_type"], puzzle["question"])
        except (KeyError, TypeError, AssertionError) as err:
            raise ValueError(
                'A TryAgain task is {"kind": str, "answer_type": "number"|"order"|"text", '
                '"question": str, "answer": str, "solution": [str]} whose answer does not '
                f"appear in the question ({type(err).__name__}: {err})."
            ) from err
        puzzle["solution"] = [str(s) for s in task.get("solution", [])]
        self.puzzle = puzzle
        knobs = self.episode_difficulty
        self.max_attempts = int(knobs["max_attempts"])
        self.gamma, self.lam = float(knobs["gamma"]), float(knobs["repeat_penalty"])
        self.answers, self.correct_at, self.over = [], None, False
        self.subanswers = self._subanswers() if knobs["subproblems"] else [puzzle["answer"]]
        self.verdicts: list[int] = []
        self.action_space = TextSpace(examples=self._examples(task))

    def _subanswers(self) -> list[str]:
        """Sub-problem golds: an arithmetic problem's count after each step (SCRL-style).

        The solution steps read ``"a op b = c"``; the last count is the answer itself. Other
        puzzles (and tasks without such steps) have one sub-problem, the question.
        """
        steps = self.puzzle["solution"] if self.puzzle["kind"] == "arithmetic" else []
        counts = [step.rsplit("=", 1)[1].strip() for step in steps if "=" in step]
        if len(counts) < 2 or counts[-1] != self.puzzle["answer"]:
            return [self.puzzle["answer"]]
        return counts

    def _examples(self, task: Mapping[str, Any]) -> tuple[str, ...]:
        """Plausible wrong-or-right answers: the question's numbers, or shuffled name orders."""
        rng = np.random.default_rng(int(task_fingerprint(task)[:16], 16))
        if self.puzzle["answer_type"] == "order":
            names = [n.strip() for n in self.puzzle["answer"].split(",")]
            guesses = [", ".join(names[int(i)] for i in rng.permutation(len(names)))]
            guesses += [", ".join(names[int(i)] for i in rng.permutation(len(names)))]
        else:
            numbers = [t for t in self.puzzle["question"].replace(",", " ").split() if t.isdigit()]
            guesses = numbers[-3:] + [str(sum(int(n) for n in numbers))]
        return tuple(f"<answer>{g}</answer>" for g in [*guesses, "I don't know"])

    # --- Dynamics -----------------------------------------------------------------------------
    def apply(self, command: str) -> Transition:
        """Grade one answer; a wrong one gets only the unary feedback."""
        if self.over:
            return Transition(terminated=True, effective=False, message="The episode is over.")
        gold, kind = self.puzzle["answer"], self.puzzle["answer_type"]
        key = answer_key(command, kind)
        self.verdicts = []
        if key in ("s:", "o:"):
            why = "Invalid action: the answer is empty. Answer like <answer>your answer</answer>"
            return Transition(valid=False, effective=False, message=why)
        final = command
        if len(self.subanswers) > 1:  # "c1; c2; ...; answer": the last part is the answer
            pieces = [p.strip() for p in command.split(";")]
            final, n = pieces[-1], len(self.subanswers)
            given = pieces[:-1][: n - 1]
            given += [""] * (n - 1 - len(given)) + [final]
            self.verdicts = [int(is_correct(g, want, kind))
                             for g, want in zip(given, self.subanswers, strict=True)]  # fmt: skip
        else:
            self.verdicts = [int(is_correct(command, gold, kind))]
        attempt = len(self.answers)
        self.answers.append(key)
        parts: dict[str, float] = {"correct": 0.0}
        if is_correct(final, gold, kind):
            self.correct_at, self.over = attempt, True
            parts["correct"] = ufo_step_reward(attempt, True, self.gamma)  # UFO: 1 / 2**t
        elif len(self.answers) >= self.max_attempts:
            self.over = True
        if self.over:  # UFO's repetition penalty -lambda * (1 - E / T), at termination
            parts["repetition_penalty"] = repetition_penalty(self.answers, self.lam)
        return Transition(
            reward=sum(parts.values()),
            terminated=self.over,
            reward_components=parts,
            effective=key not in self.answers[:-1],
        )

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One turn (see :meth:`TextEnv.step`), plus ``info["subproblem_correct"]``.

        After a valid answer it holds one 0/1 verdict per sub-problem (the last is the
        question itself; a single verdict unless ``subproblems`` is on); else it is empty.
        """
        obs, reward, terminated, truncated, info = super().step(action)
        info[SUBPROBLEM_CORRECT] = list(self.verdicts)
        self.verdicts = []
        return obs, reward, terminated, truncated, info

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The task, the answer format and the reward, with no digit (see the leak check)."""
        n = self.max_attempts
        return "\n".join([
            "Solve the puzzle. Give your final answer inside answer tags, for example "
            "<answer>your answer</answer>. Numbers may be written as digits; for an ordering, "
            "list the names in order separated by commas.",
            f"You have {_WORDS[n]} attempt{'s' if n > 1 else ''}. After a wrong answer you "
            f"are only told: {FEEDBACK} A correct answer ends the episode; the reward is "
            "highest at the first attempt and shrinks with every extra attempt, and repeating "
            "an answer you already gave is penalised.",
        ])  # fmt: skip

    def render_text(self) -> str:
        """The question before any answer, then only the (unary) feedback."""
        if not self.answers:
            if len(self.subanswers) > 1:
                return (f"{self.puzzle['question']} Give the count after each step, in order, "
                        "separated by semicolons; the last one is your answer.")  # fmt: skip
            return self.puzzle["question"]
        if self.correct_at is not None:
            return "Correct!"
        if self.over:
            return "That's not it, and no attempts are left."
        return FEEDBACK

    def state_key(self) -> str:
        """Attempts used, the distinct answers tried (sorted) and whether it is solved."""
        tried = ",".join(sorted(set(self.answers)))
        solved = int(self.correct_at is not None)
        return f"attempts={len(self.answers)}|tried={tried}|solved={solved}"

    def score(self) -> float:
        """1.0 once solved, else 0.0 (the discounted reward is in the rewards, not the score)."""
        return 1.0 if self.correct_at is not None else 0.0

    def privileged(self) -> dict[str, Any]:
        """The gold answer (also as ``gold_answers``), type, solution steps and answers tried."""
        return {
            "answer": self.puzzle.get("answer", ""),
            GOLD_ANSWERS: [self.puzzle["answer"]] if self.puzzle.get("answer") else [],
            "answer_type": self.puzzle.get("answer_type", ""),
            "kind": self.puzzle.get("kind", ""),
            "solution": list(self.puzzle.get("solution", [])),
            "tried": list(self.answers),
        }

    def metrics(self) -> dict[str, Any]:
        """Attempts used, distinct answers and UFO's effective-answer ratio ``E / T``."""
        distinct = len(set(self.answers))
        return {
            "attempts": len(self.answers),
            "distinct_answers": distinct,
            "effective_ratio": distinct / len(self.answers) if self.answers else 1.0,
        }

    def oracle_action(self) -> str:
        """The gold answer, at once."""
        return f"<answer>{self.puzzle['answer']}</answer>"

    def leak_check(self, text: str) -> list[str]:
        """Flag any text that contains the gold answer (standalone number / name order)."""
        if self.puzzle and answer_in_text(self.puzzle["answer"], self.puzzle["answer_type"], text):
            return ["the gold answer appears in the text"]
        return []
