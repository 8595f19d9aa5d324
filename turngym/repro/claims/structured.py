"""Claims of the structured-reward methods: ranks, phases, tool-call matches, judges, parts.

Each claim is a mechanism the method's paper states, measured on rollouts of reference agents
(a noisy oracle: the env's optimal action with probability ``p``, else a random example
action) or, for PRE-GRPO, on synthetic quality traces; no training is needed, so every seed
takes seconds to a minute on one core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import gymnasium
import numpy as np

from turngym.agents.base import ActionResult
from turngym.agents.scripted import EpisodeSeededAgent
from turngym.core import TextEnv, TextSpace
from turngym.envs.dialogue.try_again import TryAgain
from turngym.repro.registry import Claim, Measurement
from turngym.rollout import collect
from turngym.trainers.credit import Credit, CreditContext, TurnBatch, resolve_estimator
from turngym.trainers.credit._spans import item_of_tokens
from turngym.trainers.credit._structure import normalise_units, turn_info, unit_table
from turngym.types import Conversation, Episode, Group, TokenTrace, Turn

__all__ = ["NoisyOracle", "RANK_GRPO", "F_GRPO", "MATCHTIR", "MAPO", "SCRL", "PRE_GRPO"]


class NoisyOracle(EpisodeSeededAgent):
    """The env's oracle action with probability ``p``, else one of its example actions."""

    def __init__(self, p: float, seed: int = 0) -> None:
        """``p``: chance of the optimal action at each turn; ``seed``: per-episode streams."""
        super().__init__(seed)
        self.p = float(p)

    def act_batch_with_envs(self, conversations: Sequence[Conversation],
                            envs: Sequence[gymnasium.Env]) -> list[ActionResult]:  # fmt: skip
        """One action per (conversation, env)."""
        out = []
        for conversation, env in zip(conversations, envs, strict=True):
            rng, base = self._rng(conversation), env.unwrapped
            assert isinstance(base, TextEnv), "the oracle action is a TextEnv's"
            space = base.action_space
            if rng.random() < self.p or not (isinstance(space, TextSpace) and space.examples):
                out.append(ActionResult(base.oracle_action()))
            else:
                out.append(ActionResult(rng.choice(space.examples)))
        return out


def _credit(name: str, groups: list[Group], **params: object) -> Credit:
    return resolve_estimator(name, params)(TurnBatch.from_groups(groups), CreditContext())


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s) for s in np.random.default_rng([seed, 16]).integers(0, 10**6, n)]


# --- Rank-GRPO ----------------------------------------------------------------------------------
class _Chars:
    """A tokenizer with one token per character, for traces rebuilt from action texts."""

    def decode(self, ids: Sequence[int], **_: object) -> str:
        return "".join(map(chr, ids))


def _traced(groups: list[Group]) -> list[Group]:
    """The groups with each turn's action content as a one-token-per-character trace."""
    def one(turn: Turn) -> Turn:
        content = turn.action.removeprefix("<action>").removesuffix("</action>")
        return replace(turn, trace=TokenTrace((0,), tuple(map(ord, content))))

    return [Group(g.group_id, g.task_id, tuple(replace(e, turns=tuple(map(one, e.turns)))
                                              for e in g.episodes)) for g in groups]  # fmt: skip


