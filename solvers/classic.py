"""Reference samplers for the probability-flow ODE dx/dσ = (x − D(x, σ)) / σ (Karras et al. 2022, eq. 1 with
σ(t) = t), with the k-diffusion contract:

    fn(model, x, sigmas, extra_args=None, callback=None, disable=None) -> x at sigmas[-1]

``model(x, sigma * x.new_ones([B]), **extra_args)`` returns the denoised prediction D; ``callback`` receives
``{"x", "i", "sigma", "sigma_hat", "denoised"}`` once per step (σ̂ = σ: these samplers add no churn).
They are the baselines every new sampler in the pack is measured against.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..schedules.baseline import karras, simple
from ..schedules.model_kind import ModelKind

try:
    from tqdm.auto import trange as _trange
except ImportError:  # tqdm is optional
    _trange = None

__all__ = ["model_samples", "sample_dpmpp_2m", "sample_euler", "sample_heun", "step_range", "to_d"]


def step_range(n: int, disable):
    """Step indices, with a progress bar only when asked for (disable=False) and tqdm is installed."""
    if _trange is None or disable is None or disable:
        return range(n)
    return _trange(n, disable=False)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative dx/dσ = (x − D) / σ, with σ broadcast over the trailing dimensions of x."""
    return (x - denoised) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


@torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Alg. 2 without the correction)."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in step_range(len(sigmas) - 1, disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = x + to_d(x, sigmas[i] * s_in, denoised) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Heun's 2nd-order method (Karras et al. 2022, Alg. 1, deterministic); Euler on a last step to σ = 0."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in step_range(len(sigmas) - 1, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        d = to_d(x, sigma * s_in, denoised)
        x_euler = x + d * (sigma_next - sigma)
        if sigma_next == 0:
            x = x_euler
            continue
        d_next = to_d(x_euler, sigma_next * s_in, model(x_euler, sigma_next * s_in, **extra_args))
        x = x + 0.5 * (d + d_next) * (sigma_next - sigma)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): multistep 2nd order in λ = −log σ, data prediction.

    With h = λ_next − λ and r = h_prev / h, the step is
        x_next = (σ_next / σ) x − expm1(−h) · D̃,   D̃ = (1 + 1/(2r)) D_i − 1/(2r) D_{i−1},
    and D̃ = D_i on the first step and on a last step to σ = 0 (where λ is infinite).
    """
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h_prev = None, None
    for i in step_range(len(sigmas) - 1, disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        if sigma_next == 0:
            x = denoised  # the exponential-integrator step with h = ∞
            continue
        h = torch.log(sigma) - torch.log(sigma_next)
        if old_denoised is None:
            corrected = denoised
        else:
            half_inv_r = h / (2 * h_prev)
            corrected = (1 + half_inv_r) * denoised - half_inv_r * old_denoised
        x = (sigma_next / sigma) * x - torch.expm1(-h) * corrected
        old_denoised, h_prev = denoised, h
    return x


@torch.no_grad()
def model_samples(model: Callable, kind: ModelKind, shape: tuple, steps: int = 12, seed: int = 0,
                  batch: int = 64, progress: Callable[[int, int], None] | None = None):
    """(samples, model calls): data-free x₀ for the constant-rate calibration (``calibrate(generate=...)``) from the
    model itself, DPM-Solver++(2M) with ``steps`` steps on a Karras schedule over ``kind``'s range; flow models: on
    ComfyUI's "simple" schedule (uniform in the model's time, so it follows the shift; a log-SNR-uniform list from
    the λ clip spent 5 of 12 steps above σ = 0.98 and Euler was first order)."""
    if kind.kind == "flow":
        sigmas = simple(kind, steps, dtype=torch.float64)
    else:
        sigmas = karras(steps, kind.sigma_min, kind.sigma_max, dtype=torch.float64)
    solver = sample_dpmpp_2m
    gen = torch.Generator(device="cpu").manual_seed((int(seed) + 7919) % 2**64)  # any stock seed, 0 .. 2**64 - 1
    noise = torch.randn(shape, generator=gen, dtype=torch.float32)
    outs, calls = [], 0
    chunks = list(range(0, shape[0], int(batch)))
    for i, start in enumerate(chunks):
        xb = noise[start:start + int(batch)] * float(sigmas[0])
        outs.append(solver(model, xb, sigmas.to(torch.float32), disable=True))
        calls += steps
        if progress is not None:
            progress(i + 1, len(chunks))
    return torch.cat(outs), calls
