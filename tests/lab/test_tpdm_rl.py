"""TPDM RL pieces (lab/tpdm/rl.py) against the trainer's oracles (docs/tpdm.md, "Trainer")."""
import math

import pytest
import torch

from schedule_lab.lab.tpdm import rl


def test_group_advantages_sum_to_zero_and_are_leave_one_out():
    gen = torch.Generator().manual_seed(0)
    for k, groups in ((2, 4), (3, 5), (4, 1)):
        gids = torch.arange(groups).repeat(k)  # official list repetition [c1..cG, c1..cG, ...]
        rewards = torch.rand(k * groups, generator=gen, dtype=torch.float64) * 3 + 1
        adv = rl.rloo_advantages(rewards, gids)
        for g in range(groups):
            assert abs(float(adv[gids == g].sum())) < 1e-12
        for i in range(len(rewards)):  # the definition, term by term
            others = [float(rewards[j]) for j in range(len(rewards)) if j != i and gids[j] == gids[i]]
            assert float(adv[i]) == pytest.approx(float(rewards[i]) - sum(others) / len(others), abs=1e-12)


def test_advantages_refuse_a_group_of_one():
    with pytest.raises(ValueError, match="k >= 2"):
        rl.rloo_advantages(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 0, 1]))


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.97, 0.999])
def test_reward_strictly_decreasing_in_steps_for_positive_score(gamma):
    steps = torch.arange(1, 201)
    r = rl.discounted_reward(torch.full((200,), 0.7, dtype=torch.float64), steps, gamma)
    assert bool((r[1:] < r[:-1]).all())
    assert float(r[0]) == pytest.approx(0.7, abs=1e-15)  # one step: no discount


def test_step_discount_matches_the_spec_table_and_the_sum():
    # the official launch script's γ = 0.97: the factor is 0.875 (N=10), 0.815 (15), 0.760 (20), 0.683 (28)
    got = rl.step_discount(torch.tensor([10, 15, 20, 28]), 0.97)
    assert [round(float(v), 3) for v in got] == [0.875, 0.815, 0.760, 0.683]
    for n in (1, 7, 33):
        assert float(rl.step_discount(n, 0.9)) == pytest.approx(sum(0.9 ** i for i in range(n)) / n, rel=1e-13)
    assert float(rl.step_discount(12, 1.0)) == 1.0


def _grad_of_loss(new: float, adv: float, clip: float = 0.2) -> float:
    x = torch.tensor([math.log(new)], dtype=torch.float64, requires_grad=True)
    loss, _ = rl.ppo_loss(x, torch.zeros(1, dtype=torch.float64), torch.tensor([adv], dtype=torch.float64), clip)
    loss.backward()
    return float(x.grad)


def test_clipping_zeroes_the_gradient_outside_the_range_on_the_clipped_side():
    # ρ above 1 + ε with Â > 0, and below 1 − ε with Â < 0: the clipped term is the max, constant in θ
    assert _grad_of_loss(1.5, +2.0) == 0.0
    assert _grad_of_loss(0.5, -2.0) == 0.0
    # the other sides keep the unclipped gradient d(−Â ρ)/d log ρ = −Â ρ (the pessimistic bound)
    assert _grad_of_loss(0.5, +2.0) == pytest.approx(-2.0 * 0.5, rel=1e-12)
    assert _grad_of_loss(1.5, -2.0) == pytest.approx(2.0 * 1.5, rel=1e-12)
    # inside the range nothing is clipped
    assert _grad_of_loss(1.1, +2.0) == pytest.approx(-2.0 * 1.1, rel=1e-12)


def test_ppo_statistics_at_ratio_one():
    lp = torch.tensor([-3.0, 1.5, 0.2], dtype=torch.float64)
    loss, stats = rl.ppo_loss(lp, lp.clone(), torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    assert stats == {"ratio": 1.0, "clipfrac": 0.0, "approx_kl": 0.0}
    assert float(loss) == pytest.approx(-(1.0 - 2.0 + 0.5) / 3, abs=1e-15)


def test_masked_steps_contribute_exactly_zero():
    lp = torch.tensor([[-1.0, 2.0], [float("nan"), 0.5], [float("-inf"), float("nan")]])
    mask = torch.tensor([[True, True], [False, True], [False, False]])
    assert rl.sequence_log_prob(lp, mask).tolist() == [-1.0, 2.5]


def test_beta_log_prob_is_the_beta_density():
    from scipy.stats import beta as scipy_beta

    a, b, r = torch.tensor([13.18, 2.0]), torch.tensor([3.72, 5.0]), torch.tensor([0.8, 0.1])
    got = rl.beta_log_prob(a.double(), b.double(), r.double())
    for i in range(2):
        assert float(got[i]) == pytest.approx(scipy_beta.logpdf(float(r[i]), float(a[i]), float(b[i])), rel=1e-10)
    assert rl.clamp_ratio(torch.tensor([0.0, 1.0, 0.5])).tolist() == pytest.approx([1e-3, 1 - 1e-3, 0.5])
