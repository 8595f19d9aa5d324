"""Building blocks of the claims' miniature experiments (:mod:`turngym.repro.claims`).

* :func:`task_groups`: many rollouts of one policy per task, so that the first few can play a
  training group while the rest estimate what the policy really earns on that task (the
  reference a baseline is measured against);
* :class:`NoisyOracleAgent`: a policy of tunable strength (the oracle's move with probability
  ``1 - epsilon``, a random valid move otherwise), to put an estimator in a regime a paper
  talks about (weak vs strong policy) without training one;
* :func:`train_and_evaluate`: one short training run with the bench's recipe, scored on the
  test split (the outcome claims).

Everything is seeded: the same seed gives the same numbers on the same machine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from turngym.agents.base import ActionResult
from turngym.agents.scripted import EpisodeSeededAgent
from turngym.core import TextSpace
from turngym.rollout import collect
from turngym.types import Conversation, Episode, Group

__all__ = ["NoisyOracleAgent", "task_groups", "split_group", "returns_to_go", "train_and_evaluate"]


class NoisyOracleAgent(EpisodeSeededAgent):
    """The env's oracle move with probability ``1 - epsilon``, a random example action otherwise.

    Args:
        epsilon: Share of random moves (0: the oracle; 1: the random agent).
        seed: Fixes every episode's stream of coin flips and random moves.
    """

    def __init__(self, epsilon: float, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        super().__init__(seed)
        self.epsilon = float(epsilon)

    def act_batch_with_envs(self, conversations: Sequence[Conversation], envs: Sequence[Any]
                            ) -> list[ActionResult]:  # fmt: skip
        """One action per (conversation, env) pair."""
        out = []
        for conversation, env in zip(conversations, envs, strict=True):
            rng = self._rng(conversation)
            space = env.unwrapped.action_space
            if rng.random() < self.epsilon and isinstance(space, TextSpace) and space.examples:
                out.append(ActionResult(rng.choice(space.examples)))
            else:
                out.append(ActionResult(env.unwrapped.oracle_action()))
        return out

    def act_batch(self, conversations: Sequence[Conversation]) -> list[ActionResult]:
        """Needs the envs: run it through :func:`turngym.rollout.collect`."""
        raise TypeError("NoisyOracleAgent reads the envs; run it through turngym.rollout.")


def task_groups(env_id: str, agent: Any, *, tasks: int, episodes: int, seed: int,
                options: Mapping[str, Any] | None = None, max_turns: int | None = None,
                split: str = "train") -> list[Group]:  # fmt: skip
    """``episodes`` rollouts of ``agent`` on each of ``tasks`` tasks drawn from ``seed``."""
    rng = np.random.default_rng([seed, 7])
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, tasks)]
    return collect(env_id, agent, seeds, episodes, split=split, options=dict(options or {}),
                   max_turns=max_turns)  # fmt: skip


def split_group(group: Group, size: int) -> tuple[Group, tuple[Episode, ...]]:
    """The first ``size`` episodes as a training group, and the rest (the reference sample)."""
    if not 0 < size < len(group.episodes):
        raise ValueError(f"cannot take {size} of {len(group.episodes)} episodes as a group")
    head = Group(group.group_id, group.task_id, group.episodes[:size])
    return head, group.episodes[size:]


def returns_to_go(episode: Episode, gamma: float = 1.0) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` for every turn of ``episode``."""
    rewards = np.array([t.reward for t in episode.turns], dtype=np.float64)
    out = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def train_and_evaluate(estimator: str, *, env: str, seed: int, env_steps: int,
                       options: Mapping[str, Any] | None = None, max_turns: int | None = None,
                       params: Mapping[str, Any] | None = None,
                       recipe: Mapping[str, Any] | None = None, episodes: int = 100,
                       history: bool = False) -> dict[str, Any]:  # fmt: skip
    """Train with the bench's recipe (plus ``recipe`` overrides) and evaluate on the test split.

    Returns:
        ``success`` and ``return`` of the final policy over ``episodes`` test tasks (sampling
        as the bench does), the last training iteration's ``entropy``, the mean and standard
        deviation of the per-iteration entropy, and ``env_steps``; with ``history`` also
        ``entropy_history`` (the per-iteration entropies) and ``rows`` (every metrics row).
    """
    from turngym.evals.bench import DEFAULT_RECIPE
    from turngym.rollout import summarize
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="turngym-repro-") as tmp:
        config = TrainConfig(**{**DEFAULT_RECIPE, **(recipe or {})}, env=env,
                             env_options=dict(options or {}), estimator=estimator,
                             estimator_params=dict(params or {}), seed=seed,
                             iterations=1_000_000, max_env_steps=env_steps, eval_every=0,
                             checkpoint_every=0, eval_tasks=8, max_turns=max_turns, out_dir=tmp,
                             resume=False, progress="off")  # fmt: skip
        trainer = Trainer(config)
        rows = trainer.train()
        trainer.eval_agent.reseed(seed)
        final = summarize(collect(env, trainer.eval_agent, [seed * episodes + i for i in
                                                            range(episodes)], 1, split="test",
                                  options=config.env_options, max_turns=max_turns))  # fmt: skip
    entropy = np.array([r["entropy"] for r in rows if "entropy" in r])
    out: dict[str, Any] = {
        "success": final["success_rate"], "return": final["mean_return"],
        "entropy_last": float(entropy[-1]) if entropy.size else 0.0,
        "entropy_mean": float(entropy.mean()) if entropy.size else 0.0,
        "entropy_std": float(entropy.std()) if entropy.size else 0.0,
        "env_steps": float(trainer.env_steps),
    }  # fmt: skip
    if history:
        out["entropy_history"] = entropy.tolist()
        out["rows"] = rows
    return out
