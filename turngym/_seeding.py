"""Gymnasium's per-env generator, built on first use instead of at every seeded reset.

``gymnasium.Env.reset(seed=...)`` builds a new numpy Generator at once (a SeedSequence and a
PCG64: tens of microseconds, more than a whole step of most envs), while most episodes never
draw from it: a turngym task comes from its own stream (:func:`turngym.tasks.task_rng`).
:class:`LazySeeding` makes a seeded reset only record the seed, and turns Gymnasium's
``_np_random`` slot into a property that builds the very same generator
(``gymnasium.utils.seeding.np_random(seed)``) the first time anything reads it, Gymnasium's
own checker included.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium.utils import seeding

__all__ = ["LazySeeding"]


class LazySeeding(gymnasium.Env):
    """Mixin for ``gymnasium.Env`` subclasses (put it first among the bases)."""

    def seed_lazily(self, seed: int | None) -> None:
        """Seed like ``gymnasium.Env.reset(seed=seed)``, building the generator on first use."""
        if type(seed) is not int or seed < 0:  # None, or a seed Gymnasium should reject
            super().reset(seed=seed)
            return
        self.__dict__["_rng_value"] = None
        self.__dict__["_rng_pending"] = seed
        self._np_random_seed = seed  # what seeding.np_random reports for an int seed

    @property
    def _np_random(self) -> np.random.Generator | None:
        """Gymnasium's generator slot (``None`` until seeded or first used)."""
        rng = self.__dict__.get("_rng_value")
        if rng is None and "_rng_pending" in self.__dict__:
            rng, _ = seeding.np_random(self.__dict__.pop("_rng_pending"))
            self.__dict__["_rng_value"] = rng
        return rng

    @_np_random.setter
    def _np_random(self, value: np.random.Generator | None) -> None:
        self.__dict__["_rng_value"] = value
        self.__dict__.pop("_rng_pending", None)
