"""The one table of names the pack adds to ComfyUI (pure Python; no ComfyUI import).

Every public sampler and scheduler name maps to an :class:`Entry`: the core function, a one-line
description for tooltips and docs, and its default options.  The host adapter appends these names to
the stock KSampler dropdowns; the standalone ``schedule-lab compare`` job reads the same table, so a
method added here shows up everywhere at once.

Names are permanent workflow identity (saved workflows store them as strings): never rename one.
All carry the ``sl_`` prefix because other packs append to the same lists.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..schedules.for_model import ays_for_model
from ..solvers.tada import sample_tada
from .constant_rate_ops import dropdown_sigmas
from .tpdm_ops import sample_sl_tpdm


@dataclass(frozen=True)
class Entry:
    """One public name. For samplers, ``fn`` takes ``kind=`` (the model's ModelKind, filled in by the host) and
    ``model_settings`` lists the options a MODEL-patch node (e.g. Detail Level) may set for the dropdown path.
    ``saved_files``: the entry reads the user's saved files and raises when none fits, so sweeps over the whole
    registry (benchmarks, invariant tests) skip it.
    For schedulers, ``model_settings`` names keyword arguments the host fills from the model when it has them
    (``velocity``: a Constant-Rate Scheduler calibration of this model), so ``fn(kind, steps, **found)``."""

    fn: Callable[..., Any]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    model_settings: tuple[str, ...] = ()
    saved_files: bool = False


def _ays_sd1(kind, steps):
    return ays_for_model(kind, steps, table="sd1")


def _ays_sdxl(kind, steps):
    return ays_for_model(kind, steps, table="sdxl")


def _searched(kind, steps):
    from .search_ops import searched_for_model  # reads models/schedules through the host adapter

    return searched_for_model(kind, steps)


#: Scheduler entries: ``fn(kind: ModelKind, steps: int) -> sigmas`` (descending, ending in 0).
SCHEDULERS: dict[str, Entry] = {
    "sl_ays_sd1": Entry(
        _ays_sd1,
        "Align Your Steps (SD1.5 table, Sabour et al. 2024) resampled log-linearly to any step count; "
        "on non-SD models the noise levels are carried over at equal signal-to-noise ratio.",
    ),
    "sl_ays_sdxl": Entry(
        _ays_sdxl,
        "Align Your Steps (SDXL table, Sabour et al. 2024) resampled log-linearly to any step count; "
        "on non-SDXL models the noise levels are carried over at equal signal-to-noise ratio.",
    ),
    "sl_searched": Entry(
        _searched,
        "The best saved Timestep Search result (models/schedules) for this model and step count; an error naming "
        "the Timestep Search node if there is none (no silent fallback).",
        saved_files=True,
    ),
    "sl_constant_rate": Entry(
        dropdown_sigmas,
        "Constant-rate schedule (Okada et al. 2024): steps placed so the noisy image changes at an even pace. Uses "
        "the calibration the Constant-Rate Scheduler node measured on this model, else a data-free default.",
        model_settings=("velocity",),
    ),
}

#: Sampler entries: k-diffusion contract ``fn(model, x, sigmas, extra_args, callback, disable, **options)``.
SAMPLERS: dict[str, Entry] = {
    "sl_tada": Entry(
        sample_tada,
        "TADA (Chen et al. 2025): an ODE sampler on a momentum-augmented state; more detail and diversity at low "
        "step counts for the same model calls. Detail level from the Detail Level node (default 1).",
        model_settings=("detail",),
    ),
    "sl_tpdm": Entry(
        sample_sl_tpdm,
        "TPDM adaptive steps (Ye et al. 2024): a time predictor picks each image's next noise level from the "
        "model's features and stops when clean; steps is the cap. Needs a model from the Apply TPM node.",
        model_settings=("tpdm",),
        saved_files=True,
    ),
}
