"""Measured velocities for constant-rate schedules (docs/constant_rate.md, "Decisions"): Fréchet, v_x and v_ε on a
grid uniform in λ.

Every measure diffuses the *same* data x₀ with the *same* noise ε at every grid point (common random numbers:
x_ᾱ = √ᾱ x₀ + √(1 − ᾱ) ε), takes a distance D_k between neighbouring points k, k + 1 and reports
v_λ = D_k / Δλ at the midpoint. Distances are per dimension and not squared (√FD, √MSE), so D is first order in Δλ:

* ``frechet`` — √(FD / F) between Gaussian fits of features f(x_ᾱ) (identity by default; any callable
  (N, ...) → (N, F), e.g. the digits classifier). Needs data only, no model; at least F + 1 samples.
* ``vx`` — √(mean |x̂₀(k+1) − x̂₀(k)|² / d), x̂₀ the model's denoised prediction at the noisy input.
* ``veps`` — the same with ε̂ = (x_VE − x̂₀)/σ_VE, the noise the model implies.

The model is called in its own sampling space (:func:`model_input`), so any k-diffusion-contract denoiser of any
model kind works: ``model(x, sigma * ones(B)) -> x̂₀``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ...kernels.frechet import frechet_distance, gaussian_stats
from ..errors import ScheduleError
from ..model_kind import ModelKind
from .construct import Velocity, lambda_range

__all__ = ["DEFAULT_POINTS", "MEASURES", "measure_velocity", "measurement_grid", "model_input"]

MEASURES = ("frechet", "vx", "veps")
#: Noise levels of a calibration: 24 at 64 samples is the Constant-Rate Scheduler node's setting from the stability
#: study (docs/constant_rate.md, 'Estimation settings'); the benchmark passes its own 32 explicitly.
DEFAULT_POINTS = 24
MIN_POINTS = 4


#: Flow models: the grid starts at this λ (SNR e^2λ = 1e-4, σ = 0.99 at shift 1) instead of the clip λ = −10. A grid
#: uniform over [−10, λ(σ_min)] spent 11 of 24 points above σ = 0.93, where x̂₀ is the data mean and no schedule places
#: a level; above σ = 0.99 a calibration follows the closed-form tail instead (``construct.with_cos_tails``).
FLOW_GRID_LAMBDA_MIN = -4.6


def measurement_grid(kind: ModelKind, points: int = DEFAULT_POINTS) -> torch.Tensor:
    """``points`` λ values, uniform from λ(sigma_max) to λ(sigma_min) (clipped to LAMBDA_CLIP), ascending; flow
    kinds start at FLOW_GRID_LAMBDA_MIN when λ(sigma_max) lies below it."""
    if isinstance(points, bool) or int(points) != points or points < MIN_POINTS:
        raise ScheduleError(f"points={points!r} must be a whole number >= {MIN_POINTS} (noise levels measured; "
                            f"{DEFAULT_POINTS} is the default).")
    lo, hi = lambda_range(kind)
    if kind.kind == "flow" and lo < FLOW_GRID_LAMBDA_MIN < hi:
        lo = FLOW_GRID_LAMBDA_MIN
    return torch.linspace(lo, hi, int(points), dtype=torch.float64)


def model_input(kind: ModelKind, x0: torch.Tensor, eps: torch.Tensor, lam: float):
    """(x, sigma) in ``kind``'s sampling space for data x₀ and noise ε at λ: x₀ + σ_VE ε for eps/v/edm and
    (1 − s) x₀ + s ε for flow (s = sigmoid(−λ)); both are x_ᾱ rescaled."""
    sigma = float(kind.from_lambda(torch.tensor(lam, dtype=torch.float64)))
    if kind.kind == "flow":
        return (1.0 - sigma) * x0 + sigma * eps, sigma
    return x0 + sigma * eps, sigma


def _check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise ScheduleError(f"measure={measure!r} is unknown; use one of {', '.join(MEASURES)} "
                            "(or 'cos' / 'default' for the analytic velocities).")
    return measure


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


@torch.no_grad()
def measure_velocity(measure: str, kind: ModelKind, data: torch.Tensor, model: Callable | None = None,
                     points: int = DEFAULT_POINTS, features: Callable | None = None, seed: int = 0,
                     batch: int = 64, progress: Callable[[int, int], None] | None = None) -> Velocity:
    """Estimate the velocity of ``measure`` for ``kind`` from data samples ``data`` (N, ...).

    ``model`` is needed for vx/veps; ``features`` (default identity) for frechet. ``seed`` draws the shared
    noise. ``batch`` samples go through the model per call. ``progress(done, total)`` is called after each
    grid point and may raise to cancel (nothing is returned then). Returns a Velocity whose ``info`` records
    the model calls (batched forward passes), samples, points and seconds.
    """
    _check_measure(measure)
    if not isinstance(kind, ModelKind):
        raise ScheduleError(f"kind must be a ModelKind, got {type(kind).__name__}.")
    if not isinstance(data, torch.Tensor) or data.ndim < 2 or not data.is_floating_point():
        raise ScheduleError("data must be a float tensor of samples (N, ...) with N >= 2; pass a batch of "
                            "data (or latents / model samples).")
    n = data.shape[0]
    if n < 2:
        raise ScheduleError(f"samples: {n} sample is too few to measure a change of distribution; use >= 2 "
                            "(the Fréchet measure needs more than its feature dimension).")
    if measure != "frechet" and model is None:
        raise ScheduleError(f"measure {measure!r} needs the model (its denoised predictions); pass model=..., "
                            "or use measure='frechet' which needs data only.")
    if isinstance(batch, bool) or int(batch) != batch or batch < 1:
        raise ScheduleError(f"batch={batch!r} must be a whole number >= 1.")
    lam = measurement_grid(kind, points)
    x0 = data.detach()
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(x0)
    x0_cpu, eps_cpu = x0.to("cpu", torch.float64), eps.to("cpu", torch.float64)
    feat = features or _identity
    started = time.perf_counter()
    calls = 0
    prev = None
    dist = []
    for k, lam_k in enumerate(lam.tolist()):
        if measure == "frechet":
            a = 1.0 / (1.0 + math.exp(-2.0 * lam_k))  # ᾱ = sigmoid(2λ)
            f = feat(math.sqrt(a) * x0 + math.sqrt(1.0 - a) * eps)
            f = f.reshape(f.shape[0], -1).to("cpu", torch.float64)  # statistics on the CPU (MPS has no float64)
            if f.shape[1] >= n:
                raise ScheduleError(
                    f"samples: {n} samples are too few for a Fréchet estimate on {f.shape[1]}-dimensional "
                    f"features (the covariance needs at least {f.shape[1] + 1}, better {4 * f.shape[1]}); raise "
                    "the sample count or use a feature map with fewer dimensions."
                )
            cur = gaussian_stats(f)
            if prev is not None:
                dist.append(math.sqrt(frechet_distance(*prev, *cur) / f.shape[1]))
        else:
            x, sigma = model_input(kind, x0, eps, lam_k)
            outs = []
            for start in range(0, n, int(batch)):
                xb = x[start:start + int(batch)]
                outs.append(model(xb, torch.full((xb.shape[0],), sigma, dtype=xb.dtype, device=xb.device)))
                calls += 1
            cur = torch.cat(outs).detach().to("cpu", torch.float64)
            if cur.shape != x0.shape:
                raise ScheduleError(f"model returned shape {tuple(cur.shape)} for input {tuple(x0.shape)}; the data "
                                    "(latent) shape does not fit the model: use a latent made for this model.")
            if measure == "veps":
                sigma_ve = math.exp(-lam_k)
                cur = (x0_cpu + sigma_ve * eps_cpu - cur) / sigma_ve
            if prev is not None:
                dist.append(float((cur - prev).square().mean().sqrt()))
        prev = cur
        if progress is not None:
            progress(k + 1, len(lam))
    d = torch.tensor(dist, dtype=torch.float64)
    if not torch.isfinite(d).all():
        raise ScheduleError(f"measure {measure!r}: the model or features returned NaN/inf at some noise level; "
                            "check the model and the data.")
    mid = 0.5 * (lam[1:] + lam[:-1])
    info = {"model_calls": calls, "samples": n, "points": len(lam), "seed": int(seed),
            "seconds": round(time.perf_counter() - started, 3),
            "features": "identity" if features is None else getattr(features, "__name__", "custom")}
    return Velocity(mid, d / (lam[1:] - lam[:-1]), measure, info)
