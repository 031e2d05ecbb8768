"""solvers/tada.py: its oracles (reduction to Euler, the float64 algebra, the paper's tabulated values) and the
ComfyUI edge cases of docs/tada.md ("ComfyUI notes")."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from schedule_lab.kernels.augmented import ab_update_, lower_triangular_apply_
from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.lab.testbeds.reference import karras_sigmas
from schedule_lab.schedules.errors import ScheduleError
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import tada_coefficients as tc
from schedule_lab.solvers.classic import sample_euler
from schedule_lab.solvers.tada import (
    SEED_OFFSET,
    default_order,
    initial_state,
    sample_tada,
    tada_noise,
    time_grid,
)

F64 = torch.float64


def _karras(n, dtype=F64):
    return karras_sigmas(n, 0.002, 80.0, dtype=dtype)


def _flow_model(bed):
    """Exact rectified-flow denoiser E[x0 | (1−s)x0 + s n] for the Gaussian testbed's data N(μ, v), finite at s = 1."""
    def model(x, sigma, **_):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x)
        mu, v = bed.mean.to(x).reshape(x.shape[1:]), bed.std**2
        return mu + (1 - s) * v / ((1 - s) ** 2 * v + s**2) * (x - (1 - s) * mu)
    return model


def _flow_euler(model, x, sigmas):
    """Flow-matching Euler: x ← x + (s_next − s)·v with v = (x − D)/s."""
    for i in range(len(sigmas) - 1):
        d = model(x, sigmas[i] * x.new_ones([x.shape[0]]))
        x = x + (sigmas[i + 1] - sigmas[i]) * (x - d) / sigmas[i]
    return x


class _TriModal:
    """Exact denoiser of the 1-D mixture of the spec's toy (modes −1, .2, 1; sd .05), per pixel."""

    means = torch.tensor([-1.0, 0.2, 1.0], dtype=F64)
    sd = 0.05

    def __call__(self, x, sigma, **_):
        var = self.sd**2 + sigma.reshape(-1, *([1] * (x.ndim - 1)))[..., None] ** 2
        logits = -(x[..., None] - self.means) ** 2 / (2 * var)
        post = self.means + (x[..., None] - self.means) * self.sd**2 / var
        return (torch.softmax(logits, -1) * post).sum(-1)


# ---- oracles: reduction to Euler -----------------------------------------------------------------------------

@pytest.mark.parametrize("detail", [0.3, 1.0, 5.0])
def test_n_aug_1_order_1_equals_euler_on_ve_sigmas(detail):
    bed = GaussianTestbed(dim=16, mean=0.3, std=0.5)
    x = bed.sample_prior(8, 80.0, seed=0)
    out = sample_tada(bed, x, _karras(10), n_aug=1, order=1, detail=detail)
    assert (out - sample_euler(bed, x, _karras(10))).abs().max() < 1e-12


def test_n_aug_1_order_1_equals_flow_matching_euler_from_sigma_one():
    bed = GaussianTestbed(dim=16, mean=0.3, std=0.5)
    model = _flow_model(bed)
    kind = ModelKind.flow(shift=3.0)
    sigmas = torch.cat([kind.from_flow_time(torch.linspace(1, 0, 11, dtype=F64)[:-1]), torch.zeros(1, dtype=F64)])
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    out = sample_tada(model, x, sigmas, n_aug=1, order=1, kind=kind)
    assert (out - _flow_euler(model, x, sigmas)).abs().max() < 1e-12


@pytest.mark.parametrize("integrator", ["ab", "2m"])
def test_flow_kind_on_the_same_snr_grid_equals_ve_run(integrator):
    bed = GaussianTestbed(dim=16, mean=0.3, std=0.5)
    x = bed.sample_prior(8, 80.0, seed=0)
    sigmas = _karras(8)
    # same detail, order and integrator on both (the per-NFE defaults differ by kind and list: docs/defaults.md)
    ve = sample_tada(bed, x, sigmas, extra_args={"seed": 3}, detail=1.0, order=default_order(None),
                     integrator=integrator)
    flow = sample_tada(_flow_model(bed), x / 81.0, sigmas / (1 + sigmas), extra_args={"seed": 3},
                       kind=ModelKind.flow(), detail=1.0, order=default_order(None), integrator=integrator)
    assert (ve - flow).abs().max() < 1e-9


