"""Record episodes of every env as per-step digests, to prove that speed work changes nothing.

For each env id (every registered one except KernelGen, whose sandboxed evaluation is timed
and covered by its own tests) and each seed, a driver plays one test-split episode through the
public API (``turngym.make`` with its wrappers; ``make_multiagent`` for PettingZoo games) and
records, per step, everything an episode can expose: the observation, reward, flags and the
whole info dict *including* ``privileged`` and ``metrics``, plus the oracle's suggestion for
the current state. Three drivers: ``random`` (a seeded mix of example, admissible and
env-specific legal actions, plus malformed ones), ``oracle`` (always the oracle's action) and
``mixed`` (oracle or random, half and half). On top, :func:`turngym.rollout.collect` episodes of
the built-in random and oracle agents are recorded as ``Episode.to_dict()`` minus wall time.

Each recorded value is turned into canonical JSON with type tags (a tuple and a list, or an
int and a float, differ), hashed, and only the first 16 hex digits are kept: the golden file
stays small, and a mismatch still names the env, driver, seed and step.

Regenerate (only on purpose, from the code whose behaviour is the reference)::

    PYTHONPATH=. python tests/envs/golden_episodes.py --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).parent / "golden" / "episodes.json"
SKIPPED = frozenset({"turngym/KernelGen-v0"})
SEEDS = (0, 1, 2)
DRIVERS = ("random", "oracle", "mixed")
MAX_STEPS = 40
# Levels recorded on top of the default one: the rule variants of the envs this suite guards.
LEVELS: dict[str, tuple[int, ...]] = {
    "turngym/Wordle-v0": (2, 3, 4),
    "turngym/Minesweeper-v0": (0, 5),
    "turngym/TicTacToe-v0": (2,),
}
_JUNK = ("", "no tags at all", "<action></action>", "<action>zzzzz</action>", "<action>1 2 3")


def canonical(value: Any) -> Any:
    """A JSON-able form of ``value`` that keeps container and number types apart."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return {"int": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"float": repr(float(value))}
    if isinstance(value, dict):
        return {"dict": sorted([str(k), canonical(v)] for k, v in value.items())}
    if isinstance(value, tuple):
        return {"tuple": [canonical(v) for v in value]}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {"set": sorted(json.dumps(canonical(v), sort_keys=True) for v in value)}
    if isinstance(value, np.ndarray):
        return {"array": [str(value.dtype), canonical(value.tolist())]}
    if hasattr(value, "to_dict"):
        return {type(value).__name__: canonical(value.to_dict())}
    return {type(value).__name__: repr(value)}


