"""turngym inside verl (tested against verl 0.9.1): estimators and envs.

Importing this package registers every turngym estimator that needs only the batch in verl's
advantage-estimator registry as ``turngym_<name>`` (default parameters; call
:func:`register_estimators` to set others) and the ``turngym`` agent loop in verl's agent-loop
registry. Import it in the process that runs verl's trainer, e.g. from the module named by
verl's ``custom_reward_function`` or at the top of your entry script::

    import turngym.adapters.verl  # noqa: F401  (registers turngym_* and the turngym loop)
    # algorithm.adv_estimator=turngym_gigpo
    # actor_rollout_ref.rollout.multi_turn.enable=True, rows with agent_name="turngym"

See :mod:`~turngym.adapters.verl.advantage` for how verl's batch fields become a TurnBatch
(and why GiGPO needs :func:`compute_advantage`), :mod:`~turngym.adapters.verl.agent_loop`
for the rollout.
"""

from __future__ import annotations

from turngym.adapters.verl.advantage import (
    ANCHORED,
    PREFIX,
    compute_advantage,
    register_estimators,
    token_advantages,
    turn_batch_from_verl,
)
from turngym.adapters.verl.agent_loop import AGENT_NAME, TurngymAgentLoop, dataset_rows

__all__ = [
    "ANCHORED",
    "PREFIX",
    "AGENT_NAME",
    "TurngymAgentLoop",
    "compute_advantage",
    "dataset_rows",
    "register_estimators",
    "token_advantages",
    "turn_batch_from_verl",
]

register_estimators()
