"""Changing the number of steps of a schedule: log-linear resampling and KSampler's denoise truncation."""
from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import ScheduleError
from .validate import MAX_DENOISE_STEPS, MAX_STEPS, denoise_expansion, validate_denoise, validate_sigmas, validate_steps


def loglinear_interp(values, n_points: int) -> torch.Tensor:
    """Resample descending positive ``values`` to ``n_points`` points, linear in log value over the index.

    The ends are kept; this is the interpolation NVIDIA's Align-Your-Steps how-to and ComfyUI's AYS node use.
    Returns float64.
    """
    v = torch.as_tensor(values, dtype=torch.float64)
    if v.ndim != 1 or len(v) < 2 or not torch.isfinite(v).all() or (v <= 0).any():
        raise ScheduleError("values for loglinear_interp must be a 1-D list of at least 2 finite positive "
                            "numbers; drop the trailing 0 of a schedule before interpolating.")
    if isinstance(n_points, bool) or int(n_points) != n_points or n_points < 2:
        raise ScheduleError(f"n_points={n_points!r} must be a whole number >= 2 (both ends are kept).")
    pos = torch.linspace(0, len(v) - 1, int(n_points), dtype=torch.float64)
    lo = pos.floor().long().clamp(max=len(v) - 2)
    w = pos - lo
    logs = v.log()
    return torch.exp((1 - w) * logs[lo] + w * logs[lo + 1])


def loglinear_resample(sigmas, n: int) -> torch.Tensor:
    """Resample a schedule ending in 0 to ``n`` steps, log-linear in sigma, and append 0.

    The positive part keeps its first (sigma_max) and last (smallest positive) sigma; with ``n = 1`` only
    sigma_max remains. Returns the input's floating dtype (float64 for lists).
    """
    s = validate_sigmas(sigmas, "sigmas to resample")
    n = validate_steps(n)
    positive = s[:-1]
    if n == 1:
        out = positive[:1].to(torch.float64)
    elif len(positive) < 2:
        raise ScheduleError(
            f"sigmas to resample have a single positive sigma ({positive[0].item():.6g}), so there is "
            f"nothing to interpolate between for {n} steps; give a schedule with at least 2 steps."
        )
    else:
        out = loglinear_interp(positive, n)
    return torch.cat([out, out.new_zeros(1)]).to(s.dtype)


def truncate_for_denoise(schedule_fn: Callable[[int], torch.Tensor], steps: int,
                         denoise: float) -> torch.Tensor:
    """KSampler's denoise rule: build ``int(steps / denoise)`` steps and keep the last ``steps + 1`` sigmas.

    ``denoise > 0.9999`` gives ``schedule_fn(steps)`` and ``denoise <= 0`` an empty tensor (ComfyUI's
    scheduler nodes return ``FloatTensor([])``, which samplers treat as "do nothing"). The step cap applies to
    ``steps`` (what the user typed); the longer list the rule builds may have up to MAX_DENOISE_STEPS steps, and a
    denoise asking for more is refused naming denoise.
    """
    steps = validate_steps(steps)
    denoise = validate_denoise(denoise)
    if denoise > 0.9999:
        return schedule_fn(steps)
    if denoise <= 0.0:
        return torch.zeros(0, dtype=torch.float32)
    total = int(steps / denoise)
    if total <= MAX_STEPS:
        return schedule_fn(total)[-(steps + 1):]
    if total > MAX_DENOISE_STEPS:
        raise ScheduleError(f"denoise={denoise:g} with steps={steps} means a schedule of {total:,} steps of which "
                            f"the last {steps} are kept; use denoise >= {steps / MAX_DENOISE_STEPS:.2g} (or fewer "
                            "steps).")
    with denoise_expansion():
        return schedule_fn(total)[-(steps + 1):].clone()
