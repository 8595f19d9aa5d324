"""turngym inside TRL (tested against trl 1.16.0): envs as rollouts, estimators as advantages.

**Envs** go in through ``GRPOTrainer(rollout_func=...)``, TRL's documented hook for custom
generation (experimental in TRL; it receives the process's prompts and the trainer and returns
``prompt_ids``, ``completion_ids``, ``logprobs`` plus extra fields, among them ``env_mask``,
which TRL uses to keep env tokens out of the loss). :class:`TurngymRollout` is such a
function: each prompt names a task (rows from :func:`task_dataset`); it plays one episode per
prompt with the trainer's current model, all live episodes batched per turn. One completion is
the whole conversation after the first prompt: the model's tokens of each turn (``env_mask``
1, exactly the sampled tokens, so the loss sees what the policy generated) followed by the
env's reply rendered by the chat template (``env_mask`` 0). Extra fields ``turngym_return``,
``turngym_outcome`` and ``turngym_success`` reach reward functions; :func:`episode_return`
is the reward function that reads the first.

**Estimators.** TRL's GRPO computes one advantage per completion from group-normalised rewards
and has no hook to replace it, but its loss accepts advantages of shape
``(completions, tokens)`` from subclasses (``GRPOTrainer.compute_loss``). The minimal subclass
:class:`TurngymGRPOTrainer` lets TRL do everything else and then overwrites
``advantages`` with a turngym estimator's: the rollout's episodes become a
:class:`~turngym.trainers.credit.TurnBatch` (each TRL group of ``num_generations``
completions of one prompt is one group), and each turn's advantage goes onto that turn's
model tokens. Group-level methods (``grpo``) give every turn the same value; turn-level ones
(``gigpo``, ``trloo``, ...) differ per turn. Every group must be complete in one process's
batch, which TRL's sampler guarantees on one process (checked).

Example (CPU, the tiny model; see ``benchmarks/trainer_vs_trl.py``)::

    rollout = TurngymRollout("turngym/FrozenLake-v0", max_turns=6)
    trainer = TurngymGRPOTrainer(model=model, processing_class=tokenizer, args=GRPOConfig(...),
                                 train_dataset=task_dataset(range(64)), rollout=rollout,
                                 estimator="gigpo")
    trainer.train()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from trl import GRPOTrainer

from turngym._rollout_common import public_info
from turngym.core import ACTION_VALID, INSTRUCTIONS, SCORE, STATE_KEY, SUCCESS, TASK_ID
from turngym.registry import make
from turngym.trainers.credit import CreditContext, TurnBatch, resolve_estimator
from turngym.types import Episode, Group, Turn

__all__ = ["TASK_PREFIX", "task_dataset", "episode_return", "TurngymRollout", "TurngymGRPOTrainer"]

TASK_PREFIX = "turngym task "
"""Prompts of a :func:`task_dataset` are ``"turngym task <seed>"``."""


def task_dataset(seeds: Iterable[int]) -> Any:
    """A ``datasets.Dataset`` with one ``prompt`` per task seed, for :class:`TurngymRollout`.

    Example:
        >>> list(task_dataset([4, 7])["prompt"])
        ['turngym task 4', 'turngym task 7']
    """
    from datasets import Dataset  # type: ignore[import-untyped]

    return Dataset.from_dict({"prompt": [f"{TASK_PREFIX}{int(s)}" for s in seeds]})


def episode_return(prompts: Any, completions: Any, turngym_return: Sequence[float],
                   **_: Any) -> list[float]:  # fmt: skip
    """TRL reward function: the episode's total env reward (from the rollout's extra field)."""
    return [float(r) for r in turngym_return]


def _seed(prompt: Any) -> int:
    text = prompt if isinstance(prompt, str) else None
    if text is None or not text.startswith(TASK_PREFIX) or not text[len(TASK_PREFIX) :].isdigit():
        raise ValueError(
            f"a turngym rollout prompt is '{TASK_PREFIX}<seed>', got {prompt!r}; build the "
            "dataset with turngym.adapters.trl.task_dataset"
        )
    return int(text[len(TASK_PREFIX) :])


@dataclass
class _Play:
    """One episode being played: its env, messages and token streams."""

    env: Any
    seed: int
    messages: list[dict[str, str]]
    prompt_ids: list[int]
    completion: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # model tokens of each turn
    turns: list[Turn] = field(default_factory=list)
    observation: str = ""
    state_key: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    task_id: str = ""
    done: bool = False
    error: str | None = None


class TurngymRollout:
    """A ``rollout_func`` for TRL's ``GRPOTrainer`` that plays turngym episodes.

    Args:
        env_id: A registered single-agent env id.
        split: Split the seeds select tasks from.
        options: Extra reset options (``difficulty``, ``level``).
        env_kwargs: Keyword arguments for ``turngym.make``.
        max_turns: Turn cap (default: the spec's ``max_episode_steps``, else 100).
        max_new_tokens: Most tokens generated per turn.
        max_completion_tokens: Most tokens of a whole completion (model and env tokens); an
            episode that would exceed it is cut (truncated) before the env's next reply.
        temperature: Sampling temperature (0: greedy).
        response_prefix: Text put after the prompt of every turn, which the model continues
            (env tokens, part of the action), e.g. ``"<action>"``.
        response_suffix: Text put after every generated action (env tokens), e.g.
            ``"</action>"``.
        allowed_actions: Restricted decoding (as ``HFAgent(allowed_actions=...)``): each turn
            generates exactly one token, drawn from the tokens of these action texts (each
            must be one token); logprobs are those of the restricted distribution. TRL scores
            the tokens under the whole vocabulary, so its ratio is against that policy.
        include_instructions: Put the env's instructions in as the system message.
        seed: Seeds the sampling generator (no global RNG is touched).
    """

    def __init__(self, env_id: str, *, split: str = "train",
                 options: Mapping[str, Any] | None = None,
                 env_kwargs: Mapping[str, Any] | None = None, max_turns: int | None = None,
                 max_new_tokens: int = 16, max_completion_tokens: int = 1024,
                 temperature: float = 1.0, response_prefix: str = "",
                 response_suffix: str = "", allowed_actions: Sequence[str] | None = None,
                 include_instructions: bool = True, seed: int = 0) -> None:  # fmt: skip
        self.env_id = env_id
        self.split = split
        self.reset_options = {"split": split, **dict(options or {})}
        self.env_kwargs = {"disable_env_checker": True, **dict(env_kwargs or {})}
        probe = make(env_id, **self.env_kwargs)  # unknown ids and bad kwargs fail here
        limit = probe.spec.max_episode_steps if probe.spec is not None else None
        probe.close()
        self.max_turns = int(max_turns or limit or 100)
        self.max_new_tokens = int(max_new_tokens)
        self.max_completion_tokens = int(max_completion_tokens)
        self.temperature = float(temperature)
        self.response_prefix, self.response_suffix = response_prefix, response_suffix
        self.allowed_actions = tuple(allowed_actions) if allowed_actions else None
        self.include_instructions = include_instructions
        self.generator = torch.Generator().manual_seed(int(seed))
        self.rounds = 0
        self.env_steps = 0
        self.last: list[_Play] = []

    # --- TRL's hook --------------------------------------------------------------------------
    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, Any]:
        """Play one episode per prompt with ``trainer``'s model; TRL's rollout output."""
        seeds = [_seed(p) for p in prompts]  # a foreign dataset fails here, before any work
        model = trainer.accelerator.unwrap_model(trainer.model)
        plays = self.play(seeds, model, trainer.processing_class)
        self.last = plays
        self.rounds += 1
        returns = [float(sum(t.reward for t in p.turns)) for p in plays]
        return {
            "prompt_ids": [p.prompt_ids for p in plays],
            "completion_ids": [p.completion for p in plays],
            "logprobs": [p.logprobs for p in plays],
            "env_mask": [p.env_mask for p in plays],
            "turngym_return": returns,
            "turngym_outcome": [self._outcome(p) for p in plays],
            "turngym_success": [self._success(p) for p in plays],
        }

    # --- Playing -----------------------------------------------------------------------------
    @torch.no_grad()
    def play(self, seeds: Sequence[int], model: Any, tokenizer: Any) -> list[_Play]:
        """Play one episode per seed, every live episode in one batch per turn."""
        plays = [self._start(seed, tokenizer) for seed in seeds]
        was_training = model.training
        model.eval()
        try:
            for turn in range(self.max_turns):
                live = [p for p in plays if not p.done]
                if not live:
                    break
                rows = [p.prompt_ids + p.completion for p in live]
                sampled = self._sample(rows, model, tokenizer)
                for p, (tokens, logprobs) in zip(live, sampled, strict=True):
                    self._step(p, tokens, logprobs, tokenizer, last=turn == self.max_turns - 1)
        finally:
            model.train(was_training)
            for p in plays:
                p.env.close()
        return plays

    def _start(self, seed: int, tokenizer: Any) -> _Play:
        env = make(self.env_id, **self.env_kwargs)
        obs, info = env.reset(seed=seed, options=dict(self.reset_options))
        messages = []
        if self.include_instructions and info.get(INSTRUCTIONS):
            messages.append({"role": "system", "content": str(info[INSTRUCTIONS])})
        messages.append({"role": "user", "content": obs})
        text = _render(tokenizer, messages) + self.response_prefix
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return _Play(env, seed, messages, list(ids), observation=obs,
                     state_key=info.get(STATE_KEY), info=info,
                     task_id=str(info.get(TASK_ID, f"{self.split}/{seed}")))  # fmt: skip

    def _step(self, p: _Play, tokens: list[int], logprobs: list[float], tokenizer: Any,
              last: bool) -> None:  # fmt: skip
        start = len(p.completion)
        p.completion += tokens
        p.env_mask += [1] * len(tokens)
        p.logprobs += logprobs
        p.spans.append((start, len(p.completion)))
        generated = tokenizer.decode(tokens, skip_special_tokens=True)
        action = self.response_prefix + generated + self.response_suffix
        try:
            obs, reward, terminated, truncated, info = p.env.step(action)
        except Exception as err:  # an env bug ends this episode only, recorded on it
            p.error, p.done = f"{type(err).__name__}: {err}", True
            obs, reward, terminated, truncated, info = p.observation, 0.0, False, True, {}
        self.env_steps += 1
        truncated = bool(truncated) or (last and not terminated)
        p.turns.append(Turn(len(p.turns), "agent", p.observation, action, float(reward),
                            bool(terminated), truncated, p.state_key,
                            bool(info.get(ACTION_VALID, True)), public_info(info)))  # fmt: skip
        p.observation, p.state_key, p.info = obs, info.get(STATE_KEY), info or p.info
        if terminated or truncated or p.done:
            p.done = True
            return
        reply = self._reply_tokens(p, action, obs, tokenizer)
        if self.response_suffix:  # the suffix comes before the template's text, as env tokens
            suffix = tokenizer(self.response_suffix, add_special_tokens=False)["input_ids"]
            reply = list(suffix) + reply
        if len(p.completion) + len(reply) + 1 > self.max_completion_tokens:
            p.turns[-1] = _truncated(p.turns[-1])  # no room for the reply and another turn
            p.done = True
            return
        p.completion += reply
        p.env_mask += [0] * len(reply)
        p.logprobs += [0.0] * len(reply)

    def _reply_tokens(self, p: _Play, action: str, obs: str, tokenizer: Any) -> list[int]:
        """Tokens the chat template puts between this turn's action and the next generation.

        The sampled tokens stay as they are (re-tokenizing the decoded action need not give
        them back); only the template's text after the action is tokenized.
        """
        before = _render(tokenizer, p.messages)
        p.messages += [{"role": "assistant", "content": action}, {"role": "user", "content": obs}]
        after = _render(tokenizer, p.messages)
        if not after.startswith(before) or not after[len(before) :].startswith(action):
            raise ValueError(
                "the tokenizer's chat template does not extend a conversation by appending "
                "(rendering it again changed earlier text); TurngymRollout needs one that does"
            )
        tail = after[len(before) + len(action) :] + self.response_prefix
        return list(tokenizer(tail, add_special_tokens=False)["input_ids"])

    def _sample(self, rows: list[list[int]], model: Any, tokenizer: Any
                ) -> list[tuple[list[int], list[float]]]:  # fmt: skip
        """Sample up to ``max_new_tokens`` per row (left-padded batch, own generator)."""
        device = next(model.parameters()).device
        width = max(len(r) for r in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        eos = tokenizer.eos_token_id
        allowed = self._allowed_ids(tokenizer, device)
        out: list[tuple[list[int], list[float]]] = [([], []) for _ in rows]
        finished = [False] * len(rows)
        for _ in range(1 if allowed is not None else self.max_new_tokens):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                           use_cache=False).logits[:, -1].float()  # fmt: skip
            if allowed is not None:
                logits = torch.full_like(logits, float("-inf")).index_copy(
                    1, allowed, logits.index_select(1, allowed)
                )
            logp = torch.log_softmax(logits, -1)
            if self.temperature <= 0:
                chosen = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / self.temperature, -1).cpu()
                chosen = torch.multinomial(probs, 1, generator=self.generator)[:, 0].to(device)
            for i, token in enumerate(chosen.tolist()):
                if not finished[i]:
                    out[i][0].append(token)
                    out[i][1].append(float(logp[i, token]))
                    finished[i] = token == eos
            if all(finished):
                break
            ids = torch.cat([ids, chosen[:, None]], -1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], -1)
        return out

    def _allowed_ids(self, tokenizer: Any, device: Any) -> torch.Tensor | None:
        if self.allowed_actions is None:
            return None
        ids = []
        for action in self.allowed_actions:
            tokens = tokenizer(action, add_special_tokens=False)["input_ids"]
            if len(tokens) != 1:
                raise ValueError(f"allowed action {action!r} is {len(tokens)} tokens for this "
                                 "tokenizer; restricted decoding needs one token each")  # fmt: skip
            ids.append(tokens[0])
        return torch.tensor(ids, device=device)

    # --- Episodes and advantages ---------------------------------------------------------------
    def _outcome(self, p: _Play) -> float:
        if p.error is not None:
            return 0.0
        return float(p.info.get(SCORE, float(self._success(p))))

    def _success(self, p: _Play) -> bool:
        return p.error is None and bool(p.info.get(SUCCESS, False))

    def episodes(self, group_size: int) -> list[Group]:
        """The last rollout's episodes as groups of ``group_size`` consecutive completions."""
        if len(self.last) % group_size:
            raise ValueError(
                f"{len(self.last)} completions do not split into groups of {group_size}: a "
                "group was split across processes (run the turngym estimators on one process)"
            )
        groups = []
        for g in range(len(self.last) // group_size):
            block = self.last[g * group_size : (g + 1) * group_size]
            if len({p.seed for p in block}) != 1:
                raise ValueError("a group of completions mixes tasks; TRL's sampler repeats each "
                                 "prompt num_generations times in a row")  # fmt: skip
            group_id = f"{self.split}/{block[0].seed}@{self.rounds}/{g}"
            episodes = tuple(
                Episode(f"{group_id}/{m}", self.env_id, p.task_id, p.seed, self.split,
                        tuple(p.turns), self._outcome(p), self._success(p), error=p.error)
                for m, p in enumerate(block)
            )  # fmt: skip
            groups.append(Group(group_id, block[0].task_id, episodes))
        return groups

    def token_advantages(self, advantages: np.ndarray, width: int) -> torch.Tensor:
        """Each turn's advantage on its model tokens, ``(completions, width)``; 0 elsewhere.

        ``advantages`` has one value per turn row of the TurnBatch of :meth:`episodes` (rows
        group-major, which is completion order here).
        """
        out = torch.zeros(len(self.last), width)
        values = iter(np.asarray(advantages, dtype=np.float64).tolist())
        for row, p in enumerate(self.last):
            for start, end in p.spans:
                out[row, start : min(end, width)] = next(values)
        return out


def _truncated(turn: Turn) -> Turn:
    return Turn(turn.index, turn.agent_id, turn.observation, turn.action, turn.reward,
                turn.terminated, True, turn.state_key, turn.action_valid, turn.info,
                turn.trace)  # fmt: skip


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


class TurngymGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with a turngym env rollout and a turngym estimator's advantages.

    Args:
        *args: As ``GRPOTrainer``.
        rollout: The :class:`TurngymRollout` (passed to TRL as ``rollout_func``).
        estimator: A registered turngym estimator that needs only the batch (``grpo``,
            ``gigpo``, ``trloo``, ...).
        estimator_params: Its parameters (checked before training starts).
        **kwargs: As ``GRPOTrainer``; ``reward_funcs`` defaults to :func:`episode_return`
            (TRL logs it; the turngym estimator reads the episodes' own rewards).
    """

    def __init__(self, *args: Any, rollout: TurngymRollout, estimator: str = "grpo",
                 estimator_params: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        self.turngym_estimate = resolve_estimator(estimator, dict(estimator_params or {}))
        if getattr(self.turngym_estimate, "requires", frozenset()):
            raise ValueError(f"estimator {estimator!r} needs more than the batch (probes, a "
                             "critic or a judge); use one that reads only episodes")  # fmt: skip
        self.turngym_rollout = rollout
        self.turngym_context = CreditContext()
        kwargs.setdefault("reward_funcs", episode_return)
        kwargs["rollout_func"] = rollout
        super().__init__(*args, **kwargs)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        size = self.num_generations if mode == "train" else self.num_generations_eval
        groups = self.turngym_rollout.episodes(int(size or self.num_generations or 1))
        batch = TurnBatch.from_groups(groups)
        credit = self.turngym_estimate(batch, self.turngym_context)
        self.turngym_context.step += 1
        width = out["completion_ids"].shape[1]
        advantages = self.turngym_rollout.token_advantages(credit.advantages, width)
        out["advantages"] = advantages.to(out["completion_ids"].device)
        return out
