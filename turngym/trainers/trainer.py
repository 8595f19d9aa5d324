"""A compact PPO-style trainer for multi-turn text agents on Hugging Face causal LMs.

One iteration (docs/design.md#data-flow): sample train-split tasks → :func:`turngym.rollout.collect`
(G episodes per task, lockstep batched generation) → the configured credit estimator →
training sequences (:mod:`turngym.trainers.tokens`) → minibatch updates with the clipped
surrogate (:mod:`turngym.trainers.losses`) → metrics → periodic eval on the test split →
checkpoint. The loop never branches on the estimator's name.

Determinism: task seeds, generation and minibatch order derive from ``(config.seed,
iteration)``, so a run resumed from a checkpoint continues with exactly the metrics an
uninterrupted run would have written (no lost or repeated iterations).

Runs on CPU with ``model="tiny"`` and on a GPU unchanged with ``model=<local HF path>,
device="cuda"``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.hf import HFAgent
from turngym.core import InvalidActionPenalty, TextEnv
from turngym.envs.multiagent.registry import is_multiagent
from turngym.registry import env_registry, make
from turngym.rollout import collect, summarize
from turngym.trainers.config import TrainConfig
from turngym.trainers.credit import resolve_estimator
from turngym.trainers.credit.probe_values import ProbeOptions
from turngym.trainers.credit.types import CreditContext, TurnBatch
from turngym.trainers.hooks import env_judge, hooks_for, rollout_agent
from turngym.trainers.plugs import build_parts, check_method, format_env, tiny_source
from turngym.trainers.probes import Prober, check_gold_answers, probe_needs
from turngym.trainers.progress import ProgressEvent, make_reporter
from turngym.trainers.regularisers import EPOSmoothing, check_epo_options
from turngym.trainers.run_dir import append_metrics, load_state, save_checkpoint, truncate_metrics
from turngym.trainers.seats import SeatPlan
from turngym.trainers.tokens import TrainingSequence, build_sequences
from turngym.trainers.update import PolicyUpdate
from turngym.types import Group

__all__ = ["Trainer", "train"]

# What this trainer can hand to estimators (it builds the critic a method declares).
_CAPABILITIES = frozenset({"probe", "state", "critic"})


class Trainer:
    """Owns the model, optimiser, agent and run directory of one training run."""

    def __init__(
        self, config: TrainConfig, *, on_progress: Callable[[ProgressEvent], None] | None = None
    ) -> None:
        """Validate everything that can be validated, then build the model and agent.

        Args:
            config: The run's configuration.
            on_progress: Called with a :class:`~turngym.trainers.progress.ProgressEvent` after
                every iteration; default: shown as ``config.progress`` says.

        Raises:
            turngym.registry.UnknownNameError: Unknown env id or estimator (did-you-mean).
            ValueError / TypeError: Bad reset options or estimator parameters.
        """
        self.config = config
        # Multi-agent games: who plays which seat, checked before anything is built.
        self.seats = SeatPlan.from_config(config)
        if self.seats is not None:
            probe_env = self.seats.env
        else:
            env_registry.get(config.env)  # fail on a typo before building anything
            probe_env = make(config.env).unwrapped
        if isinstance(probe_env, TextEnv):  # bad reset options fail before the model is built
            probe_env.validate_options({"split": "train", **config.env_options})
        self.allowed_actions = _allowed_actions(config, probe_env)
        self._reporter = on_progress
        judge = env_judge(probe_env)  # the env's own per-turn judge score, if it has one
        available = _CAPABILITIES | ({"judge"} if judge is not None else set())
        self.estimator = resolve_estimator(config.estimator, config.estimator_params, available)
        needs = probe_needs(self.estimator)  # probe options and gold answers: checked now
        check_gold_answers(needs, probe_env, config.env, config.estimator)
        self.hooks = hooks_for(self.estimator)  # prompt / group hooks the method brings
        check_method(config)  # the method's critic, strategy and schedule options, before the model
        self.out = Path(config.out_dir)
        self.device = torch.device(config.device)
        self.model, self.tokenizer = self._load_model()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.reference = None
        if config.kl_coef > 0:  # a frozen copy of the initial policy
            self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.agent = self._agent(config.temperature, config.top_p)
        self.eval_agent = self._agent(
            config.eval_temperature or 1.0, 1.0, greedy=config.eval_temperature == 0
        )
        self.ctx = CreditContext(judge=judge, tokenizer=self.tokenizer, state={}, step=0)
        self.prober = None if needs is None else Prober(
            self.model, self.tokenizer, needs=needs,
            options=ProbeOptions.from_dict(config.probe_options),
            answer_template=getattr(probe_env, "answer_template", ""),
            response_prefix=config.response_prefix, response_suffix=config.response_suffix,
        )  # fmt: skip
        self.epo = None if config.epo is None else EPOSmoothing(
            check_epo_options(config.epo), self.ctx.state)  # fmt: skip
        self.parts = build_parts(config, self.model, self.tokenizer, self.device)
        self.ctx.critic = self.parts.critic
        self.update = PolicyUpdate(config, self.model, self.optimizer,
                                   pad_token_id=self.tokenizer.pad_token_id, device=self.device,
                                   allowed_ids=self.agent.allowed_ids, reference=self.reference,
                                   epo=self.epo)  # fmt: skip
        self.iteration = 0
        self.env_steps = 0
        self.elapsed_s = 0.0  # wall-clock seconds of earlier (resumed-from) train() calls
        if config.resume and (self.out / "checkpoint").exists():
            self._load_checkpoint()

    # --- Set-up -------------------------------------------------------------------------------
    def _load_model(self) -> tuple[Any, Any]:
        cfg = self.config
        if cfg.model == "tiny":
            from turngym.agents.tiny import build_tiny

            model, tokenizer = build_tiny(tiny_source(cfg), seed=cfg.seed,
                                          d_model=cfg.tiny_d_model,
                                          n_layers=cfg.tiny_layers)  # fmt: skip
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            model = AutoModelForCausalLM.from_pretrained(cfg.model)
            tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        return model.to(self.device), tokenizer

    def _agent(self, temperature: float, top_p: float, greedy: bool = False) -> HFAgent:
        cfg = self.config
        return HFAgent(
            self.model, self.tokenizer, temperature=0.0 if greedy else temperature, top_p=top_p,
            max_new_tokens=cfg.max_new_tokens, stop=cfg.stop, response_prefix=cfg.response_prefix,
            response_suffix=cfg.response_suffix, history=cfg.history,
            include_instructions=cfg.include_instructions, seed=cfg.seed, device=self.device,
            allowed_actions=self.allowed_actions,
        )  # fmt: skip

    def _env(self) -> Any:
        if self.config.invalid_action_penalty:
            penalty = self.config.invalid_action_penalty
            return format_env(lambda: InvalidActionPenalty(make(self.config.env), penalty),
                              self.config)  # fmt: skip
        return format_env(self.config.env, self.config)

    # --- Progress -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _progress(self) -> Iterator[Callable[[ProgressEvent], None]]:
        reporter = self._reporter or make_reporter(self.config.progress)
        try:
            yield reporter
        finally:
            close = getattr(reporter, "close", None)  # a plain callable has nothing to close
            if close is not None:
                close()

    def _event(self, row: dict[str, Any], last: bool, rows: list[dict[str, Any]]) -> ProgressEvent:
        cfg = self.config
        success = next((r["eval_success"] for r in reversed(rows) if "eval_success" in r), None)
        if cfg.max_env_steps is not None:
            total, done, unit = float(cfg.max_env_steps), float(self.env_steps), "env steps"
        else:
            total, done, unit = float(cfg.iterations), float(self.iteration), "iterations"
        return ProgressEvent(self.out.name, self.iteration, self.env_steps, total, min(done, total),
                             unit, float(row["elapsed_s"]), success, "eval_success" in row,
                             last)  # fmt: skip

    # --- The loop -----------------------------------------------------------------------------
    def train(self) -> list[dict[str, Any]]:
        """Run the remaining iterations; return the metrics rows written by this call."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        truncate_metrics(self.out, self.iteration)
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        with self._progress() as report:
            while self.iteration < cfg.iterations and not self._steps_spent():
                row = self.step()
                last = (
                    self.iteration == cfg.iterations
                    or self._steps_spent()
                    or (cfg.time_budget_s is not None
                        and time.monotonic() - started > cfg.time_budget_s)
                )  # fmt: skip
                if last or (cfg.eval_every and self.iteration % cfg.eval_every == 0):
                    row.update(self.evaluate())
                row["elapsed_s"] = self.elapsed_s + time.monotonic() - started
                append_metrics(self.out, row)
                rows.append(row)
                if last or (cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0):
                    self.save_checkpoint(elapsed_s=row["elapsed_s"])
                report(self._event(row, last, rows))
                if last:
                    break
        return rows

    def _steps_spent(self) -> bool:
        budget = self.config.max_env_steps
        return budget is not None and self.env_steps >= budget

    def step(self) -> dict[str, Any]:
        """One iteration: collect, assign credit, update. Returns its metrics row."""
        cfg, it = self.config, self.iteration
        t0 = time.monotonic()
        self.agent.reseed(_mix(cfg.seed, it, 0))
        self.ctx.step = it
        players = rollout_agent(self.agent, self.hooks, self.ctx)
        if self.seats is not None:  # a multi-agent game: the opponent takes the other seats
            players = self.seats.players(players, it)
        collected = self.parts.strategy.collect(
            self._env(), players, self._task_seeds(it), cfg.group_size, split="train",
            options=cfg.env_options, max_turns=cfg.max_turns, round_index=it,
        )  # fmt: skip
        if self.seats is not None:  # ... and only the policy's seat is trained
            collected = self.seats.trained(collected)
        groups = self.hooks.after_collect(collected, self.ctx)  # may replay or re-add groups
        t1 = time.monotonic()
        batch = TurnBatch.from_groups(groups)
        if self.prober is not None:  # the rollout policy, before this iteration's update
            self.ctx.probe = self.prober(batch)
        critic = self.parts.critic
        critic_metrics = critic.before_credit(batch, it) if critic is not None else {}
        credit = self.estimator(batch, self.ctx)
        if critic is not None:
            critic_metrics.update(critic.after_credit(batch, credit, it))
        episodes = [ep for g in groups for ep in g.episodes]
        sequences, seq_stats = build_sequences(
            episodes, credit.per_episode(batch), mode=cfg.sequence_mode,
            token_advantages=_per_episode_tokens(credit.token_advantages, batch),
            clip_ranges=_per_episode_or_none(credit.clip_ranges, batch),
            weights=_per_episode_or_none(credit.weights, batch),
        )  # fmt: skip
        update = self._schedule_update(sequences, it) if sequences else {}
        self.iteration += 1
        self.env_steps += sum(ep.num_turns for g in collected for ep in g.episodes)
        row = {"iteration": self.iteration, "env_steps": self.env_steps,
               **_rollout_metrics(collected)}  # fmt: skip
        row.update({f"adv_{k}": v for k, v in _stats(credit.advantages).items()})
        row.update({f"credit_{k}": float(v) for k, v in credit.metrics.items()})
        row.update({f"seq_{k}": v for k, v in seq_stats.items()})
        row.update(update)
        row.update(critic_metrics)
        row.update({"rollout_s": t1 - t0, "update_s": time.monotonic() - t1})
        if self.prober is not None:  # probe cost (inside update_s)
            row.update(self.ctx.probe.cost)
        return row

    def _schedule_update(self, sequences: Sequence[TrainingSequence], it: int) -> dict[str, float]:
        """The method's update schedule over this iteration's sequences."""
        return self.parts.schedule.update(
            sequences, it, optimize=self.update,
            logprobs=lambda seqs: self.update.logprobs(self.model, seqs),
        )  # fmt: skip

    def _task_seeds(self, iteration: int) -> list[int]:
        rng = np.random.default_rng([self.config.seed, iteration, 1])
        high = self.config.task_pool or 2**31 - 1
        return [int(s) for s in rng.integers(0, high, self.config.tasks_per_iteration)]

    def evaluate(self, temperature: float | None = None) -> dict[str, float]:
        """Success and return on the eval split.

        Args:
            temperature: Sampling temperature; default ``config.eval_temperature`` (0: greedy).
        """
        cfg = self.config
        agent = self.eval_agent
        if temperature is not None:
            agent = self._agent(temperature or 1.0, 1.0, greedy=temperature == 0)
        agent.reseed(_mix(cfg.seed, self.iteration, 2))
        players: Any = rollout_agent(agent, self.hooks, self.ctx)
        seat = None
        if self.seats is not None:  # a multi-agent game: the policy's seat vs eval_opponent
            players, seat = self.seats.evaluation(players)
        groups = collect(format_env(cfg.env, cfg), players, cfg.eval_tasks, 1,
                         split=cfg.eval_split, options=cfg.env_options,
                         max_turns=cfg.max_turns, train_seat=seat)  # fmt: skip
        return {f"eval_{k}": v for k, v in _rollout_metrics(groups).items()}

    # --- Checkpoints and metrics --------------------------------------------------------------
    def save_checkpoint(self, elapsed_s: float = 0.0) -> None:
        """Write model, tokenizer and trainer state to ``out_dir/checkpoint`` atomically."""
        state = {"iteration": self.iteration, "env_steps": self.env_steps, "elapsed_s": elapsed_s,
                 "optimizer": self.optimizer.state_dict(), "credit_state": self.ctx.state,
                 "config": self.config.to_dict()}  # fmt: skip
        if self.parts.critic is not None:
            state["critic"] = self.parts.critic.state_dict()
        save_checkpoint(self.out, self.model, self.tokenizer, self.eval_agent, state)

    def _load_checkpoint(self) -> None:
        state = load_state(self.out, self.config.to_dict(), self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        # In place: the EPO history (and anything else) holds this very dict.
        self.ctx.state.clear()
        self.ctx.state.update(state["credit_state"])
        if self.parts.critic is not None:
            self.parts.critic.load_state_dict(state["critic"])
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.elapsed_s = float(state.get("elapsed_s", 0.0))


def train(config: TrainConfig) -> list[dict[str, Any]]:
    """Build a :class:`Trainer` for ``config`` and run it; return the metrics rows."""
    return Trainer(config).train()


# --- Helpers ----------------------------------------------------------------------------------
def _mix(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0])