def digest(value: Any) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of ``value``."""
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- Random actions ---------------------------------------------------------------------------
def _specific_actions(base: Any, rng: random.Random) -> list[str]:
    """Env-specific legal moves beyond the example actions (so the dynamics are exercised)."""
    name = type(base).__name__
    if name == "Wordle" and base.secret:
        from turngym.envs.games.wordle import load_word_lists

        words = sorted(load_word_lists()[1][len(base.secret)])
        return [f"<action>{rng.choice(words)}</action>" for _ in range(3)]
    if name == "Minesweeper":
        cells = [i for i in range(base.rows * base.cols) if not base.revealed[i]]
        if not cells:
            return []
        cell = rng.choice(cells)
        verb = rng.choice(("reveal", "reveal", "reveal", "flag"))
        return [f"<action>{verb} {cell // base.cols} {cell % base.cols}</action>"]
    return []


def random_action(env: Any, rng: random.Random) -> str:
    """A seeded mix: examples, admissible actions, env-specific moves, and 1 in 10 malformed."""
    base = env.unwrapped
    if rng.random() < 0.1:
        return rng.choice(_JUNK)
    pool = list(getattr(base.action_space, "examples", ()))
    admissible = getattr(base, "admissible_actions", None)
    if callable(admissible):
        pool += list(admissible())
    pool += _specific_actions(base, rng)
    return rng.choice(pool) if pool else ""


def _oracle(call: Callable[[], str]) -> str | None:
    try:
        return call()
    except NotImplementedError:
        return None


# --- Single-agent envs ------------------------------------------------------------------------
def play_single(env_id: str, seed: int, driver: str, level: int | None = None) -> list[str]:
    """Digests of the reset and of every step of one episode (see the module docstring)."""
    import turngym

    env = turngym.make(env_id)
    rng = random.Random(f"{env_id}:{driver}:{seed}:{level}")
    obs, info = env.reset(seed=seed, options={"split": "test", "level": level})
    base = env.unwrapped
    records = [digest([obs, info, _oracle(base.oracle_action)])]
    for _ in range(MAX_STEPS):
        suggestion = _oracle(base.oracle_action)
        use_oracle = driver == "oracle" or (driver == "mixed" and rng.random() < 0.5)
        action = suggestion if use_oracle and suggestion is not None else random_action(env, rng)
        step = env.step(action)
        records.append(digest([action, suggestion, *step]))
        if step[2] or step[3]:
            break
    env.close()
    return records


# --- Multi-agent envs -------------------------------------------------------------------------
def play_multi(env_id: str, seed: int, driver: str, level: int | None = None) -> list[str]:
    """Digests of every seat's view after reset and after every step of one game."""
    from turngym.envs.multiagent.registry import make_multiagent

    env = make_multiagent(env_id)
    rng = random.Random(f"{env_id}:{driver}:{seed}:{level}")
    env.reset(seed=seed, options={"split": "test", "level": level})

    def snapshot() -> list[Any]:
        seats = sorted(env.possible_agents)
        views = [str(env.observe(s)) for s in seats if s in env.agents]
        return [env.agent_selection, views, dict(env.rewards), dict(env.infos),
                dict(env.terminations), dict(env.truncations)]  # fmt: skip

    records = [digest(snapshot())]
    for _ in range(MAX_STEPS):
        seat = env.agent_selection
        if env.terminations[seat] or env.truncations[seat]:
            break
        suggestion = _oracle(lambda s=seat: env.oracle_action(s))
        use_oracle = driver == "oracle" or (driver == "mixed" and rng.random() < 0.5)
        if use_oracle and suggestion is not None:
            action = suggestion
        elif rng.random() < 0.1:
            action = rng.choice(_JUNK)
        else:
            action = rng.choice(env.legal_actions(seat) or list(env.example_actions))
        env.step(action)
        records.append(digest([action, suggestion, *snapshot()]))
    return records


# --- Rollout-engine episodes ------------------------------------------------------------------
def collected(env_id: str) -> list[str]:
    """Digests of ``collect`` episodes of the random and oracle agents (wall time dropped)."""
    from turngym.agents import OracleAgent, RandomAgent
    from turngym.rollout import collect

    out = []
    for agent in (RandomAgent(seed=0), OracleAgent()):
        for group in collect(env_id, agent, tasks=list(SEEDS), group_size=1, split="test"):
            for episode in group.episodes:
                data = episode.to_dict()
                data["metrics"].pop("wall_time_s", None)
                out.append(digest(data))
    return out


def env_ids() -> list[str]:
    """Every registered turngym single- and multi-agent id but :data:`SKIPPED`, sorted."""
    from turngym.envs.multiagent.registry import multiagent_ids
    from turngym.registry import env_registry

    ours = {i for i in (*env_registry.names(), *multiagent_ids()) if i.startswith("turngym/")}
    return sorted(ours - SKIPPED)  # adapted ids (textarena/...) run another project's code


def record(env_id: str) -> dict[str, list[str]]:
    """Every recording of one env: ``{"<driver>/<seed>[/level<n>]": digests, "collect": ...}``."""
    from turngym.envs.multiagent.registry import is_multiagent

    play = play_multi if is_multiagent(env_id) else play_single
    out = {f"{driver}/{seed}": play(env_id, seed, driver) for driver in DRIVERS for seed in SEEDS}
    for level in LEVELS.get(env_id, ()):
        for driver in DRIVERS:
            for seed in SEEDS:
                out[f"{driver}/{seed}/level{level}"] = play(env_id, seed, driver, level)
    out["collect"] = collected(env_id)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write (``--write``) or check the golden file; print the first mismatch per env."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="overwrite the golden file")
    parser.add_argument("envs", nargs="*", help="env ids (default: all)")
    args = parser.parse_args(argv)
    ids = args.envs or env_ids()
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    failed = 0
    for env_id in ids:
        got = record(env_id)
        if args.write:
            golden[env_id] = got
        elif got != golden.get(env_id):
            failed += 1
            print(f"{env_id}: differs from {GOLDEN.name}")
        print(f"{env_id}: {sum(map(len, got.values()))} records", file=sys.stderr)
    if args.write:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
