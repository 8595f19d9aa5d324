"""Built-in environments: a flat list of ``gymnasium.register`` calls.

Entry points are strings, so importing :mod:`turngym` registers every env without importing
any env module (DESIGN.md section 3). Bump ``-vN`` whenever a change could move a score.
Third-party envs come from the ``turngym.envs`` entry-point group (see
:func:`turngym.registry.load_env_plugins`).
"""

from __future__ import annotations

import gymnasium

__all__: list[str] = []

# --- Games (ENVIRONMENTS.md section 5) ---
gymnasium.register(
    id="turngym/Sokoban-v0",
    entry_point="turngym.envs.games.sokoban:Sokoban",
    max_episode_steps=30,
)
gymnasium.register(
    id="turngym/FrozenLake-v0",
    entry_point="turngym.envs.games.frozen_lake:FrozenLake",
    max_episode_steps=20,
)
