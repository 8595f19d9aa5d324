"""Bridges to training frameworks: turngym envs and credit estimators inside verl and TRL.

* :mod:`turngym.adapters.verl` (``pip install 'turngym[verl]'``): every estimator in verl's
  advantage-estimator registry as ``turngym_<name>``, and an agent loop that plays turngym
  envs in verl's multi-turn rollout.
* :mod:`turngym.adapters.trl` (``pip install 'turngym[trl]'``): turngym envs as the rollout of
  TRL's ``GRPOTrainer``, with a turngym estimator computing the advantages.

Each adapter imports its framework at import time; nothing else in turngym imports them.
"""

from __future__ import annotations

__all__: list[str] = []