def rank_item_credit(seed: int) -> Measurement:
    """Share of listed items credited with the sign of their own hit: Rank-GRPO vs GRPO."""
    groups = _traced(collect("turngym/SeqRec-v0", NoisyOracle(0.3, seed), _seeds(seed, 8), 8,
                             split="train"))  # fmt: skip
    batch = TurnBatch.from_groups(groups)
    units = unit_table(batch, turn_info(batch, "rank_hits"), per_turn=False, pad=False)
    own = normalise_units(batch, units, ddof=1, eps=1e-4)  # the item's hit against its rank's
    credit = resolve_estimator("rank_grpo", {})(batch, CreditContext(tokenizer=_Chars()))
    grpo = _credit("grpo", groups, score="return").advantages  # NDCG broadcast to the turn
    turns = [t for g in groups for e in g.episodes for t in e.turns]
    per_item = np.zeros(units.row.size)
    assert credit.token_advantages is not None  # a tokenizer and traced turns: per-token credit
    for u, (row, k) in enumerate(zip(units.row, units.in_turn, strict=True)):
        trace = turns[row].trace
        assert trace is not None  # _traced gave every turn one
        items = item_of_tokens(_Chars(), trace.completion_ids)
        at = np.flatnonzero(items == k)
        per_item[u] = credit.token_advantages[row][at[0]] if at.size else 0.0
    live = np.abs(own) > 1e-9
    agree = {name: float(np.mean(np.sign(adv[live]) == np.sign(own[live])))
             for name, adv in (("rank_grpo", per_item), ("grpo", grpo[units.row]))}  # fmt: skip
    return Measurement(agree["rank_grpo"] - agree["grpo"],
                       {**{f"agree_{k}": v for k, v in agree.items()},
                        "items": float(live.sum())})  # fmt: skip


RANK_GRPO = Claim(
    name="rank-grpo-item-credit",
    method="rank_grpo",
    paper="Zhu et al. 2025, ConvRec-R1 / Rank-GRPO (code yaochenzhu/Rank-GRPO): per-rank rewards "
          "and advantages remove non-causal credit from the items of a list",
    statement="Crediting each rank on its own gives each listed item the sign of its own hit, "
              "where a list-level reward gives every item of a good list the same credit.",
    experiment="SeqRec rollouts of a noisy oracle (p=0.3), 8 tasks x 8 lists, items mapped to "
               "tokens: share of items whose token advantage has the sign of their own hit "
               "relative to their rank's mean.",
    metric="sign agreement: rank_grpo - grpo (list NDCG broadcast)",
    run=rank_item_credit, kind="mechanism", budget="~15 s/seed",
)  # fmt: skip


# --- F-GRPO -------------------------------------------------------------------------------------
def phase_disagreement(seed: int) -> Measurement:
    """Share of episodes whose generation and ranking advantages have opposite signs."""
    groups = collect("turngym/SeqRec-v0", NoisyOracle(0.3, seed), _seeds(seed, 12), 8,
                     split="train", options={"difficulty": {"select": 15}})  # fmt: skip
    credit = _credit("f_grpo", groups)
    return Measurement(credit.metrics["phase_disagreement"],
                       {"gen_adv_abs_mean": credit.metrics["gen_adv_abs_mean"],
                        "rank_adv_abs_mean": credit.metrics["rank_adv_abs_mean"]})  # fmt: skip


F_GRPO = Claim(
    name="f-grpo-phase-credit",
    method="f_grpo",
    paper="arXiv 2605.12995 (F-GRPO), abstract: one list-level reward cannot tell a bad subset "
          "from a bad ranking of it",
    statement="Generate-then-rank answers often deserve opposite credit for their two phases, "
              "which separate group-relative advantages give and one outcome reward cannot.",
    experiment="SeqRec with select=15, noisy-oracle rollouts (p=0.3), 12 tasks x 8: share of "
               "episodes whose coverage and NDCG advantages have opposite signs.",
    metric="phase_disagreement (share of episodes)",
    run=phase_disagreement, kind="mechanism", budget="~15 s/seed",
)  # fmt: skip


# --- MatchTIR -----------------------------------------------------------------------------------
def matchtir_signal(seed: int) -> Measurement:
    """Zero-advantage group share: GRPO on outcomes minus MatchTIR on matched calls."""
    groups = collect("turngym/ToolUse-v0", NoisyOracle(0.6, seed), _seeds(seed, 8), 6,
                     split="train", max_turns=8)  # fmt: skip
    grpo = _credit("grpo", groups).metrics["zero_adv_group_frac"]
    match = _credit("matchtir", groups)
    return Measurement(grpo - match.metrics["zero_adv_group_frac"],
                       {"zero_grpo": grpo, "zero_matchtir": match.metrics["zero_adv_group_frac"],
                        "matched_reward_mean": match.metrics["matched_reward_mean"]})  # fmt: skip


