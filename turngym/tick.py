"""Rollout ticks: work that the envs stepped in one tick can share.

The rollout engine steps its live envs one after the other; before it does, it hands each env
class's :meth:`~turngym.core.TextEnv.before_steps` that class's envs and their actions, so an
env can do once for the whole tick what each step would otherwise do alone (SearchQA and Shop
answer every search of the tick with one batched BM25 call).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from turngym.core import TextEnv

__all__ = ["prepare_tick"]

_DEFAULT_HOOK = getattr(TextEnv.before_steps, "__func__", None)


def prepare_tick(envs: Sequence[Any], actions: Sequence[str]) -> None:
    """Call each env class's ``before_steps`` once with its envs of this tick (batched work).

    The hook only saves time (stepping gives the same results without it), so a failing hook
    is reported and the tick goes on.
    """
    by_class: dict[type[TextEnv], tuple[list[Any], list[str]]] = {}
    for env, action in zip(envs, actions, strict=True):
        if isinstance(env, TextEnv):
            group = by_class.setdefault(type(env), ([], []))
            group[0].append(env)
            group[1].append(action)
    for cls, (members, texts) in by_class.items():
        if getattr(cls.before_steps, "__func__", None) is _DEFAULT_HOOK:
            continue  # the class prepares nothing
        try:
            cls.before_steps(members, texts)
        except Exception as err:  # noqa: BLE001  (an optimisation must never stop a rollout)
            reason = f"{type(err).__name__}: {err}"
            warnings.warn(f"{cls.__name__}.before_steps failed ({reason}); stepping without it.",
                          stacklevel=2)  # fmt: skip
