"""What the Constant-Rate Scheduler node says, as plain functions (no ComfyUI import; unit-tested directly).

The calibration itself is core (schedules/constant_rate/calibrate.py); :mod:`.host` supplies the model calls
(through a GUIDER, so conditioning and CFG apply) and the folders.
"""
from __future__ import annotations

import torch

from ..schedules.constant_rate.calibrate import (  # noqa: F401  (the node's vocabulary, re-exported for it)
    DEFAULT_MEASURE,
    DEFAULT_POINTS,
    DEFAULT_SAMPLES,
    GEN_STEPS,
    MEASURES,
    XI_MAX,
    XI_MIN,
    calibrate,
    check_measure,
    check_settings,
    latent_features,
    schedule,
    settings,
)
from ..schedules.constant_rate.construct import Velocity


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
