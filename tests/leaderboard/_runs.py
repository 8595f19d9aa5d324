"""Build run directories (results.json + episodes.jsonl) the way `turngym eval` writes them."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.evals.results import (
    EntryResult,
    RunResults,
    kwargs_hash,
    provenance,
    summarize_episodes,
)

ENV = "turngym/Toy-v0"


@dataclass
class Spec:
    """One (env entry, agent) of a synthetic run.

    successes: 0/1 per episode. Episode i plays task ``task-{i + task_offset}`` with reset seed
    ``i + task_offset``: two runs with the same offset played the same tasks (paired).
    """

    successes: Sequence[int]
    env_id: str = ENV
    agent: str = "random"
    options: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = "fp-toy"
    turns: Sequence[int] | None = None
    task_offset: int = 0
    curve: list[dict[str, float]] | None = None

    @property
    def key(self) -> str:
        return f"{self.env_id}#{kwargs_hash({}, self.options)}"


@functools.cache
def _base_provenance() -> dict[str, Any]:
    return provenance(["turngym", "eval"])  # git calls once per session, not per run


def episode_records(spec: Spec, run_seed: int = 0) -> list[dict[str, Any]]:
    records = []
    for i, success in enumerate(spec.successes):
        seed = i + spec.task_offset
        n_turns = spec.turns[i] if spec.turns is not None else 3
        turns = [{"index": t, "reward": float(success and t == n_turns - 1),
                  "action_valid": t != 0 or i % 7 != 0} for t in range(n_turns)]
        records.append({
            "key": f"{spec.key}|{spec.agent}|{run_seed}|{seed}", "entry": spec.key,
            "agent": spec.agent, "run_seed": run_seed, "episode_id": f"test/{seed}@0/0",
            "env_id": spec.env_id, "task_id": f"task-{seed}", "seed": seed, "split": "test",
            "outcome": float(success), "success": bool(success), "error": None,
            "metrics": {}, "privileged": {}, "turns": turns,
        })
    return records


def write_run(
    run_dir: Path,
    specs: Sequence[Spec],
    *,
    kind: str = "eval",
    episodes: bool = True,
    drop_provenance: Sequence[str] = (),
) -> Path:
    """Write a run directory; its command names the directory, so each run is distinct."""
    run_dir.mkdir(parents=True, exist_ok=True)
    prov = {**_base_provenance(), "command": ["turngym", "eval", "--out", str(run_dir)]}
    for key in drop_provenance:
        prov.pop(key)
    entries, lines = [], []
    for spec in specs:
        records = episode_records(spec)
        lines += records
        match = re.search(r"-v(\d+)$", spec.env_id)
        entries.append(EntryResult(
            env_id=spec.env_id, env_version=int(match.group(1)) if match else None,
            env_kwargs={}, options=dict(spec.options),
            env_kwargs_hash=kwargs_hash({}, spec.options), env_fingerprint=spec.fingerprint,
            split="test", agent=spec.agent, agent_config={"name": spec.agent}, seeds=[0],
            episodes_per_seed=len(records), metrics=summarize_episodes(records),
            curve=spec.curve,
        ))
    RunResults(kind=kind, provenance=prov, entries=entries).save(run_dir / "results.json")
    if episodes:
        with (run_dir / "episodes.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in lines)
    return run_dir


def rate(n: int, successes: int) -> list[int]:
    """``successes`` ones spread evenly over ``n`` episodes (deterministic)."""
    return [int((i * successes) // n != ((i + 1) * successes) // n) for i in range(n)]