MATCHTIR = Claim(
    name="matchtir-turn-signal",
    method="matchtir",
    paper="Qu et al. 2025, MatchTIR (code quchangle1/MatchTIR): bipartite-matched tool calls "
          "give turn-level rewards where outcome rewards are sparse",
    statement="Matching each call to the gold trace gives learning signal in groups whose "
              "outcomes are all equal, where outcome-only GRPO gives none.",
    experiment="ToolUse, noisy-oracle rollouts (p=0.6), 8 tasks x 6: share of groups whose "
               "advantages are all zero.",
    metric="zero_adv_group_frac: grpo - matchtir",
    run=matchtir_signal, kind="mechanism", budget="~40 s/seed",
)  # fmt: skip


# --- MAPO ---------------------------------------------------------------------------------------
def mapo_turn_credit(seed: int) -> Measurement:
    """Correlation of turn advantages with the turn's own judge score: MAPO vs GRPO."""
    groups = collect("turngym/EmotionalSupport-v0", NoisyOracle(0.5, seed), _seeds(seed, 8), 6,
                     split="train")  # fmt: skip
    batch = TurnBatch.from_groups(groups)
    judge = np.asarray(turn_info(batch, "judge_score"), np.float64)
    corr = {name: float(np.corrcoef(_credit(name, groups, **params).advantages, judge)[0, 1])
            for name, params in (("mapo", {}), ("grpo", {"score": "return"}))}  # fmt: skip
    return Measurement(corr["mapo"] - corr["grpo"], {f"corr_{k}": v for k, v in corr.items()})


MAPO = Claim(
    name="mapo-judged-turns",
    method="mapo",
    paper="arXiv 2603.06194 (MAPO), abstract: dense per-turn judge feedback with Monte Carlo "
          "returns and mixed turn/batch normalisation",
    statement="Judge-based turn advantages follow the quality of each turn, where a "
              "trajectory-level advantage gives every turn of a dialogue the same credit.",
    experiment="EmotionalSupport, noisy-oracle rollouts (p=0.5), 8 tasks x 6 dialogues: "
               "correlation of each turn's advantage with its own judge score.",
    metric="corr(advantage, judge score): mapo - grpo",
    run=mapo_turn_credit, kind="mechanism", budget="~60 s/seed",
)  # fmt: skip


# --- SCRL ---------------------------------------------------------------------------------------
class SubAnswerer(EpisodeSeededAgent):
    """Answers each sub-problem of a TryAgain task correctly with probability ``p``."""

    def __init__(self, p: float, seed: int = 0) -> None:
        """``p``: chance per sub-answer."""
        super().__init__(seed)
        self.p = float(p)

    def act_batch_with_envs(self, conversations: Sequence[Conversation],
                            envs: Sequence[gymnasium.Env]) -> list[ActionResult]:  # fmt: skip
        """Every gold sub-answer, each replaced by a wrong number with probability 1 - p."""
        out = []
        for conversation, env in zip(conversations, envs, strict=True):
            rng, base = self._rng(conversation), env.unwrapped
            assert isinstance(base, TryAgain), "SubAnswerer plays TryAgain tasks"
            parts = [g if rng.random() < self.p else str(int(float(g)) + 1)
                     for g in base.subanswers]
            out.append(ActionResult(f"<answer>{'; '.join(parts)}</answer>"))
        return out


