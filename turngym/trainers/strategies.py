"""Rollout strategies: how a training iteration collects its groups.

A method's ``strategy`` (``register_estimator(..., strategy="tree")``) picks one of
:data:`strategy_registry`; the trainer calls ``strategy.collect(env, agent, seeds,
group_size, ...)`` and never asks which one it has.

* ``groups`` — :class:`GroupStrategy`: G independent episodes per task
  (:func:`turngym.rollout.collect`), the default.
* ``tree`` — :class:`TreeStrategy`: G root episodes per task plus episodes branched from env
  snapshots (:func:`turngym.rollout_tree.collect_tree`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from turngym.registry import Registry
from turngym.rollout import collect
from turngym.rollout_tree import collect_tree
from turngym.trainers.credit.types import TurnBatch
from turngym.types import Episode, Group

__all__ = ["strategy_registry", "GroupStrategy", "TreeStrategy"]

strategy_registry: Registry[type] = Registry("rollout strategy")
"""Strategy classes by name; built with ``cls(*, seed, critic, **params)``."""


class GroupStrategy:
    """G independent episodes per task (the plain GRPO-style group)."""

    def __init__(self, *, seed: int = 0, critic: Any = None) -> None:
        self.seed = seed

    def collect(self, env: Any, agent: Any, seeds: Sequence[int], group_size: int, *,
                split: str, options: dict[str, Any], max_turns: int | None,
                round_index: int) -> list[Group]:  # fmt: skip
        """Play ``group_size`` episodes of every task in lockstep."""
        return collect(env, agent, list(seeds), group_size, split=split, options=options,
                       max_turns=max_turns, round_index=round_index)  # fmt: skip


class TreeStrategy:
    """Groups as trees: G roots per task, plus ``branches`` episodes branched from snapshots.

    Args:
        branches: Extra episodes per task (the group then has ``G + branches`` episodes).
        rounds: Selection rounds (each sees the earlier episodes).
        select: ``"uniform"``, ``"uncertainty"`` (the policy's least certain turns) or
            ``"uct"``.
        c: UCT exploration constant.
        value: UCT's state value: ``"rollouts"`` (mean score of the episodes through the
            state) or ``"critic"`` (the method's critic at the state).
        value_head: The critic head read for ``value="critic"``.
        seed: Seeds the branch choices (mixed with the iteration).
        critic: The method's critic (for ``value="critic"``).
    """

    def __init__(self, *, branches: int = 4, rounds: int = 2,
                 select: Literal["uniform", "uncertainty", "uct"] = "uncertainty",
                 c: float = 1.0, value: Literal["rollouts", "critic"] = "rollouts",
                 value_head: str = "value", seed: int = 0, critic: Any = None) -> None:  # fmt: skip
        if select not in ("uniform", "uncertainty", "uct"):
            raise ValueError(f"tree select must be uniform, uncertainty or uct, got {select!r}")
        if value not in ("rollouts", "critic"):
            raise ValueError(f"tree value must be 'rollouts' or 'critic', got {value!r}")
        if value == "critic" and critic is None:
            raise ValueError("tree value='critic' needs a method with a critic; use "
                             "value='rollouts'")  # fmt: skip
        if branches < 0 or rounds < 1:
            raise ValueError(f"tree branches must be >= 0 and rounds >= 1, got {branches}, "
                             f"{rounds}")  # fmt: skip
        self.branches, self.rounds, self.select, self.c = branches, rounds, select, c
        self.seed, self.critic, self.value_head = seed, critic, value_head
        self.value_fn = self._critic_values if value == "critic" else None

    def _critic_values(self, episodes: Sequence[Episode]) -> list[np.ndarray]:
        batch = TurnBatch.from_groups([Group("tree", "tree", tuple(episodes))])
        values = self.critic.values(batch).at(self.value_head, "start")
        return batch.split_by_episode(values)

    def collect(self, env: Any, agent: Any, seeds: Sequence[int], group_size: int, *,
                split: str, options: dict[str, Any], max_turns: int | None,
                round_index: int) -> list[Group]:  # fmt: skip
        """Grow one tree per task (:func:`turngym.rollout_tree.collect_tree`)."""
        return collect_tree(env, agent, list(seeds), group_size, branches=self.branches,
                            rounds=self.rounds, select=self.select, c=self.c,
                            value_fn=self.value_fn, seed=self.seed, split=split,
                            options=options, max_turns=max_turns,
                            round_index=round_index)  # fmt: skip


strategy_registry.register("groups", GroupStrategy)
strategy_registry.register("tree", TreeStrategy)
