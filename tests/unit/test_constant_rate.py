"""Constant-rate schedules: closed-form oracles (docs/constant_rate.md) as assertions, plus bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.schedules import ModelKind, ScheduleError, exponential, karras
from schedule_lab.schedules.constant_rate.construct import (
    DEFAULT_SMOOTH,
    DEFAULT_XI,
    Velocity,
    combine,
    constant_rate_sigmas,
    cos_velocity,
    default_velocity,
    gaussian_frechet_velocity,
    power_velocity,
    sample_training_sigmas,
    training_density,
)
from schedule_lab.schedules.constant_rate.measure import measure_velocity

KINDS = {"eps": ModelKind.vp("eps"), "v": ModelKind.vp("v"), "edm": ModelKind.edm(), "flow": ModelKind.flow(3.0)}
F64 = {"dtype": torch.float64}


def _rel(a, b):
    return float(((a - b).abs() / b.abs()).max())


# ---------------------------------------------------------------------------------------------------------------
# analytic oracles
# ---------------------------------------------------------------------------------------------------------------
def test_cos_velocity_gives_the_cosine_schedule():
    kind = ModelKind.vp()
    sigmas = constant_rate_sigmas(cos_velocity(), kind, 12, xi=1.0, **F64)
    theta = torch.acos(kind.to_alpha_bar(sigmas[:-1]).sqrt())  # ᾱ = cos² θ
    steps = theta.diff()
    assert float((steps - steps.mean()).abs().max()) < 5e-5 * float(steps.abs().mean())  # log-linear pieces, 0.02 in λ


@pytest.mark.parametrize("rho", [7.0, 3.0, 1.5])
@pytest.mark.parametrize("n", [2, 10, 37])
def test_power_law_velocity_in_sigma_gives_karras_exactly(rho, n):
    sigmas = constant_rate_sigmas(power_velocity(1 / rho - 1, "sigma"), ModelKind.edm(), n, xi=1.0, **F64)
    ref = karras(n, 0.002, 80.0, rho, dtype=torch.float64)
    assert _rel(sigmas[:-1], ref[:-1]) < 1e-12 and sigmas[-1] == 0


@pytest.mark.parametrize("kind", [ModelKind.edm(), ModelKind.vp()], ids=["edm", "eps"])
def test_one_over_sigma_velocity_gives_log_snr_uniform_steps(kind):
    sigmas = constant_rate_sigmas(power_velocity(-1.0, "sigma"), kind, 9, xi=1.0, **F64)
    ref = exponential(9, kind.sigma_min, kind.sigma_max, dtype=torch.float64)
    assert _rel(sigmas[:-1], ref[:-1]) < 1e-12


def test_one_over_sigma_on_a_flow_model_is_uniform_in_its_log_snr():
    kind = ModelKind.flow(3.0)
    lam = kind.to_lambda(constant_rate_sigmas(power_velocity(-1.0, "sigma"), kind, 9, xi=1.0, **F64)[1:-1])
    steps = lam.diff()  # the first sigma is 1 (λ = −∞), clipped: check the others
    assert float((steps - steps.mean()).abs().max()) < 1e-9


def _frechet_v_lambda(lam, mean_sq, variances):
    """Gaussian Fréchet velocity in λ: v_ᾱ² = (|μ|²/(4ᾱ) + Σ(λ_i − 1)²/(4(ᾱλ_i + 1 − ᾱ)))/d, v_λ = v_ᾱ · 2ᾱ(1 − ᾱ)."""
    a = torch.sigmoid(2 * lam)[:, None]
    v2 = (mean_sq / (4 * a[:, 0]) + ((variances - 1) ** 2 / (4 * (a * variances + 1 - a))).sum(1)) / len(variances)
    return v2.sqrt() * 2 * a[:, 0] * (1 - a[:, 0])


def test_closed_form_gaussian_frechet_velocity_matches_the_estimator():
    gen = torch.Generator().manual_seed(0)
    variances = torch.tensor([0.04, 0.3, 2.0, 6.0], **F64)
    mu = torch.tensor([0.5, -0.2, 0.0, 0.3], **F64)
    data = mu + torch.randn(20000, 4, generator=gen, **F64) * variances.sqrt()
    est = measure_velocity("frechet", ModelKind.vp(), data, points=24, seed=1)
    exact = _frechet_v_lambda(est.lam, float(mu.square().sum()), variances)
    assert _rel(est.values, exact) < 0.05
    closed = gaussian_frechet_velocity(variances, float(mu.square().sum()))
    # the tabulated closed form agrees with the formula (float64 round-off of 1 − ᾱ at the clean end)
    assert _rel(closed.values[::64], _frechet_v_lambda(closed.lam[::64], float(mu.square().sum()), variances)) < 1e-5


def test_vx_with_the_exact_gaussian_denoiser_matches_a_1d_quadrature():
    s, mean = 0.5, 0.3
    bed = GaussianTestbed(16, mean=mean, std=s)
    gen = torch.Generator().manual_seed(0)
    data = mean + s * torch.randn(4000, 16, generator=gen, **F64)
    kind = ModelKind.edm(0.002, 80.0)
    est = measure_velocity("vx", kind, data, model=bed.denoiser, points=48, seed=3, batch=4000)

    def v_lambda(lam):  # x̂₀ − μ = a (s z + σ ε), a = s²/(s² + σ²); v_λ = σ |d x̂₀/dσ| per dimension
        sig = math.exp(-lam)
        a = s * s / (s * s + sig * sig)
        da = -2 * sig * s * s / (s * s + sig * sig) ** 2
        return sig * math.sqrt(da * da * s * s + (da * sig + a) ** 2)

    exact = torch.tensor([v_lambda(x) for x in est.lam.tolist()], **F64)
    assert _rel(est.values, exact) < 0.03
    total = quad(v_lambda, float(est.lam[0]), float(est.lam[-1]), limit=200)[0]
    assert float(torch.trapezoid(est.values, est.lam)) == pytest.approx(total, rel=0.02)


def test_veps_is_the_noise_implied_by_the_denoiser():
    bed = GaussianTestbed(8, std=0.5)
    data = 0.5 * torch.randn(2000, 8, generator=torch.Generator().manual_seed(0), **F64)
    kind = ModelKind.edm()
    vx = measure_velocity("vx", kind, data, bed.denoiser, points=16, batch=2000)
    ve = measure_velocity("veps", kind, data, bed.denoiser, points=16, batch=2000)
    # ε̂ = (x − x̂₀)/σ changes most at low noise, x̂₀ at high noise (docs/constant_rate.md, "Benchmark")
    assert ve.values[-1] / ve.values[0] > vx.values[-1] / vx.values[0]


# ---------------------------------------------------------------------------------------------------------------
# invariances and construction
# ---------------------------------------------------------------------------------------------------------------
def _bump(lam):
    return 1.0 + 3.0 * torch.exp(-(lam - 1.0) ** 2)


@pytest.mark.parametrize("xi", [1.0, 1.5, 3.0])
def test_scaling_v_by_a_constant_leaves_the_schedule_unchanged(xi):
    v = Velocity.from_function(_bump)
    scaled = Velocity(v.lam, 123.4 * v.values)
    kind = ModelKind.vp()
    a = constant_rate_sigmas(v, kind, 10, xi=xi, **F64)
    b = constant_rate_sigmas(scaled, kind, 10, xi=xi, **F64)
    assert torch.allclose(a, b, rtol=1e-12, atol=0)


def test_xi_one_schedule_does_not_depend_on_the_coordinate_and_xi_above_one_does():
    as_lambda = Velocity.from_function(_bump, "lambda")
    as_sigma = Velocity.from_function(lambda s: _bump(-torch.log(s)) / s, "sigma")
    as_alpha = Velocity.from_function(lambda a: _bump(0.5 * torch.logit(a)) / (2 * a * (1 - a)), "alpha_bar")
    kind = ModelKind.edm()
    ref = constant_rate_sigmas(as_lambda, kind, 12, xi=1.0, coord="lambda", **F64)
    for vel, coord in ((as_sigma, "sigma"), (as_alpha, "alpha_bar")):
        assert _rel(constant_rate_sigmas(vel, kind, 12, xi=1.0, coord=coord, **F64)[:-1], ref[:-1]) < 1e-6
    xi_a = constant_rate_sigmas(as_alpha, kind, 12, xi=1.5, coord="alpha_bar", **F64)
    xi_s = constant_rate_sigmas(as_sigma, kind, 12, xi=1.5, coord="sigma", **F64)
    assert _rel(xi_a[:-1], xi_s[:-1]) > 0.05


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("steps", [1, 2, 3, 10, 50])
def test_schedule_is_monotone_with_exact_endpoints_for_every_kind(name, steps):
    kind = KINDS[name]
    for vel in (default_velocity(kind), Velocity.from_function(_bump)):
        sigmas = constant_rate_sigmas(vel, kind, steps, xi=DEFAULT_XI, smooth=DEFAULT_SMOOTH)
        assert sigmas.dtype == torch.float32 and len(sigmas) == steps + 1 and sigmas[-1] == 0
        assert bool((sigmas[1:] < sigmas[:-1]).all())
        assert float(sigmas[0]) == pytest.approx(kind.sigma_max, rel=1e-7)
        if steps > 1:
            assert float(sigmas[-2]) == pytest.approx(kind.sigma_min, rel=1e-7)


def test_cos_velocity_with_xi_two_in_alpha_bar_is_the_exponential_schedule():
    # w = v_ᾱ² dᾱ/dλ = (2√(ᾱ(1−ᾱ)))² / (2ᾱ(1−ᾱ)) = 2: constant in λ
    kind = ModelKind.vp()
    sigmas = constant_rate_sigmas(cos_velocity(), kind, 10, xi=2.0, **F64)  # tabulated v: O(h²) = 1e-5
    assert _rel(sigmas[:-1], exponential(10, kind.sigma_min, kind.sigma_max, dtype=torch.float64)[:-1]) < 5e-5


def test_two_steps_return_the_endpoints():
    kind = ModelKind.vp()
    sigmas = constant_rate_sigmas(cos_velocity(), kind, 2, dtype=torch.float64)
    assert sigmas.tolist() == [kind.sigma_max, kind.sigma_min, 0.0]


def test_a_velocity_of_zero_is_floored_to_log_snr_uniform_steps():
    zero = Velocity(torch.linspace(-5, 8, 20, **F64), torch.zeros(20, **F64))
    sigmas = constant_rate_sigmas(zero, ModelKind.edm(), 6, xi=1.0, **F64)
    assert torch.isfinite(sigmas).all()
    assert _rel(sigmas[:-1], exponential(6, 0.002, 80.0, dtype=torch.float64)[:-1]) < 1e-12


def test_unit_variance_gaussian_data_has_zero_frechet_velocity():
    v = gaussian_frechet_velocity(torch.ones(8, **F64))
    assert float(v.values.abs().max()) < 1e-12


def test_data_free_default_is_the_point_mass_frechet_velocity_which_equals_cos():
    for kind in KINDS.values():
        d, c = default_velocity(kind), cos_velocity()
        ratio = d.values / c.values
        assert float(ratio.max() / ratio.min()) == pytest.approx(1.0, abs=1e-5)  # round-off of 1 − ᾱ
        assert d.info["model_calls"] == 0


def test_combine_normalises_the_weights_and_each_velocity():
    vx = Velocity.from_function(_bump)
    cos = cos_velocity()
    a = combine([(vx, 1.0), (cos, 1.0)])
    b = combine([(Velocity(vx.lam, 50 * vx.values), 3.0), (cos, 3.0)])
    assert torch.allclose(a.values, b.values, rtol=1e-12)
    alone = combine([(vx, 2.0)])
    kind = ModelKind.vp()
    assert _rel(constant_rate_sigmas(alone, kind, 10, xi=1.0, **F64)[:-1],
                constant_rate_sigmas(vx, kind, 10, xi=1.0, **F64)[:-1]) < 1e-6


def test_smoothing_keeps_power_laws_exact():
    v = power_velocity(1 / 7 - 1, "sigma")
    sigmas = constant_rate_sigmas(v, ModelKind.edm(), 10, xi=1.0, smooth=1.0, **F64)
    assert _rel(sigmas[:-1], karras(10, 0.002, 80.0, dtype=torch.float64)[:-1]) < 1e-9


# ---------------------------------------------------------------------------------------------------------------
# training density
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["eps", "edm", "flow"])
def test_training_density_integrates_to_one_and_its_cdf_matches_the_schedule(name):
    kind = KINDS[name]
    vel = Velocity.from_function(_bump)
    n = 6
    sigmas = constant_rate_sigmas(vel, kind, n, xi=1.5, **F64)[:-1]
    # trapezoid in σ on 400 001 points, geometric in σ (fine at both ends of every kind's range)
    grid = torch.exp(torch.linspace(math.log(kind.sigma_min), math.log(kind.sigma_max), 400001, **F64))
    if name == "flow":  # resolve the cut-off at λ = −10 (σ = 0.99995) and the 1/(s(1 − s)) growth below it
        grid = torch.unique(torch.cat([grid, 1 - torch.exp(torch.linspace(math.log(1e-7), math.log(0.5), 200001,
                                                                         **F64))]))
    p = training_density(vel, kind, grid, xi=1.5)
    mass = torch.cat([torch.zeros(1, **F64), torch.cumulative_trapezoid(p, grid)])
    above = mass[-1] - mass
    assert float(mass[-1]) == pytest.approx(1.0, abs=2e-4)
    for i in range(1, n - 1):  # mass above σ_i is i/(n − 1)
        at = float(np.interp(float(sigmas[i]), grid.numpy(), above.numpy()))
        assert at == pytest.approx(i / (n - 1), abs=2e-4)
    outside = torch.tensor([kind.sigma_max * 2 if name != "flow" else 1.0, kind.sigma_min / 2], **F64)
    assert training_density(vel, kind, outside, xi=1.5).tolist() == [0.0, 0.0]


def test_training_samples_follow_the_schedule_quantiles():
    vel, kind = cos_velocity(), ModelKind.vp()
    draws = sample_training_sigmas(vel, kind, 20000, generator=torch.Generator().manual_seed(0))
    sigmas = constant_rate_sigmas(vel, kind, 5, **F64)
    above = (draws[:, None] >= sigmas[None, 1:4]).double().mean(0)
    assert torch.allclose(above, torch.tensor([0.25, 0.5, 0.75], **F64), atol=0.015)


# ---------------------------------------------------------------------------------------------------------------
# measured velocities on the trained model: stability across calibration seeds
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def edm_model_and_data():
    from schedule_lab.lab.testbeds.digits import load_digits_split
    from schedule_lab.lab.testbeds.models import load_edm_mlp

    return load_edm_mlp(), load_digits_split().train


@pytest.mark.parametrize("measure", ["vx", "veps", "frechet"])
def test_schedule_is_stable_across_calibration_seeds(edm_model_and_data, measure):
    model, train = edm_model_and_data
    kind = ModelKind.vp()
    lams = []
    for seed in (11, 12):
        data = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:256]]
        vel = measure_velocity(measure, kind, data, model, points=32, seed=seed, batch=256)
        lams.append(kind.to_lambda(constant_rate_sigmas(vel, kind, 10, smooth=DEFAULT_SMOOTH, **F64)[:-1]))
    spacing = lams[0].diff().abs()
    local = torch.minimum(torch.cat([spacing[:1], spacing]), torch.cat([spacing, spacing[-1:]]))
    assert bool(((lams[0] - lams[1]).abs() < 0.1 * local).all()), (lams[0] - lams[1]).abs() / local


def test_measure_reports_its_model_calls(edm_model_and_data):
    model, train = edm_model_and_data
    vel = measure_velocity("vx", ModelKind.vp(), train[:100], model, points=8, batch=40)
    assert vel.info["model_calls"] == 8 * 3 and vel.info["samples"] == 100 and len(vel.lam) == 7


def test_progress_can_cancel_a_measurement(edm_model_and_data):
    model, train = edm_model_and_data
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure_velocity("vx", ModelKind.vp(), train[:16], model, points=8, progress=progress)
    assert seen == [(1, 8), (2, 8), (3, 8)]


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------
def test_unknown_measure_is_refused_by_name():
    with pytest.raises(ScheduleError, match=r"measure='fid2'.*frechet, vx, veps"):
        measure_velocity("fid2", ModelKind.vp(), torch.zeros(8, 4))


@pytest.mark.parametrize("xi", [0, -1.0, float("nan"), float("inf"), True, "a"])
def test_xi_must_be_positive(xi):
    with pytest.raises(ScheduleError, match=r"xi=.*must be a finite number > 0"):
        constant_rate_sigmas(cos_velocity(), ModelKind.vp(), 10, xi=xi)


def test_too_few_samples_for_frechet_name_the_count_and_the_fix():
    with pytest.raises(ScheduleError, match=r"samples: 10 samples are too few.*16-dimensional.*at least 17"):
        measure_velocity("frechet", ModelKind.vp(), torch.randn(10, 16))


def test_a_latent_that_does_not_fit_the_model_is_refused():
    def model(x, sigma):
        return x[:, :3]

    with pytest.raises(ScheduleError, match="does not fit the model"):
        measure_velocity("vx", ModelKind.vp(), torch.randn(8, 4), model, points=4)


def test_vx_without_a_model_and_bad_data_are_refused():
    with pytest.raises(ScheduleError, match="needs the model"):
        measure_velocity("vx", ModelKind.vp(), torch.randn(8, 4))
    with pytest.raises(ScheduleError, match="data must be a float tensor"):
        measure_velocity("frechet", ModelKind.vp(), torch.zeros(8, dtype=torch.int64))
    with pytest.raises(ScheduleError, match="points=2"):
        measure_velocity("frechet", ModelKind.vp(), torch.randn(64, 4), points=2)


def test_nan_from_the_model_is_refused():
    with pytest.raises(ScheduleError, match="NaN"):
        measure_velocity("vx", ModelKind.vp(), torch.randn(8, 4), lambda x, s: x * float("nan"), points=4)
