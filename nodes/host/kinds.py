"""ComfyUI's ``model_sampling`` → :class:`ModelKind` (the model's parametrisation: eps / v / EDM / flow)."""
from __future__ import annotations

import math
from typing import Any

import torch

from ...schedules.errors import ScheduleError
from ...schedules.model_kind import ModelKind
from .access import load

#: The comfy.model_sampling classes the pack understands (ComfyUI 0.3.64; docs/compat.md). A model whose sampling
#: object has any other class of that module in its ancestry is refused by that class's name, never classified by
#: the base class it extends (newer ComfyUI's IMG_TO_IMG_FLOW extends CONST but is not a flow model to sample).
KNOWN_SAMPLING = frozenset({"EPS", "V_PREDICTION", "EDM", "CONST", "ModelSamplingDiscrete", "ModelSamplingDiscreteEDM",
                            "ModelSamplingContinuousEDM", "ModelSamplingContinuousV", "ModelSamplingDiscreteFlow",
                            "ModelSamplingFlux"})
#: Known classes the pack refuses, with the reason.
REFUSED_SAMPLING = {
    "StableCascadeSampling": "Stable Cascade's cosine schedule",
    "ModelSamplingCosmosRFlow": "Cosmos' rectified-flow parametrisation",
    "COSMOS_RFLOW": "Cosmos' rectified-flow parametrisation",
    "X0": "an x0-prediction model",
    "IMG_TO_IMG": "an image-to-image model that does not start from noise",
    "IMG_TO_IMG_FLOW": "an image-to-image flow model that does not start from noise (newer ComfyUI)",
    "IMG_TO_IMG_VELOCITY": "an image-to-image velocity model that does not start from noise (newer ComfyUI)",
    "V_PREDICTION_DDPM": "CogVideoX-style v-prediction on raw inputs (newer ComfyUI; not yet checked)",
    "ModelSamplingAV": "packed audio-video flow with its own audio shift (newer ComfyUI; not yet checked)",
}


def _refused_classes(msmod) -> dict[str, Any]:
    """The refused classes this ComfyUI has (None where it lacks one), by their names."""
    return {"StableCascadeSampling": getattr(msmod, "StableCascadeSampling", None),
            "ModelSamplingCosmosRFlow": getattr(msmod, "ModelSamplingCosmosRFlow", None),
            "COSMOS_RFLOW": getattr(msmod, "COSMOS_RFLOW", None),
            "X0": getattr(msmod, "X0", None),
            "IMG_TO_IMG": getattr(msmod, "IMG_TO_IMG", None),
            "IMG_TO_IMG_FLOW": getattr(msmod, "IMG_TO_IMG_FLOW", None),
            "IMG_TO_IMG_VELOCITY": getattr(msmod, "IMG_TO_IMG_VELOCITY", None),
            "V_PREDICTION_DDPM": getattr(msmod, "V_PREDICTION_DDPM", None),
            "ModelSamplingAV": getattr(msmod, "ModelSamplingAV", None)}


def model_kind_from_sampling(ms: Any) -> ModelKind:
    """Describe ComfyUI's ``model_sampling`` object as a :class:`ModelKind`.

    Raises :class:`ScheduleError` naming the class when the parametrisation is one the pack cannot serve (e.g.
    Stable Cascade, Cosmos, image-to-image models) or one it has not been checked with (any comfy.model_sampling
    class outside KNOWN_SAMPLING), and for a flow model whose ``noise_scale`` is not 1 (the pack's searches and
    calibrations draw unit noise), rather than guessing.
    """
    msmod = load("comfy.model_sampling")
    name = type(ms).__name__
    if msmod is None:
        raise ScheduleError("model: ComfyUI's comfy.model_sampling is unavailable; update ComfyUI")
    core = [c.__name__ for c in type(ms).__mro__ if vars(msmod).get(c.__name__) is c]
    refused = [n for n, cls in _refused_classes(msmod).items() if cls is not None and isinstance(ms, cls)]
    for bad in refused + core:
        if bad not in KNOWN_SAMPLING:
            why = REFUSED_SAMPLING.get(bad, "a sampling type newer than the ComfyUI versions Schedule Lab was checked "
                                            "with (docs/compat.md)")
            raise ScheduleError(f"model: its sampling type {name} ({bad}: {why}) is not supported by Schedule Lab; "
                                "use a stock scheduler/sampler for this model")
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    if "CONST" in core:
        noise_scale = float(getattr(ms, "noise_scale", 1.0))
        if noise_scale != 1.0:
            raise ScheduleError(f"model: its sampling type {name} has noise_scale={noise_scale:g}; Schedule Lab's "
                                "schedules, searches and calibrations assume unit noise (noise_scale 1); use a stock "
                                "scheduler/sampler for this model")
        shift = float(getattr(ms, "shift", 1.0))
        multiplier = float(getattr(ms, "multiplier", 1000.0))
        if "ModelSamplingFlux" in core:
            # Flux's exponential time shift with mu equals the SD3 shift with shift = exp(mu).
            shift, multiplier = math.exp(shift), 1.0
        return ModelKind(kind="flow", sigma_min=sigma_min, sigma_max=sigma_max, shift=shift, multiplier=multiplier)
    table = getattr(ms, "sigmas", None)
    table = table.detach().to("cpu", torch.float64) if isinstance(table, torch.Tensor) else None
    sigma_data = float(getattr(ms, "sigma_data", 1.0))
    if "EDM" in core:
        return ModelKind(kind="edm", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data)
    if "V_PREDICTION" in core:
        return ModelKind(kind="v", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data,
                         sigmas_table=table)
    if "EPS" in core:
        return ModelKind(kind="eps", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data,
                         sigmas_table=table)
    raise ScheduleError(f"model: unknown sampling type {name}; Schedule Lab supports eps, v, EDM and flow models")


def model_kind_of(model: Any) -> ModelKind:
    """The :class:`ModelKind` of a ComfyUI MODEL (ModelPatcher), honouring ModelSampling* patches."""
    return model_kind_from_sampling(model.get_model_object("model_sampling"))


def model_kind_in_sampler(model: Any) -> ModelKind | None:
    """The ModelKind inside a sampler call: ``model`` is ComfyUI's KSamplerX0Inpaint → CFGGuider → BaseModel."""
    ms = getattr(getattr(getattr(model, "inner_model", None), "inner_model", None), "model_sampling", None)
    return None if ms is None else model_kind_from_sampling(ms)
