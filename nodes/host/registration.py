"""Our names in ComfyUI's KSampler lists: appended in place, append-only, idempotent, version-drift guarded.

A list or table missing in this ComfyUI logs one warning and registers nothing (the pack's nodes keep working);
:func:`register_all` never raises.
"""
from __future__ import annotations

from typing import Any

import torch

from ...schedules.validate import denoise_expansion
from ..registry import SAMPLERS, SCHEDULERS, Entry
from .access import comfy_version, load, log, warn_once
from .folders import saved_schedule_paths
from .kinds import model_kind_from_sampling, model_kind_in_sampler
from .patches import model_settings_of, pack_settings

_wrapped: dict[str, Any] = {}


def _scheduler_handler(entry: Entry):
    def handler(model_sampling, steps):
        found = model_settings_of(model_sampling, entry.model_settings)
        if entry.saved_files:
            found["schedule_paths"] = saved_schedule_paths()
        # KSampler asks for int(steps / denoise) steps (its own steps are capped at 10000): not a count the user typed
        with denoise_expansion():
            return entry.fn(model_kind_from_sampling(model_sampling), int(steps), **found).to(torch.float32)

    handler.__name__ = f"schedule_lab_{entry.fn.__name__}"
    handler.__doc__ = entry.description
    return handler


def register_schedulers(entries: dict[str, Entry] | None = None) -> list[str]:
    """Append pack schedulers to ComfyUI's scheduler list: in place, append-only, idempotent."""
    entries = SCHEDULERS if entries is None else entries
    samplers = load("comfy.samplers")
    if samplers is None or not (hasattr(samplers, "SCHEDULER_HANDLERS") and hasattr(samplers, "SCHEDULER_NAMES")
                                and hasattr(samplers, "SchedulerHandler")):
        warn_once("schedulers", "this ComfyUI has no SchedulerHandler table; pack schedulers are available "
                  "only through the Schedule Lab nodes (SIGMAS output), not in the KSampler dropdown")
        return []
    added = []
    for name, entry in entries.items():
        if name in samplers.SCHEDULER_HANDLERS and name in samplers.SCHEDULER_NAMES:
            continue
        samplers.SCHEDULER_HANDLERS[name] = samplers.SchedulerHandler(_scheduler_handler(entry), use_ms=True)
        if name not in samplers.SCHEDULER_NAMES:
            samplers.SCHEDULER_NAMES.append(name)
        added.append(name)
    return added


def comfy_sampler(name: str, entry: Entry):
    """The function ComfyUI calls for pack sampler ``name``: fills in the model kind and any model-level settings
    (explicit options, e.g. from the TADA Sampler node, win over the model's)."""
    if name in _wrapped and _wrapped[name].schedule_lab_entry is entry:
        return _wrapped[name]

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        settings = {k: v for k, v in pack_settings(extra_args).items() if k in entry.model_settings}
        merged = {**entry.defaults, **settings, **options}
        return entry.fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                        kind=model_kind_in_sampler(model), **merged)

    sample.__name__ = f"sample_{name}"
    sample.__doc__ = entry.description
    sample.schedule_lab_name, sample.schedule_lab_entry = name, entry
    _wrapped[name] = sample
    return sample


def register_samplers(entries: dict[str, Entry] | None = None) -> list[str]:
    """Append pack samplers to ComfyUI's sampler lists: in place, append-only, idempotent."""
    entries = SAMPLERS if entries is None else entries
    if not entries:
        return []
    samplers = load("comfy.samplers")
    ksampling = load("comfy.k_diffusion.sampling")
    if samplers is None or ksampling is None or not hasattr(samplers, "SAMPLER_NAMES"):
        warn_once("samplers", "this ComfyUI has no SAMPLER_NAMES list; pack samplers are available only "
                  "through the Schedule Lab SAMPLER nodes")
        return []
    added = []
    for name, entry in entries.items():
        fn = comfy_sampler(name, entry)
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
    return samplers.KSAMPLER(comfy_sampler(name, SAMPLERS[name]), extra_options=dict(options))