def scrl_signal(seed: int) -> Measurement:
    """Zero-advantage group share: GRPO on the final answer minus SCRL on sub-answers."""
    options = {"difficulty": {"subproblems": True, "puzzle_types": ["arithmetic"],
                              "max_attempts": 1, "steps": 4}}  # fmt: skip
    groups = collect("turngym/TryAgain-v0", SubAnswerer(0.35, seed), _seeds(seed, 48), 4,
                     split="train", options=options)  # fmt: skip
    grpo = _credit("grpo", groups).metrics["zero_adv_group_frac"]
    scrl = _credit("scrl", groups).metrics["zero_adv_group_frac"]
    return Measurement(grpo - scrl, {"zero_grpo": grpo, "zero_scrl": scrl})


SCRL = Claim(
    name="scrl-partial-progress",
    method="scrl",
    paper="arXiv 2605.22074 (SCRL), abstract: progress-aware sub-problem rewards normalised "
          "per sub-problem",
    statement="Rewarding each correct prefix of sub-problems gives signal in groups that all "
              "miss the final answer, which outcome-only GRPO cannot use.",
    experiment="TryAgain arithmetic with 4 steps as sub-problems, one attempt, an agent right "
               "on each sub-answer with p=0.35, 48 tasks x 4: zero-advantage group share.",
    metric="zero_adv_group_frac: grpo - scrl",
    run=scrl_signal, kind="mechanism", budget="~10 s/seed",
)  # fmt: skip


# --- PRE-GRPO -----------------------------------------------------------------------------------
def _quality_groups(seed: int, n_groups: int = 200, size: int = 6) -> list[Group]:
    """Synthetic per-turn quality traces: noisy climbs that sometimes collapse after a peak."""
    rng = np.random.default_rng([seed, 12])
    groups = []
    for g in range(n_groups):
        episodes = []
        for i in range(size):
            length = int(rng.integers(2, 7))
            q = np.clip(np.cumsum(rng.normal(0.15, 0.25, length)), 0, 1)
            if rng.random() < 0.4:
                q[-1] = q[-1] * rng.uniform(0, 0.5)  # the last edit breaks it
            turns = tuple(Turn(t, "agent", "o", "a", float(q[t]), t == length - 1, False, None,
                               True) for t in range(length))  # fmt: skip
            episodes.append(Episode(f"e{g}/{i}", "synthetic", f"t{g}", i, "train", turns,
                                    float(q[-1]), bool(q[-1] > 0.8)))  # fmt: skip
        groups.append(Group(f"t{g}@0", f"t{g}", tuple(episodes)))
    return groups


def pre_grpo_peak(seed: int) -> Measurement:
    """Correlation of the advantage with the peak quality: PRE-GRPO vs final-score GRPO."""
    groups = _quality_groups(seed)
    batch = TurnBatch.from_groups(groups)
    peak = np.zeros(batch.n_episodes)
    np.maximum.at(peak, batch.episode, batch.reward)
    first = batch.episode_start[batch.episode_length > 0]
    corr = {name: float(np.corrcoef(_credit(name, groups).advantages[first], peak)[0, 1])
            for name in ("pre_grpo", "grpo")}  # fmt: skip
    return Measurement(corr["pre_grpo"] - corr["grpo"], {f"corr_{k}": v for k, v in corr.items()})


PRE_GRPO = Claim(
    name="pre-grpo-peak-credit",
    method="pre_grpo",
    paper="arXiv 2605.17969 (Generation Navigator, PRE-GRPO), abstract: rewarding a single "
          "final state ignores the quality dynamics across turns",
    statement="Peak-Retention-Efficiency rewards credit a trajectory for the best result it "
              "found, where a final-state reward does not when a late turn degrades it.",
    experiment="Synthetic per-turn quality traces (200 groups x 6, 40% with a degraded last "
               "turn): correlation of episode advantages with the peak quality reached.",
    metric="corr(advantage, peak quality): pre_grpo - grpo (final score)",
    run=pre_grpo_peak, kind="mechanism", budget="~2 s/seed",
)  # fmt: skip

