"""Training one seat of a multi-agent game: self-play, or against a fixed opponent.

:class:`SeatPlan` says who plays which seat of a multi-agent env
(:mod:`turngym.envs.multiagent.registry`) in the trainer's rollouts and evaluations, from
``TrainConfig.opponent``, ``train_seat`` and ``eval_opponent``:

* **Fixed opponent** (``opponent`` set): the policy plays ``train_seat`` (default: the first
  seat), the opponent every other seat, and only the policy's seat is trained: its groups are
  the G games of one task seen from that seat, so a group-relative baseline compares the
  policy's games against the same opponent from the same opening.
* **Self-play** (``opponent=None``): the policy plays every seat. Without ``train_seat`` every
  seat's groups are trained, each seat baselined apart (the role-conditioned advantages of
  SPIRAL; Liu et al., 2025, arXiv:2506.24119, Sec. 3.3); with it, only that seat's.
* **Evaluation**: the policy plays ``train_seat`` (or the first seat) against
  ``eval_opponent`` (default: the training opponent, or ``random`` in self-play), so learning
  curves of self-play runs have a fixed reference.

Env steps count the policy's own turns (the samples it is trained on), not the opponent's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from turngym.envs.multiagent.registry import is_multiagent, make_multiagent
from turngym.trainers.config import TrainConfig
from turngym.types import Group

__all__ = ["SeatPlan"]


class SeatPlan:
    """Who plays which seat of a multi-agent game in training and evaluation.

    Build it with :meth:`from_config` (``None`` for single-agent envs).

    Attributes:
        env: A fresh (never reset) instance of the game, for what the trainer reads from the
            env before any rollout (its action vocabulary, its judge).
        seats: Every seat of the game, in order.
        train_seat: The seat whose groups are trained (``None``: every seat, self-play).
        eval_seat: The policy's seat in evaluations.
        opponent: The fixed opponent's agent (``None``: self-play).
        eval_opponent: The opponent's agent in evaluations.
        eval_opponent_spec: Its spec.
    """

    def __init__(self, config: TrainConfig) -> None:
        """Check the config's multi-agent settings and build the opponents.

        Raises:
            ValueError: An unknown seat, an output format or invalid-action penalty the game
                cannot take, or a rollout strategy other than plain groups.
            turngym.registry.UnknownNameError: An unknown opponent agent.
        """
        from turngym.agents import make_agent
        from turngym.trainers.credit import method_of

        self.env = make_multiagent(config.env)
        self.env.validate_options({"split": "train", **config.env_options})
        self.seats: tuple[str, ...] = tuple(self.env.possible_agents)
        if config.train_seat is not None and config.train_seat not in self.seats:
            raise ValueError(f"train_seat {config.train_seat!r} is not a seat of {config.env}; "
                             f"its seats are {', '.join(self.seats)}")  # fmt: skip
        if config.output_format != "action":
            raise ValueError(f"output_format={config.output_format!r} is for single-agent envs; "
                             f"{config.env} is a multi-agent game: use 'action'")  # fmt: skip
        if config.invalid_action_penalty:
            raise ValueError(f"{config.env} charges invalid moves itself (its invalid_penalty "
                             "knob, -0.1 by default): set invalid_action_penalty=0, or pass "
                             'env_options={"difficulty": {"invalid_penalty": ...}}')  # fmt: skip
        strategy = method_of(config.estimator).strategy
        if strategy is not None and strategy.name != "groups":
            raise ValueError(f"estimator {config.estimator!r} collects with the {strategy.name!r} "
                             "strategy, which multi-agent games do not support")  # fmt: skip
        fixed = config.opponent is not None
        self.train_seat = config.train_seat or (self.seats[0] if fixed else None)
        self.eval_seat = config.train_seat or self.seats[0]
        self.seed = config.seed
        seed = _mix(config.seed)
        self.opponent = None if config.opponent is None else make_agent(config.opponent,
                                                                         seed=seed)
        self.eval_opponent_spec = config.eval_opponent or config.opponent or "random"
        self.eval_opponent = make_agent(self.eval_opponent_spec, seed=seed)

    @classmethod
    def from_config(cls, config: TrainConfig) -> SeatPlan | None:
        """The plan for a multi-agent env; ``None`` for a single-agent one.

        Raises:
            ValueError: Multi-agent settings for a single-agent env (or those of
                :meth:`__init__`).
        """
        if is_multiagent(config.env):
            return cls(config)
        given = [f for f in ("opponent", "train_seat", "eval_opponent") if getattr(config, f)]
        if given:
            raise ValueError(f"{', '.join(given)} apply to multi-agent envs (e.g. "
                             f"turngym/TicTacToe-v0); {config.env} is single-agent")  # fmt: skip
        return None

    def players(self, policy: Any, iteration: int) -> Any:
        """What plays a training rollout: ``policy`` alone (self-play) or a seat mapping.

        An opponent that samples from one stream (a model) is reseeded from the iteration,
        so a resumed run replays it exactly; scripted opponents seed every episode anyway.
        """
        if self.opponent is None:
            return policy
        reseed = getattr(self.opponent, "reseed", None)
        if reseed is not None:
            reseed(_mix(self.seed, iteration))
        return {s: policy if s == self.train_seat else self.opponent for s in self.seats}

    def evaluation(self, policy: Any) -> tuple[dict[str, Any], str]:
        """What plays evaluations, and the seat whose games ``collect`` returns.

        ``policy`` in :attr:`eval_seat` and the evaluation opponent in every other seat; pass
        the seat as ``collect(..., train_seat=seat)``.
        """
        players = {s: policy if s == self.eval_seat else self.eval_opponent for s in self.seats}
        return players, self.eval_seat

    def trained(self, groups: Sequence[Group]) -> list[Group]:
        """The groups to train on: the trained seat's, or every seat's in self-play."""
        if self.train_seat is None:
            return list(groups)
        return [g for g in groups if g.episodes and g.episodes[0].seat == self.train_seat]


def _mix(*values: int) -> int:
    """A seed for the opponents' own stream (never equal to the policy's)."""
    return int(np.random.SeedSequence([*values, 0x0990]).generate_state(1)[0])
