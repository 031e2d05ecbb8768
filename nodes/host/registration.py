"""Our names in ComfyUI's KSampler lists: appended in place, append-only, idempotent, version-drift guarded.

A list or table missing in this ComfyUI logs one warning and registers nothing (the pack's nodes keep working);
:func:`register_all` never raises.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ...schedules.catalogue import NEEDS, SCHEDULES, model_needs, schedule_sigmas
from ...schedules.validate import denoise_expansion
from ...solvers.catalogue import SAMPLERS, bind_sampler
from .. import registry
from .access import comfy_version, load, log, warn_once
from .folders import saved_schedule_paths
from .kinds import model_kind_from_sampling, model_kind_in_sampler
from .patches import model_settings_of, pack_settings

_wrapped: dict[str, Any] = {}


def host_provided(needs: tuple[str, ...], model_sampling: Any) -> dict[str, Any]:
    """What the host supplies for ``needs`` (``schedules.catalogue.NEEDS``) at a scheduler call: the settings this
    ``model_sampling`` carries, and the user's saved schedule files for a ``"files"`` need."""
    provided = model_settings_of(model_sampling, model_needs(needs))
    for n in needs:
        if NEEDS[n].source == "files":
            provided[n] = saved_schedule_paths()
    return provided


def _scheduler_handler(name: str):
    def handler(model_sampling, steps):
        provided = host_provided(SCHEDULES[name].needs, model_sampling)
        # KSampler asks for int(steps / denoise) steps (its own steps are capped at 10000): not a count the user typed
        with denoise_expansion():
            return schedule_sigmas(name, model_kind_from_sampling(model_sampling), int(steps),
                                   provided).to(torch.float32)

    handler.__name__ = f"schedule_lab_{name}"
    handler.__doc__ = SCHEDULES[name].description
    return handler


def register_schedulers(names: Iterable[str] | None = None) -> list[str]:
    """Append schedules of the catalogue (default: ``registry.DROPDOWN_SCHEDULERS``) to ComfyUI's scheduler list: in
    place, append-only, idempotent."""
    names = registry.DROPDOWN_SCHEDULERS if names is None else names
    samplers = load("comfy.samplers")
    if samplers is None or not (hasattr(samplers, "SCHEDULER_HANDLERS") and hasattr(samplers, "SCHEDULER_NAMES")
                                and hasattr(samplers, "SchedulerHandler")):
        warn_once("schedulers", "this ComfyUI has no SchedulerHandler table; pack schedulers are available "
                  "only through the Schedule Lab nodes (SIGMAS output), not in the KSampler dropdown")
        return []
    added = []
    for name in names:
        if name in samplers.SCHEDULER_HANDLERS and name in samplers.SCHEDULER_NAMES:
            continue
        samplers.SCHEDULER_HANDLERS[name] = samplers.SchedulerHandler(_scheduler_handler(name), use_ms=True)
        if name not in samplers.SCHEDULER_NAMES:
            samplers.SCHEDULER_NAMES.append(name)
        added.append(name)
    return added


def comfy_sampler(name: str):
    """The function ComfyUI calls for catalogue sampler ``name``: bound by ``bind_sampler`` with the model's kind and
    the settings the MODEL carries (explicit options, e.g. from the TADA Sampler node, win over the model's)."""
    item = SAMPLERS[name]
    if name in _wrapped and _wrapped[name].schedule_lab_entry is item:
        return _wrapped[name]

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        fn = bind_sampler(name, model_kind_in_sampler(model), pack_settings(extra_args))
        return fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)

    sample.__name__ = f"sample_{name}"
    sample.__doc__ = item.description
    sample.schedule_lab_name, sample.schedule_lab_entry = name, item
    _wrapped[name] = sample
    return sample


def register_samplers(names: Iterable[str] | None = None) -> list[str]:
    """Append samplers of the catalogue (default: ``registry.DROPDOWN_SAMPLERS``) to ComfyUI's sampler lists: in
    place, append-only, idempotent."""
    names = list(registry.DROPDOWN_SAMPLERS if names is None else names)
    if not names:
        return []
    samplers = load("comfy.samplers")
    ksampling = load("comfy.k_diffusion.sampling")
    if samplers is None or ksampling is None or not hasattr(samplers, "SAMPLER_NAMES"):
        warn_once("samplers", "this ComfyUI has no SAMPLER_NAMES list; pack samplers are available only "
                  "through the Schedule Lab SAMPLER nodes")
        return []
    added = []
    for name in names:
        fn = comfy_sampler(name)
        attr = f"sample_{name}"
        if getattr(ksampling, attr, None) is not fn:
            setattr(ksampling, attr, fn)
        lists = [samplers.SAMPLER_NAMES] + ([samplers.KSAMPLER_NAMES] if hasattr(samplers, "KSAMPLER_NAMES") else [])
        fresh = False
        for names in lists:
            if name not in names:
                names.append(name)
                fresh = True
        if fresh:
            added.append(name)
    return added


def register_all() -> dict[str, list[str]]:
    """Register every pack name; never raises (a failure is logged once and the nodes keep working)."""
    result = {"schedulers": [], "samplers": []}
    try:
        result["schedulers"] = register_schedulers()
        result["samplers"] = register_samplers()
    except Exception as exc:  # noqa: BLE001 - registration must never break the pack's import
        warn_once("register", f"registration into the KSampler lists failed: {exc!r}")
    if result["schedulers"] or result["samplers"]:
        log.info("[Schedule Lab] ComfyUI %s: added schedulers %s, samplers %s", comfy_version(),
                 result["schedulers"], result["samplers"])
    return result


def sampler_object(name: str, options: dict[str, Any]):
    """A ComfyUI SAMPLER running pack sampler ``name`` with explicit ``options`` (SamplerCustom[Advanced])."""
    samplers = load("comfy.samplers")
    if samplers is None or not hasattr(samplers, "KSAMPLER"):
        raise RuntimeError("Schedule Lab: this ComfyUI has no comfy.samplers.KSAMPLER; update ComfyUI")
    return samplers.KSAMPLER(comfy_sampler(name), extra_options=dict(options))


def stock_sampler_object(name: str):
    """ComfyUI's own SAMPLER for a stock sampler name (what KSamplerSelect gives); an error naming the input when this
    ComfyUI has no sampler of that name."""
    from ...schedules.errors import ScheduleError

    samplers = load("comfy.samplers")
    names = list(getattr(samplers, "SAMPLER_NAMES", [])) if samplers is not None else []
    if name not in names or not hasattr(samplers, "sampler_object"):
        raise ScheduleError(f"sampler: this ComfyUI ({comfy_version()}) has no sampler {name!r}; update ComfyUI or "
                            "choose another preset")
    return samplers.sampler_object(name)


def discards_penultimate(name: str) -> bool:
    """KSampler's rule for ``name`` (uni_pc, uni_pc_bh2, ...): one more step is computed and the penultimate sigma
    dropped (``KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS``)."""
    samplers = load("comfy.samplers")
    return name in getattr(getattr(samplers, "KSampler", None), "DISCARD_PENULTIMATE_SIGMA_SAMPLERS", ())
