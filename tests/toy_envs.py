"""Small TextEnvs used by the engine tests (independent of the built-in games)."""

from __future__ import annotations

import time
from typing import Any

from turngym.core import TextEnv, Transition


class Counter(TextEnv):
    """Reach ``target`` from 0 with ``inc``/``dec``. The target is privileged: the agent only
    learns whether it is higher or lower, never the number."""

    family = "counter"
    example_actions = ("<action>inc</action>", "<action>dec</action>")
    difficulty_defaults = {"max_target": 9, "fail_at_turn": 0, "sleep": 0.0}

    def generate_task(self, rng, difficulty) -> dict[str, Any]:
        return {"target": int(rng.integers(1, difficulty["max_target"] + 1))}

    def load_task(self, task) -> None:
        self.target = int(task["target"])
        self.value = 0

    def instructions(self) -> str:
        return "Move the counter to the hidden target. Answer <action>inc</action> or <action>dec</action>."  # noqa: E501

    def render_text(self) -> str:
        hint = (
            "higher"
            if self.value < self.target
            else "lower"
            if self.value > self.target
            else "done"
        )
        return f"value={self.value} ({hint})"

    def apply(self, command: str) -> Transition:
        if self.difficulty["fail_at_turn"] and self.turn >= self.difficulty["fail_at_turn"]:
            raise RuntimeError("simulated env crash")
        if self.difficulty["sleep"]:
            time.sleep(self.difficulty["sleep"])
        if command not in ("inc", "dec"):
            return Transition(valid=False, effective=False, message=f"unknown command {command!r}")
        self.value += 1 if command == "inc" else -1
        solved = self.value == self.target
        return Transition(reward=1.0 if solved else 0.0, terminated=solved)

    def state_key(self) -> str:
        return f"v={self.value}"

    def score(self) -> float:
        return 1.0 if self.value == self.target else 0.0

    def privileged(self) -> dict[str, Any]:
        return {"target": self.target, "secret": f"THE-TARGET-IS-{self.target}"}

    def oracle_action(self) -> str:
        return "<action>inc</action>" if self.value < self.target else "<action>dec</action>"


class SlowCounter(Counter):
    """The same game, declared slow: the engine steps it in a worker pool."""

    metadata = {**Counter.metadata, "turngym.slow": True}
