"""Policy-gradient losses and regularisers on per-token tensors.

See docs/methods.md#trainer-side-parts.

All functions take ``(batch, length)`` tensors aligned with the training sequences of
:mod:`turngym.trainers.tokens`: ``mask`` is 1 on trainable action tokens and 0 elsewhere.
Advantages arrive per token (the estimator's per-turn value broadcast by ``tokens.py``); no
function here knows which estimator produced them.

* :func:`clipped_surrogate` — PPO/GRPO clipped objective with asymmetric clip ranges
  (``clip_low``/``clip_high``, or per-token ranges from estimators such as A²TGPO) and dual
  clip for negative advantages (verl ``compute_policy_loss_vanilla``).
* :func:`aggregate` — verl's four aggregation modes, including Dr.GRPO's constant normaliser.
* :func:`kl_penalty` — k1 and k3 estimators of KL(π‖π_ref) (Schulman, "Approximating KL
  Divergence", 2020).
* :func:`epo_smoothing` / :func:`epo_weight` — EPO's entropy-smoothing term and schedule.
* :func:`llds_penalty` — LLDS's likelihood-preservation penalty.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from turngym.trainers.config import AGGREGATIONS

__all__ = [
    "AGGREGATIONS",
    "aggregate",
    "clipped_surrogate",
    "kl_penalty",
    "entropy_bonus",
    "epo_smoothing",
    "epo_weight",
    "llds_penalty",
]

Aggregation = Literal[
    "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
]


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    *,
    loss_scale: float | None = None,
) -> torch.Tensor:
    """Reduce per-token ``values`` over the tokens where ``mask`` is 1.

    Args:
        values: ``(batch, length)`` per-token losses.
        mask: ``(batch, length)`` 0/1 loss mask.
        mode: ``token-mean`` (sum / number of valid tokens in the batch),
            ``seq-mean-token-sum`` (mean over sequences of their token sums),
            ``seq-mean-token-mean`` (mean over sequences of their token means), or
            ``seq-mean-token-sum-norm`` (sum of sequence token sums / ``loss_scale``; Dr.GRPO,
            arXiv 2503.20783, removes the per-sequence length normaliser).
        loss_scale: Constant of ``seq-mean-token-sum-norm``; default ``values.shape[-1]`` (the
            longest sequence), as in verl.

    Returns:
        A scalar tensor. Sequences without a valid token count as absent.

    Example:
        >>> v = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 0.0]])
        >>> m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        >>> [round(float(aggregate(v, m, mode)), 4) for mode in AGGREGATIONS]
        [2.0, 3.0, 2.0, 2.0]
    """
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    seq_sums = (values * mask).sum(-1)
    seq_counts = mask.sum(-1)
    present = (seq_counts > 0).to(values.dtype)
    n_seqs = present.sum().clamp(min=1.0)
    if mode == "seq-mean-token-sum":
        return (seq_sums * present).sum() / n_seqs
    if mode == "seq-mean-token-mean":
        return (seq_sums / seq_counts.clamp(min=1.0) * present).sum() / n_seqs
    if mode == "seq-mean-token-sum-norm":
        scale = float(loss_scale if loss_scale is not None else values.shape[-1])
        return seq_sums.sum() / scale
    raise ValueError(f"Unknown aggregation {mode!r}; use one of {list(AGGREGATIONS)}.")


def clipped_surrogate(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float | torch.Tensor = 0.2,
    clip_high: float | torch.Tensor = 0.2,
    dual_clip: float | None = 3.0,
    aggregation: str = "token-mean",
    loss_scale: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The PPO clipped surrogate with asymmetric and dual clip (docs/methods.md#clipped-surrogate).

    ``ratio = exp(clamp(logp_new - logp_old, -20, 20))``; per token
    ``l = max(-A * ratio, -A * clamp(ratio, 1 - clip_low, 1 + clip_high))`` and, for ``A < 0``,
    ``l = min(l, -A * dual_clip)`` (dual clip, Ye et al. 2020; ``dual_clip`` must be > 1).
    ``clip_low``/``clip_high`` may be per-token tensors (per-turn clip ranges broadcast by
    ``tokens.py``, e.g. A²TGPO's adaptive clipping).

    Returns:
        ``(loss, metrics)`` with ``clip_frac`` (share of valid tokens whose clipped term was
        active), ``dual_clip_frac``, ``approx_kl`` (mean of ``logp_old - logp_new``) and
        ``ratio_mean``.

    Example:
        >>> lp = torch.log(torch.tensor([[1.5, 0.5]]))
        >>> loss, m = clipped_surrogate(lp, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]),
        ...                             torch.ones(1, 2), dual_clip=None)
        >>> round(float(loss), 4), m["clip_frac"]
        (-0.2, 1.0)
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (verl clip_ratio_c), got {dual_clip}")
    mask_f = mask.to(logp_new.dtype)
    log_ratio = torch.clamp(logp_new - logp_old, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    low = torch.as_tensor(1.0 - clip_low, dtype=ratio.dtype, device=ratio.device)
    high = torch.as_tensor(1.0 + clip_high, dtype=ratio.dtype, device=ratio.device)
    clipped = -advantages * torch.minimum(torch.maximum(ratio, low), high)
    per_token = torch.maximum(unclipped, clipped)
    dual_active = torch.zeros_like(per_token, dtype=torch.bool)
    if dual_clip is not None:
        capped = torch.minimum(per_token, -advantages * dual_clip)
        dual_active = (advantages < 0) & (capped < per_token)
        per_token = torch.where(advantages < 0, capped, per_token)
    loss = aggregate(per_token, mask_f, aggregation, loss_scale=loss_scale)
    n_valid = mask_f.sum().clamp(min=1.0)
    with torch.no_grad():
        metrics = {
            "clip_frac": float(((clipped > unclipped).to(mask_f.dtype) * mask_f).sum() / n_valid),
            "dual_clip_frac": float((dual_active.to(mask_f.dtype) * mask_f).sum() / n_valid),
            "approx_kl": float((-log_ratio * mask_f).sum() / n_valid),
            "ratio_mean": float((ratio * mask_f).sum() / n_valid),
        }
    return loss, metrics


def kl_penalty(logp_new: torch.Tensor, logp_ref: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(π_new ‖ π_ref) from log-probs of tokens sampled from π.

    ``k1 = logp_new - logp_ref`` (unbiased, high variance, can be negative);
    ``k3 = exp(logp_ref - logp_new) - (logp_ref - logp_new) - 1`` (unbiased for samples from
    π_new, always ≥ 0; GRPO's choice, Shao et al. 2024 eq. 4).

    Example:
        >>> lp, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
        >>> round(float(kl_penalty(lp, ref, "k1")), 4), round(float(kl_penalty(lp, ref, "k3")), 4)
        (0.5, 0.1065)
    """
    log_ratio = torch.clamp(logp_ref - logp_new, -20.0, 20.0)
    if kind == "k1":
        return -log_ratio
    if kind == "k3":
        return torch.exp(log_ratio) - log_ratio - 1.0
    raise ValueError(f"Unknown KL estimator {kind!r}; use 'k1' or 'k3'.")


