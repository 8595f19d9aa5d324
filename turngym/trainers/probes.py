"""Probes in the training loop: teacher-forced scores for probe-based credit estimators.

When (and only when) the configured estimator declares :class:`ProbeNeeds`, the trainer calls
a :class:`Prober` on each batch before credit assignment. It builds every probe row of the
batch (context token ids, scored token ids), removes duplicates, and scores them under
``torch.no_grad`` with the rollout policy (or a frozen copy of the initial policy where a
method asks for one), in batches. Rows of one task share a long prefix (the instructions and
the question), which is encoded once per forward and its key/value cache reused by every row
(:func:`~turngym.trainers.policy.shared_prefix_token_logprobs`, Prefix Grouper). The results
land in a :class:`~turngym.trainers.credit.probe_values.ProbeValues` of plain arrays.

Contexts come from the turns' :class:`~turngym.types.TokenTrace` prompts, so a probe sees
exactly what the policy saw (its history window and template). Answer probes write the
target after the prompt as the env's answer template says (``answer_lead``); the teacher and
the counterfactual edit the prompt's text (the current observation gets the privileged hint in
front of it, or is replaced by a placeholder) and re-tokenise it, the unedited context going
through the same decode/encode path so the two passes differ only by the edit.
"""

from __future__ import annotations

import copy
import functools
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from turngym.core import GOLD_ANSWERS
from turngym.registry import env_registry, import_string
from turngym.trainers.credit.probe_values import (
    ProbeNeeds,
    ProbeOptions,
    ProbeValues,
    TokenValues,
    answer_from_action,
)
from turngym.trainers.credit.types import TurnBatch
from turngym.trainers.policy import shared_prefix_token_logprobs, token_logprobs
from turngym.types import Episode

__all__ = ["Prober", "probe_needs", "check_gold_answers", "envs_with_gold_answers"]


def probe_needs(estimate: Callable[..., Any]) -> ProbeNeeds | None:
    """What a resolved estimator needs probed, or ``None`` for estimators without probes.

    Calls the estimator's declared ``probes(options)`` with every option's value (defaults
    filled in), so an invalid probe-related option fails here, at config time.
    """
    fn = getattr(estimate, "func", estimate)
    declare = getattr(fn, "probes", None)
    if declare is None:
        return None
    bound = inspect.signature(fn).bind_partial(None, None, **getattr(estimate, "keywords", {}))
    bound.apply_defaults()
    options = dict(list(bound.arguments.items())[2:])
    needs = declare(options)
    if not isinstance(needs, ProbeNeeds):
        raise TypeError(f"{fn.__name__}.probes must return ProbeNeeds, got {type(needs).__name__}")
    return needs


@functools.cache
def envs_with_gold_answers() -> tuple[str, ...]:
    """Registered env ids whose class declares ``gold_answers`` (imports their modules)."""
    found = []
    for env_id in env_registry.names():
        target = env_registry.get(env_id).entry_point
        try:
            cls = import_string(target) if isinstance(target, str) else target
        except Exception:  # a broken plugin env must not hide the others
            continue
        if GOLD_ANSWERS in getattr(cls, "privileged_keys", frozenset()):
            found.append(env_id)
    return tuple(found)


def check_gold_answers(needs: ProbeNeeds | None, env: Any, env_id: str, method: str) -> None:
    """Raise a one-line error when ``method`` needs gold answers that ``env`` does not declare.

    Answer probes (``needs.targets``) also need the env's ``answer_template``: without it no
    episode's answer can be read, and the method's credit would silently be all zero.
    """
    if needs is None:
        return
    if needs.gold and GOLD_ANSWERS not in getattr(env, "privileged_keys", frozenset()):
        raise ValueError(
            f"estimator {method!r} needs gold answers (privileged {GOLD_ANSWERS!r}), which "
            f"{env_id} does not provide; envs that do: {', '.join(envs_with_gold_answers())}."
        )
    if needs.targets is not None and "{answer}" not in getattr(env, "answer_template", ""):
        raise ValueError(
            f"estimator {method!r} probes the policy's belief in answers, but {env_id} has no "
            "answer_template with an '{answer}' slot to read them from; envs that do: "
            f"{', '.join(envs_with_gold_answers())}."
        )


