"""Built-in environments: a flat list of ``gymnasium.register`` calls.

Entry points are strings, so importing :mod:`turngym` registers every env without importing
any env module (docs/design.md#the-environment-contract). Bump ``-vN`` whenever a change
could move a score.
Third-party envs come from the ``turngym.envs`` entry-point group (see
:func:`turngym.registry.load_env_plugins`).
"""

from __future__ import annotations

import gymnasium

__all__: list[str] = []

# --- Games (docs/environments.md#games) ---
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

# --- Games: puzzles (issue 5) ---
gymnasium.register(
    id="turngym/Maze-v0",
    entry_point="turngym.envs.games.maze:Maze",
    max_episode_steps=200,
)
gymnasium.register(
    id="turngym/Countdown-v0",
    entry_point="turngym.envs.games.countdown:Countdown",
    max_episode_steps=10,
)
gymnasium.register(
    id="turngym/Minesweeper-v0",
    entry_point="turngym.envs.games.minesweeper:Minesweeper",
    max_episode_steps=150,
)

# --- Games: word and knowledge games (issue 5) ---
gymnasium.register(
    id="turngym/Wordle-v0",
    entry_point="turngym.envs.games.wordle:Wordle",
    max_episode_steps=15,
)
gymnasium.register(
    id="turngym/TwentyQuestions-v0",
    entry_point="turngym.envs.games.twenty_questions:TwentyQuestions",
    max_episode_steps=30,
)
gymnasium.register(
    id="turngym/GuessMyCity-v0",
    entry_point="turngym.envs.games.guess_my_city:GuessMyCity",
    max_episode_steps=30,
)

# --- Household (issue 7) ---
gymnasium.register(
    id="turngym/Household-v0",
    entry_point="turngym.envs.household.env:Household",
    max_episode_steps=50,
)

# --- Shop (issue 7) ---
gymnasium.register(
    id="turngym/Shop-v0",
    entry_point="turngym.envs.shop.env:Shop",
    max_episode_steps=15,
)

# --- Recommendation (issue 7) ---
gymnasium.register(
    id="turngym/SeqRec-v0",
    entry_point="turngym.envs.recommend.seqrec:SeqRec",
    max_episode_steps=3,
)
gymnasium.register(
    id="turngym/ConvRec-v0",
    entry_point="turngym.envs.recommend.convrec:ConvRec",
    max_episode_steps=20,
)

# --- Search (issue 6) ---
gymnasium.register(
    id="turngym/SearchQA-v0",
    entry_point="turngym.envs.search.env:SearchQA",
    max_episode_steps=8,
)

# --- Tools (issue 6) ---
gymnasium.register(
    id="turngym/ToolUse-v0",
    entry_point="turngym.envs.tools.env:ToolUse",
    max_episode_steps=20,
)

# --- Dialogue (issue 6) ---
gymnasium.register(
    id="turngym/Clarify-v0",
    entry_point="turngym.envs.dialogue.clarify:Clarify",
    max_episode_steps=30,
)
gymnasium.register(
    id="turngym/TryAgain-v0",
    entry_point="turngym.envs.dialogue.try_again:TryAgain",
    max_episode_steps=15,
)
gymnasium.register(
    id="turngym/EmotionalSupport-v0",
    entry_point="turngym.envs.dialogue.emotional_support:EmotionalSupport",
    max_episode_steps=12,
)

# --- Kernel (issue 8) ---
gymnasium.register(
    id="turngym/KernelGen-v0",
    entry_point="turngym.envs.kernel.env:KernelGen",
    max_episode_steps=3,
)

# --- Long-horizon quest (issue 20): planned quests take 100-300 turns ---
gymnasium.register(
    id="turngym/Expedition-v0",
    entry_point="turngym.envs.games.expedition:Expedition",
    max_episode_steps=400,
)

# --- GUI navigation (issue 20) ---
gymnasium.register(
    id="turngym/GUINav-v0",
    entry_point="turngym.envs.gui.env:GUINav",
    max_episode_steps=50,
)

# --- Composed tasks (issue 20): N sub-tasks in one episode; max_episode_steps = sum of budgets ---
gymnasium.register(
    id="turngym/ComposedSearchQA-v0",
    entry_point="turngym.envs.compose:Composed",
    max_episode_steps=24,
    kwargs={"envs": ["turngym/SearchQA-v0"] * 3, "mode": "sequential"},
)
gymnasium.register(
    id="turngym/ComposedGames-v0",
    entry_point="turngym.envs.compose:Composed",
    max_episode_steps=45,
    kwargs={
        "envs": ["turngym/Wordle-v0", "turngym/Countdown-v0", "turngym/FrozenLake-v0"],
        "mode": "interleaved",
    },
)

# --- Adapters (issue 20): registered only when their package is installed (found, not imported) ---
import importlib.util  # noqa: E402

if importlib.util.find_spec("textarena") is not None:
    from turngym.envs.adapters.textarena import register_textarena_envs  # noqa: E402

    register_textarena_envs()
if importlib.util.find_spec("textworld") is not None:
    from turngym.envs.adapters.textworld import register_textworld_envs  # noqa: E402

    register_textworld_envs()

# --- Multi-agent (issue 5) ---
# PettingZoo AEC envs are not Gymnasium envs: they go to turngym's multi-agent registry
# (turngym.envs.multiagent.registry, no PettingZoo import until an env is made).
from turngym.envs.multiagent.registry import register_multiagent  # noqa: E402

register_multiagent(
    "turngym/TicTacToe-v0", "turngym.envs.multiagent.tictactoe:TicTacToe", max_turns=30
)
register_multiagent(
    "turngym/ConnectFour-v0", "turngym.envs.multiagent.connect_four:ConnectFour", max_turns=130
)
register_multiagent(
    "turngym/DealOrNoDeal-v0", "turngym.envs.multiagent.bargaining:DealOrNoDeal", max_turns=40
)
if importlib.util.find_spec("textarena") is not None:  # issue 20: TextArena's 2-player games
    from turngym.envs.adapters.textarena_multi import register_textarena_multiagent  # noqa: E402

    register_textarena_multiagent()