def entropy_bonus(
    entropy: torch.Tensor, mask: torch.Tensor, aggregation: str = "token-mean"
) -> torch.Tensor:
    """Aggregated token entropy; subtract ``coef *`` this from the loss to encourage exploration."""
    return aggregate(entropy, mask, aggregation)


def epo_smoothing(
    entropy: torch.Tensor,
    mask: torch.Tensor,
    history: torch.Tensor,
    *,
    kappa_low: float = 0.5,
    kappa_high: float = 1.5,
    penalty: float = 0.1,
    differentiable: bool = False,
) -> torch.Tensor:
    """EPO's entropy-smoothing term (arXiv 2509.22576; docs/methods.md#epo-entropy-smoothing).

    ``history`` holds, per token, the historical mean entropy ``H_bar[t]`` of the token's turn
    index. With ``differentiable=False`` (the released code, VERIFIED-CODE) the term is
    ``M = 0`` inside ``(kappa_low * H_bar, kappa_high * H_bar)`` and ``penalty`` outside, a
    constant that shifts the loss value but carries **no gradient**. With
    ``differentiable=True`` (UNVERIFIED; the paper's stated intent) it is
    ``penalty * (relu(kappa_low * H_bar - H) + relu(H - kappa_high * H_bar))``, which does.
    The released code also gates the term on the half-horizon turn index; the caller decides
    when to apply it.

    Returns:
        The token-mean of the term over the mask.

    Example:
        >>> h = torch.tensor([[0.5, 1.2, 3.0]])
        >>> m = torch.ones(1, 3); hb = torch.ones(1, 3)
        >>> round(float(epo_smoothing(h, m, hb) * 3), 4)  # M = [0.1, 0, 0.1]
        0.2
    """
    low, high = kappa_low * history, kappa_high * history
    if differentiable:
        term = penalty * (torch.relu(low - entropy) + torch.relu(entropy - high))
    else:
        inside = (entropy > low) & (entropy < high)
        term = torch.where(inside, torch.zeros_like(entropy), torch.full_like(entropy, penalty))
    return aggregate(term, mask, "token-mean")


