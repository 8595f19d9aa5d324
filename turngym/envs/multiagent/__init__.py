"""Multi-agent turn-based text games: PettingZoo ``AECEnv`` s with one text view per seat.

docs/design.md#the-environment-contract and docs/environments.md#multi-agent-games: games played
against scripted opponents of graded strength (random, depth-k minimax, a negotiator) or in
self-play, validated with PettingZoo's own ``api_test``.

==============================  ==============================================================
``turngym/TicTacToe-v0``        3x3 noughts and crosses; perfect minimax opponent
``turngym/ConnectFour-v0``      drop discs, four in a row wins; depth-limited minimax opponent
``turngym/DealOrNoDeal-v0``     split items with private per-seat values (Lewis et al., 2017)
==============================  ==============================================================

These envs are not Gymnasium envs (PettingZoo's AEC API has one agent per step and per-seat
observations), so they live in their own registry, :mod:`turngym.envs.multiagent.registry`:
``make_multiagent(id)`` builds one, and :func:`turngym.rollout.collect` routes their ids to
the seat-aware engine in :mod:`turngym.rollout_multiagent`.

Importing this package does not import PettingZoo (the ``multiagent`` extra); only the env
modules do.
"""

from __future__ import annotations

__all__: list[str] = []
