"""Tree-structured group advantages: siblings compared at each branch point."""

from __future__ import annotations

from typing import Literal

import numpy as np

from turngym.trainers.credit import Plug, register_estimator
from turngym.trainers.credit._common import centre, credit_metrics, episode_scores, segment_std
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["tree_grpo", "TREE_NODE"]

TREE_NODE = "tree_node"
"""``Turn.info`` key set by tree rollouts: the id of the (state, action) node a turn is.
Episodes branched from a common prefix carry the same ids on their shared turns."""


def _node_codes(batch: TurnBatch) -> np.ndarray:
    """Integer code of each turn's action node (tree id, or a fresh code per turn)."""
    nodes = [t.info.get(TREE_NODE) if t.info else None
             for g in batch.groups for ep in g.episodes for t in ep.turns]  # fmt: skip
    codes = np.arange(batch.n_turns, dtype=np.int64)
    if nodes.count(None) < len(nodes):  # equal ids within a group share a code
        lookup: dict[tuple[int, object], int] = {}
        group = batch.group.tolist()
        for row, node in enumerate(nodes):
            if node is not None:
                codes[row] = lookup.setdefault((group[row], node), row)
        codes = np.unique(codes, return_inverse=True, sorted=True)[1].reshape(-1)
    return codes


@register_estimator("tree_grpo", strategy=Plug("tree"))
def tree_grpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    score: Literal["outcome", "return"] = "outcome",
    scale: Literal["group_std", "none"] = "group_std",
    eps: float = 1e-6,
) -> Credit:
    """Monte-Carlo advantages on rollout trees: each branch compared with its siblings.

    Tree rollouts (``strategy="tree"``, :mod:`turngym.rollout_tree`) branch extra episodes
    from env snapshots, so episodes of a group share real prefixes. A turn is a node of the
    tree (``Turn.info["tree_node"]``). ``Q(a)`` is the mean score of the episodes (leaves)
    through action node ``a``, ``V(s)`` the mean through state ``s`` (the group's root for
    turn 0). A turn's advantage is ``Q(a_b) - V(s_b)`` at its latest branch point ``b`` (the
    nearest turn at or before it whose state has two or more distinct actions): every turn of
    a segment between branch points shares the segment's credit against its siblings, and
    the G root episodes are siblings at the root, so on plain groups this is GRPO's centred
    score. Copies of a shared prefix get loss weight 0, so each node is trained once. After
    Tree-GRPO (Ji et al. 2025, arXiv 2509.21240, intra-tree advantages) and DeepSearch's
    tree credit (Wu et al. 2025, arXiv 2509.25454). Status: UNVERIFIED: the exact
    combination is this library's reading.

    Args:
        batch: The turns, with tree node ids where the strategy set them.
        ctx: Unused.
        score: Leaf score: the episode outcome or its summed reward.
        scale: ``"group_std"`` divides by the group's score std (unbiased) + ``eps`` as GRPO
            does; ``"none"`` keeps the raw difference of means.
        eps: Added to the std.

    Returns:
        Advantages, per-turn weights (0 on duplicated prefix turns) when the batch has
        shared nodes, metrics ``branch_turn_frac`` (turns taken at a branching state) and
        ``shared_turn_frac``.

    Degenerate cases: a group of one episode without branches gives 0; equal scores give 0.
    """
    scores = episode_scores(batch, score)
    if batch.n_turns == 0:
        return Credit(np.zeros(0), metrics=credit_metrics(batch, np.zeros(0), scores))
    node = _node_codes(batch)
    n_nodes = int(node.max(initial=-1)) + 1
    rows = np.arange(batch.n_turns)
    first_row = np.full(n_nodes, batch.n_turns)
    np.minimum.at(first_row, node, rows)
    first = first_row[node] == rows  # the first occurrence of each node trains it
    # Work with group-centred scores: equal scores are exactly 0 everywhere, and the root's
    # value (the group mean) is 0.
    root_count, centred = centre(scores, batch.episode_group, batch.n_groups)
    leaves = np.bincount(node, minlength=n_nodes).astype(np.float64)
    q = np.bincount(node, weights=centred[batch.episode], minlength=n_nodes) / np.maximum(leaves, 1)
    state = np.where(batch.turn == 0, n_nodes + batch.group, np.append(-1, node[:-1]))
    key = np.sort(state * np.int64(n_nodes + 1) + node)
    pairs = key[np.append(True, key[1:] != key[:-1])]  # distinct (state, action) pairs
    children = np.bincount(pairs // (n_nodes + 1), minlength=n_nodes + batch.n_groups)
    branching = children[state] >= 2
    starts = batch.episode_start[batch.episode]
    latest = np.maximum.accumulate(np.where(branching, np.arange(batch.n_turns), starts - 1))
    has = latest >= starts
    at = np.maximum(latest, 0)
    v = np.append(q, np.zeros(batch.n_groups))[state[at]]
    advantages = np.where(has, q[node[at]] - v, 0.0)
    if scale == "group_std":
        std = segment_std(centred, batch.episode_group, batch.n_groups, root_count, ddof=1)
        advantages = advantages / (std[batch.group] + eps)
    weights = None if first.all() else first.astype(np.float64)
    metrics = credit_metrics(batch, advantages, scores)
    metrics["branch_turn_frac"] = float(np.mean(branching & (batch.turn > 0))) if node.size else 0.0
    metrics["shared_turn_frac"] = float(np.mean(~first)) if node.size else 0.0
    return Credit(advantages, weights=weights, metrics=metrics)
