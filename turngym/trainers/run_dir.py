"""A training run's directory: the checkpoint and the metrics log.

``out_dir/checkpoint`` holds the model and tokenizer (``save_pretrained``), the eval agent's
recipe (so ``hf:<checkpoint>`` evaluates the policy exactly as the run did) and
``trainer_state.pt`` (iteration, env steps, optimiser, the estimators' state, the critic, the
config). It is replaced atomically: written to ``checkpoint.tmp`` and renamed, so an interrupted
save leaves the previous checkpoint intact. ``metrics.jsonl`` has one row per iteration;
resuming truncates it to the checkpoint's iteration, so a resumed run neither loses nor repeats
rows.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["append_metrics", "load_state", "save_checkpoint", "truncate_metrics"]

CHECKPOINT = "checkpoint"
STATE_FILE = "trainer_state.pt"

# Config keys that may change between a run and its resumption (budgets, output, device).
RESUME_IGNORED = frozenset({"iterations", "time_budget_s", "max_env_steps", "progress", "resume",
                            "eval_every", "checkpoint_every", "device"})  # fmt: skip


def save_checkpoint(out: Path, model: Any, tokenizer: Any, eval_agent: Any,
                    state: Mapping[str, Any]) -> None:  # fmt: skip
    """Write model, tokenizer, the eval agent's recipe and ``state`` to ``out/checkpoint``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its per-shard bar would interleave with our logs
    tmp = out / f"{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    eval_agent.save_recipe(tmp)
    torch.save(dict(state), tmp / STATE_FILE)
    final = out / CHECKPOINT
    old = out / f"{CHECKPOINT}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_state(out: Path, config: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """Load the checkpoint's weights into ``model`` and return its trainer state.

    Raises:
        ValueError: The checkpoint was written under a different config (other than the keys
            in :data:`RESUME_IGNORED`); the message names the keys.
    """
    path = out / CHECKPOINT
    state: dict[str, Any] = torch.load(path / STATE_FILE, weights_only=False)
    saved = state["config"]
    changed = sorted(k for k in config if k not in RESUME_IGNORED and saved.get(k) != config[k])
    if changed:
        raise ValueError(
            f"Cannot resume from {path}: the config differs in {changed}. Use another "
            "out_dir, or --no-resume to start over."
        )
    from transformers import AutoModelForCausalLM

    model.load_state_dict(AutoModelForCausalLM.from_pretrained(path).state_dict())
    return state


def truncate_metrics(out: Path, iteration: int) -> None:
    """Drop rows past ``iteration``, so a resumed run neither loses nor repeats steps."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["iteration"] <= iteration]
    path.write_text("".join(line + "\n" for line in kept))


def append_metrics(out: Path, row: Mapping[str, Any]) -> None:
    """Append one row to ``metrics.jsonl`` (and TensorBoard, when installed)."""
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    _tensorboard(out, row)


def _tensorboard(out: Path, row: Mapping[str, Any]) -> None:
    """Mirror a metrics row to TensorBoard when it is installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with contextlib.closing(SummaryWriter(str(out / "tensorboard"))) as writer:
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "iteration":
                writer.add_scalar(key, value, row["iteration"])