@dataclass
class _Rows:
    """Probe rows collected for a batch: unique (context, scored) pairs and where each goes."""

    keys: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = field(default_factory=dict)
    group: list[int] = field(default_factory=list)
    sinks: list[tuple[int, Callable[[np.ndarray], None]]] = field(default_factory=list)

    def add(self, group: int, context: Sequence[int], scored: Sequence[int],
            sink: Callable[[np.ndarray], None]) -> None:  # fmt: skip
        key = (tuple(context), tuple(scored))
        if not key[0] or not key[1]:
            return
        row = self.keys.setdefault(key, len(self.keys))
        if row == len(self.group):
            self.group.append(group)
        self.sinks.append((row, sink))


class Prober:
    """Computes the :class:`ProbeValues` an estimator needs for each batch.

    Args:
        model: The policy (a Hugging Face causal LM); it is used as it is at call time, i.e.
            the rollout (old) policy when called between collection and update.
        tokenizer: Its tokenizer.
        needs: What to compute (from :func:`probe_needs`).
        options: How (``TrainConfig.probe_options``).
        answer_template: The env's ``answer_template`` (``"<answer>{answer}</answer>"``).
        response_prefix: Text every prompt ends with (the agent's response prefix).
        response_suffix: Text the agent appends to every action.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        needs: ProbeNeeds,
        options: ProbeOptions,
        answer_template: str = "",
        response_prefix: str = "",
        response_suffix: str = "",
    ) -> None:
        self.model = model
        if needs.scorer == "initial":  # a frozen scorer: the policy as it is now, before training
            self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.needs = needs
        self.options = options
        self.template = answer_template
        head = answer_template.partition("{answer}")[0]
        lead = options.answer_lead
        if lead is None:
            lead = head[len(response_prefix) :] if head.startswith(response_prefix) else head
        self.lead = lead
        self.after_lead = response_suffix + "\n" + (options.answer_lead or head)

    # --- Public ---------------------------------------------------------------------------------
    def __call__(self, batch: TurnBatch) -> ProbeValues:
        """Probe values for ``batch`` (every turn of every episode), with their cost."""
        start = time.perf_counter()
        episodes = [ep for g in batch.groups for ep in g.episodes]
        golds = tuple(_golds(ep) for ep in episodes)
        answers = tuple(self._answer(ep) for ep in episodes)
        targets: tuple[tuple[str, ...], ...] = ((),) * len(episodes)
        if self.needs.targets is not None:
            targets = tuple(tuple(t) for t in self.needs.targets(batch, golds, answers))
        k = max((len(t) for t in targets), default=0)
        n = batch.n_turns
        out = {"before": np.full((n, k), np.nan), "after": np.full((n, k), np.nan)}
        tokens = np.array([len(t.trace.completion_ids) if t.trace else 0
                           for ep in episodes for t in ep.turns], np.int64)  # fmt: skip
        rows = _Rows()
        if self.needs.targets is not None:
            self._answer_rows(batch, episodes, targets, out, rows)
        teacher = student = factual = counterfactual = None
        if self.needs.teacher:
            teacher, student = self._teacher_rows(batch, episodes, golds, tokens, rows)
        if self.needs.counterfactual:
            factual, counterfactual = self._counterfactual_rows(batch, episodes, rows)
        cost = self._score(rows)
        values = ProbeValues(
            golds=golds, answers=answers, targets=targets, before=out["before"],
            after=out["after"], action_tokens=tokens,
            teacher=None if teacher is None else TokenValues.from_rows(teacher),
            student=None if student is None else TokenValues.from_rows(student),
            next_factual=factual, next_counterfactual=counterfactual,
        )  # fmt: skip
        cost["probe_s"] = time.perf_counter() - start
        return ProbeValues(**{**values.__dict__, "cost": cost})

    # --- Building rows ----------------------------------------------------------------------------
    def _answer(self, episode: Episode) -> str | None:
        if not self.template or not episode.turns:
            return None
        return answer_from_action(episode.turns[-1].action, self.template)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one Prober per run; texts repeat a lot
    def _lead_and_text(self, lead: str, text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Tokens of ``lead`` and of ``text`` written after it (tokenised together if clean).

        The lead's trailing whitespace belongs to the text: tokenizers attach a space to the
        word after it (``"guess: owl"`` is ``guess``, ``:``, ``▁owl``).
        """
        stripped = lead.rstrip()
        text = lead[len(stripped) :] + text
        head, joint = self._encode(stripped), self._encode(stripped + text)
        if joint[: len(head)] == head and len(joint) > len(head):
            return tuple(head), tuple(joint[len(head) :])
        return tuple(head), tuple(self._encode(text))

    def _answer_rows(self, batch: TurnBatch, episodes: list[Episode],
                     targets: Sequence[tuple[str, ...]], out: dict[str, np.ndarray],
                     rows: _Rows) -> None:  # fmt: skip
        points = self.needs.points
        row = 0
        for e, episode in enumerate(episodes):
            group = int(batch.episode_group[e])
            for t, turn in enumerate(episode.turns):
                trace = turn.trace
                if trace is None:
                    continue
                for k, text in enumerate(targets[e]):
                    if "before" in points or ("first" in points and t == 0):
                        lead, ids = self._lead_and_text(self.lead, text)
                        rows.add(group, trace.prompt_ids + lead, ids,
                                 _mean_into(out["before"], row + t, k))  # fmt: skip
                    if "after" in points:
                        lead, ids = self._lead_and_text(self.after_lead, text)
                        context = trace.prompt_ids + trace.completion_ids + lead
                        rows.add(group, context, ids, _mean_into(out["after"], row + t, k))
            row += len(episode.turns)

    def _teacher_rows(self, batch: TurnBatch, episodes: list[Episode],
                      golds: Sequence[tuple[str, ...]], tokens: np.ndarray,
                      rows: _Rows) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
        teacher = [np.full(n, np.nan) for n in tokens.tolist()]
        student = [np.full(n, np.nan) for n in tokens.tolist()]
        row = 0
        for e, episode in enumerate(episodes):
            group = int(batch.episode_group[e])
            hint = self.options.teacher_hint.replace("{answer}", golds[e][0]) if golds[e] else None
            for t, turn in enumerate(episode.turns):
                if turn.trace is None or hint is None:
                    continue
                own = self._swap(turn.trace.prompt_ids, turn.observation, "{found}")
                told = self._swap(turn.trace.prompt_ids, turn.observation, hint + "{found}")
                if own is not None and told is not None:
                    action = turn.trace.completion_ids
                    rows.add(group, own, action, _tokens_into(student, row + t))
                    rows.add(group, told, action, _tokens_into(teacher, row + t))
            row += len(episode.turns)
        return teacher, student

    def _counterfactual_rows(self, batch: TurnBatch, episodes: list[Episode],
                             rows: _Rows) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        factual = np.full(batch.n_turns, np.nan)
        counterfactual = np.full(batch.n_turns, np.nan)
        row = 0
        for e, episode in enumerate(episodes):
            group = int(batch.episode_group[e])
            for t, (turn, nxt) in enumerate(zip(episode.turns, episode.turns[1:], strict=False)):
                if turn.trace is None or nxt.trace is None or not nxt.observation.strip():
                    continue
                seen = self._swap(nxt.trace.prompt_ids, nxt.observation, "{found}")
                masked = self._swap(nxt.trace.prompt_ids, nxt.observation,
                                    self.options.placeholder)  # fmt: skip
                if seen is not None and masked is not None:
                    action = nxt.trace.completion_ids
                    rows.add(group, seen, action, _mean_into(factual, row + t))
                    rows.add(group, masked, action, _mean_into(counterfactual, row + t))
            row += len(episode.turns)
        return factual, counterfactual

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)  # fmt: skip

    def _swap(self, ids: Sequence[int], find: str, replace: str) -> tuple[int, ...] | None:
        """``ids`` as text with the last ``find`` replaced by ``replace``, re-tokenised.

        ``find`` goes through the tokenizer too, so it matches the prompt's text even where
        the tokenizer cannot reproduce it (unknown tokens decode as the unknown marker).
        ``replace`` may contain ``{found}``, the matched text.
        """
        text, find = self._decode(ids), self._decode(self._encode(find))
        at = text.rfind(find) if find else -1
        if at < 0:
            return None
        edited = replace.replace("{found}", find)
        return tuple(self._encode(text[:at] + edited + text[at + len(find) :]))

    # --- Scoring ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _score(self, rows: _Rows) -> dict[str, float]:
        """Score every unique row, write each result to its sinks; return cost figures."""
        keys = list(rows.keys)
        results: list[np.ndarray] = [np.zeros(0)] * len(keys)
        computed = shared = 0
        was_training = self.model.training
        self.model.eval()
        try:
            by_group: dict[int, list[int]] = {}
            for i, g in enumerate(rows.group):
                by_group.setdefault(g, []).append(i)
            for members in by_group.values():
                members.sort(key=lambda i: len(keys[i][0]) + len(keys[i][1]))
                for start in range(0, len(members), self.options.batch_rows):
                    chunk = members[start : start + self.options.batch_rows]
                    c, s = self._score_chunk([keys[i] for i in chunk], chunk, results)
                    computed, shared = computed + c, shared + s
        finally:
            self.model.train(was_training)
        for row, sink in rows.sinks:
            sink(results[row])
        return {"probe_rows": float(len(keys)), "probe_tokens": float(computed),
                "probe_shared_tokens": float(shared)}  # fmt: skip

    def _score_chunk(self, keys: list[tuple[tuple[int, ...], tuple[int, ...]]],
                     index: list[int], results: list[np.ndarray]) -> tuple[int, int]:  # fmt: skip
        """Log-probs of each key's scored tokens; returns (tokens run, prefix tokens reused)."""
        contexts = [k[0] for k in keys]
        common = _common_prefix(contexts) if self.options.share_prefix and len(keys) > 1 else 0
        if common > 0:
            continuations = [ctx[common:] + scored for ctx, scored in keys]
            scored_rows = shared_prefix_token_logprobs(self.model, contexts[0][:common],
                                                       continuations)  # fmt: skip
            for i, (_, scored), (lp, _) in zip(index, keys, scored_rows, strict=True):
                results[i] = lp[len(lp) - len(scored) :].double().cpu().numpy()
            width = max(len(c) for c in continuations)
            return common + width * len(keys), common * (len(keys) - 1)
        full = [ctx + scored for ctx, scored in keys]
        width = max(len(f) for f in full)
        ids = torch.zeros((len(full), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, f in enumerate(full):
            ids[r, : len(f)] = torch.as_tensor(f)
            mask[r, : len(f)] = 1
        device = next(self.model.parameters()).device
        lp, _ = token_logprobs(self.model, ids.to(device), mask.to(device))
        for r, (i, (ctx, scored)) in enumerate(zip(index, keys, strict=True)):
            results[i] = lp[r, len(ctx) : len(ctx) + len(scored)].double().cpu().numpy()
        return width * len(keys), 0


def _golds(episode: Episode) -> tuple[str, ...]:
    value = episode.privileged.get(GOLD_ANSWERS) or []
    return tuple(str(v) for v in value if str(v))


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix every row shares."""
    limit = min(len(r) for r in rows)
    heads = np.array([r[:limit] for r in rows], dtype=np.int64).reshape(len(rows), limit)
    same = (heads == heads[0]).all(axis=0)
    return int(limit if same.all() else np.argmin(same))


def _mean_into(array: np.ndarray, row: int, col: int | None = None) -> Callable[[np.ndarray], None]:
    def sink(values: np.ndarray) -> None:
        mean = float(values.mean()) if values.size else np.nan
        if col is None:
            array[row] = mean
        else:
            array[row, col] = mean

    return sink


def _tokens_into(rows: list[np.ndarray], row: int) -> Callable[[np.ndarray], None]:
    def sink(values: np.ndarray) -> None:
        rows[row] = values

    return sink