# ---- oracles: the float64 algebra ----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3])
def test_first_order_open_loop_step_equals_exact_closed_loop_step(n):
    rng = np.random.default_rng(0)
    x, xhat, t0, t1 = rng.normal(size=n), 0.7, 0.35, 0.6
    a, p = tc.force_coefficients(t0, n)
    force = a * xhat - p @ x
    open_loop = tc.phi_a(t1 - t0, n) @ x + tc.ab_coefficients([t0], t1, n)[0] * force
    closed_loop = xhat * np.eye(n)[0] + tc.phi_hat(t1, t0, n) @ (x - xhat * np.eye(n)[0])
    assert np.abs(open_loop - closed_loop).max() < 1e-12


@pytest.mark.parametrize("n", [1, 2, 3])
def test_phi_hat_is_identity_at_equal_times(n):
    assert np.abs(tc.phi_hat(0.4, 0.4, n) - np.eye(n)).max() < 1e-14


@pytest.mark.parametrize("n", [1, 2, 3])
def test_phi_hat_composes(n):
    assert np.abs(tc.phi_hat(0.9, 0.5, n) @ tc.phi_hat(0.5, 0.1, n) - tc.phi_hat(0.9, 0.1, n)).max() < 1e-12


@pytest.mark.parametrize("n", [2, 3])
def test_phi_hat_matches_direct_d_matrix_formula(n):
    direct = tc.d_matrix(0.2, n) @ np.linalg.inv(tc.d_matrix(0.7, n))
    assert np.abs(tc.phi_hat(0.8, 0.3, n) - direct).max() < 1e-13


@pytest.mark.parametrize("n", [1, 2, 3])
def test_phi_hat_agrees_with_solve_ivp_of_the_closed_loop(n):
    a_shift = np.eye(n, k=1)

    def closed_loop(t, x):
        s = 1.0 - t
        force = -math.factorial(n) / s**n * sum(x[j] * s**j / math.factorial(j) for j in range(n))
        return a_shift @ x + np.eye(n)[-1] * force

    cols = [solve_ivp(closed_loop, (0.1, 0.85), e, rtol=1e-12, atol=1e-14).y[:, -1] for e in np.eye(n)]
    assert np.abs(np.stack(cols, 1) - tc.phi_hat(0.85, 0.1, n)).max() < 1e-8


@pytest.mark.parametrize(("n", "expected"), [(2, [0.09, 0.6]), (3, [0.027, 0.27, 1.8])])
def test_mean_coefficient_at_t_0_3(n, expected):
    assert np.abs(tc.mean_coefficient(0.3, n) - expected).max() < 1e-13


@pytest.mark.parametrize("n", [1, 2, 3])
def test_reweighting_is_unbiased(n):
    assert abs(tc.reweighting(0.45, n, 2.0) @ tc.mean_coefficient(0.45, n) - 1.0) < 1e-12


@pytest.mark.parametrize(("n", "expected"), [(2, [49.0, 4.045, 0.2425, 5.066e-3]),
                                              (3, [16.17, 1.213, 0.04039, 1.676e-4])])
def test_sigma_eff_spec_values_with_detail_1(n, expected):
    got = tc.sigma_eff(np.array([0.01, 0.1, 0.5, 0.9]), n, 1.0)
    assert np.allclose(got, expected, rtol=1e-3)


def test_sigma_eff_n2_matches_closed_form():
    t, k = np.linspace(0.02, 0.98, 25), 2.5
    closed = np.sqrt(k * (1 - t) ** 4 / (t**2 * (4 + k * t**2)))
    assert np.allclose(tc.sigma_eff(t, 2, k), closed, rtol=1e-12)


