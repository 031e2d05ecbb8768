"""ComfyUI's ``model_sampling`` → :class:`ModelKind` (the model's parametrisation: eps / v / EDM / flow)."""
from __future__ import annotations

import math
from typing import Any

import torch

from ...schedules.errors import ScheduleError
from ...schedules.model_kind import ModelKind
from .access import load


def model_kind_from_sampling(ms: Any) -> ModelKind:
    """Describe ComfyUI's ``model_sampling`` object as a :class:`ModelKind`.

    Raises :class:`ScheduleError` naming the object's class when the parametrisation is one the pack
    cannot serve (e.g. Stable Cascade, Cosmos), rather than guessing.
    """
    msmod = load("comfy.model_sampling")
    name = type(ms).__name__
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    if msmod is None:
        raise ScheduleError("model: ComfyUI's comfy.model_sampling is unavailable; update ComfyUI")

    def is_(cls) -> bool:  # a class missing in this ComfyUI version matches nothing
        return cls is not None and isinstance(ms, cls)

    unsupported = {
        "StableCascadeSampling": getattr(msmod, "StableCascadeSampling", None),
        "ModelSamplingCosmosRFlow": getattr(msmod, "ModelSamplingCosmosRFlow", None),
        "COSMOS_RFLOW": getattr(msmod, "COSMOS_RFLOW", None),
        "X0": getattr(msmod, "X0", None),
        "IMG_TO_IMG": getattr(msmod, "IMG_TO_IMG", None),
    }
    for bad, cls in unsupported.items():
        if is_(cls):
            raise ScheduleError(
                f"model: its sampling type {name} ({bad}) is not supported by Schedule Lab; "
                "use a stock scheduler/sampler for this model"
            )
    if is_(getattr(msmod, "CONST", None)):
        shift = float(getattr(ms, "shift", 1.0))
        multiplier = float(getattr(ms, "multiplier", 1000.0))
        if is_(getattr(msmod, "ModelSamplingFlux", None)):
            # Flux's exponential time shift with mu equals the SD3 shift with shift = exp(mu).
            shift, multiplier = math.exp(shift), 1.0
        return ModelKind(kind="flow", sigma_min=sigma_min, sigma_max=sigma_max, shift=shift, multiplier=multiplier)
    table = getattr(ms, "sigmas", None)
    table = table.detach().to("cpu", torch.float64) if isinstance(table, torch.Tensor) else None
    sigma_data = float(getattr(ms, "sigma_data", 1.0))
    if is_(getattr(msmod, "EDM", None)):
        return ModelKind(kind="edm", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data)
    if is_(getattr(msmod, "V_PREDICTION", None)):
        return ModelKind(kind="v", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data,
                         sigmas_table=table)
    if is_(getattr(msmod, "EPS", None)):
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
