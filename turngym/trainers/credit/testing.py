"""The credit-estimator contract checker: :func:`check_estimator` (also in :mod:`turngym.testing`).

Every registered estimator must pass it (docs/extending.md): on random ragged batches it returns
one finite advantage per turn, is deterministic, never mutates its inputs, stays finite with
singleton groups, and gives zero advantage when every episode of a group shares its rewards.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from turngym.trainers.credit import resolve_estimator
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch
from turngym.types import Episode, Group, Turn

__all__ = ["EstimatorCheckError", "check_estimator"]


class EstimatorCheckError(AssertionError):
    """Raised by :func:`check_estimator`: which contract failed, on what, and what to look at."""


def _toy_groups(
    seed: int,
    *,
    sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 8),
    reward: float | None = None,
    outcome: float | None = None,
    length: int | None = None,
    distinct_states: bool = False,
) -> tuple[Any, ...]:
    """Random ragged groups (own RNG): repeated and missing state keys, empty episodes."""
    rng = random.Random(seed)
    groups = []
    for g in range(rng.randint(3, 7)):
        episodes = []
        for i in range(rng.choice(sizes)):
            n = length if length is not None else rng.choice([0, 1, 1, 2, 3, 4, 5, 7])
            turns = []
            for t in range(n):
                state = f"{g}.{i}.{t}" if distinct_states else rng.choice(["a", "b", "c", None])
                r = reward if reward is not None else rng.choice([0.0, 0.0, 0.5, 1.0, -0.25])
                end = t == n - 1
                cut = end and rng.random() < 0.3  # some episodes hit the turn limit
                turns.append(Turn(t, "agent", f"room {state}", "go", r, end and not cut, cut,
                                  state, True))  # fmt: skip
            score = outcome if outcome is not None else rng.choice([0.0, 0.5, 1.0, 1.0])
            episodes.append(Episode(f"check/{g}/{i}", "toy/Check-v0", f"task{g}", i, "train",
                                    tuple(turns), score, score >= 1.0))  # fmt: skip
        groups.append(Group(f"task{g}@0", f"task{g}", tuple(episodes)))
    return tuple(groups)


def _arrays(credit: Any) -> dict[str, Any]:
    out = {"advantages": credit.advantages}
    for name in ("clip_ranges", "weights", "returns"):
        if getattr(credit, name) is not None:
            out[name] = getattr(credit, name)
    if credit.token_advantages is not None:
        tokens = [t for t in credit.token_advantages if t is not None]
        out["token_advantages"] = np.concatenate([np.zeros(0), *tokens])
    out["metrics"] = np.array([credit.metrics[k] for k in sorted(credit.metrics)], np.float64)
    return out


def _run_checked(
    estimate: Callable[..., Any],
    groups: tuple[Any, ...],
    label: str,
    context: Callable[[Any], Any] | None = None,
) -> Any:
    """Run once on ``groups``: type, shapes, finiteness, and no mutation of the inputs."""
    before = copy.deepcopy(groups)
    batch = TurnBatch.from_groups(groups)
    columns = {k: np.array(v) for k, v in vars(batch).items() if isinstance(v, np.ndarray)}
    try:
        credit = estimate(batch, context(batch) if context is not None else CreditContext())
    except Exception as err:
        hint = (
            " (batch arrays are read-only: copy before editing)" if "read-only" in str(err) else ""
        )
        raise EstimatorCheckError(f"{label}: raised {type(err).__name__}: {err}{hint}") from err
    if not isinstance(credit, Credit):
        raise EstimatorCheckError(f"{label}: returned {type(credit).__name__}, not Credit")
    if credit.advantages.shape != (batch.n_turns,):
        raise EstimatorCheckError(
            f"{label}: {credit.advantages.shape[0]} advantages for {batch.n_turns} turns "
            f"(episode lengths {batch.episode_length.tolist()}); return one per turn row."
        )
    for name, values in _arrays(credit).items():
        if not np.all(np.isfinite(values)):
            raise EstimatorCheckError(f"{label}: non-finite {name}: {values.tolist()[:12]}")
    changed = [k for k, v in columns.items() if not np.array_equal(v, getattr(batch, k))]
    if groups != before or changed:
        raise EstimatorCheckError(
            f"{label}: the estimator mutated its input ({', '.join(changed) or 'the groups'});"
            " copy arrays before editing them."
        )
    return credit


def _synthetic_probes(seed: int | None) -> Callable[[Any], CreditContext]:
    """A context maker with synthetic probe values: random (``seed``) or constant (``None``)."""
    from turngym.trainers.credit.probe_values import synthetic_probes

    def make(batch: TurnBatch) -> CreditContext:
        constant = -2.0 if seed is None else None
        return CreditContext(probe=synthetic_probes(batch, seed or 0, constant=constant, targets=2))

    return make


def check_estimator(
    fn: Callable[..., Any] | str,
    /,
    *,
    context: Callable[[Any], Any] | None = None,
    shared_rewards_zero: bool = True,
    **params: Any,
) -> None:
    """Check the estimator contract on random ragged batches.

    The contract is in docs/extending.md#add-a-credit-estimator.

    On batches with ragged episodes (some empty), groups of 1 to 8 episodes, repeated and
    missing state keys and truncated episodes, it asserts that the estimator returns a
    :class:`~turngym.trainers.credit.types.Credit` with one finite advantage per turn, is
    deterministic, and does not mutate the groups or the batch; that it stays finite when
    every group is a singleton; and that rewards every episode of a group shares give zero
    advantage (up to 1e-9) in groups of two or more. Two constant batches are used: equal
    outcomes with zero turn rewards over ragged episodes, and equal outcomes with the same
    reward on every turn of equally long episodes whose states never repeat. Estimators that
    require a probe get synthetic probe values unless ``context`` is given: random ones on the
    random batches, one constant log-probability everywhere on the constant batches.

    Args:
        fn: The estimator function, or a registered name (resolved with ``params``).
        context: ``batch -> CreditContext`` for estimators that need one (e.g. a
            :class:`~turngym.trainers.credit.values.FixedCritic` for critic methods); default
            an empty context.
        shared_rewards_zero: Check that shared rewards give zero advantage. Critic methods
            measure advantages against a learned value, not against the group, so they pass
            ``False``.
        **params: Keyword parameters for the estimator.

    Raises:
        EstimatorCheckError: A contract is broken; the message says which and where.

    Example:
        >>> check_estimator("rloo")
        >>> check_estimator("mc_grpo", require_odd=False)
        >>> check_estimator("igpo")  # probe-based: synthetic probe values
    """
    if isinstance(fn, str):
        available = {"critic", "probe", "judge"} if context is not None else {"probe"}
        label, estimate = fn, resolve_estimator(fn, params, available)
    else:
        label, estimate = getattr(fn, "__name__", repr(fn)), functools.partial(fn, **params)
    probed = "probe" in getattr(getattr(estimate, "func", estimate), "requires", ())
    for seed in range(4):
        what = f"{label} (seed {seed})"
        ctx = context if context is not None or not probed else _synthetic_probes(seed)
        first = _arrays(_run_checked(estimate, _toy_groups(seed), what, ctx))
        again = _arrays(_run_checked(estimate, _toy_groups(seed), what, ctx))
        if first.keys() != again.keys() or any(
            not np.array_equal(first[k], again[k]) for k in first
        ):
            raise EstimatorCheckError(f"{label}: two runs on equal batches (seed {seed}) differ")
    ctx = context if context is not None or not probed else _synthetic_probes(7)
    _run_checked(estimate, _toy_groups(7, sizes=(1,)), f"{label} (singleton groups)", ctx)
    if not shared_rewards_zero:
        return
    # Shared rewards with a constant belief everywhere: probe-based credit must vanish too.
    ctx = context if context is not None or not probed else _synthetic_probes(None)
    constant = {
        "zero turn rewards, equal outcomes": _toy_groups(
            8, sizes=(2, 3, 5), outcome=0.7, reward=0.0
        ),
        "equal turn rewards and lengths, equal outcomes": _toy_groups(
            9, sizes=(2, 3, 5), outcome=0.7, reward=0.3, length=3, distinct_states=True
        ),
    }
    for what, groups in constant.items():
        credit = _run_checked(estimate, groups, f"{label} ({what})", ctx)
        worst = int(np.argmax(np.abs(credit.advantages))) if credit.advantages.size else 0
        if credit.advantages.size and abs(credit.advantages[worst]) > 1e-9:
            raise EstimatorCheckError(
                f"{label}: {what} gave advantage {credit.advantages[worst]:.3g} at turn row "
                f"{worst}; shared rewards must give 0 (is the baseline subtracted per group?)."
            )
