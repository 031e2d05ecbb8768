"""Live plots: a ``model_sampling`` per model-family preset, ComfyUI's scheduler table, HTTP routes."""
from __future__ import annotations

from typing import Any

import torch

from ...schedules.errors import ScheduleError
from .access import load, warn_once

#: The one list of model-family presets (the plot route checks against it; the web extension reads it from
#: ``/schedule_lab/schedules``): family -> (ComfyUI model_sampling class, prediction type).
FAMILY_PRESETS = {"sd1": ("ModelSamplingDiscrete", "EPS"), "sdxl": ("ModelSamplingDiscrete", "EPS"),
                  "sd2v": ("ModelSamplingDiscrete", "V_PREDICTION"), "sd3": ("ModelSamplingDiscreteFlow", "CONST"),
                  "flux": ("ModelSamplingFlux", "CONST")}
FAMILIES = tuple(FAMILY_PRESETS)


def model_sampling_preset(family: str) -> Any:
    """A ComfyUI ``model_sampling`` object as the family's checkpoint loader would build it, without a model:
    sd1/sdxl (eps, scaled_linear betas), sd2v (v), sd3 (discrete flow, shift 3) and flux (Flux time shift 1.15)."""
    if family not in FAMILY_PRESETS:
        raise ScheduleError(f"family: {family!r} is unknown; choose one of {', '.join(FAMILIES)}")
    ms = load("comfy.model_sampling")
    if ms is None:
        raise ScheduleError("family: ComfyUI's comfy.model_sampling is unavailable; update ComfyUI")
    sampling, prediction = (getattr(ms, n) for n in FAMILY_PRESETS[family])
    obj = type(f"SL_{family}", (sampling, prediction), {})(None)
    if family == "sd3":
        obj.set_parameters(shift=3.0, multiplier=1000)
    return obj


def scheduler_names() -> list[str]:
    """Every name in KSampler's scheduler list (stock and packs')."""
    samplers = load("comfy.samplers")
    return list(getattr(samplers, "SCHEDULER_NAMES", [])) if samplers else []


def stock_sigmas(model_sampling: Any, scheduler: str, steps: int) -> torch.Tensor:
    """What KSampler computes for ``scheduler`` at ``steps`` on this ``model_sampling``."""
    samplers = load("comfy.samplers")
    if samplers is None or not hasattr(samplers, "calculate_sigmas"):
        raise ScheduleError("scheduler: ComfyUI's comfy.samplers.calculate_sigmas is unavailable; update ComfyUI")
    return samplers.calculate_sigmas(model_sampling, scheduler, steps).to("cpu", torch.float64)


def add_get_route(path: str, handler) -> bool:
    """Register an aiohttp GET handler on ComfyUI's server (also served under /api/…). False without a server."""
    server = load("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or not hasattr(instance, "routes"):
        warn_once("routes", "no ComfyUI server instance; the live schedule plots are unavailable")
        return False
    instance.routes.get(path)(handler)
    return True


def json_response(data: dict, status: int = 200):
    from aiohttp import web

    return web.json_response(data, status=status)


