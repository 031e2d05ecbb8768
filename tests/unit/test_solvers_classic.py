"""solvers/classic.py: observed order on the Gaussian closed form, the callback contract, image tensors."""
from __future__ import annotations

import math

import pytest
import torch

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.lab.testbeds.reference import karras_sigmas
from schedule_lab.solvers.classic import sample_dpmpp_2m, sample_euler, sample_heun

SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "dpmpp_2m": sample_dpmpp_2m}
# Convergence orders measured on the Gaussian testbed (closed-form endpoint): euler 0.98, heun 2.16, dpmpp_2m 2.24.
ORDER_BOUNDS = {"euler": (0.8, 1.3), "heun": (1.7, 2.6), "dpmpp_2m": (1.7, 2.6)}
# RMSE to the closed-form endpoint at 200 Karras steps (measured: euler 9e-3, heun and dpmpp_2m 2e-4).
TOL_200_STEPS = {"euler": 2e-2, "heun": 1e-3, "dpmpp_2m": 1e-3}


def _gaussian_rmse(sampler, steps, bed, x_T):
    sigmas = karras_sigmas(steps, 0.002, 80.0, dtype=torch.float64)
    x0 = sampler(bed.denoiser, x_T, sigmas)
    return float((x0 - bed.ode_endpoint(x_T, 80.0)).square().mean().sqrt())


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_observed_order_on_gaussian_closed_form(name):
    bed = GaussianTestbed(dim=16, mean=0.3, std=0.7)
    x_T = bed.sample_prior(64, sigma_max=80.0, seed=0)
    e20, e40 = (_gaussian_rmse(SAMPLERS[name], n, bed, x_T) for n in (20, 40))
    order = math.log2(e20 / e40)
    lo, hi = ORDER_BOUNDS[name]
    assert lo <= order <= hi, f"{name}: errors {e20:.3g} -> {e40:.3g}, observed order {order:.2f}"


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_converges_to_closed_form_endpoint(name):
    bed = GaussianTestbed(dim=8, mean=-0.5, std=1.3)
    x_T = bed.sample_prior(16, sigma_max=80.0, seed=1)
    assert _gaussian_rmse(SAMPLERS[name], 200, bed, x_T) < TOL_200_STEPS[name]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_callback_once_per_step_with_contract_keys(name):
    bed = GaussianTestbed(dim=4)
    seen = []
    sigmas = karras_sigmas(7, 0.002, 80.0, dtype=torch.float64)
    SAMPLERS[name](bed.denoiser, bed.sample_prior(3, 80.0), sigmas, callback=seen.append)
    assert [info["i"] for info in seen] == list(range(7))
    assert all(set(info) == {"x", "i", "sigma", "sigma_hat", "denoised"} for info in seen)


@pytest.mark.parametrize(("name", "nfe"), [("euler", 6), ("heun", 11), ("dpmpp_2m", 6)])
def test_model_calls_per_schedule(name, nfe):
    bed = GaussianTestbed(dim=4)
    calls = []

    def model(x, sigma, **kw):
        calls.append(sigma)
        return bed.denoiser(x, sigma)

    SAMPLERS[name](model, bed.sample_prior(2, 80.0), karras_sigmas(6, 0.002, 80.0, dtype=torch.float64))
    assert len(calls) == nfe


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_works_on_image_tensors_with_extra_args(name):
    bed = GaussianTestbed(dim=3 * 4 * 4, mean=0.1, std=0.5)
    x_T = bed.sample_prior(5, 80.0, dtype=torch.float32).reshape(5, 3, 4, 4)
    received = {}

    def model(x, sigma, cond=None):
        assert x.shape == (5, 3, 4, 4) and sigma.shape == (5,)
        received["cond"] = cond
        return bed.denoiser(x, sigma)

    sigmas = karras_sigmas(200, 0.002, 80.0)
    out = SAMPLERS[name](model, x_T, sigmas, extra_args={"cond": "c"}, disable=True)
    assert out.shape == x_T.shape and out.dtype == torch.float32 and received["cond"] == "c"
    expected = bed.ode_endpoint(x_T.double().reshape(5, -1), 80.0).reshape(5, 3, 4, 4)
    assert float((out.double() - expected).square().mean().sqrt()) < 2 * TOL_200_STEPS[name]
