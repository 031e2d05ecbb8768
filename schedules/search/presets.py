"""Published searched timestep lists that map to a ComfyUI model family (docs/search.md, "Decisions": presets).

Only one list of the official AutoDiffusion code (github.com/lilijiangg/AutoDiffusion at 1292082) was searched for
a model ComfyUI runs: SD v1.4 with DPM-Solver(2M, data prediction), CFG 7.5, 4 steps
(``examples/Stable Diffusion/.../sample_fid_dpm_solver.sh``). Its genes are DPM-Solver times ``t`` on the grid
``linspace(1, 0.001, 1001)``; DPM-Solver maps ``t`` to the discrete index ``n = 1000 t − 1`` and interpolates
``log α = ½ log ᾱ`` linearly in ``n`` (``NoiseScheduleVP('discrete')``), so we convert through the model's own table
the same way: σ = √(exp(−2 log α) − 1).

The ADM lists of the repo (ImageNet-64 cosine, LSUN linear-β) are for guided-diffusion models that ComfyUI does not
load, and the LSUN list looks like a placeholder (identical for two datasets), so none of them ships.

Last step (a decision, docs/search.md): the official run stops at σ ≈ 0.1155 after 4 model calls and decodes the
residual noise; ComfyUI schedules end in 0, so we append 0: 5 model calls with dpmpp_2m/euler, the last one a plain
denoise. The list was searched at CFG 7.5 and transfers across SD1.x checkpoints with the scaled-linear table
(SD1.4/1.5 and fine-tunes) only at that guidance scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ScheduleError
from ..model_kind import ModelKind

__all__ = ["PRESETS", "Preset", "dpm_solver_time_to_sigma", "preset_sigmas"]


@dataclass(frozen=True)
class Preset:
    family: str            # the ComfyUI model family whose table the list was searched on
    sampler: str           # the sampler it was searched for
    cfg: float             # the guidance scale it was searched at
    times: tuple[float, ...]  # DPM-Solver times as published (ascending in the file)
    source: str
    note: str


PRESETS: dict[str, Preset] = {
    "autodiffusion_sd1_dpmpp_2m_4": Preset(
        family="sd1", sampler="dpmpp_2m", cfg=7.5,
        times=(0.014986000955104828, 0.2857150137424469, 0.5005000233650208, 0.7182819843292236,
               0.9260739684104919),
        source="AutoDiffusion (Li et al., ICCV 2023, arXiv 2309.10438), official code github.com/lilijiangg/"
               "AutoDiffusion @1292082, examples/Stable Diffusion/sample_fid_dpm_solver.sh (SD v1.4, "
               "DPM-Solver 2M data prediction, CFG 7.5, COCO FID fitness)",
        note="4 searched steps + a final denoise to 0 (5 model calls); searched at CFG 7.5 on SD1.x.",
    ),
}


def dpm_solver_time_to_sigma(t, kind: ModelKind) -> torch.Tensor:
    """DPM-Solver's discrete-time noise schedule: n = 1000 t − 1 (for a 1000-entry table), log α interpolated
    linearly in n from the model's table, σ = √(exp(−2 log α) − 1). float64."""
    if not kind.is_discrete:
        raise ScheduleError(f"DPM-Solver times need a discrete eps/v model, not a {kind.kind} model; "
                            "use the preset with an SD1.x checkpoint.")
    table = kind.sigmas_table
    size = len(table)
    log_alpha = (-0.5 * torch.log1p(table.square())).numpy()
    n = np.asarray(t, dtype=np.float64) * size - 1.0
    if (n < 0).any() or (n > size - 1).any():
        raise ScheduleError(f"DPM-Solver times {t} fall outside this model's table of {size} steps.")
    lam = np.interp(n, np.arange(size, dtype=np.float64), log_alpha)
    return torch.from_numpy(np.sqrt(np.expm1(-2.0 * lam)))


def preset_sigmas(name: str, kind: ModelKind | None = None) -> torch.Tensor:
    """The preset's schedule for ``kind`` (default: the SD1 table), descending, ending in 0 (float64)."""
    if name not in PRESETS:
        raise ScheduleError(f"preset {name!r} is unknown; choose one of {', '.join(PRESETS)}.")
    kind = ModelKind.vp() if kind is None else kind
    preset = PRESETS[name]
    reference = ModelKind.vp()
    if kind.sigmas_table is None or len(kind.sigmas_table) != len(reference.sigmas_table) \
            or not torch.allclose(kind.sigmas_table, reference.sigmas_table, rtol=1e-5):
        raise ScheduleError(f"preset {name!r} was searched on the {preset.family.upper()} scaled-linear table "
                            f"and needs that model's table, not a {kind.describe()}; use an SD1.x checkpoint "
                            "or run Timestep Search for this model.")
    sig = dpm_solver_time_to_sigma(sorted(preset.times, reverse=True), kind)
    return torch.cat([sig, sig.new_zeros(1)])
