"""The credit-estimator registry (DESIGN.md section 6, STYLE.md 10.5).

Estimators register by lowercase snake name with :func:`register_estimator`; third-party
packages add theirs through the ``turngym.estimators`` entry-point group (``name =
"package.module:function"``), loaded lazily on the first unknown name. The estimators
themselves, their input and output types and ``check_estimator`` arrive with the trainer
issue; the registry, its collision guard and plugin loading are shared with envs and agents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from turngym.registry import Registry

__all__ = ["estimator_registry", "register_estimator"]

estimator_registry: Registry[Callable[..., Any]] = Registry("estimator", group="turngym.estimators")
"""Credit estimators by name."""


def register_estimator(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the decorated estimator function under ``name``.

    Raises:
        ValueError: ``name`` already holds a different function.
    """
    return estimator_registry.decorator(name)
