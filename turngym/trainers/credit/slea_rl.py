"""SLEA-RL: step groups over structurally equivalent observations, plus an experience library."""

from __future__ import annotations

import functools
import re
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import (
    choose,
    credit_metrics,
    discounted_returns,
    episode_scores,
    normalise,
    outcome_advantage,
)
from turngym.trainers.credit._structure import turns_of
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.trainers.hooks import RolloutHooks, add_instructions, with_hooks
from turngym.types import Conversation, Group

__all__ = ["slea_rl", "ExperienceHooks", "structural_signature"]

_KEY = "slea_rl"
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=65_536)  # observations repeat a lot within a batch
def structural_signature(text: str) -> str:
    r"""The structure of an observation: lower-cased, numbers as ``#``, blanks collapsed.

    Observations that differ only in quantities or ids (``"3 apples left"``, ``"12 apples
    left"``) share a signature, so they form one cluster (UNVERIFIED clustering rule).

    Example:
        >>> structural_signature("Balance: 120.50 USD\n  Pending: 3")
        'balance: # usd pending: #'
    """
    return _SPACE.sub(" ", _NUMBER.sub("#", text.lower())).strip()


class ExperienceHooks(RolloutHooks):
    """An experience library keyed by observation signature, retrieved into the prompt.

    ``ctx.state["slea_rl"]["library"]`` maps a signature to up to ``library_size`` past
    ``(action, discounted return)`` pairs, best first; before acting, the agent is shown the
    ``retrieve`` best ones for its current observation's signature.
    """

    def __init__(self, gamma: float = 0.95, retrieve: int = 2, library_size: int = 8,
                 **_: Any) -> None:  # fmt: skip
        """Returns are discounted by ``gamma``; see the class docstring for the sizes."""
        self.gamma, self.retrieve, self.library_size = gamma, retrieve, library_size

    def augment(self, conversation: Conversation, ctx: CreditContext) -> Conversation:
        """Add the best past actions from structurally equivalent observations."""
        if self.retrieve <= 0:
            return conversation
        library = ctx.state.get(_KEY, {}).get("library", {})
        found = library.get(structural_signature(conversation.observation), [])[: self.retrieve]
        if not found:
            return conversation
        lines = [f"- {action} (return {value:.2f})" for action, value in found]
        return add_instructions(conversation, "Experience from similar situations:\n"
                                + "\n".join(lines))  # fmt: skip

    def after_collect(self, groups: list[Group], ctx: CreditContext) -> list[Group]:
        """Add every turn's (action, discounted return) to its signature's entry."""
        library: dict[str, list[tuple[str, float]]] = ctx.state.setdefault(_KEY, {}).setdefault(
            "library", {})  # fmt: skip
        for group in groups:
            for ep in group.episodes:
                future = 0.0
                for turn in reversed(ep.turns):
                    future = turn.reward + self.gamma * future
                    entry = library.setdefault(structural_signature(turn.observation), [])
                    entry[:] = [e for e in entry if e[0] != turn.action]
                    entry.append((turn.action, future))
                    entry.sort(key=lambda e: -e[1])
                    del entry[self.library_size :]
        return groups


def _signature_anchors(batch: TurnBatch, cluster: str, same_turn: bool) -> np.ndarray:
    """Anchor group per turn: equal signature (or state key) within the same group.

    One Python pass codes the observations (each distinct text's signature is computed once);
    grouping by ``(group, [turn index,] code)`` is vectorised.
    """
    if cluster == "signature":
        codes: dict[str, int] = {}
        by_text: dict[str, int] = {}
        sig = np.fromiter(
            (by_text[o] if o in by_text else by_text.setdefault(
                o, codes.setdefault(structural_signature(o), len(codes)))
             for o in map(attrgetter("observation"), turns_of(batch))),
            np.int64, batch.n_turns,
        )  # fmt: skip
    else:  # a turn without a state key is its own cluster
        sig = np.where(batch.state >= 0, batch.state, -1 - np.arange(batch.n_turns))
    sig = sig - int(sig.min(initial=0))  # non-negative, so the mixed-radix key is unique
    key = batch.group * (int(sig.max(initial=0)) + 1) + sig
    if same_turn:
        key = key * (int(batch.turn.max(initial=0)) + 1) + batch.turn
    return np.unique(key, return_inverse=True)[1].reshape(-1)


@with_hooks(ExperienceHooks)
@register_estimator("slea_rl", unverified=("cluster=signature", "same_turn"))
def slea_rl(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    gamma: float = 0.95,
    omega: float = 1.0,
    cluster: Literal["signature", "state"] = "signature",
    same_turn: bool = True,
    retrieve: int = 2,
    library_size: int = 8,
    eps: float = 1e-6,
    score: Literal["return", "outcome"] = "return",
) -> Credit:
    """Step-Level Experience-Augmented RL (arXiv 2603.18079, abstract).

    Observations are clustered into structurally equivalent states
    (:func:`structural_signature`); a cluster indexes an experience library whose best past
    actions are retrieved into the prompt (:class:`ExperienceHooks`), and is the anchor of a
    GiGPO-style step group: ``A = A_episode + omega * A_step``, with ``A_step`` comparing the
    discounted returns of the group's turns taken from the same cluster. The anchor is the
    env's observation, not the retrieved text. Status: PAPER (abstract); the clustering rule,
    the retrieval format and the GiGPO form are UNVERIFIED.

    Args:
        batch: The turns.
        ctx: ``state`` holds the library (the hooks fill and read it).
        gamma: Discount of the step returns (and of the library's returns).
        omega: Weight of the step advantage.
        cluster: ``"signature"`` (structural signature of the observation text) or
            ``"state"`` (the env's ``state_key``, i.e. GiGPO's exact anchors).
        same_turn: Cluster only turns at the same index (UNVERIFIED). A signature merges
            states whose futures differ; across turn indices that would compare an early
            action's return with a late one's even between identical episodes.
        retrieve: Experiences shown per prompt (0: no retrieval).
        library_size: Experiences kept per signature.
        eps: Added to the stds.
        score: Episode score: ``"return"`` (sum of rewards) or ``"outcome"``.

    Returns:
        Advantages, step returns, metrics ``cluster_turn_frac`` (turns sharing a cluster) and
        ``library_signatures``.

    Degenerate cases: a turn alone in its cluster gets no step advantage; a group of one
    keeps ``A_episode = R``.
    """
    choose("cluster", cluster, ("signature", "state"))
    scores = episode_scores(batch, score)
    episode_adv = outcome_advantage(batch, scores, ddof=1, eps=eps, by_std=True,
                                    cross_steps=False, singleton="raw")  # fmt: skip
    returns = discounted_returns(batch, gamma)
    anchor = _signature_anchors(batch, cluster, same_turn)
    step_adv, size, _ = normalise(returns, anchor, int(anchor.max(initial=-1)) + 1, ddof=1,
                                  eps=eps)  # fmt: skip
    step_adv[size[anchor] < 2] = 0.0
    advantages = episode_adv[batch.episode] + omega * step_adv
    metrics = credit_metrics(batch, advantages, scores)
    metrics["cluster_turn_frac"] = float(np.mean(size[anchor] > 1)) if batch.n_turns else 0.0
    metrics["library_signatures"] = float(len(ctx.state.get(_KEY, {}).get("library", {})))
    return Credit(advantages, returns=returns, metrics=metrics)
