"""Checks for schedules and the two numbers every scheduler node takes (steps, denoise)."""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from numbers import Integral, Real

import torch

from .errors import ScheduleError

#: ComfyUI's KSampler and scheduler nodes accept at most 10000 steps.
MAX_STEPS = 10000
#: KSampler's denoise rule builds ``int(steps / denoise)`` steps and keeps the last ``steps``: that longer list is
#: not a count the user typed, so it may exceed MAX_STEPS, up to this (8 MB of float64; stock ``karras`` builds the
#: same list).
MAX_DENOISE_STEPS = 1_000_000
_step_limit: ContextVar[int] = ContextVar("schedule_lab_step_limit", default=MAX_STEPS)


@contextmanager
def denoise_expansion():
    """Within this block schedule functions accept up to MAX_DENOISE_STEPS steps (``truncate_for_denoise``)."""
    token = _step_limit.set(MAX_DENOISE_STEPS)
    try:
        yield
    finally:
        _step_limit.reset(token)


def validate_sigmas(sigmas, name: str = "sigmas", split: bool = False) -> torch.Tensor:
    """Return ``sigmas`` as a float tensor if it is a valid schedule; else raise ScheduleError naming it.

    A schedule is 1-D, finite, has at least 2 entries, is non-negative and strictly descending, and ends in 0
    unless ``split`` (the first half of a split schedule stops above 0). Float tensors are returned as they
    are; anything else is converted to float64.
    """
    if isinstance(sigmas, torch.Tensor):
        t = sigmas if sigmas.is_floating_point() else sigmas.to(torch.float64)
    else:
        try:
            t = torch.as_tensor(sigmas, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ScheduleError(f"{name} is not a list of numbers ({type(sigmas).__name__}); "
                                "pass a 1-D tensor or list of sigmas.") from None
    if t.ndim != 1:
        raise ScheduleError(f"{name} has shape {tuple(t.shape)} but must be 1-D; pass a flat list of sigmas.")
    if len(t) < 2:
        raise ScheduleError(f"{name} has {len(t)} entries but a schedule needs at least 2 (one step); "
                            "use steps >= 1 or denoise > 0.")
    if not torch.isfinite(t).all():
        i = int((~torch.isfinite(t)).nonzero()[0])
        raise ScheduleError(f"{name}[{i}] is {t[i].item()}; every sigma must be finite, "
                            "fix the values upstream.")
    if (t < 0).any():
        i = int((t < 0).nonzero()[0])
        raise ScheduleError(f"{name}[{i}] = {t[i].item():.6g} is negative; sigmas must be >= 0.")
    steps_up = t[1:] >= t[:-1]
    if steps_up.any():
        i = int(steps_up.nonzero()[0])
        raise ScheduleError(
            f"{name} is not strictly descending: {name}[{i}] = {t[i].item():.6g} is followed by "
            f"{t[i + 1].item():.6g}; sort it from the highest sigma down and remove repeated values."
        )
    if not split and t[-1] != 0:
        raise ScheduleError(
            f"{name} ends in {t[-1].item():.6g}, not 0; append a final 0 so sampling finishes clean, "
            "or mark it as a split schedule (split=True)."
        )
    return t


def validate_steps(steps) -> int:
    """Return ``steps`` as an int in ``[1, MAX_STEPS]``, else raise ScheduleError."""
    if isinstance(steps, bool) or not (
        isinstance(steps, Integral) or (isinstance(steps, float) and steps.is_integer())
    ):
        raise ScheduleError(f"steps={steps!r} must be a whole number; pass an int such as 20.")
    if not 1 <= steps <= _step_limit.get():
        raise ScheduleError(f"steps={steps!r} is out of range; use 1 to {MAX_STEPS} steps.")
    return int(steps)


def validate_denoise(denoise) -> float:
    """Return ``denoise`` as a float in ``[0, 1]``, else raise ScheduleError."""
    if isinstance(denoise, bool) or not isinstance(denoise, Real) or not math.isfinite(denoise):
        raise ScheduleError(f"denoise={denoise!r} must be a number between 0 and 1; "
                            "1.0 means a full generation.")
    if not 0.0 <= denoise <= 1.0:
        raise ScheduleError(f"denoise={denoise!r} is outside [0, 1]; 1.0 is a full generation, "
                            "lower values keep more of the input image.")
    return float(denoise)