def epo_weight(epoch: int, total_epochs: int = 150) -> float:
    """EPO's phase schedule for the smoothing weight (released code).

    See docs/methods.md#epo-entropy-smoothing.

    ``w = 1 - 0.2 (1 - exp(-2 e / h))`` for ``e <= h = E // 2``, then
    ``0.8 exp(-3 (e - h) / (E - h))``.

    Example:
        >>> [round(epo_weight(e), 4) for e in (0, 37, 75, 112, 150)]
        [1.0, 0.8746, 0.8271, 0.1821, 0.0398]
    """
    half = total_epochs // 2
    if epoch <= half:
        return 1.0 - 0.2 * (1.0 - math.exp(-2.0 * epoch / half))
    return 0.8 * math.exp(-3.0 * (epoch - half) / (total_epochs - half))


def llds_penalty(
    logp_old: torch.Tensor,
    logp_new: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    coef: float = 0.2,
    gate: Literal["action", "response"] = "action",
) -> torch.Tensor:
    """LLDS likelihood-preservation penalty (arXiv 2512.04220).

    See docs/methods.md#llds-likelihood-preservation.

    ``d = logp_old - logp_new`` (positive: likelihood fell). On the preserving set (valid
    tokens with ``A >= 0``) the penalty is ``max(0, d)``, active only for a response
    (``gate="response"``) or a contiguous action chunk (``gate="action"``, the recommended
    A-gate) whose summed ``d`` is positive. The result is ``coef`` times the token-mean over the
    mask; gradients flow through ``logp_new``.

    Example:
        >>> old = torch.tensor([[-1.0, -2.0, 0.0, -0.5, -0.3]])
        >>> new = torch.tensor([[-1.2, -1.9, 0.0, -0.9, -0.3]])
        >>> m = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]])  # two actions around an observation
        >>> round(float(llds_penalty(old, new, torch.ones(1, 5), m)), 4)
        0.03
    """
    valid = mask > 0
    preserving = valid & (advantages >= 0)
    d = logp_old - logp_new
    base = torch.relu(d) * preserving  # relu'(0) = 0: an unchanged token gets no gradient
    d_pres = (d * preserving).detach()
    if gate == "response":
        active = (d_pres.sum(-1, keepdim=True) > 0).expand_as(d)
    elif gate == "action":
        active = _chunk_sums(d_pres, preserving) > 0
    else:
        raise ValueError(f"Unknown LLDS gate {gate!r}; use 'action' or 'response'.")
    return coef * aggregate(base * active, mask.to(base.dtype), "token-mean")


def _chunk_sums(values: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Per token, the sum of ``values`` over its contiguous run of ``members`` (0 outside)."""
    starts = members & ~torch.nn.functional.pad(members, (1, 0))[..., :-1]
    chunk_id = torch.cumsum(starts.to(torch.long), dim=-1) * members  # 0 = not a member
    n_chunks = int(chunk_id.max()) + 1 if chunk_id.numel() else 1
    sums = torch.zeros(values.shape[0], n_chunks, dtype=values.dtype, device=values.device)
    sums.scatter_add_(1, chunk_id, values * members)
    return torch.gather(sums, 1, chunk_id) * members
