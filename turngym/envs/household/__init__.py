"""Household: ALFWorld-like text household tasks (docs/environments.md#household).

Modules: :mod:`~turngym.envs.household.vocab` (types and affordances),
:mod:`~turngym.envs.household.world` (state and rules), :mod:`~turngym.envs.household.generate`
(procedural homes and goals), :mod:`~turngym.envs.household.planner` (goal test and oracle)
and :mod:`~turngym.envs.household.env` (the :class:`Household` env).
"""

from turngym.envs.household.env import Household

__all__ = ["Household"]
