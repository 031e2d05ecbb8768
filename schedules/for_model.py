"""Published schedules carried to the user's model (the functions behind the pack's dropdown schedulers).

A scheduler in ComfyUI's dropdown receives only the model's kind and a step count, so each function here has
the registry signature ``fn(kind, steps) -> sigmas``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .baseline import ays, ays_noise_levels
from .errors import ScheduleError
from .model_kind import ModelKind, convert_sigmas
from .resample import loglinear_interp
from .validate import validate_sigmas, validate_steps

#: The model kind each Align-Your-Steps table was published for.
_AYS_SOURCE = {
    "sd1": ModelKind.vp("eps"),
    "sdxl": ModelKind.vp("eps"),
    "svd": ModelKind.edm(sigma_min=0.002, sigma_max=700.0),
}


def table_times(sigmas: torch.Tensor, source: ModelKind) -> torch.Tensor:
    """Where ``sigmas`` (descending, ending in 0) sit in ``source``'s ComfyUI table, as flow times in (0, 1]: entry
    k of T (0-based, log-linear between entries) is time (k + 1) / T, so the top entry is 1 and the last level 0.
    ComfyUI's schedulers act on these positions (timesteps), so equal positions are "the same schedule" on a flow
    model, whose table is shift((k + 1) / T)."""
    log_table = source.comfy_table().log().numpy()
    positive = sigmas[:-1].clamp(float(source.sigma_min), float(source.sigma_max)).log().numpy()
    k = torch.from_numpy(np.interp(positive, log_table, np.arange(len(log_table), dtype=np.float64)))
    return torch.cat([(k + 1.0) / len(log_table), sigmas.new_zeros(1)])


#: How ``ays_for_model`` fits the 11 published levels to N steps on eps/v/EDM kinds (docs/defaults.md §10):
#: "comfy": ComfyUI's AYS (resampled to N + 1 levels, the last replaced by 0, so the last level above 0 is the
#: second-lowest); "sigma_min": resampled to N positive levels, so the last is the table's own lowest, then 0;
#: "stretched": "sigma_min" with the table's log-σ range mapped affinely onto the model's [σ_min, σ_max].
AYS_FITS = ("comfy", "sigma_min", "stretched")
#: The fit ``fit="auto"`` (the dropdown entries) uses per family: §10's choice, "stretched", where §10a's held-out
#: guard did not veto it (ε, v); ComfyUI's fit on EDM kinds, where it added lost cells.
AYS_FIT_BY_FAMILY = {"eps": "stretched", "v": "stretched", "edm": "comfy"}


def _ays_positive(steps: int, table: str) -> torch.Tensor:
    """The 11 published levels resampled log-linearly to ``steps`` positive levels (float64; the ends are kept)."""
    levels = ays_noise_levels(table)
    if steps == len(levels):
        return levels
    return loglinear_interp(levels, steps) if steps > 1 else levels[:1]


def ays_for_model(kind: ModelKind, steps: int, table: str = "sd1", fit: str = "auto") -> torch.Tensor:
    """Align Your Steps for ``kind``: ComfyUI's AYS values for the table's own model family, carried to eps/v/EDM
    kinds at equal signal-to-noise ratio (half-log-SNR), with levels beyond the model's range moved onto it, and to
    flow kinds at the same timesteps (``table_times``): the published timesteps 999, 850, … as the flow model's
    times 1, 0.851, …, mapped through its shift, so the list starts at σ = 1 and follows SD3's shift or Flux's mu
    as ComfyUI's simple/sgm_uniform/beta do.

    ``fit`` (``AYS_FITS``) says how the levels meet N steps on eps/v/EDM kinds: "comfy" is exactly ComfyUI's
    AlignYourStepsScheduler output on SD1/SD2/SDXL-style models; the dropdown entries use "auto" (``AYS_FIT_BY_FAMILY``:
    "stretched" on ε/v, the 11 levels resampled to N positive levels spanning the model's own [σ_min, σ_max], then 0,
    chosen by docs/defaults.md §10; "comfy" on EDM, §10a).
    """
    source = _AYS_SOURCE.get(str(table).lower())
    if source is None:
        raise ScheduleError(f"AYS table {table!r} is unknown; use one of {', '.join(_AYS_SOURCE)}.")
    if fit == "auto":
        fit = AYS_FIT_BY_FAMILY.get(kind.kind, "comfy")
    if fit not in AYS_FITS:
        raise ScheduleError(f"fit {fit!r} is unknown; use one of auto, {', '.join(AYS_FITS)}.")
    sigmas = ays(steps, table, dtype=torch.float64)
    if kind.kind == "flow":
        return kind.from_flow_time(table_times(sigmas, source)).to(torch.float32)
    if fit != "comfy":
        positive = _ays_positive(validate_steps(steps), table)
        if fit == "stretched":
            top, bottom = math.log(float(positive[0])), math.log(float(positive[-1]))
            share = (positive.log() - bottom) / (top - bottom) if top > bottom else torch.ones_like(positive)
            lo, hi = math.log(kind.sigma_min), math.log(kind.sigma_max)
            sigmas = torch.cat([(lo + share * (hi - lo)).exp(), positive.new_zeros(1)])
            return validate_sigmas(sigmas, "sigmas").to(torch.float32)
        sigmas = torch.cat([positive, positive.new_zeros(1)])
    if kind.kind != "flow" and kind.sigma_min <= float(sigmas[-2]) and float(sigmas[0]) <= kind.sigma_max * 1.0001:
        return sigmas.to(torch.float32)  # same lambda map and inside the range: the published values as they are
    out = convert_sigmas(sigmas, source, kind, clamp=True)
    try:
        return validate_sigmas(out, "sigmas").to(torch.float32)
    except ScheduleError:
        raise ScheduleError(
            f"steps: {steps} AYS steps do not fit this {kind.describe()} (levels merge at the ends of its range); "
            "use fewer steps or a scheduler made for this model"
        ) from None
