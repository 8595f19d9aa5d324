"""TextWorld games generated here with tw-make, played through the adapter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium
import pytest

pytest.importorskip("textworld", reason="TextWorld is not installed: pip install textworld")

from turngym.envs.adapters.textworld import TextWorldEnv, find_games  # noqa: E402
from turngym.testing import check_env  # noqa: E402

pytestmark = pytest.mark.slow  # tw-make compiles each game with Inform 7 (~5-10 s)


@pytest.fixture(scope="module")
def games(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tw-games")
    tw_make = shutil.which("tw-make") or str(Path(sys.executable).parent / "tw-make")
    for seed, split in ((1, "train"), (2, "valid_seen"), (3, "valid_unseen")):  # ALFWorld names
        out = root / split / f"game{seed}.z8"
        subprocess.run([tw_make, "custom", "--world-size", "3", "--nb-objects", "4",
                        "--quest-length", "3", "--seed", str(seed), "--output", str(out),
                        "-f", "--silent"], check=True, timeout=300)  # fmt: skip
    return root


def test_folders_give_the_splits(games):
    by_split = find_games(games)
    assert [len(by_split[s]) for s in ("train", "validation", "test")] == [1, 1, 1]
    assert by_split["test"] == [{"game": "valid_unseen/game3.z8"}]


def test_walkthrough_wins_and_only_admissible_commands_pass(games):
    env = TextWorldEnv(games_dir=str(games))
    obs, info = env.reset(seed=0, options={"split": "test"})
    assert "Admissible commands:" in obs and info["privileged"]["walkthrough"]
    _, reward, done, _, info = env.step("<action>dance wildly</action>")
    assert info["action_valid"] is False and not done
    total = 0.0
    while True:
        _, reward, done, cut, info = env.step(env.oracle_action())
        total += reward
        if done or cut:
            break
    assert info["success"] and info["score"] == 1.0 and total == info["privileged"]["max_score"]


def test_snapshot_replays_commands(games):
    env = TextWorldEnv(games_dir=str(games))
    env.reset(seed=0, options={"split": "train"})
    env.step(env.oracle_action())
    snap, key = env.get_state(), env.state_key()
    env.step(env.oracle_action())
    env.set_state(snap)
    assert env.state_key() == key


def test_generated_games_pass_turngym_check(games):
    gymnasium.register(id="test/TextWorldGames-v0", max_episode_steps=30,
                       entry_point="turngym.envs.adapters.textworld:TextWorldEnv",
                       kwargs={"games_dir": str(games)})  # fmt: skip
    try:
        check_env("test/TextWorldGames-v0", fuzz_examples=20, n_tasks=3).raise_if_failed()
    finally:
        gymnasium.registry.pop("test/TextWorldGames-v0")
