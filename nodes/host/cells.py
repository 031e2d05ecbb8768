"""A/B Compare: one cell = one sampler and one schedule from the same noise, run through the catalogue."""
from __future__ import annotations

from typing import Any

import torch

from ...schedules.errors import ScheduleError
from .access import load
from .guider import sampler_function
from .kinds import model_kind_of
from .patches import model_settings_of, pack_settings
from .plots import stock_sigmas


class _BoundModel:
    """ComfyUI's denoiser inside ``guider.sample`` with its sampling ``extra_args`` (model_options, conditioning
    bookkeeping) bound, so a sampler run by the catalogue calls it exactly as ComfyUI's own samplers do; every
    other attribute is the original's."""

    def __init__(self, model, extra_args: dict):
        self._model, self._extra = model, extra_args

    def __call__(self, x, sigma, **kwargs):
        return self._model(x, sigma, **{**self._extra, **kwargs})

    def __getattr__(self, name):
        return getattr(self._model, name)


def sampler_names() -> list[str]:
    samplers = load("comfy.samplers")
    return list(getattr(samplers, "SAMPLER_NAMES", [])) if samplers else []


def cell_sampler(name: str, options: dict | None = None, sampler: Any = None):
    """What an A/B cell samples with: a catalogue spec (``"sl_tada(detail=2)"``) when the name is in the public
    method catalogue (so the node and ``schedule-lab compare`` run the same code), else the SAMPLER object (a
    connected SAMPLER, or ComfyUI's sampler of that name)."""
    from ...solvers import catalogue

    if sampler is not None:
        return sampler
    if name in catalogue.SAMPLERS:
        opts = ",".join(f"{k}={v}" for k, v in (options or {}).items())
        return f"{name}({opts})" if opts else name
    if options:
        raise ScheduleError(f"sampler {name!r}: options {sorted(options)} apply only to catalogue samplers")
    samplers = load("comfy.samplers")
    return samplers.sampler_object(name)


def scheduler_sigmas_for(model: Any, name: str, steps: int, denoise: float) -> torch.Tensor:
    """What BasicScheduler gives for this model (KSampler's denoise rule)."""
    from ...schedules.resample import truncate_for_denoise

    ms = model.get_model_object("model_sampling")
    return truncate_for_denoise(lambda n: stock_sigmas(ms, name, n), steps, denoise).to(torch.float32)


def model_velocity(model: Any):
    """The Constant-Rate calibration this MODEL carries (the Constant-Rate Scheduler's MODEL output), or None."""
    return model_settings_of(model.get_model_object("model_sampling"), ("velocity",)).get("velocity")


def sample_cell(model: Any, positive, negative, cfg: float, latent: dict, sampler: Any, sigmas: torch.Tensor,
                seed: int, callback=None):
    """Sample one A/B cell as SamplerCustomAdvanced with RandomNoise(seed) would, through the catalogue's ``run``
    (which counts model calls and times the sampler). ``sampler``: a catalogue spec or a SAMPLER object.
    Returns (LATENT samples, catalogue Result)."""
    from ...solvers import catalogue

    samplers, sample_mod = load("comfy.samplers"), load("comfy.sample")
    samples = sample_mod.fix_empty_latent_channels(model, latent["samples"])
    noise = sample_mod.prepare_noise(samples, seed, latent.get("batch_index"))
    guider = samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    kind, box = model_kind_of(model), {}
    spec = sampler if isinstance(sampler, str) else sampler_function(sampler)  # a SAMPLER unwrapped once (guider.py)

    def through_catalogue(m, x, s, extra_args=None, callback=None, disable=None, **_):
        extra = dict(extra_args or {})
        # x is already ComfyUI's noised start (noise_scaling of the model kind), so sigma_start=1 keeps it as is
        box["result"] = catalogue.run(spec, s, _BoundModel(m, extra), x, kind=kind, seed=seed, sigma_start=1.0,
                                      provided=pack_settings(extra), callback=callback)
        return box["result"].x0

    out = guider.sample(noise, samples, samplers.KSAMPLER(through_catalogue), sigmas,
                        denoise_mask=latent.get("noise_mask"), callback=callback, disable_pbar=True, seed=seed)
    return out.to("cpu"), box["result"]