def _rollout_metrics(groups: Sequence[Group]) -> dict[str, float]:
    s = summarize(groups)
    return {
        "success": s["success_rate"],
        "outcome": s["mean_outcome"],
        "return": s["mean_return"],
        "turns": s["mean_turns"],
        "invalid_rate": s["invalid_action_rate"],
        "errors": float(s["errors"]),
    }


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"mean": 0.0, "std": 0.0, "abs_mean": 0.0}
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "abs_mean": float(np.abs(values).mean()),
    }


def _per_episode_or_none(values: np.ndarray | None, batch: TurnBatch) -> list[np.ndarray] | None:
    return None if values is None else batch.split_by_episode(values)


def _per_episode_tokens(tokens: Sequence[np.ndarray | None] | None,
                        batch: TurnBatch) -> list[Sequence[np.ndarray | None]] | None:  # fmt: skip
    """Per-turn token advantages regrouped per episode (``None`` when the estimator has none)."""
    if tokens is None:
        return None
    bounds = np.append(batch.episode_start, batch.n_turns)
    return [tokens[bounds[e] : bounds[e + 1]] for e in range(batch.n_episodes)]


def _allowed_actions(config: TrainConfig, env: Any) -> tuple[str, ...] | None:
    """The action vocabulary for ``decoding="actions"`` (``None``: free decoding)."""
    if config.decoding == "free":
        return None
    # A multi-agent game (a TextAECEnv) declares its vocabulary as a TextEnv does.
    if not isinstance(env, TextEnv) and not is_multiagent(config.env) or \
            not env.action_vocabulary():  # fmt: skip
        raise ValueError(
            f"decoding='actions' needs an env with an action vocabulary (TextEnv.action_words "
            f"or example_actions); {config.env} has none. Use decoding='free'."
        )
    return env.action_vocabulary()
