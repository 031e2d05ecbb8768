"""solvers/tada.py's "2m" integrator (docs/defaults.md §8): the closed loop's exact transition with the data
prediction held at DPM-Solver++(2M)'s corrected value. Oracles: DPM-Solver++(2M) / Euler at n_aug 1, exactness for
a constant denoiser, and agreement with the Adams-Bashforth integrator on the same augmented ODE when converged."""
from __future__ import annotations

import pytest
import torch

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.lab.testbeds.reference import karras_sigmas
from schedule_lab.schedules.errors import ScheduleError
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers.classic import sample_dpmpp_2m, sample_euler
from schedule_lab.solvers.tada import sample_tada

F64 = torch.float64
EDM = ModelKind.edm(0.002, 80.0)


def _bed():
    bed = GaussianTestbed(8)
    return bed, bed.sample_prior(6, 80.0, seed=1, dtype=F64)


@pytest.mark.parametrize("steps", [4, 7])
def test_one_variable_2m_is_dpm_solver_pp_2m_and_its_first_order_is_euler(steps):
    bed, x = _bed()
    sig = karras_sigmas(steps, 0.002, 80.0, dtype=F64)
    got = sample_tada(bed.denoiser, x, sig, n_aug=1, detail=1.0, order=2, kind=EDM, integrator="2m")
    assert torch.allclose(got, sample_dpmpp_2m(bed.denoiser, x, sig), atol=1e-9)
    got1 = sample_tada(bed.denoiser, x, sig, n_aug=1, detail=1.0, order=1, kind=EDM, integrator="2m")
    assert torch.allclose(got1, sample_euler(bed.denoiser, x, sig), atol=1e-9)
    # and it is not the Adams-Bashforth integrator (which differs from DPM-Solver++(2M) at n_aug 1)
    ab = sample_tada(bed.denoiser, x, sig, n_aug=1, detail=1.0, order=2, kind=EDM, integrator="ab")
    assert (ab - got).abs().max() > 1e-3


def test_2m_is_exact_for_a_constant_denoiser_however_the_interval_is_split():
    """With x̂ constant the state's exact solution is X − x̂e0 = Φ̂(X(τ) − x̂e0): one step and 16 give the same
    latent on a split schedule (sigmas ending above 0)."""
    c = torch.linspace(-1, 1, 8, dtype=F64)

    def const(x, sigma, **_):
        return c.expand_as(x).clone()

    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0), dtype=F64) * 20.0
    coarse = torch.tensor([20.0, 4.0, 0.5], dtype=F64)
    fine = torch.logspace(torch.log10(torch.tensor(20.0)), torch.log10(torch.tensor(0.5)), 17, dtype=F64)
    for order in (1, 2):
        a = sample_tada(const, x, coarse, extra_args={"seed": 3}, detail=2.0, order=order, kind=EDM, integrator="2m")
        b = sample_tada(const, x, fine, extra_args={"seed": 3}, detail=2.0, order=order, kind=EDM, integrator="2m")
        assert torch.allclose(a, b, atol=1e-8), (a - b).abs().max()
    # a denoiser that is not constant: the split matters (the test can fail)
    bed, _ = _bed()
    a = sample_tada(bed.denoiser, x, coarse, extra_args={"seed": 3}, detail=2.0, kind=EDM, integrator="2m")
    b = sample_tada(bed.denoiser, x, fine, extra_args={"seed": 3}, detail=2.0, kind=EDM, integrator="2m")
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("detail", [0.5, 4.0])
def test_2m_and_adams_bashforth_converge_to_the_same_augmented_ode_endpoint(detail):
    bed, x = _bed()
    dense = karras_sigmas(400, 0.002, 80.0, dtype=F64)
    args = {"extra_args": {"seed": 5}, "detail": detail, "order": 2, "kind": EDM}
    a = sample_tada(bed.denoiser, x, dense, integrator="2m", **args)
    b = sample_tada(bed.denoiser, x, dense, integrator="ab", **args)
    few = sample_tada(bed.denoiser, x, karras_sigmas(6, 0.002, 80.0, dtype=F64), integrator="2m", **args)
    assert (a - b).abs().max() < 2e-3 * x.abs().max() / 80.0 * 10
    assert (few - a).abs().max() > (a - b).abs().max()  # the agreement is convergence, not coincidence


def test_an_unknown_integrator_is_a_clear_error():
    bed, x = _bed()
    with pytest.raises(ScheduleError, match="integrator"):
        sample_tada(bed.denoiser, x, karras_sigmas(4, 0.002, 80.0, dtype=F64), integrator="rk4")
