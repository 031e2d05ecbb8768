"""Running pack code with a GUIDER's model (Timestep Search, Constant-Rate Scheduler): inside ``guider.sample`` so
ComfyUI prepares everything as for sampling (model loaded, conditioning, CFG, patches)."""
from __future__ import annotations

from typing import Any

import torch

from ...schedules.errors import ScheduleError
from .access import load
from .kinds import model_kind_of


def check_latent_fits(model: Any, samples: torch.Tensor) -> None:
    """A latent whose channel count is not the model's is refused, naming the input."""
    fmt = model.get_model_object("latent_format") if hasattr(model, "get_model_object") else None
    channels = getattr(fmt, "latent_channels", None)
    if samples.ndim < 3 or (channels is not None and samples.shape[1] != channels):
        raise ScheduleError(f"latent: shape {tuple(samples.shape)} does not fit this model (it expects "
                            f"{channels} channels); use an Empty Latent node made for this model.")


def sampler_function(sampler: Any):
    """A SAMPLER input as a k-diffusion function ``fn(model, x, sigmas, extra_args, callback, disable)``."""
    fn = getattr(sampler, "sampler_function", None)
    if not callable(fn):
        raise ScheduleError("sampler: this SAMPLER cannot be driven step by step (Timestep Search, A/B Compare: it "
                            "has no sampler_function); connect a KSamplerSelect or a Schedule Lab sampler node.")
    options = dict(getattr(sampler, "extra_options", {}) or {})

    def run(model, x, sigmas, extra_args=None, callback=None, disable=None):
        return fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)

    run.__name__ = getattr(fn, "__name__", "sampler")
    return run


def sampler_name(sampler: Any) -> str:
    """The dropdown name of a SAMPLER (what a searched file records): a pack sampler's own name, else the KSampler
    name whose k-diffusion function this is (``dpm_fast`` is ``dpm_fast_function`` inside ComfyUI), else
    k-diffusion's ``sample_<name>`` rule, else the function's name marked as such."""
    fn = getattr(sampler, "sampler_function", None)
    own = getattr(fn, "schedule_lab_name", None)
    if own:
        return own
    samplers, ksampling = load("comfy.samplers"), load("comfy.k_diffusion.sampling")
    names = list(getattr(getattr(samplers, "KSampler", None), "SAMPLERS", []) or [])
    for name in names:
        if ksampling is not None and vars(ksampling).get(f"sample_{name}") is fn:
            return name
    raw = getattr(fn, "__name__", type(sampler).__name__)
    for name in names:  # ComfyUI's wrappers: dpm_fast -> dpm_fast_function
        if raw == f"{name}_function":
            return name
    if raw.startswith("sample_"):  # k-diffusion's naming rule, for a host whose lists we cannot read
        return raw.removeprefix("sample_")
    return f"function {raw}"


def latent_to_model_space(model: Any, samples: torch.Tensor) -> torch.Tensor:
    """VAE latents (e.g. from VAE Encode) in the space the sampler works in (the model's process_latent_in)."""
    return model.model.process_latent_in(samples)


def _inside_guider(guider: Any, latent: dict, inner, seed: int):
    """Call ``inner(model, x, extra_args)`` from inside ``guider.sample``, so ComfyUI prepares everything as for
    sampling (model loaded, conditioning, CFG, patches); ``model`` follows the k-diffusion contract and carries the
    LATENT in the model's space as ``model.latent_image``. Returns what ``inner`` returned."""
    samplers = load("comfy.samplers")
    if samplers is None or not hasattr(samplers, "KSAMPLER"):
        raise RuntimeError("Schedule Lab: this ComfyUI has no comfy.samplers.KSAMPLER; update ComfyUI")
    samples = latent["samples"]
    sample_mod = load("comfy.sample")
    if sample_mod is not None and hasattr(sample_mod, "fix_empty_latent_channels"):
        samples = sample_mod.fix_empty_latent_channels(guider.model_patcher, samples)
    check_latent_fits(guider.model_patcher, samples)
    box: dict[str, Any] = {}

    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
        box["out"] = inner(model, x, dict(extra_args or {}))
        return x

    ms = guider.model_patcher.get_model_object("model_sampling")
    sigmas = torch.tensor([float(ms.sigma_max), 0.0])
    guider.sample(torch.zeros_like(samples), samples, samplers.KSAMPLER(fn), sigmas, disable_pbar=True, seed=seed)
    return box["out"]


def run_with_guider(guider: Any, latent: dict, work, seed: int = 0):
    """Run ``work(model, x, extra_args)`` inside ``guider.sample`` (Timestep Search): ``model`` is a k-diffusion
    denoiser ``model(x, sigma_vec, **extra_args)`` and ``x`` a latent of the right shape, dtype and device."""
    return _inside_guider(guider, latent, work, seed)


def calibrate_with_guider(guider: Any, latent: dict, work, seed: int = 0):
    """Run ``work(call, kind, latent_in)`` inside ``guider.sample`` (Constant-Rate Scheduler) and return its result:
    ``call(x, sigma_vec) -> denoised`` (k-diffusion contract, conditioning bound), ``kind`` the model's ModelKind and
    ``latent_in`` the LATENT in the model's space (``process_latent_in``; all zeros for an empty latent)."""
    kind = model_kind_of(guider.model_patcher)

    def inner(model, x, extra):
        def call(xb, sigma):
            return model(xb, sigma, **extra)

        latent_in = getattr(model, "latent_image", None)
        return work(call, kind, torch.zeros_like(x) if latent_in is None else latent_in)

    return _inside_guider(guider, latent, inner, seed)
