"""SIOP: Self-Induced Outcome Potential (arXiv 2605.04984; docs/methods.md#siop)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from turngym.registry import import_string
from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import choose, credit_metrics
from turngym.trainers.credit._probe_common import discounted_sums, last_turn_mask, pooled_normalise
from turngym.trainers.credit.probe_values import (
    ProbeNeeds,
    normalise_answer,
    probe_values,
)
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["siop", "cluster_answers", "outcome_targets", "siop_targets", "siop_turn_rewards"]

Equivalence = Callable[[str, str], bool]
Evidence = Callable[[str, str], float]


def _same_normalised(a: str, b: str) -> bool:
    return normalise_answer(a) == normalise_answer(b)


def _contains(premise: str, hypothesis: str) -> float:
    answer = normalise_answer(hypothesis)
    return float(bool(answer) and f" {answer} " in f" {normalise_answer(premise)} ")


_EQUIVALENCES: dict[str, Equivalence] = {"exact": str.__eq__, "normalized": _same_normalised}
_EVIDENCE: dict[str, Evidence] = {"contains": _contains}


def _pluggable(kind: str, name: str, table: Mapping[str, Any]) -> Any:
    """A built-in by name, or any ``"module:function"``; one-line error otherwise."""
    if name in table:
        return table[name]
    if ":" in name:
        try:
            return import_string(name)
        except Exception as err:
            raise ValueError(f"siop: cannot import {kind}={name!r}: {err}") from err
    raise ValueError(f"siop: {kind}={name!r} is not one of {sorted(table)} or 'module:function'")


def cluster_answers(answers: Sequence[str | None], same: Equivalence) -> np.ndarray:
    """Greedy clustering: answer ``i`` opens a cluster that every later equivalent one joins.

    Args:
        answers: One answer per rollout of a group, ``None`` where there is none.
        same: The equivalence (the reference code: bidirectional NLI entailment).

    Returns:
        Cluster id per rollout (0, 1, ... in order of first appearance), -1 without answer.

    Example:
        >>> cluster_answers(["Paris", None, "paris.", "Rome"], _same_normalised).tolist()
        [0, -1, 0, 1]
    """
    labels = np.full(len(answers), -1, np.int64)
    heads: list[str] = []  # each cluster's first answer
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for cluster, head in enumerate(heads):
            if same(head, answer):
                labels[i] = cluster
                break
        else:
            labels[i] = len(heads)
            heads.append(answer)
    return labels


def _episode_clusters(
    batch: TurnBatch, answers: Sequence[str | None], same: Equivalence
) -> np.ndarray:
    """Cluster id of every episode within its group (-1: no answer)."""
    labels = np.full(batch.n_episodes, -1, np.int64)
    starts = np.searchsorted(batch.episode_group, np.arange(batch.n_groups + 1))
    for g in range(batch.n_groups):
        lo, hi = int(starts[g]), int(starts[g + 1])
        labels[lo:hi] = cluster_answers(answers[lo:hi], same)
    return labels


def siop_targets(
    batch: TurnBatch,
    golds: Sequence[tuple[str, ...]],
    answers: Sequence[str | None],
    *,
    num_refs: int,
    equivalence: Equivalence,
    reference: str,
) -> list[tuple[str, ...]]:
    """The reference answers probed for each episode.

    Up to ``num_refs`` distinct answers of its own cluster (in rollout order), or the gold
    answer with ``reference="gold"``.
    """
    if reference == "gold":
        return [g[:1] for g in golds]
    labels = _episode_clusters(batch, answers, equivalence)
    members: dict[tuple[int, int], list[str]] = {}
    for e, label in enumerate(labels.tolist()):
        answer = answers[e]
        if label >= 0 and answer is not None:  # only rollouts with an answer have a cluster
            refs = members.setdefault((int(batch.episode_group[e]), label), [])
            if len(refs) < num_refs and answer not in refs:
                refs.append(answer)
    return [
        () if label < 0 else tuple(members[(int(batch.episode_group[e]), label)])
        for e, label in enumerate(labels.tolist())
    ]


def outcome_targets(
    batch: TurnBatch,
    answers: Sequence[str | None],
    labels: np.ndarray,
    evidence: np.ndarray,
    eta: float,
) -> np.ndarray:
    """Reliability-aware target probability ``q`` of each episode's cluster.

    ``m(c) = |c| / K_valid``; with ``eta > 0`` and more than one cluster,
    ``q(c) = softmax_c(log(m(c) + 1e-12) + eta * r(c))`` where ``r(c)`` is the mean evidence
    of the members that saw observations (``evidence`` NaN: none). Fewer than two answers:
    ``q = 1`` for the answering rollout. No answer: ``q = 0``.
    """
    q = np.zeros(batch.n_episodes)
    starts = np.searchsorted(batch.episode_group, np.arange(batch.n_groups + 1))
    for g in range(batch.n_groups):
        lo, hi = int(starts[g]), int(starts[g + 1])
        lab, ev = labels[lo:hi], evidence[lo:hi]
        valid = lab >= 0
        n_valid, n_clusters = int(valid.sum()), int(lab.max(initial=-1)) + 1
        if n_valid < 2:
            q[lo:hi] = valid.astype(np.float64)
            continue
        freq = np.bincount(lab[valid], minlength=n_clusters) / n_valid
        if eta > 0 and n_clusters > 1:
            seen = valid & np.isfinite(ev)
            total = np.bincount(lab[seen], weights=ev[seen], minlength=n_clusters)
            count = np.bincount(lab[seen], minlength=n_clusters)
            reliability = np.divide(total, count, out=np.zeros(n_clusters), where=count > 0)
            logits = np.log(freq + 1e-12) + eta * reliability
            freq = np.exp(logits - logits.max())
            freq /= freq.sum()
        q[lo:hi] = np.where(valid, freq[np.maximum(lab, 0)], 0.0)
    return q


def _evidence(
    batch: TurnBatch, answers: Sequence[str | None], labels: np.ndarray, entails: Evidence
) -> np.ndarray:
    """Mean evidence of each episode's answer over the observations its actions brought back.

    Only groups with two or more clusters need it (one cluster gets ``q = m`` anyway).
    """
    out = np.full(batch.n_episodes, np.nan)
    top = np.full(batch.n_groups, -1)
    np.maximum.at(top, batch.episode_group, labels)
    e = 0
    for g, group in enumerate(batch.groups):
        for episode in group.episodes:
            observed = [t.observation[:2000] for t in episode.turns[1:]]
            answer = answers[e]
            if top[g] >= 1 and answer is not None and observed:
                out[e] = float(np.mean([entails(o, answer) for o in observed]))
            e += 1
    return out


def siop_turn_rewards(
    batch: TurnBatch, log_first: np.ndarray, log_after: np.ndarray, q: np.ndarray, lam: float
) -> np.ndarray:
    """``r_t = q * (log p_t - log p_{t-1})`` plus ``(1 - lam) * q`` on the last turn.

    ``log_first`` (on first turns) is the log belief at the prompt; ``log_after`` after each
    turn's action; NaN where the probe failed, which zeroes that turn's process term.
    Single-turn episodes get the terminal term only.
    """
    previous = np.full(batch.n_turns, np.nan)
    first = batch.turn == 0
    previous[first] = log_first[first]
    previous[~first] = log_after[np.flatnonzero(~first) - 1]
    process = log_after - previous
    process = np.where(np.isfinite(process), process, 0.0)
    single = batch.episode_length[batch.episode] == 1
    qt = q[batch.episode]
    terminal = last_turn_mask(batch) * (1.0 - lam) * qt
    rewards: np.ndarray = np.where(single, 0.0, qt * process) + terminal
    return rewards


def _log_belief(values: np.ndarray, n_refs: np.ndarray) -> np.ndarray:
    """``log(sum_refs exp(mlp) / n_refs + 1e-8)``, skipping NaN refs; NaN if none is finite."""
    finite = np.isfinite(values)
    total = np.where(finite, np.exp(np.where(finite, values, 0.0)), 0.0).sum(axis=1)
    belief = total / np.maximum(n_refs, 1)
    return np.where(finite.any(axis=1), np.log(belief + 1e-8), np.nan)


def _needs(options: Mapping[str, Any]) -> ProbeNeeds:
    reference = choose("reference", options["reference"], ("clusters", "gold"))
    same = _pluggable("equivalence", options["equivalence"], _EQUIVALENCES)
    _pluggable("evidence", options["evidence"], _EVIDENCE)
    if options["num_refs"] < 1:
        raise ValueError(f"siop: num_refs must be >= 1, got {options['num_refs']}")
    targets = functools.partial(siop_targets, num_refs=options["num_refs"], equivalence=same,
                                reference=reference)  # fmt: skip
    scorer: Literal["policy", "initial"] = "initial" if options["scorer"] == "frozen" else "policy"
    return ProbeNeeds(targets=targets, points=frozenset({"first", "after"}), scorer=scorer,
                      gold=reference == "gold")  # fmt: skip


@register_estimator(
    "siop", probes=_needs, unverified=("equivalence=normalized", "evidence=contains")
)
def siop(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    lam: float = 0.5,
    eta: float = 1.0,
    num_refs: int = 3,
    gamma: float = 1.0,
    eps: float = 1e-6,
    norm_by_std: bool = True,
    equivalence: str = "normalized",
    evidence: str = "contains",
    reference: Literal["clusters", "gold"] = "clusters",
    advantage: Literal["turn", "broadcast"] = "turn",
    scorer: Literal["frozen", "policy"] = "frozen",
) -> Credit:
    """Self-Induced Outcome Potential (arXiv 2605.04984; authors' code dl-m9/SIOP).

    Verifier-free IGPO. The group's final answers are clustered into outcome modes; each
    cluster gets a reliability-aware target probability ``q(c) = softmax(log m(c) + eta *
    r(c))`` (``m``: its share of the answers, ``r``: how well the rollouts' observations
    support it). A turn is rewarded for raising the scorer's belief ``p_t`` in its rollout's
    cluster answers (potential-based shaping with ``Phi_t = log p_t``):
    ``r_t = q * (log p_t - log p_{t-1})``, plus ``(1 - lam) * q`` on the last turn. All
    (rollout, turn) rewards of a task are pooled, ``rhat = (r - mean) / (std_u + eps)``,
    and accumulated ``A_t = rhat_t + gamma * A_{t+1}``. ``p_t`` is the mean over up to
    ``num_refs`` distinct member answers of ``exp(mean token log-prob)`` after turn ``t``'s
    action (``p_0``: the prompt). Status: VERIFIED-CODE (``siop_process_reward.py``,
    ``compute_siop_turn_level_advantage``). The NLI model of the reference code is pluggable:
    ``equivalence``/``evidence`` default to string versions (normalised equality, answer
    contained in the observation), a deliberate stand-in since no NLI model ships here.

    Args:
        batch: The turns and their observations (for the evidence term).
        ctx: ``ctx.probe``: the references probed at the first prompt and after each action.
        lam: ``siop_lambda``; the terminal reward is ``(1 - lam) * q``.
        eta: Weight of the evidence term (0: frequency only).
        num_refs: Distinct cluster answers scored per rollout.
        gamma: Discount of the turn accumulation.
        eps: Added to the std; a std below it becomes 1.
        norm_by_std: Divide by the std (else only centre).
        equivalence: ``"normalized"``, ``"exact"`` or ``"module:function"`` ``(a, b) -> bool``
            (e.g. bidirectional NLI entailment).
        evidence: ``"contains"`` or ``"module:function"`` ``(observation, answer) -> [0, 1]``
            (an NLI entailment probability).
        reference: ``"clusters"`` (verifier-free) or ``"gold"``: the gold answer with
            ``q = 1`` (``siop_use_gold_ref``; IGPO with log-prob differences).
        advantage: ``"turn"``, or ``"broadcast"`` (ablation: GRPO on the summed rewards).
        scorer: ``"frozen"`` (a frozen copy of the initial policy, as the separate scorer LM
            of the reference pipeline) or ``"policy"`` (the rollout policy scores itself).

    Returns:
        Advantages, turn rewards as ``returns``, standard metrics, ``clusters_mean`` and
        ``q_mean``.

    Degenerate cases: a task with at most one (rollout, turn) reward gives 0; rollouts
    without an answer get no process reward but their zero rewards stay in the pooled
    statistics; with the default pooled normalisation, rollouts of different lengths get
    different advantages even when their outcomes are equal (the reference behaviour).
    """
    mode = choose("advantage", advantage, ("turn", "broadcast"))
    probes = probe_values(ctx, batch, "siop")
    same = _pluggable("equivalence", equivalence, _EQUIVALENCES)
    answers = probes.answers
    labels = _episode_clusters(batch, answers, same)
    if reference == "gold":
        q = np.array([1.0 if g else 0.0 for g in probes.golds])
    else:
        entails = _pluggable("evidence", evidence, _EVIDENCE)
        support = np.full(len(answers), np.nan)
        if eta > 0:
            support = _evidence(batch, answers, labels, entails)
        q = outcome_targets(batch, answers, labels, support, eta)
    n_refs = np.array([len(t) for t in probes.targets], np.float64)[batch.episode]
    log_first = _log_belief(probes.before, n_refs)
    log_after = _log_belief(probes.after, n_refs)
    reward = siop_turn_rewards(batch, log_first, log_after, q, lam)
    scores = np.bincount(batch.episode, weights=reward, minlength=batch.n_episodes)
    if mode == "broadcast":  # episodes without turns have no rewards and stay out
        adv = pooled_normalise(scores, batch.episode_length > 0, batch.episode_group,
                               batch.n_groups, ddof=1, eps=eps, by_std=norm_by_std)  # fmt: skip
        advantages = adv[batch.episode]
    else:
        rhat = pooled_normalise(reward, np.ones(batch.n_turns, bool), batch.group,
                                batch.n_groups, ddof=1, eps=eps, by_std=norm_by_std,
                                small_std=eps)  # fmt: skip
        advantages = discounted_sums(batch, rhat, gamma)
    metrics = credit_metrics(batch, advantages, scores)
    top = np.full(batch.n_groups, -1)
    np.maximum.at(top, batch.episode_group, labels)
    metrics["clusters_mean"] = float(np.mean(top + 1)) if batch.n_groups else 0.0
    metrics["q_mean"] = float(q.mean()) if q.size else 0.0
    return Credit(advantages, returns=reward, metrics=metrics)