def test_sigma_eff_n1_is_flow_matching_sigma():
    t, k = np.linspace(0.02, 0.98, 25), 3.0
    assert np.allclose(tc.sigma_eff(t, 1, k), np.sqrt(k) * (1 - t) / t, rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sigma_eff_is_strictly_decreasing(n):
    assert (np.diff(tc.sigma_eff(np.linspace(1e-4, 1 - 1e-4, 2001), n, 0.7)) < 0).all()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_t_of_lambda_inverts_sigma_eff(n):
    sigmas = np.geomspace(1e-3, 500.0, 40)
    t = tc.t_of_lambda(-np.log(sigmas), n, 1.7)
    assert np.allclose(tc.sigma_eff(t, n, 1.7), sigmas, rtol=1e-12)


def test_time_grid_reproduces_spec_example():
    ts = time_grid(torch.tensor([80.0, 1.0, 0.002, 0.0], dtype=F64), n_aug=2, detail=1.0)
    assert np.allclose(ts, [0.00617, 0.2666, 0.9357, 1.0], atol=5e-5)


def test_detail_is_the_variance_of_the_last_prior_variable():
    assert np.array_equal(tc.covariance(0.0, 3, 4.0), np.diag([1.0, 1.0, 4.0]))


def test_flow_start_at_sigma_one_puts_sqrt_detail_times_the_noise_in_the_last_variable():
    x = torch.randn(1, 50_000, generator=torch.Generator().manual_seed(3), dtype=F64)
    state = initial_state(x, 1.0, 0.0, 2, 4.0, tada_noise(x.shape, 2, 0), torch.empty(2, x.numel(), dtype=F64))
    assert (state[1] - 2.0 * x.reshape(-1)).abs().max() < 1e-14


def test_projection_limit_at_t0_is_continuous():
    g0, c0 = tc.projections(0.0, 3, 4.0)
    g, c = tc.projections(1e-9, 3, 4.0)
    assert np.abs(g - g0).max() + np.abs(c - c0).max() < 1e-7


@pytest.mark.parametrize(("n", "q"), [(1, 3), (2, 2), (2, 3), (3, 3)])
def test_adams_bashforth_weights_integrate_polynomial_forces_exactly(n, q):
    nodes, t1 = [0.42, 0.3, 0.21][:q], 0.6
    force = np.polynomial.Polynomial([0.3, -1.2, 2.0][:q])
    weights = tc.ab_coefficients(nodes, t1, n)
    exact = [quad(lambda tau, a=a: (t1 - tau) ** (n - 1 - a) / math.factorial(n - 1 - a) * force(tau),
                  nodes[0], t1, epsabs=1e-15)[0] for a in range(n)]
    assert np.abs(force(np.array(nodes)) @ weights - exact).max() < 1e-13


def test_adams_bashforth_first_order_weights_are_taylor_coefficients():
    h = 0.25
    assert np.allclose(tc.ab_coefficients([0.5], 0.5 + h, 3)[0], [h**3 / 6, h**2 / 2, h], rtol=1e-14)


# ---- kernels ------------------------------------------------------------------------------------------------

def test_ab_update_in_place_equals_dense_product():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(5, 7, generator=gen, dtype=F64)
    w = torch.randn(2, 5, generator=gen, dtype=F64).triu(1)
    dense = (torch.eye(2, 5, dtype=F64) + w) @ z
    assert (ab_update_(z.clone(), 2, w)[:2] - dense).abs().max() < 1e-14


def test_lower_triangular_apply_in_place_equals_product():
    gen = torch.Generator().manual_seed(1)
    x, lower = torch.randn(3, 7, generator=gen, dtype=F64), torch.randn(3, 3, generator=gen, dtype=F64).tril()
    assert (lower_triangular_apply_(x.clone(), lower) - lower @ x).abs().max() < 1e-14


# ---- initial state --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3])
def test_initial_state_reproduces_yhat_to_machine_precision(n):
    x = 80.0 * torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    t0 = float(time_grid([80.0], n, 2.0)[0])
    state = initial_state(x, 80.0, t0, n, 2.0, tada_noise(x.shape, n, 0), torch.empty(n, x.numel(), dtype=F64))
    g, _ = tc.projections(t0, n, 2.0)
    assert (torch.as_tensor(g) @ state - x.reshape(-1) / 80.0).abs().max() < 1e-14


def test_first_model_input_is_the_incoming_latent():
    bed = GaussianTestbed(dim=16)
    seen = []
    x = bed.sample_prior(4, 80.0, seed=0)
    sample_tada(bed, x, _karras(4), n_aug=3, callback=seen.append)
    assert (seen[0]["x"] - x).abs().max() < 1e-12


def _initial_draws(n, sigma0, detail, count=200_000):
    t0 = float(time_grid([sigma0], n, detail)[0])
    x = sigma0 * torch.randn(1, count, generator=torch.Generator().manual_seed(11), dtype=F64)
    state = initial_state(x, sigma0, t0, n, detail, tada_noise(x.shape, n, 5), torch.empty(n, count, dtype=F64))
    return t0, x.reshape(-1) / sigma0, state.numpy()


@pytest.mark.parametrize("n", [2, 3])
def test_initial_state_has_the_prior_covariance_over_draws(n):
    t0, _, state = _initial_draws(n, 3.0, 2.0)
    cov = tc.covariance(t0, n, 2.0)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.abs(np.cov(state) - cov).max() / scale.max() < 0.02


@pytest.mark.parametrize("n", [2, 3])
def test_initial_residual_has_the_conditional_covariance_and_is_independent_of_yhat(n):
    t0, yhat, state = _initial_draws(n, 3.0, 2.0)
    g, c = tc.projections(t0, n, 2.0)
    residual = state - np.outer(c, yhat.numpy())
    joint = np.cov(np.vstack([residual, yhat.numpy()]))
    target = np.zeros((n + 1, n + 1))
    target[:n, :n] = tc.covariance(t0, n, 2.0) - np.outer(c, c)
    target[n, n] = 1.0
    assert np.abs(joint - target).max() < 0.02 * np.abs(target).max()


# ---- distribution -----------------------------------------------------------------------------------------------

def test_output_std_converges_to_true_std_on_gaussian_data():
    bed = GaussianTestbed(dim=16, mean=0.0, std=0.5)
    x = bed.sample_prior(20000, 80.0, seed=2)  # 320k values: the std is known to ±0.0006
    errors = [abs(float(sample_tada(bed, x, _karras(nfe), extra_args={"seed": 7}, order=3).std()) - 0.5)
              for nfe in (8, 20, 60)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.003, errors


def test_output_mean_is_the_data_mean_on_gaussian_data():
    bed = GaussianTestbed(dim=16, mean=0.3, std=0.5)
    out = sample_tada(bed, bed.sample_prior(2000, 80.0, seed=2), _karras(8), extra_args={"seed": 7})
    assert abs(float(out.mean()) - 0.3) < 0.01


def test_diversity_for_a_fixed_initial_noise_rises_with_detail():
    x = torch.full((2000, 1), 0.3 * 80.0, dtype=F64)  # one y0, many extra-noise draws (pixels)
    spread = [float(sample_tada(_TriModal(), x, _karras(10), detail=k, order=3, extra_args={"seed": 2}).std())
              for k in (0.01, 0.25, 1.0, 4.0, 16.0)]
    assert all(np.diff(spread) > 0), spread


# ---- noise, seeds -------------------------------------------------------------------------------------------------

def test_extra_noise_is_uncorrelated_with_comfyui_initial_noise():
    shape, seed = (2, 4, 64, 80), 1234
    with torch.random.fork_rng():  # ComfyUI's prepare_noise, without touching the global RNG of other tests
        comfy = torch.randn(shape, generator=torch.manual_seed(seed), device="cpu").reshape(-1)
    extra = tada_noise(shape, 3, seed).reshape(3, -1)
    corr = torch.corrcoef(torch.vstack([comfy, extra]))[0, 1:]
    assert corr.abs().max() < 5 / math.sqrt(comfy.numel())


def test_raw_seed_would_repeat_the_initial_noise():
    shape, seed = (1, 4, 8, 8), 99
    with torch.random.fork_rng():
        comfy = torch.randn(shape, generator=torch.manual_seed(seed), device="cpu")
    assert torch.equal(tada_noise(shape, 2, seed, seed_offset=0)[0], comfy)


def test_extra_noise_is_float32_on_the_cpu():
    noise = tada_noise((1, 4, 8, 8), 2, 5)
    assert (noise.dtype, noise.device.type) == (torch.float32, "cpu")


def test_same_seed_reproduces_the_sample():
    bed = GaussianTestbed(dim=16)
    x = bed.sample_prior(4, 80.0, seed=0)
    runs = [sample_tada(bed, x, _karras(6), extra_args={"seed": 42}) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_another_seed_gives_another_sample():
    bed = GaussianTestbed(dim=16)
    x = bed.sample_prior(4, 80.0, seed=0)
    a, b = (sample_tada(bed, x, _karras(6), extra_args={"seed": s}) for s in (42, 43))
    assert (a - b).abs().max() > 1e-3


def test_no_seed_is_deterministic():
    bed = GaussianTestbed(dim=16)
    x = bed.sample_prior(4, 80.0, seed=0)
    assert torch.equal(sample_tada(bed, x, _karras(6)), sample_tada(bed, x, _karras(6)))


def test_seed_near_the_top_of_the_64_bit_range_wraps_modulo_two_to_the_64():
    wrapped = (2**64 - 1 + SEED_OFFSET) % 2**64  # = SEED_OFFSET - 1
    direct = torch.randn((2, 3), generator=torch.Generator().manual_seed(wrapped), dtype=torch.float32)
    assert torch.equal(tada_noise((3,), 2, 2**64 - 1), direct)


# ---- ComfyUI edge cases -------------------------------------------------------------------------------------------

def test_split_sigmas_with_n_aug_1_equal_euler_stopped_at_the_same_sigma():
    bed = GaussianTestbed(dim=16, mean=0.3, std=0.5)
    x, sigmas = bed.sample_prior(8, 80.0, seed=0), _karras(10)[:6]
    out = sample_tada(bed, x, sigmas, n_aug=1, order=1)
    assert (out - sample_euler(bed, x, sigmas)).abs().max() < 1e-12


def test_split_sigmas_return_a_latent_with_the_marginal_std_at_the_last_sigma():
    bed = GaussianTestbed(dim=16, mean=0.0, std=0.5)
    sigmas = _karras(40)
    sigmas = sigmas[sigmas >= 1.0]
    out = sample_tada(bed, bed.sample_prior(2000, 80.0, seed=4), sigmas, extra_args={"seed": 1})
    assert abs(float(out.std()) - math.sqrt(0.25 + float(sigmas[-1]) ** 2)) < 0.02


@pytest.mark.parametrize("integrator,steps", [("ab", 20), ("2m", 80)])
def test_img2img_start_from_a_noised_data_sample_keeps_the_data_distribution(integrator, steps):
    """The initial state conditioned on an img2img latent (the subject here) keeps the data's std. 2m is
    DPM-Solver++(2M) on TADA's state, whose 10-step error on this Gaussian inflates the std by 4.6 % like
    DPM-Solver++(2M)'s own (0.523): it is checked where its discretisation error is below the tolerance."""
    bed = GaussianTestbed(dim=16, mean=0.0, std=0.5)
    sigmas = _karras(steps)
    sigmas = sigmas[sigmas <= 2.0]  # what KSampler's denoise < 1 hands over
    image = bed.sample_prior(20000, 0.0, seed=8)
    x = image + sigmas[0] * torch.randn(image.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    out = sample_tada(bed, x, sigmas, extra_args={"seed": 1}, integrator=integrator)
    assert abs(float(out.std()) - 0.5) < 0.005


def test_flow_start_at_sigma_one_is_the_limit_of_starts_just_below_one():
    model = _flow_model(GaussianTestbed(dim=16, mean=0.3, std=0.5))
    kind = ModelKind.flow(shift=3.0)
    sigmas = torch.cat([kind.from_flow_time(torch.linspace(1, 0, 9, dtype=F64)[:-1]), torch.zeros(1, dtype=F64)])
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    near = sigmas.clone()
    near[0] = 1 - 1e-9
    at_one = sample_tada(model, x, sigmas, kind=kind, extra_args={"seed": 1})
    assert (at_one - sample_tada(model, x, near, kind=kind, extra_args={"seed": 1})).abs().max() < 1e-5


def test_batch_keeps_its_shape_and_the_model_sees_one_sigma_per_item():
    bed = GaussianTestbed(dim=16)
    shapes = []

    def model(x, sigma, **kw):
        shapes.append(tuple(sigma.shape))
        return bed(x, sigma)

    out = sample_tada(model, bed.sample_prior(5, 80.0, seed=0), _karras(4))
    assert out.shape == (5, 16) and set(shapes) == {(5,)}


def test_five_dimensional_video_latent_keeps_its_shape():
    bed = GaussianTestbed(dim=4 * 3 * 6 * 5, mean=0.1, std=0.5)
    x = 80.0 * torch.randn(2, 4, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    out = sample_tada(bed, x, _karras(5, torch.float32), n_aug=3)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_latent_returns_its_dtype_close_to_float32(dtype):
    bed = GaussianTestbed(dim=16, mean=0.3, std=0.5)
    x = bed.sample_prior(8, 80.0, seed=0, dtype=torch.float32)
    ref = sample_tada(bed, x, _karras(8, torch.float32), extra_args={"seed": 1})
    out = sample_tada(bed, x.to(dtype), _karras(8, torch.float32), extra_args={"seed": 1})
    assert out.dtype == dtype and (out.float() - ref).abs().max() < 0.05


def test_callback_once_per_step_with_contract_keys():
    bed = GaussianTestbed(dim=4)
    seen = []
    sample_tada(bed, bed.sample_prior(3, 80.0), _karras(7), callback=seen.append)
    assert [info["i"] for info in seen] == list(range(7))
    assert all(set(info) == {"x", "i", "sigma", "sigma_hat", "denoised"} for info in seen)


@pytest.mark.parametrize("split", [False, True])
def test_one_model_call_per_step(split):
    bed = GaussianTestbed(dim=4)
    calls = []
    sigmas = _karras(9)[:6] if split else _karras(9)

    def model(x, sigma, **kw):
        calls.append(1)
        return bed(x, sigma)

    sample_tada(model, bed.sample_prior(3, 80.0), sigmas, order=3)
    assert len(calls) == len(sigmas) - 1


def test_single_step_schedule_returns_the_first_data_prediction():
    bed = GaussianTestbed(dim=4, mean=0.2)
    x = bed.sample_prior(3, 80.0)
    sigmas = torch.tensor([80.0, 0.0], dtype=F64)
    assert (sample_tada(bed, x, sigmas) - bed(x, sigmas[0] * x.new_ones(3))).abs().max() < 1e-14


# ---- defaults and bad input ------------------------------------------------------------------------------------------

def test_default_order_per_model_family():
    assert (default_order(None), default_order(ModelKind.edm()), default_order(ModelKind.vp()),
            default_order(ModelKind.flow())) == (2, 2, 2, 3)


def test_the_sampler_draws_its_extra_noise_at_seed_plus_the_offset_never_at_comfyuis_seed():
    bed = GaussianTestbed(dim=16)
    x = bed.sample_prior(4, 80.0, seed=0)
    ours = sample_tada(bed, x, _karras(6), extra_args={"seed": 7})
    assert torch.equal(ours, sample_tada(bed, x, _karras(6), extra_args={"seed": 7 + SEED_OFFSET}, seed_offset=0))
    raw = sample_tada(bed, x, _karras(6), extra_args={"seed": 7}, seed_offset=0)  # would reuse the initial noise
    assert (ours - raw).abs().max() > 1e-3


@pytest.mark.parametrize(("options", "name"), [
    ({"detail": 0.0}, "detail"), ({"detail": -1.0}, "detail"), ({"detail": float("nan")}, "detail"),
    ({"detail": float("inf")}, "detail"), ({"detail": True}, "detail"),
    ({"n_aug": 0}, "n_aug"), ({"n_aug": 4}, "n_aug"), ({"n_aug": 2.0}, "n_aug"),
    ({"order": 0}, "order"), ({"order": 4}, "order"), ({"order": True}, "order"),
    ({"kind": "flow"}, "kind"),
])
def test_bad_option_raises_schedule_error_naming_it(options, name):
    bed = GaussianTestbed(dim=4)
    with pytest.raises(ScheduleError, match=name):
        sample_tada(bed, bed.sample_prior(2, 80.0), _karras(4), **options)


@pytest.mark.parametrize("sigmas", [[80.0], [1.0, 2.0, 0.0], [5.0, 5.0, 0.0]])
def test_bad_sigmas_raise_schedule_error_naming_them(sigmas):
    bed = GaussianTestbed(dim=4)
    with pytest.raises(ScheduleError, match="sigmas"):
        sample_tada(bed, bed.sample_prior(2, 80.0), torch.tensor(sigmas, dtype=F64))


def test_flow_sigma_above_one_raises_schedule_error():
    bed = GaussianTestbed(dim=4)
    with pytest.raises(ScheduleError, match="flow"):
        sample_tada(bed, bed.sample_prior(2, 1.0), torch.tensor([1.5, 0.5, 0.0], dtype=F64), kind=ModelKind.flow())
