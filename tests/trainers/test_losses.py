from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from turngym.trainers.losses import (  # noqa: E402
    AGGREGATIONS,
    aggregate,
    clipped_surrogate,
    epo_smoothing,
    epo_weight,
    kl_penalty,
    llds_penalty,
)


def test_aggregation_modes_known_answers():
    values = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert float(aggregate(values, mask, "token-mean")) == pytest.approx(10 / 4)
    assert float(aggregate(values, mask, "seq-mean-token-sum")) == pytest.approx((6 + 4) / 2)
    assert float(aggregate(values, mask, "seq-mean-token-mean")) == pytest.approx((2 + 4) / 2)
    assert float(aggregate(values, mask, "seq-mean-token-sum-norm")) == pytest.approx(10 / 4)
    assert float(aggregate(values, mask, "seq-mean-token-sum-norm", loss_scale=5)) == pytest.approx(
        2.0
    )
    with pytest.raises(ValueError, match="Unknown aggregation"):
        aggregate(values, mask, "token-sum")
    assert len(AGGREGATIONS) == 4


def test_surrogate_is_policy_gradient_on_policy():
    # At ratio 1 the clipped surrogate's gradient is -A * grad(logp): plain REINFORCE.
    logp = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    adv = torch.tensor([[2.0, -1.0, 0.5]])
    loss, metrics = clipped_surrogate(logp, logp.detach(), adv, torch.ones(1, 3))
    loss.backward()
    assert torch.allclose(logp.grad, -adv / 3)
    assert metrics["clip_frac"] == 0.0 and metrics["approx_kl"] == 0.0


def test_asymmetric_and_per_token_clip_and_dual_clip():
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 1.5, 0.5, 10.0]]))
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    high = torch.tensor([[0.2, 0.4, 0.2, 0.2]])  # per-token ranges (e.g. A2TGPO)
    loss, m = clipped_surrogate(new, old, adv, mask, clip_low=0.2, clip_high=high, dual_clip=3.0)
    # token 0: -1.2; token 1: -1.4; token 2: max(0.5, 0.8) = 0.8; token 3: min(max(10, 1.2), 3) = 3
    assert float(loss) == pytest.approx((-1.2 - 1.4 + 0.8 + 3.0) / 4)
    assert m["dual_clip_frac"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        clipped_surrogate(new, old, adv, mask, dual_clip=1.0)


def test_kl_estimators():
    new = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -2.0])
    assert torch.allclose(kl_penalty(new, ref, "k1"), torch.tensor([0.5, 0.0]))
    k3 = kl_penalty(new, ref, "k3")
    assert float(k3[0]) == pytest.approx(torch.exp(torch.tensor(-0.5)).item() + 0.5 - 1)
    assert float(k3[1]) == 0.0 and bool((kl_penalty(ref, new, "k3") >= 0).all())
    with pytest.raises(ValueError):
        kl_penalty(new, ref, "k2")


@pytest.mark.parametrize(
    ("kappa", "expected"), [((0.5, 1.5), [0.1, 0.0, 0.1]), ((0.0, 2.0), [0.0, 0.0, 0.1])]
)
def test_epo_worked_example(kappa, expected):
    # EPO's released code (docs/methods.md#epo-entropy-smoothing):
    # H_bar = 1.0, H = [0.5, 1.2, 3.0], p = 0.1.
    entropy = torch.tensor([[0.5, 1.2, 3.0]])
    value = epo_smoothing(
        entropy,
        torch.ones(1, 3),
        torch.ones(1, 3),
        kappa_low=kappa[0],
        kappa_high=kappa[1],
        penalty=0.1,
    )
    assert float(value) == pytest.approx(sum(expected) / 3)


def test_epo_code_version_has_no_gradient_and_differentiable_one_does():
    entropy = torch.tensor([[0.2, 3.0]], requires_grad=True)
    hist = torch.ones(1, 2)
    assert not epo_smoothing(entropy, torch.ones(1, 2), hist).requires_grad
    epo_smoothing(entropy, torch.ones(1, 2), hist, differentiable=True).backward()
    assert entropy.grad[0, 0] < 0 < entropy.grad[0, 1]  # pushes both back into the band


def test_epo_weight_schedule():
    assert [round(epo_weight(e), 4) for e in (0, 37, 75, 112, 150)] == [
        1.0,
        0.8746,
        0.8271,
        0.1821,
        0.0398,
    ]


@pytest.mark.parametrize("gate", ["action", "response"])
def test_llds_worked_example(gate):
    # LLDS (docs/methods.md#llds-likelihood-preservation): both gates give
    # 0.2 * (0.2 + 0.4) / 4 = 0.03.
    old = torch.tensor([[-1.0, -2.0, -0.5, -0.3]])
    new = torch.tensor([[-1.2, -1.9, -0.9, -0.3]], requires_grad=True)
    loss = llds_penalty(old, new, torch.ones(1, 4), torch.ones(1, 4), coef=0.2, gate=gate)
    assert float(loss.detach()) == pytest.approx(0.03)
    loss.backward()
    assert torch.allclose(new.grad, torch.tensor([[-0.05, 0.0, -0.05, 0.0]]))


def test_llds_gates_differ_and_spare_negative_advantages():
    old = torch.tensor([[-1.0, -1.0, 0.0, -1.0, -1.0]])
    new = torch.tensor(
        [[-1.5, -1.0, 0.0, -0.2, -1.0]]
    )  # action 1 fell by 0.5, action 2 rose by 0.8
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]])
    adv = torch.ones(1, 5)
    # response gate: total d = 0.5 - 0.8 < 0 -> inactive; action gate: action 1 is active
    assert float(llds_penalty(old, new, adv, mask, gate="response")) == 0.0
    assert float(llds_penalty(old, new, adv, mask, gate="action")) == pytest.approx(0.2 * 0.5 / 4)
    assert float(llds_penalty(old, new, -adv, mask, gate="action")) == 0.0
