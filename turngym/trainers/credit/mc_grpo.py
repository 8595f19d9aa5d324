"""MC-GRPO: median-centred GRPO with G+1 rollouts (docs/methods.md#mc-grpo)."""

from __future__ import annotations

import numpy as np

from turngym.trainers.credit import register_estimator
from turngym.trainers.credit._common import credit_metrics
from turngym.trainers.credit.types import Credit, CreditContext, TurnBatch

__all__ = ["mc_grpo"]


def _lower_median(values: np.ndarray, seg: np.ndarray, n_seg: int) -> tuple[np.ndarray, ...]:
    """Per-segment lower median (torch.median's choice) and the item it comes from.

    Items are sorted by (segment, value) with a stable sort, so among tied values the pivot
    is the middle one in batch order; torch leaves its tie choice unspecified.
    """
    size = np.bincount(seg, minlength=n_seg)
    if values.size == 0:
        return np.zeros(n_seg), np.zeros(n_seg, np.int64), size
    order = np.lexsort((values, seg))
    first = np.cumsum(size) - size
    pivot = order[np.clip(first + (size - 1) // 2, 0, values.size - 1)]
    return np.where(size > 0, values[pivot], 0.0), pivot, size


def _check_odd(size: np.ndarray) -> None:
    even = sorted({int(s) for s in size[size % 2 == 0]})
    if even:
        raise ValueError(
            f"mc_grpo needs an odd number of episodes per group (G+1), got sizes {even}; "
            "sample one more episode per task or pass require_odd=False (lower median)."
        )


@register_estimator("mc_grpo")
def mc_grpo(
    batch: TurnBatch,
    ctx: CreditContext,
    /,
    *,
    mad_scale: bool = True,
    mad_eps: float = 1e-3,
    rescale_nonzero: bool = False,
    require_odd: bool = True,
) -> Credit:
    """Median-centred GRPO (arXiv 2601.22582; lotusroot-kim/MC-GRPO, training mode).

    Sample ``G+1`` rollouts per task. ``m = median_g(R)``, ``MAD = median_g(|R - m|) +
    mad_eps``, ``A_i = (R_i - m) / MAD``. The pivot (the one episode whose score is the
    median) gets weight 0, so exactly ``G`` episodes reach the loss; other episodes tied at
    the median keep ``A = 0`` and weight 1. Scores are ``Episode.outcome``. Status:
    VERIFIED-CODE; the tie rule among equal medians is ours (torch's is unspecified).

    Args:
        batch: The turns; only outcomes and group membership are used.
        ctx: Unused.
        mad_scale: Divide by the MAD (released behaviour). With discrete rewards the MAD is
            often 0, so advantages become ``(R - m) / mad_eps`` (x1000 by default).
        mad_eps: Added to the MAD (released: 1e-3).
        rescale_nonzero: Multiply non-zero advantages (``|A| > 1e-6``) by ``G' / #non-zero``
            in their group (the gsm8k trainer only; off in the math trainer).
        require_odd: Refuse groups of even size (``G+1`` must be odd for the median to be a
            sample). ``False`` uses the lower median, as ``torch.median`` does.

    Returns:
        Advantages, ``weights`` (0 on the pivot's turns), the standard metrics and
        ``mad_zero_group_frac``.

    Raises:
        ValueError: ``require_odd`` and a group has an even size; ``mad_eps <= 0``.

    Degenerate cases: equal scores give 0; a group of one is its own pivot (weight 0).
    """
    scores, seg, n_seg = batch.episode_outcome, batch.episode_group, batch.n_groups
    m, pivot, size = _lower_median(scores, seg, n_seg)
    if require_odd:
        _check_odd(size)
    if mad_scale and mad_eps <= 0:
        raise ValueError(f"mad_eps must be > 0 (the MAD is often 0), got {mad_eps}")
    centred = scores - m[seg]
    mad, _, _ = _lower_median(np.abs(centred), seg, n_seg)
    adv = centred / (mad[seg] + mad_eps) if mad_scale else centred
    if rescale_nonzero:
        live = np.abs(adv) > 1e-6
        count = np.bincount(seg, weights=live, minlength=n_seg)[seg]
        adv = np.where(live, adv * size[seg] / np.maximum(count, 1), adv)
    is_pivot = np.zeros(batch.n_episodes, bool)
    is_pivot[pivot[size > 0]] = True
    advantages = adv[batch.episode]
    metrics = credit_metrics(batch, advantages, scores)
    metrics["mad_zero_group_frac"] = float(np.mean(mad[size > 1] == 0)) if any(size > 1) else 0.0
    return Credit(advantages, weights=np.where(is_pivot[batch.episode], 0.0, 1.0), metrics=metrics)
