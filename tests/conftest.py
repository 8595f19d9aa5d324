from __future__ import annotations

import gymnasium
import pytest

import turngym  # noqa: F401  (registers the built-ins)

if "test/Counter-v0" not in gymnasium.registry:
    gymnasium.register(id="test/Counter-v0", entry_point="toy_envs:Counter", max_episode_steps=15)


@pytest.fixture
def counter_id() -> str:
    return "test/Counter-v0"
