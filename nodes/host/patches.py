"""Settings carried on a MODEL for the pack's dropdown entries (ComfyUI's clone + patch semantics).

Two carriers, both on a clone so the loaded model and other graphs are never touched:
* scheduler settings (e.g. the Constant-Rate Scheduler's ``velocity``) ride on a private copy of
  ``model_sampling`` (:func:`with_model_setting`), which is what a scheduler handler receives;
* sampler settings (e.g. Detail Level's ``detail``) ride in ``model_options["transformer_options"]``
  (:func:`with_settings`), which is what a sampler call receives in ``extra_args``.
"""
from __future__ import annotations

import copy
import weakref
from typing import Any

from .access import load, warn_once

SETTINGS_KEY = "schedule_lab"  # our dict inside model_options["transformer_options"]
_model_settings: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def attach_model_setting(model_sampling: Any, name: str, value: Any) -> None:
    """Remember ``value`` for scheduler entries that declare ``name`` in ``model_settings``, for as long as this
    ``model_sampling`` object lives. Nodes use :func:`with_model_setting`, which attaches it to a private copy."""
    _model_settings.setdefault(model_sampling, {})[name] = value


def with_model_setting(model: Any, name: str, value: Any) -> Any:
    """A clone of the MODEL whose ``model_sampling`` is a private copy carrying ``name = value`` for the pack's
    dropdown schedulers: only KSamplers fed this MODEL see it (the loaded model is never mutated, so other graphs
    and later prompts are unaffected), exactly like ComfyUI's own ModelSampling* patch nodes."""
    patched = model.clone()
    sampling = copy.copy(model.get_model_object("model_sampling"))  # shallow: shares the sigma buffers
    attach_model_setting(sampling, name, value)
    patched.add_object_patch("model_sampling", sampling)
    return patched


def model_settings_of(model_sampling: Any, names: tuple[str, ...]) -> dict[str, Any]:
    try:
        stored = _model_settings.get(model_sampling, {})
    except TypeError:  # not weak-referenceable: nothing can have been attached
        return {}
    return {k: stored[k] for k in names if k in stored}


def pack_settings(extra_args: dict | None) -> dict[str, Any]:
    """Settings stored on the MODEL by our patch nodes (e.g. Detail Level), as seen inside a sampler call."""
    options = (extra_args or {}).get("model_options", {})
    return dict(options.get("transformer_options", {}).get(SETTINGS_KEY, {}))


def with_settings(model: Any, watch_key: str, watch, **settings):
    """A clone of MODEL carrying pack ``settings`` for pack samplers, plus ``watch(sampler_name, explicit_options)``
    called each time the model is sampled (to tell the user when a setting has no effect)."""
    patcher_ext = load("comfy.patcher_extension")
    m = model.clone()
    m.model_options.setdefault("transformer_options", {}).setdefault(SETTINGS_KEY, {}).update(settings)
    wrappers = getattr(patcher_ext, "WrappersMP", None)
    if wrappers is None or not hasattr(m, "add_wrapper_with_key"):
        warn_once("wrappers", "this ComfyUI has no sampler wrappers; settings nodes cannot report when they "
                  "have no effect")
        return m

    def sampler_sample(executor, *args, **kwargs):
        fn = getattr(executor.class_obj, "sampler_function", None)
        name = getattr(fn, "schedule_lab_name", None) or getattr(fn, "__name__", type(executor.class_obj).__name__)
        watch(name.removeprefix("sample_"), dict(getattr(executor.class_obj, "extra_options", {}) or {}))
        return executor(*args, **kwargs)

    m.remove_wrappers_with_key(wrappers.SAMPLER_SAMPLE, watch_key)
    m.add_wrapper_with_key(wrappers.SAMPLER_SAMPLE, watch_key, sampler_sample)
    return m
