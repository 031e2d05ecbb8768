"""Baseline schedules every comparison starts from: the k-diffusion / ComfyUI classics and Align Your Steps.

Each returns a descending 1-D tensor of ``n + 1`` sigmas ending in 0 (float32 by default, like ComfyUI; values
are computed in float64 and rounded once).
"""
from __future__ import annotations

import math

import torch

from .errors import ScheduleError
from .model_kind import ModelKind, scaled_linear_sigmas
from .resample import loglinear_interp
from .validate import validate_steps


def _append_zero(sigmas: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(dtype)


def _check_range(sigma_min: float, sigma_max: float) -> None:
    if not (0 < sigma_min < sigma_max < math.inf):
        raise ScheduleError(
            f"sigma_min={sigma_min!r}, sigma_max={sigma_max!r} must satisfy 0 < sigma_min < sigma_max; "
            "take them from the model (e.g. SD1: 0.0292 and 14.6146)."
        )


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, *,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Karras et al. (2022), eq. 5: uniform in ``sigma ** (1 / rho)``."""
    n = validate_steps(n)
    _check_range(sigma_min, sigma_max)
    if not rho > 0:
        raise ScheduleError(f"rho={rho!r} must be > 0 (Karras et al. use 7).")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho, dtype)


def exponential(n: int, sigma_min: float, sigma_max: float, *,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform in log sigma (k-diffusion's ``get_sigmas_exponential``)."""
    n = validate_steps(n)
    _check_range(sigma_min, sigma_max)
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64)
    return _append_zero(log_sigmas.exp(), dtype)


def simple(kind: ModelKind, n: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ComfyUI's "simple": ``n`` table entries evenly spaced from the top of ``kind.comfy_table()``, then 0.

    eps/v: the model's discrete table. edm: the 1000-entry table uniform in log sigma that ComfyUI's
    continuous EDM keeps (so steps are uniform in its timestep ``0.25 log sigma``). flow: ComfyUI's table
    ``shift(k / 1000)`` (uniform in un-shifted time). Unlike ComfyUI, more steps than table entries is an
    error instead of repeated sigmas.
    """
    n = validate_steps(n)
    table = kind.comfy_table()
    size = len(table)
    if n > size:
        raise ScheduleError(
            f"simple schedule with {n} steps needs more than the {size} entries of this model's table; "
            f"use at most {size} steps, or a continuous schedule such as karras."
        )
    stride = size / n
    idx = torch.tensor([size - 1 - int(i * stride) for i in range(n)])
    return _append_zero(table[idx], dtype)


# Align Your Steps (Sabour, Fidler, Kreis, NVIDIA, 2024, "Align Your Steps: Optimizing Sampling Schedules in
# Diffusion Models", arXiv 2404.14507): the 10-step schedules published on the project's how-to page
# (https://research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto.html) and in Table 3 of the paper.
# SD1.5 and SDXL are published both as timesteps of the SD scaled_linear table (also in diffusers'
# AysSchedules) and as sigmas rounded to 3 decimals. We read the sigmas off the table at the published
# timesteps: that is exactly the 10-digit table of ComfyUI's AlignYourStepsScheduler (so our AYS equals the
# stock node), and within 1.5% of the 3-decimal sigmas (which were rounded before the timesteps were).
AYS_TIMESTEPS = {
    "sd1": (999, 850, 736, 645, 545, 455, 343, 233, 124, 24, 0),
    "sdxl": (999, 845, 730, 587, 443, 310, 193, 116, 53, 13, 0),
}
# Stable Video Diffusion (an EDM model) is published directly as sigmas (paper Table 3).
AYS_SIGMAS = {
    "svd": (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002),
}
AYS_TABLES = ("sd1", "sdxl", "svd")


def ays_noise_levels(table: str = "sd1") -> torch.Tensor:
    """The 11 published AYS noise levels (float64, descending, smallest positive last)."""
    key = str(table).lower()
    if key in AYS_TIMESTEPS:
        return scaled_linear_sigmas()[list(AYS_TIMESTEPS[key])]
    if key in AYS_SIGMAS:
        return torch.tensor(AYS_SIGMAS[key], dtype=torch.float64)
    raise ScheduleError(f"AYS table {table!r} is unknown; use one of {', '.join(AYS_TABLES)}.")


def ays(n: int, table: str = "sd1", *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Align Your Steps with ComfyUI's semantics: the 11 published levels, log-linearly resampled to ``n + 1``
    points when ``n != 10``, with the last one replaced by 0."""
    n = validate_steps(n)
    levels = ays_noise_levels(table)
    if n + 1 != len(levels):
        levels = loglinear_interp(levels, n + 1)
    return torch.cat([levels[:-1], levels.new_zeros(1)]).to(dtype)
