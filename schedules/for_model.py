"""Published schedules carried to the user's model (the functions behind the pack's dropdown schedulers).

A scheduler in ComfyUI's dropdown receives only the model's kind and a step count, so each function here has
the registry signature ``fn(kind, steps) -> sigmas``.
"""
from __future__ import annotations

import numpy as np
import torch

from .baseline import ays
from .errors import ScheduleError
from .model_kind import ModelKind, convert_sigmas
from .validate import validate_sigmas

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


def ays_for_model(kind: ModelKind, steps: int, table: str = "sd1") -> torch.Tensor:
    """Align Your Steps for ``kind``: ComfyUI's AYS values for the table's own model family, carried to eps/v/EDM
    kinds at equal signal-to-noise ratio (half-log-SNR), with levels beyond the model's range moved onto it, and to
    flow kinds at the same timesteps (``table_times``): the published timesteps 999, 850, … as the flow model's
    times 1, 0.851, …, mapped through its shift, so the list starts at σ = 1 and follows SD3's shift or Flux's mu
    as ComfyUI's simple/sgm_uniform/beta do.

    For SD1/SD2/SDXL-style models this is exactly ComfyUI's AlignYourStepsScheduler output.
    """
    source = _AYS_SOURCE.get(str(table).lower())
    if source is None:
        raise ScheduleError(f"AYS table {table!r} is unknown; use one of {', '.join(_AYS_SOURCE)}.")
    sigmas = ays(steps, table, dtype=torch.float64)
    if kind.kind == "flow":
        return kind.from_flow_time(table_times(sigmas, source)).to(torch.float32)
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
