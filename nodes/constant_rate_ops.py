"""What the Constant-Rate Scheduler node does without ComfyUI (unit-tested directly): the calibration with the pack's
data-free generator, and what the node says.

The calibration itself is core (schedules/constant_rate/calibrate.py); the node imports its vocabulary from there.
:mod:`.host` supplies the model calls (through a GUIDER, so conditioning and CFG apply) and the folders.
"""
from __future__ import annotations

import torch

from ..schedules.constant_rate import calibrate as core
from ..schedules.constant_rate.construct import Velocity
from ..solvers.classic import model_samples


def calibrate(model, kind, latent, measure, *args, **kwargs) -> Velocity:
    """``schedules.constant_rate.calibrate.calibrate`` with data-free samples drawn by ``solvers.classic.model_samples``
    (DPM-Solver++(2M) on Karras; Euler on flow models) when the latent is empty."""
    return core.calibrate(model, kind, latent, measure, *args, generate=model_samples, **kwargs)


def report(velocity: Velocity, status: str, sigmas: torch.Tensor) -> str:
    """What the node shows: measure, where the velocity came from, model calls, the sigmas."""
    info = velocity.info
    if velocity.measure == "default":
        source = "data-free default (no model calls)"
    elif status == "hit":
        source = (f"cached calibration (0 model calls now; measuring took {info.get('model_calls', '?')} model calls, "
                  f"{info.get('seconds', '?')} s)")
    else:
        why = "" if status == "miss" else f" (old cache entry {status})"
        source = (f"measured now{why}: {info.get('model_calls', '?')} model calls in {info.get('seconds', '?')} s, "
                  f"{info.get('samples', '?')} samples from {info.get('data', '?')}, {info.get('points', '?')} noise "
                  "levels; cached")
    values = ", ".join(f"{float(s):.4g}" for s in sigmas)
    return f"constant-rate schedule, measure {velocity.measure}: {source}\nsigmas: {values}"
