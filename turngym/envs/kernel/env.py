"""KernelGen: write a faster ``ModelNew`` for a KernelBench-style reference, over several turns.

The task format is KernelBench's (Ouyang et al., 2025): a reference ``class Model(nn.Module)``
with ``get_inputs()``/``get_init_inputs()``, and the agent writes ``class ModelNew`` with the same
interface. The loop, the feedback and the reward follow KernelGYM / Dr. Kernel
(hkust-nlp/KernelGYM, ``prompt_config/multi_turn_kernel.yaml``; docs/environments.md#kernelgen):
each turn submits a new version, which is graded from outside its own sandboxed process on
fresh unpredictable inputs (:mod:`~turngym.envs.kernel.grader`, via
:mod:`~turngym.envs.kernel.runner`) and answered with server-style feedback.

**Action format.** The whole Python module, inside ``<action>...</action>`` (a ```` ```python ````
fence inside the tag is stripped). KernelBench and KernelGYM ask for a fenced block instead, so an
action without any ``<action>`` tag but with a ```` ```python ```` block uses its last such
block. The module must define ``ModelNew`` at top level; PyTorch ops are allowed. A candidate that
does not parse or has no ``ModelNew`` is answered at once (``compile_error``, no process).

**Feedback** (each step's observation): ``status`` (``compile_error``, ``runtime_error``,
``incorrect``, ``hack``, ``protocol_violation``, ``correct``), the error tail,
``correctness_trials: k/n``, the maximum and mean absolute difference (on a fixed probe
input), the cost model summary of reference and candidate (modelled
microseconds, ATen ops, bytes moved, FLOPs) and the speedup, the declared and launched custom
kernels, every detected hack with its explanation, and the turn's reward.

**Reward** (per turn, :func:`~turngym.envs.kernel.reward.kernel_reward`): 0 for anything but a
correct candidate; 0.5 if correct; +0.5 if also faster by the cost model (speedup >= 1.05);
optional coverage share. ``turn_reward="score"`` (default, Dr. Kernel's per-turn rewards for
TRLOO) gives each turn its own candidate's reward; ``"improvement"`` gives ``max(0, R_t -
best earlier R)``, so the return is the best score. The episode ends (``terminated``) on a
correct and faster candidate, else at the turn limit (``max_episode_steps = 3``, KernelGYM's
``max_user_turns``). ``score`` = the last candidate's ``(correct + faster) / 2``; success =
a correct candidate (score >= 0.5, KernelBench's fast_0).

**State key**: a hash of the last candidate's normalised status (status, faster, the hack checks
that fired, trials passed). **Privileged**: the hand-written oracle ``ModelNew`` and whether it
is faster by the cost model. **Leak check**: the oracle's ``forward`` never appears in any text
the agent sees. The env is slow (three walled child processes per new candidate, forked from
a warm template; ~0.5-1 s), so ``metadata["turngym.slow"] = True``; results are cached by
(reference, candidate), which keeps an episode's record stable although every evaluation
draws fresh inputs (the feedback's diffs come from a fixed probe input).

Example:
    >>> env = KernelGen()
    >>> obs, info = env.reset(seed=0, options={"split": "test"})
    >>> "class Model(nn.Module)" in obs
    True
    >>> env.step("<action>print('no model')</action>")[1]
    0.0
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import numpy as np

from turngym.core import TextEnv, TextSpace, Transition
from turngym.envs.kernel import tasks as kt
from turngym.envs.kernel.kernelbench import load_kernelbench
from turngym.envs.kernel.reward import SPEED_SIGNALS, kernel_reward
from turngym.envs.kernel.runner import evaluate_candidate

__all__ = ["KernelGen", "reference_as_candidate", "extract_code"]

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

_EXAMPLE = '''import torch
import torch.nn as nn


class ModelNew(nn.Module):
    """One-shot example: the reference computed a + b with two ops; one op is enough."""

    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.add(a, b)'''


def extract_code(content: str) -> str:
    r"""Strip one surrounding ```` ```python ```` fence, if any, from an action's content.

    Example:
        >>> extract_code("```python\nx = 1\n```")
        'x = 1\n'
    """
    blocks = _FENCE.findall(content)
    return blocks[-1] if blocks else content


def reference_as_candidate(reference: str) -> str:
    """The reference module with ``Model`` renamed to ``ModelNew`` (correct, not faster)."""
    return reference.replace("class Model(nn.Module)", "class ModelNew(nn.Module)")


def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.3f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


class KernelGen(TextEnv):
    """Rewrite a reference PyTorch module as a correct and faster ``ModelNew``.

    Difficulty knobs (:attr:`difficulty_defaults`): ``levels`` (subset of 1-3), ``families``
    (names from :data:`~turngym.envs.kernel.tasks.FAMILIES`, empty = all), ``trials``
    (1-10 correctness trials), ``speedup_threshold`` (>= 1), ``speed_signal`` (``cost``,
    ``timing``, ``both``), ``timing_repeats`` (0 = no timing, the default, keeps episodes
    deterministic), ``coverage_weight`` (0-1), ``turn_reward`` (``score``, ``improvement``),
    ``timeout_s`` (child CPU seconds). Levels 1, 2, 3 restrict tasks to that KernelBench level.
    """

    metadata: dict[str, Any] = {
        "render_modes": ["ansi"],
        "render_fps": 1,
        "turngym.slow": True,
    }
    family: ClassVar[str] = "kernel"
    # Success is KernelBench's fast_0 (a correct ModelNew); "correct and faster" (fast_1) is
    # the score of 1.0 and the `faster` metric.
    success_score: ClassVar[float] = 0.5
    example_actions: ClassVar[tuple[str, ...]] = (
        f"<action>\n{_EXAMPLE}\n</action>",
        "<action>\nclass ModelNew(:\n    pass\n</action>",
    )
    # Each scales the CPU time of every evaluation (child processes run per step).
    costly_knobs: ClassVar[frozenset[str]] = frozenset({"trials", "timing_repeats", "timeout_s"})
    difficulty_defaults: ClassVar[Mapping[str, Any]] = {
        "levels": [1, 2, 3],
        "families": [],
        "trials": 3,
        "speedup_threshold": 1.05,
        "speed_signal": "cost",
        "timing_repeats": 0,
        "coverage_weight": 0.0,
        "turn_reward": "score",
        "timeout_s": 60,
    }
    levels: ClassVar[Mapping[int, Mapping[str, Any]]] = {
        1: {"levels": [1]},
        2: {"levels": [2]},
        3: {"levels": [3]},
    }

    def __init__(self, *, kernelbench_dir: str | None = None, **kwargs: Any) -> None:
        """Create the env; keyword arguments are those of :class:`~turngym.core.TextEnv`.

        Args:
            kernelbench_dir: A KernelBench checkout: play its problem files of ``levels``
                instead of generated tasks (:mod:`turngym.envs.kernel.kernelbench`).
            **kwargs: Those of :class:`~turngym.core.TextEnv` (knobs, ``level``...).
        """
        super().__init__(**kwargs)
        if kernelbench_dir is not None:
            self._tasks_file = load_kernelbench(kernelbench_dir, self.difficulty["levels"])
        self.reference = ""
        self.oracle = ""
        self.last: dict[str, Any] | None = None
        self.last_parts: dict[str, float] = {}
        self.best = 0.0
        self.feedback = ""

    # --- Tasks --------------------------------------------------------------------------------
    def check_difficulty(self, difficulty: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the knob and what it accepts."""
        levels, families = difficulty["levels"], difficulty["families"]
        if not isinstance(levels, list | tuple) or not levels or set(levels) - {1, 2, 3}:
            raise ValueError(f"KernelGen: levels={levels!r}; use a non-empty list from 1, 2, 3.")
        if not isinstance(families, list | tuple) or set(families) - set(kt.FAMILIES):
            raise ValueError(f"KernelGen: families={families!r}; use names from {kt.FAMILIES}.")
        checks = {
            "trials": lambda v: isinstance(v, int) and 1 <= v <= 10,
            "speedup_threshold": lambda v: isinstance(v, int | float) and v >= 1.0,
            "speed_signal": lambda v: v in SPEED_SIGNALS,
            "timing_repeats": lambda v: isinstance(v, int) and 0 <= v <= 100,
            "coverage_weight": lambda v: isinstance(v, int | float) and 0 <= v <= 1,
            "turn_reward": lambda v: v in ("score", "improvement"),
            "timeout_s": lambda v: isinstance(v, int | float) and 1 <= v <= 3600,
        }
        for name, ok in checks.items():
            value = difficulty[name]
            if isinstance(value, bool) or not ok(value):
                raise ValueError(f"KernelGen: {name}={value!r} is invalid (see the class doc).")

    def generate_task(self, rng: np.random.Generator, difficulty: Mapping[str, Any]) -> dict:
        """Draw a family and its shapes (:func:`~turngym.envs.kernel.tasks.generate_task`)."""
        return kt.generate_task(rng, difficulty)

    def load_task(self, task: Mapping[str, Any]) -> None:
        """Accept ``{"reference": str, ...}`` (``oracle``, ``family``, ``level`` optional)."""
        reference = task.get("reference")
        if not isinstance(reference, str) or "class Model" not in reference:
            raise ValueError(
                'A KernelGen task is {"reference": <module source defining class '
                'Model, get_inputs, get_init_inputs>, "oracle": <ModelNew source>}.'
            )
        self.reference = reference
        self.oracle = str(task.get("oracle") or reference_as_candidate(reference))
        self.last, self.last_parts, self.best, self.feedback = None, {}, 0.0, ""
        self.action_space = TextSpace(
            examples=(
                f"<action>\n{reference_as_candidate(reference)}</action>",
                *self.example_actions,
            )
        )

    # --- Dynamics -----------------------------------------------------------------------------
    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Accept a bare ```` ```python ```` block too (KernelBench's format), then step."""
        if isinstance(action, str) and "<action>" not in action.lower():
            blocks = _FENCE.findall(action)
            if blocks and blocks[-1].strip():
                action = f"<action>\n{blocks[-1]}\n</action>"
        return super().step(action)

    def apply(self, command: str) -> Transition:
        """Evaluate one candidate module and turn the result into feedback and reward."""
        if self.last is not None and self._faster():
            return Transition(terminated=True, effective=False, message="The episode is over.")
        knobs = self.episode_difficulty
        timing = None
        if knobs["timing_repeats"]:
            timing = {"repeats": int(knobs["timing_repeats"]), "number": 3, "margin": 0.05}
        result = evaluate_candidate(
            self.reference,
            extract_code(command),
            seeds=tuple(range(int(knobs["trials"]))),
            timing=timing,
            timeout_s=float(knobs["timeout_s"]),
        )
        parts = kernel_reward(
            result,
            coverage_weight=float(knobs["coverage_weight"]),
            speedup_threshold=float(knobs["speedup_threshold"]),
            speed_signal=str(knobs["speed_signal"]),
        )
        total = sum(parts.values())
        if knobs["turn_reward"] == "improvement":
            gain = max(0.0, total - self.best)
            parts = {k: (v / total * gain if total else 0.0) for k, v in parts.items()}
        self.best = max(self.best, total)
        self.last, self.last_parts = result, parts
        self.feedback = self._feedback(result, sum(parts.values()))
        return Transition(
            reward=sum(parts.values()), terminated=self._faster(), reward_components=parts
        )

    def _faster(self) -> bool:
        """Whether the last candidate was correct and faster (it earned the speed reward)."""
        parts = kernel_reward(
            self.last or {},
            speedup_threshold=float(self.episode_difficulty["speedup_threshold"]),
            speed_signal=str(self.episode_difficulty["speed_signal"]),
        )
        return parts["faster"] > 0

    # --- Views --------------------------------------------------------------------------------
    def instructions(self) -> str:
        """The KernelBench-style system text: the task, the format and a one-shot example."""
        return "\n".join(
            [
                "You write optimized PyTorch code for the CPU. You are given a PyTorch "
                "module `Model` (with get_inputs() and get_init_inputs()). Write "
                "`class ModelNew(nn.Module)` with the same constructor arguments and forward "
                "signature that computes the same outputs (within 1e-4 for float32) faster: "
                "fuse operators, avoid redundant work and "
                "intermediate tensors, use better algorithms. You may use any torch operators or "
                "write your own kernel functions (a top-level function named *kernel* must be "
                "called in forward). Do not call the reference Model, cache results, modify the "
                "inputs, patch torch or timers, use try/except, or start threads or processes: "
                "such submissions score 0.",
                "Answer with the complete Python module inside <action>...</action> (a ```python "
                "block alone is accepted too). No testing code.",
                f"Reward per turn: 0.5 if correct, plus 0.5 if also faster by the cost model "
                f"(modelled time: FLOPs, bytes moved and operator launches; speedup >= "
                f"{self.episode_difficulty['speedup_threshold']}). A correct and faster version "
                "ends the episode; otherwise you get feedback and may submit an improved "
                "version.",
                "Example answer (for a reference computing a + b):\n"
                f"<action>\n{_EXAMPLE}\n</action>",
            ]
        )

    def render_text(self) -> str:
        """The reference at turn 0; afterwards KernelGYM-style server feedback."""
        if self.last is None:
            return (
                "You are given the following architecture:\n\n```python\n"
                f"{self.reference}```\n\nOptimize it: submit ModelNew."
            )
        return self.feedback

    def _feedback(self, r: Mapping[str, Any], reward: float) -> str:
        lines = [f"Server feedback for your last implementation:\nstatus: {r.get('status')}"]
        if r.get("error"):
            lines.append(f"error:\n{r['error']}")
        if r.get("trials"):
            lines.append(f"correctness_trials: {r.get('trials_passed', 0)}/{r['trials']}")
        if r.get("max_abs_diff") is not None and r.get("status") != "compile_error":
            lines.append(
                f"max_abs_diff: {float(r['max_abs_diff']):.3g}  "
                f"avg_abs_diff: {float(r.get('avg_abs_diff') or 0):.3g}"
            )
        if r.get("mismatch"):
            lines.append(f"mismatch: {r['mismatch']}")
        cost = r.get("cost")
        if cost:
            ref, new = cost["reference"], cost["candidate"]
            lines.append(
                f"cost model: reference {ref['cost_us']:.1f} us ({ref['ops']} ops, "
                f"{_fmt_bytes(ref['bytes'])}, {ref['flops'] / 1e6:.3f} MFLOP) vs yours "
                f"{new['cost_us']:.1f} us ({new['ops']} ops, {_fmt_bytes(new['bytes'])}, "
                f"{new['flops'] / 1e6:.3f} MFLOP); speedup {cost['speedup']:.3f}x "
                f"(needed {self.episode_difficulty['speedup_threshold']})"
            )
            if cost.get("verified") is False:
                lines.append("cost not verified (Triton kernels run as Python in the CPU "
                             "interpreter): correctness credit only")
            lines.append(f"your ops: {' '.join(new['op_names'][:40])}")
        kernels = r.get("kernels") or {}
        if kernels.get("declared"):
            lines.append(
                f"custom kernels declared: {kernels['declared']}, launched: "
                f"{kernels.get('launched', [])}, coverage: {kernels.get('coverage', 0):.2f}"
            )
        timing = r.get("timing")
        if timing and "skipped" in timing:
            lines.append(f"timing: skipped ({timing['skipped']})")
        elif timing:
            lines.append(
                f"timing: speedup {timing['speedup']:.2f}x (lower bound "
                f"{timing['lower_bound']:.2f}, significant: {timing['significant']})"
            )
        for hack in r.get("hacks") or []:
            lines.append(f"REWARD HACK DETECTED ({hack['check']}): {hack['detail']}")
        lines.append(f"reward: {reward:.3f}")
        if not self._faster():
            lines.append(
                "Return an improved implementation named ModelNew in <action>...</action>."
            )
        return "\n".join(lines)

    def state_key(self) -> str:
        """Hash of the last candidate's normalised status (``start`` before any)."""
        if self.last is None:
            return "start"
        hacks = sorted({h["check"] for h in self.last.get("hacks") or []})
        norm = (
            f"{self.last.get('status')}|{self._faster()}|{hacks}|{self.last.get('trials_passed')}"
        )
        return hashlib.sha256(norm.encode()).hexdigest()[:16]

    def score(self) -> float:
        """``(correct + faster) / 2`` of the last candidate."""
        if self.last is None or self.last.get("status") != "correct":
            return 0.0
        return 1.0 if self._faster() else 0.5

    def privileged(self) -> dict[str, Any]:
        """The oracle candidate and whether it is faster than the reference."""
        family = self.task.get("family", "")
        return {
            "oracle": self.oracle,
            "family": family,
            "oracle_faster": kt.ORACLE_FASTER.get(family, False),
        }

    def metrics(self) -> dict[str, Any]:
        """Status, correct/faster flags (KernelBench fast_0/fast_1), speedup, best reward."""
        last = self.last or {}
        speedup = (last.get("cost") or {}).get("speedup")
        correct = last.get("status") == "correct"
        return {
            "status": last.get("status", ""),
            "correct": correct,
            "faster": correct and self._faster(),
            "cost_speedup": speedup,
            "best_reward": self.best,
            "level": self.task.get("level", 0),
        }

    def oracle_action(self) -> str:
        """Submit the hand-written oracle."""
        return f"<action>\n{self.oracle}</action>"

    def leak_check(self, text: str) -> list[str]:
        """The oracle's ``forward`` must never appear in what the agent sees."""
        body = self.oracle[self.oracle.find("def forward") :]
        if body in self.reference:  # a task without its own oracle: nothing to leak
            return []
        return ["the oracle's forward appears in the text"] if body.strip() and body in text else []
