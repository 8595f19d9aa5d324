"""A compact PPO-style trainer for multi-turn text agents on Hugging Face causal LMs.

One iteration (DESIGN.md section 6): sample train-split tasks → :func:`turngym.rollout.collect`
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
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.hf import HFAgent
from turngym.core import InvalidActionPenalty, TextEnv
from turngym.registry import env_registry, make
from turngym.rollout import collect, summarize
from turngym.trainers.config import TrainConfig
from turngym.trainers.credit import resolve_estimator
from turngym.trainers.credit.probe_values import ProbeOptions
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.trainers.losses import aggregate, clipped_surrogate, kl_penalty
from turngym.trainers.policy import sequence_token_logprobs
from turngym.trainers.probes import Prober, check_gold_answers, probe_needs
from turngym.trainers.tokens import TrainingSequence, build_sequences, collate
from turngym.types import Group

__all__ = ["Trainer", "train"]

_CAPABILITIES = frozenset({"probe", "state"})  # what this trainer can hand to estimators
_RESUME_IGNORED = {"iterations", "time_budget_s", "max_env_steps", "progress", "resume",
                   "eval_every", "checkpoint_every", "device"}  # fmt: skip


class Trainer:
    """Owns the model, optimiser, agent and run directory of one training run."""

    def __init__(self, config: TrainConfig) -> None:
        """Validate everything that can be validated, then build the model and agent.

        Raises:
            turngym.registry.UnknownNameError: Unknown env id or estimator (did-you-mean).
            ValueError / TypeError: Bad reset options or estimator parameters.
        """
        self.config = config
        env_registry.get(config.env)  # fail on a typo before building anything
        probe_env = make(config.env).unwrapped
        if isinstance(probe_env, TextEnv):  # bad reset options fail before the model is built
            probe_env.validate_options({"split": "train", **config.env_options})
        self.estimator = resolve_estimator(config.estimator, config.estimator_params, _CAPABILITIES)
        needs = probe_needs(self.estimator)  # probe options and gold answers: checked now
        check_gold_answers(needs, probe_env, config.env, config.estimator)
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
        self.ctx = CreditContext(state={}, step=0)
        self.prober = None if needs is None else Prober(
            self.model, self.tokenizer, needs=needs,
            options=ProbeOptions.from_dict(config.probe_options),
            answer_template=getattr(probe_env, "answer_template", ""),
            response_prefix=config.response_prefix, response_suffix=config.response_suffix,
        )  # fmt: skip
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

            model, tokenizer = build_tiny(cfg.env, seed=cfg.seed, d_model=cfg.tiny_d_model,
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
        )  # fmt: skip

    def _env(self) -> Any:
        if self.config.invalid_action_penalty:
            penalty = self.config.invalid_action_penalty
            return lambda: InvalidActionPenalty(make(self.config.env), penalty)
        return self.config.env

    # --- The loop -----------------------------------------------------------------------------
    def train(self) -> list[dict[str, Any]]:
        """Run the remaining iterations; return the metrics rows written by this call."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self._truncate_metrics(self.iteration)
        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        with _progress(cfg.progress, cfg.iterations, self.iteration) as advance:
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
                self._append_metrics(row)
                rows.append(row)
                if last or (cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0):
                    self.save_checkpoint(elapsed_s=row["elapsed_s"])
                advance()
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
        groups = collect(
            self._env(), self.agent, self._task_seeds(it), cfg.group_size, split="train",
            options=cfg.env_options, max_turns=cfg.max_turns, round_index=it,
        )  # fmt: skip
        t1 = time.monotonic()
        batch = TurnBatch.from_groups(groups)
        self.ctx.step = it
        if self.prober is not None:  # the rollout policy, before this iteration's update
            self.ctx.probe = self.prober(batch)
        credit = self.estimator(batch, self.ctx)
        episodes = [ep for g in groups for ep in g.episodes]
        sequences, seq_stats = build_sequences(
            episodes, credit.per_episode(batch), mode=cfg.sequence_mode,
            token_advantages=_token_advantages(credit, batch),
            clip_ranges=_per_episode_or_none(credit.clip_ranges, batch),
            weights=_per_episode_or_none(credit.weights, batch),
        )  # fmt: skip
        update = self._update(sequences, it) if sequences else {}
        self.iteration += 1
        self.env_steps += batch.n_turns
        row = {"iteration": self.iteration, "env_steps": self.env_steps, **_rollout_metrics(groups)}
        row.update({f"adv_{k}": v for k, v in _stats(credit.advantages).items()})
        row.update({f"credit_{k}": float(v) for k, v in credit.metrics.items()})
        row.update({f"seq_{k}": v for k, v in seq_stats.items()})
        row.update(update)
        row.update({"rollout_s": t1 - t0, "update_s": time.monotonic() - t1})
        if self.prober is not None:  # probe cost (inside update_s)
            row.update(self.ctx.probe.cost)
        return row

    def _task_seeds(self, iteration: int) -> list[int]:
        rng = np.random.default_rng([self.config.seed, iteration, 1])
        return [int(s) for s in rng.integers(0, 2**31 - 1, self.config.tasks_per_iteration)]

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
        groups = collect(cfg.env, agent, cfg.eval_tasks, 1, split=cfg.eval_split,
                         options=cfg.env_options, max_turns=cfg.max_turns)  # fmt: skip
        return {f"eval_{k}": v for k, v in _rollout_metrics(groups).items()}

    # --- The update ---------------------------------------------------------------------------
    def _update(self, sequences: Sequence[TrainingSequence], iteration: int) -> dict[str, float]:
        cfg = self.config
        old = self._logprobs_no_grad(self.model, sequences)
        ref = (
            self._logprobs_no_grad(self.reference, sequences)
            if self.reference is not None
            else None
        )
        rng = np.random.default_rng([cfg.seed, iteration, 3])
        signal = np.array([any(a != 0 for a in s.advantages) for s in sequences])
        sums: dict[str, float] = {}
        n_steps = n_skipped = 0
        self.model.train()
        for _ in range(cfg.ppo_epochs):
            order = rng.permutation(len(sequences))
            for start in range(0, len(order), cfg.minibatch_size):
                chosen = order[start : start + cfg.minibatch_size]
                if cfg.skip_without_signal and not signal[chosen].any():
                    n_skipped += 1
                    continue
                for k, v in self._minibatch_step(sequences, chosen, old, ref).items():
                    sums[k] = sums.get(k, 0.0) + v
                n_steps += 1
        self.model.eval()
        out = {k: v / max(n_steps, 1) for k, v in sums.items()}
        out["optimizer_steps"] = float(n_steps)
        out["skipped_steps"] = float(n_skipped)
        return out

    def _minibatch_step(
        self,
        sequences: Sequence[TrainingSequence],
        chosen: np.ndarray,
        old: list[torch.Tensor],
        ref: list[torch.Tensor] | None,
    ) -> dict[str, float]:
        cfg = self.config
        micro = np.array_split(chosen, min(cfg.grad_accumulation, len(chosen)))
        totals = _normalisers([sequences[i] for i in chosen])
        metrics: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        for part in micro:
            loss, m = self._micro_loss(sequences, part, old, ref, totals)
            loss.backward()
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0.0) + v * len(part) / len(chosen)
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.max_grad_norm > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        self.optimizer.step()
        return metrics

    def _micro_loss(self, sequences: Sequence[TrainingSequence], part: np.ndarray,
                    old: list[torch.Tensor], ref: list[torch.Tensor] | None,
                    totals: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
        cfg = self.config
        seqs = [sequences[i] for i in part]
        batch = collate(seqs, self.tokenizer.pad_token_id, device=self.device)
        mask = batch["loss_mask"]
        # Sequences sharing a prompt (the G episodes' first turns) encode it once (Prefix Grouper).
        logp, entropy = sequence_token_logprobs(self.model, seqs, with_entropy=True)
        old_lp = _pad([old[i] for i in part], mask.shape[1]).to(self.device)
        weights = torch.tensor([s.weight for s in seqs], dtype=mask.dtype, device=self.device)
        mask_w = mask * weights[:, None]
        clip_low, clip_high = _clip_tensors(batch, cfg)
        surrogate, m = clipped_surrogate(
            logp, old_lp, batch["advantages"], mask_w, clip_low=clip_low, clip_high=clip_high,
            dual_clip=cfg.dual_clip, aggregation=cfg.aggregation, loss_scale=totals["max_len"],
        )  # fmt: skip
        # Rescale the micro-batch's aggregate so the accumulated gradient equals the full
        # minibatch's (token-mean weighs by valid tokens, seq-mean modes by sequences).
        share = _share(cfg.aggregation, mask, totals)
        loss = surrogate * share
        ent = aggregate(entropy, mask, cfg.aggregation, loss_scale=totals["max_len"])
        m["entropy"] = float(ent.detach())
        if cfg.entropy_coef:
            loss = loss - cfg.entropy_coef * ent * share
        if ref is not None:
            ref_lp = _pad([ref[i] for i in part], mask.shape[1]).to(self.device)
            kl = aggregate(kl_penalty(logp, ref_lp, cfg.kl_estimator), mask, cfg.aggregation,
                           loss_scale=totals["max_len"])  # fmt: skip
            loss = loss + cfg.kl_coef * kl * share
            m["kl_ref"] = float(kl.detach())
        m["loss"] = float(loss.detach() / share) if share else 0.0
        return loss, m

    @torch.no_grad()
    def _logprobs_no_grad(
        self, model: Any, sequences: Sequence[TrainingSequence]
    ) -> list[torch.Tensor]:
        """Per-sequence token log-probs under ``model`` (the rollout policy's, recomputed)."""
        out: list[torch.Tensor] = []
        model.eval()
        for start in range(0, len(sequences), self.config.minibatch_size):
            chunk = sequences[start : start + self.config.minibatch_size]
            logp, _ = sequence_token_logprobs(model, chunk)
            out.extend(logp[i, : len(s)].float().cpu() for i, s in enumerate(chunk))
        return out

    # --- Checkpoints and metrics --------------------------------------------------------------
    def save_checkpoint(self, elapsed_s: float = 0.0) -> None:
        """Write model, tokenizer and trainer state to ``out_dir/checkpoint`` atomically."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its per-shard bar would interleave with our logs
        tmp = self.out / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        state = {"iteration": self.iteration, "env_steps": self.env_steps, "elapsed_s": elapsed_s,
                 "optimizer": self.optimizer.state_dict(), "credit_state": self.ctx.state,
                 "config": self.config.to_dict()}  # fmt: skip
        torch.save(state, tmp / "trainer_state.pt")
        final = self.out / "checkpoint"
        old = self.out / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self) -> None:
        path = self.out / "checkpoint"
        state = torch.load(path / "trainer_state.pt", weights_only=False)
        saved, now = state["config"], self.config.to_dict()
        changed = sorted(k for k in now if k not in _RESUME_IGNORED and saved.get(k) != now[k])
        if changed:
            raise ValueError(
                f"Cannot resume from {path}: the config differs in {changed}. Use another "
                "out_dir, or --no-resume to start over."
            )
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(path)
        self.model.load_state_dict(loaded.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.ctx.state = state["credit_state"]
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.elapsed_s = float(state.get("elapsed_s", 0.0))

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop rows past the checkpoint, so a resumed run neither loses nor repeats steps."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in rows if json.loads(line)["iteration"] <= iteration]
        path.write_text("".join(line + "\n" for line in kept))

    def _append_metrics(self, row: dict[str, Any]) -> None:
        with (self.out / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        _tensorboard(self.out, row)


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


def _token_advantages(credit: Credit, batch: TurnBatch) -> list[Any] | None:
    """Per-token advantages (one tuple of per-turn arrays per episode), or None."""
    tokens = credit.token_advantages
    if tokens is None:
        return None
    starts = batch.episode_start.tolist()
    return [tokens[s : s + n] for s, n in zip(starts, batch.episode_length.tolist(), strict=True)]


def _normalisers(seqs: Sequence[TrainingSequence]) -> dict[str, float]:
    return {
        "tokens": float(sum(s.num_trainable for s in seqs)),
        "seqs": float(sum(s.num_trainable > 0 for s in seqs)),
        "max_len": float(max(len(s) for s in seqs)),
    }


def _share(aggregation: str, mask: torch.Tensor, totals: dict[str, float]) -> float:
    if aggregation == "token-mean":
        return float(mask.sum()) / max(totals["tokens"], 1.0)
    if aggregation == "seq-mean-token-sum-norm":
        return 1.0
    return float((mask.sum(-1) > 0).sum()) / max(totals["seqs"], 1.0)


def _clip_tensors(batch: dict[str, torch.Tensor], cfg: TrainConfig) -> tuple[Any, Any]:
    low = batch.get("clip_low")
    high = batch.get("clip_high")
    return (cfg.clip_low if low is None else low), (cfg.clip_high if high is None else high)


def _pad(rows: list[torch.Tensor], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:length]
    return out


def _tensorboard(out: Path, row: dict[str, Any]) -> None:
    """Mirror a metrics row to TensorBoard when it is installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with contextlib.closing(SummaryWriter(str(out / "tensorboard"))) as writer:
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "iteration":
                writer.add_scalar(key, value, row["iteration"])


@contextlib.contextmanager
def _progress(enabled: bool, total: int, done: int) -> Iterator[Any]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("training", total=total, completed=done)
        yield lambda: bar.advance(task)
