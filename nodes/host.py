"""The host adapter: the only module of the pack that imports ComfyUI.

Everything ComfyUI-specific lives here: reading a MODEL's ``model_sampling`` into a :class:`ModelKind`,
appending our names to the stock KSampler dropdowns, the ``models/schedules`` folder, progress and
interruption.  Each touch point is listed in :data:`COMPAT`; a missing symbol (ComfyUI version drift)
logs one warning and disables only what needs it, so the pack's own nodes keep working.
"""
from __future__ import annotations

import importlib
import logging
import math
import os
import weakref
from typing import Any

import torch

from ..schedules.errors import ScheduleError
from ..schedules.model_kind import ModelKind
from .registry import SAMPLERS, SCHEDULERS, Entry

log = logging.getLogger("schedule_lab")

#: Every ComfyUI symbol the pack uses, and what breaks without it.
COMPAT: dict[str, str] = {
    "comfy.samplers.SCHEDULER_HANDLERS": "pack schedulers in the KSampler dropdown",
    "comfy.samplers.SCHEDULER_NAMES": "pack schedulers in the KSampler dropdown",
    "comfy.samplers.SchedulerHandler": "pack schedulers in the KSampler dropdown (ComfyUI >= 2025-01)",
    "comfy.samplers.KSAMPLER_NAMES": "pack samplers in the KSampler dropdown",
    "comfy.samplers.SAMPLER_NAMES": "pack samplers in the KSampler dropdown",
    "comfy.samplers.KSAMPLER": "pack SAMPLER nodes",
    "comfy.k_diffusion.sampling": "pack samplers in the KSampler dropdown",
    "comfy.model_sampling": "reading the model kind (eps / v / EDM / flow)",
    "folder_paths": "the models/schedules folder",
    "comfy.sample": "matching an empty latent's channels to the model in the Constant-Rate Scheduler",
}

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning("[Schedule Lab] %s", message)


def _import(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import failure is version drift for us
        _warn_once(name, f"cannot import {name} ({exc}); {COMPAT.get(name, 'some features')} disabled")
        return None


def comfy_version() -> str:
    mod = _import("comfyui_version")
    return getattr(mod, "__version__", "unknown") if mod else "unknown"


# --------------------------------------------------------------------------------------------------
# model_sampling -> ModelKind
# --------------------------------------------------------------------------------------------------
def model_kind_from_sampling(ms: Any) -> ModelKind:
    """Describe ComfyUI's ``model_sampling`` object as a :class:`ModelKind`.

    Raises :class:`ScheduleError` naming the object's class when the parametrisation is one the pack
    cannot serve (e.g. Stable Cascade, Cosmos), rather than guessing.
    """
    msmod = _import("comfy.model_sampling")
    name = type(ms).__name__
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    if msmod is None:
        raise ScheduleError("model: ComfyUI's comfy.model_sampling is unavailable; update ComfyUI")
    is_ = lambda cls_name: hasattr(msmod, cls_name) and isinstance(ms, getattr(msmod, cls_name))  # noqa: E731

    unsupported = ("StableCascadeSampling", "ModelSamplingCosmosRFlow", "COSMOS_RFLOW", "X0", "IMG_TO_IMG")
    for bad in unsupported:
        if is_(bad):
            raise ScheduleError(
                f"model: its sampling type {name} ({bad}) is not supported by Schedule Lab; "
                "use a stock scheduler/sampler for this model"
            )
    if is_("CONST"):
        shift = float(getattr(ms, "shift", 1.0))
        multiplier = float(getattr(ms, "multiplier", 1000.0))
        if is_("ModelSamplingFlux"):
            # Flux's exponential time shift with mu equals the SD3 shift with shift = exp(mu).
            shift, multiplier = math.exp(shift), 1.0
        return ModelKind(kind="flow", sigma_min=sigma_min, sigma_max=sigma_max, shift=shift, multiplier=multiplier)
    table = getattr(ms, "sigmas", None)
    table = table.detach().to("cpu", torch.float64) if isinstance(table, torch.Tensor) else None
    sigma_data = float(getattr(ms, "sigma_data", 1.0))
    if is_("EDM"):
        return ModelKind(kind="edm", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data)
    if is_("V_PREDICTION"):
        return ModelKind(kind="v", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data,
                         sigmas_table=table)
    if is_("EPS"):
        return ModelKind(kind="eps", sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=sigma_data,
                         sigmas_table=table)
    raise ScheduleError(f"model: unknown sampling type {name}; Schedule Lab supports eps, v, EDM and flow models")


def model_kind_of(model: Any) -> ModelKind:
    """The :class:`ModelKind` of a ComfyUI MODEL (ModelPatcher), honouring ModelSampling* patches."""
    return model_kind_from_sampling(model.get_model_object("model_sampling"))


# --------------------------------------------------------------------------------------------------
# Registration into the stock dropdowns
# --------------------------------------------------------------------------------------------------
_model_settings: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def attach_model_setting(model_sampling: Any, name: str, value: Any) -> None:
    """Remember ``value`` for scheduler entries that declare ``name`` in ``model_settings``, for as long as this
    ``model_sampling`` object lives. Nodes use :func:`with_model_setting`, which attaches it to a private copy."""
    _model_settings.setdefault(model_sampling, {})[name] = value


def with_model_setting(model: Any, name: str, value: Any) -> Any:
    """A clone of the MODEL whose ``model_sampling`` is a private copy carrying ``name = value`` for the pack's
    dropdown schedulers: only KSamplers fed this MODEL see it (the loaded model is never mutated, so other graphs
    and later prompts are unaffected), exactly like ComfyUI's own ModelSampling* patch nodes."""
    import copy

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


def _scheduler_handler(entry: Entry):
    def handler(model_sampling, steps):
        found = model_settings_of(model_sampling, entry.model_settings)
        if entry.saved_files:
            found["schedule_paths"] = saved_schedule_paths()
        return entry.fn(model_kind_from_sampling(model_sampling), int(steps), **found).to(torch.float32)

    handler.__name__ = f"schedule_lab_{entry.fn.__name__}"
    handler.__doc__ = entry.description
    return handler


def register_schedulers(entries: dict[str, Entry] | None = None) -> list[str]:
    """Append pack schedulers to ComfyUI's scheduler list: in place, append-only, idempotent."""
    entries = SCHEDULERS if entries is None else entries
    samplers = _import("comfy.samplers")
    needed = ("SCHEDULER_HANDLERS", "SCHEDULER_NAMES", "SchedulerHandler")
    if samplers is None or not all(hasattr(samplers, n) for n in needed):
        _warn_once("schedulers", "this ComfyUI has no SchedulerHandler table; pack schedulers are available "
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


SETTINGS_KEY = "schedule_lab"  # our dict inside model_options["transformer_options"]
_wrapped: dict[str, Any] = {}


def model_kind_in_sampler(model: Any) -> ModelKind | None:
    """The ModelKind inside a sampler call: ``model`` is ComfyUI's KSamplerX0Inpaint → CFGGuider → BaseModel."""
    ms = getattr(getattr(getattr(model, "inner_model", None), "inner_model", None), "model_sampling", None)
    return None if ms is None else model_kind_from_sampling(ms)


def pack_settings(extra_args: dict | None) -> dict[str, Any]:
    """Settings stored on the MODEL by our patch nodes (e.g. Detail Level), as seen inside a sampler call."""
    options = (extra_args or {}).get("model_options", {})
    return dict(options.get("transformer_options", {}).get(SETTINGS_KEY, {}))


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
    samplers = _import("comfy.samplers")
    ksampling = _import("comfy.k_diffusion.sampling")
    if samplers is None or ksampling is None or not hasattr(samplers, "SAMPLER_NAMES"):
        _warn_once("samplers", "this ComfyUI has no SAMPLER_NAMES list; pack samplers are available only "
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
        _warn_once("register", f"registration into the KSampler lists failed: {exc!r}")
    if result["schedulers"] or result["samplers"]:
        log.info("[Schedule Lab] ComfyUI %s: added schedulers %s, samplers %s", comfy_version(),
                 result["schedulers"], result["samplers"])
    return result


def sampler_object(name: str, options: dict[str, Any]):
    """A ComfyUI SAMPLER running pack sampler ``name`` with explicit ``options`` (SamplerCustom[Advanced])."""
    samplers = _import("comfy.samplers")
    if samplers is None or not hasattr(samplers, "KSAMPLER"):
        raise RuntimeError("Schedule Lab: this ComfyUI has no comfy.samplers.KSAMPLER; update ComfyUI")
    return samplers.KSAMPLER(comfy_sampler(name, SAMPLERS[name]), extra_options=dict(options))


def with_settings(model: Any, watch_key: str, watch, **settings):
    """A clone of MODEL carrying pack ``settings`` for pack samplers, plus ``watch(sampler_name, explicit_options)``
    called each time the model is sampled (to tell the user when a setting has no effect)."""
    patcher_ext = _import("comfy.patcher_extension")
    m = model.clone()
    m.model_options.setdefault("transformer_options", {}).setdefault(SETTINGS_KEY, {}).update(settings)
    if patcher_ext is None or not hasattr(patcher_ext, "WrappersMP") or not hasattr(m, "add_wrapper_with_key"):
        _warn_once("wrappers", "this ComfyUI has no sampler wrappers; settings nodes cannot report when they "
                   "have no effect")
        return m

    def sampler_sample(executor, *args, **kwargs):
        fn = getattr(executor.class_obj, "sampler_function", None)
        name = getattr(fn, "schedule_lab_name", None) or getattr(fn, "__name__", type(executor.class_obj).__name__)
        watch(name.removeprefix("sample_"), dict(getattr(executor.class_obj, "extra_options", {}) or {}))
        return executor(*args, **kwargs)

    m.remove_wrappers_with_key(patcher_ext.WrappersMP.SAMPLER_SAMPLE, watch_key)
    m.add_wrapper_with_key(patcher_ext.WrappersMP.SAMPLER_SAMPLE, watch_key, sampler_sample)
    return m


def show_text(node_id: str | None, text: str) -> None:
    """Show ``text`` on a node in the UI (ComfyUI's progress-text event) and log it."""
    log.info("[Schedule Lab] %s", text)
    server = _import("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is not None and node_id is not None and hasattr(instance, "send_progress_text"):
        instance.send_progress_text(text, node_id)


# --------------------------------------------------------------------------------------------------
# models/schedules folder
# --------------------------------------------------------------------------------------------------
SCHEDULE_FOLDER = "schedules"


def ensure_schedule_folder() -> None:
    """Register ``models/schedules`` (extensions: .json) with ComfyUI's folder_paths, idempotently."""
    fp = _import("folder_paths")
    if fp is None:
        return
    default = os.path.join(fp.models_dir, SCHEDULE_FOLDER)
    if SCHEDULE_FOLDER in fp.folder_names_and_paths:
        paths, _ = fp.folder_names_and_paths[SCHEDULE_FOLDER]
        if default not in paths:
            paths.append(default)
        fp.folder_names_and_paths[SCHEDULE_FOLDER] = (paths, {".json"})
    else:
        fp.folder_names_and_paths[SCHEDULE_FOLDER] = ([default], {".json"})


def schedule_files() -> list[str]:
    fp = _import("folder_paths")
    if fp is None:
        return []
    ensure_schedule_folder()
    return fp.get_filename_list(SCHEDULE_FOLDER)


def schedule_read_path(name: str) -> str:
    """Full path of an existing schedule file, found only inside ComfyUI's schedule folders."""
    fp = _import("folder_paths")
    ensure_schedule_folder()
    path = fp.get_full_path(SCHEDULE_FOLDER, name) if fp else None
    if path is None:
        raise ScheduleError(f"schedule: no file named {name!r} in models/{SCHEDULE_FOLDER}; "
                            "save one with the Save Schedule node or copy it there, then refresh")
    return path


def saved_schedule_paths() -> list[tuple[str, str]]:
    """``(name, path)`` of every schedule file, what registry entries with ``saved_files`` need."""
    return [(name, schedule_read_path(name)) for name in schedule_files()]


def schedule_write_dir() -> str:
    """The first (default) schedule folder, created if missing."""
    fp = _import("folder_paths")
    if fp is None:
        raise ScheduleError("schedule: ComfyUI's folder_paths is unavailable; cannot save schedules")
    ensure_schedule_folder()
    directory = fp.get_folder_paths(SCHEDULE_FOLDER)[0]
    os.makedirs(directory, exist_ok=True)
    return directory


# --------------------------------------------------------------------------------------------------
# progress and interruption for long work outside the sampler loop
# --------------------------------------------------------------------------------------------------
class Progress:
    """A ComfyUI progress bar that also honours Cancel; a no-op outside ComfyUI."""

    def __init__(self, total: int):
        utils = _import("comfy.utils")
        self._bar = utils.ProgressBar(total) if utils and hasattr(utils, "ProgressBar") else None
        self._mm = _import("comfy.model_management")

    def step(self, n: int = 1) -> None:
        if self._mm is not None and hasattr(self._mm, "throw_exception_if_processing_interrupted"):
            self._mm.throw_exception_if_processing_interrupted()
        if self._bar is not None:
            self._bar.update(n)


# --------------------------------------------------------------------------------------------------
# running pack code with a GUIDER's model (Timestep Search)
# --------------------------------------------------------------------------------------------------
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
        raise ScheduleError("sampler: this SAMPLER cannot be driven step by step by Timestep Search (it has no "
                            "sampler_function); connect a KSamplerSelect or a Schedule Lab sampler node.")
    options = dict(getattr(sampler, "extra_options", {}) or {})

    def run(model, x, sigmas, extra_args=None, callback=None, disable=None):
        return fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)

    run.__name__ = getattr(fn, "__name__", "sampler")
    return run


def latent_to_model_space(model: Any, samples: torch.Tensor) -> torch.Tensor:
    """VAE latents (e.g. from VAE Encode) in the space the sampler works in (the model's process_latent_in)."""
    return model.model.process_latent_in(samples)


def _inside_guider(guider: Any, latent: dict, inner, seed: int):
    """Call ``inner(model, x, extra_args)`` from inside ``guider.sample``, so ComfyUI prepares everything as for
    sampling (model loaded, conditioning, CFG, patches); ``model`` follows the k-diffusion contract and carries the
    LATENT in the model's space as ``model.latent_image``. Returns what ``inner`` returned."""
    samplers = _import("comfy.samplers")
    if samplers is None or not hasattr(samplers, "KSAMPLER"):
        raise RuntimeError("Schedule Lab: this ComfyUI has no comfy.samplers.KSAMPLER; update ComfyUI")
    samples = latent["samples"]
    sample_mod = _import("comfy.sample")
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


# --------------------------------------------------------------------------------------------------
# V3 node API (comfy_api.latest, ComfyUI >= 0.3.48)
# --------------------------------------------------------------------------------------------------
def v3_api():
    """ComfyUI's V3 node API module (``io``, ``ui``, ``ComfyExtension``) or None on older hosts."""
    api = _import("comfy_api.latest")
    if api is None or not all(hasattr(api, n) for n in ("io", "ui", "ComfyExtension")):
        _warn_once("v3", "this ComfyUI has no V3 node API (comfy_api.latest, ComfyUI >= 0.3.48); the "
                   "Schedule Lab nodes are unavailable, the KSampler dropdown entries still work")
        return None
    return api


# --------------------------------------------------------------------------------------------------
# Constant-rate calibration: model identity, the cache folder, model calls through a GUIDER
# --------------------------------------------------------------------------------------------------
CALIBRATION_FOLDER = "schedule_lab_calibration"


def calibration_dir() -> str:
    """Folder of the calibration cache: ``models/schedule_lab_calibration``, or the last path configured for
    ``schedule_lab_calibration`` in extra_model_paths.yaml; created if missing."""
    fp = _import("folder_paths")
    if fp is None:
        raise ScheduleError("calibration cache: ComfyUI's folder_paths is unavailable; update ComfyUI")
    if CALIBRATION_FOLDER not in fp.folder_names_and_paths:
        fp.folder_names_and_paths[CALIBRATION_FOLDER] = ([os.path.join(fp.models_dir, CALIBRATION_FOLDER)],
                                                        {".json"})
    directory = fp.get_folder_paths(CALIBRATION_FOLDER)[-1]
    os.makedirs(directory, exist_ok=True)
    return directory


def _digest_tensor(h, t: torch.Tensor) -> None:
    """Shape, dtype and 16 strided values: cheap, and any fine-tune or LoRA changes them."""
    h.update(f"{tuple(t.shape)}{t.dtype}".encode())
    try:
        flat = t.detach().reshape(-1)
        if flat.numel():
            idx = torch.linspace(0, flat.numel() - 1, min(16, flat.numel()), device=flat.device).long()
            h.update(flat[idx].to("cpu", torch.float64).numpy().tobytes())
    except (RuntimeError, NotImplementedError, TypeError):  # meta / offloaded / quantised storage: shape only
        h.update(b"?")


def _digest_value(h, value, depth: int = 0) -> None:
    if depth > 4:
        return
    if isinstance(value, torch.Tensor):
        _digest_tensor(h, value)
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _digest_value(h, value[k], depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _digest_value(h, v, depth + 1)
    elif isinstance(value, (int, float, str, bool)) or value is None:
        h.update(repr(value).encode())
    elif isinstance(getattr(value, "cond", None), torch.Tensor):  # ComfyUI's CONDRegular & co.
        h.update(type(value).__name__.encode())
        _digest_tensor(h, value.cond)


def model_fingerprint(model: Any) -> str:
    """Identity of a ModelPatcher for the calibration cache: class, weights (sampled) and weight patches (LoRA)."""
    import hashlib

    h = hashlib.sha256()
    inner = getattr(model, "model", model)
    h.update(type(inner).__name__.encode())
    for name, t in sorted(inner.state_dict().items()):
        h.update(name.encode())
        _digest_tensor(h, t)
    for key in sorted(getattr(model, "patches", {}) or {}):
        h.update(str(key).encode())
        for patch in model.patches[key]:
            h.update(repr([p for p in patch if isinstance(p, (int, float))]).encode())
    return h.hexdigest()[:32]


def guider_fingerprint(guider: Any) -> str:
    """Model fingerprint plus the guider's conditioning and CFG (both change the model's predictions)."""
    import hashlib

    h = hashlib.sha256(model_fingerprint(guider.model_patcher).encode())
    h.update(type(guider).__name__.encode())
    _digest_value(h, getattr(guider, "original_conds", {}))
    _digest_value(h, getattr(guider, "cfg", None))
    return h.hexdigest()[:32]


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


# --------------------------------------------------------------------------------------------------
# Live plots (issue 11): a model_sampling per family preset, ComfyUI's scheduler table, HTTP routes
# --------------------------------------------------------------------------------------------------
COMPAT["comfy.samplers.calculate_sigmas"] = "live schedule plots of stock scheduler names"
COMPAT["server.PromptServer"] = "the live schedule plot route (/schedule_lab/…)"


def model_sampling_preset(family: str) -> Any:
    """A ComfyUI ``model_sampling`` object as the family's checkpoint loader would build it, without a model:
    sd1/sdxl (eps, scaled_linear betas), sd2v (v), sd3 (discrete flow, shift 3) and flux (Flux time shift 1.15)."""
    ms = _import("comfy.model_sampling")
    if ms is None:
        raise ScheduleError("family: ComfyUI's comfy.model_sampling is unavailable; update ComfyUI")
    bases = {"sd1": ("ModelSamplingDiscrete", "EPS"), "sdxl": ("ModelSamplingDiscrete", "EPS"),
             "sd2v": ("ModelSamplingDiscrete", "V_PREDICTION"), "sd3": ("ModelSamplingDiscreteFlow", "CONST"),
             "flux": ("ModelSamplingFlux", "CONST")}
    if family not in bases:
        raise ScheduleError(f"family: {family!r} is unknown; choose one of {', '.join(bases)}")
    sampling, prediction = (getattr(ms, n) for n in bases[family])
    obj = type(f"SL_{family}", (sampling, prediction), {})(None)
    if family == "sd3":
        obj.set_parameters(shift=3.0, multiplier=1000)
    return obj


def scheduler_names() -> list[str]:
    """Every name in KSampler's scheduler list (stock and packs')."""
    samplers = _import("comfy.samplers")
    return list(getattr(samplers, "SCHEDULER_NAMES", [])) if samplers else []


def stock_sigmas(model_sampling: Any, scheduler: str, steps: int) -> torch.Tensor:
    """What KSampler computes for ``scheduler`` at ``steps`` on this ``model_sampling``."""
    samplers = _import("comfy.samplers")
    if samplers is None or not hasattr(samplers, "calculate_sigmas"):
        raise ScheduleError("scheduler: ComfyUI's comfy.samplers.calculate_sigmas is unavailable; update ComfyUI")
    return samplers.calculate_sigmas(model_sampling, scheduler, steps).to("cpu", torch.float64)


def add_get_route(path: str, handler) -> bool:
    """Register an aiohttp GET handler on ComfyUI's server (also served under /api/…). False without a server."""
    server = _import("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or not hasattr(instance, "routes"):
        _warn_once("routes", "no ComfyUI server instance; the live schedule plots are unavailable")
        return False
    instance.routes.get(path)(handler)
    return True


def json_response(data: dict, status: int = 200):
    from aiohttp import web

    return web.json_response(data, status=status)


# --------------------------------------------------------------------------------------------------
# A/B Compare (issue 11): one cell = one sampler + one schedule from the same noise, counted model calls
# --------------------------------------------------------------------------------------------------
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
    samplers = _import("comfy.samplers")
    return list(getattr(samplers, "SAMPLER_NAMES", [])) if samplers else []


def cell_sampler(name: str, options: dict | None = None, sampler: Any = None):
    """What an A/B cell samples with: a catalogue spec (``"sl_tada(detail=2)"``) when the name is in the public
    method catalogue (so the node and ``schedule-lab compare`` run the same code), else the SAMPLER object (a
    connected SAMPLER, or ComfyUI's sampler of that name)."""
    from ..solvers import catalogue

    if sampler is not None:
        return sampler
    if name in catalogue.SAMPLERS:
        opts = ",".join(f"{k}={v}" for k, v in (options or {}).items())
        return f"{name}({opts})" if opts else name
    if options:
        raise ScheduleError(f"sampler {name!r}: options {sorted(options)} apply only to catalogue samplers")
    samplers = _import("comfy.samplers")
    return samplers.sampler_object(name)


def scheduler_sigmas_for(model: Any, name: str, steps: int, denoise: float) -> torch.Tensor:
    """What BasicScheduler gives for this model (KSampler's denoise rule)."""
    from ..schedules.resample import truncate_for_denoise

    ms = model.get_model_object("model_sampling")
    return truncate_for_denoise(lambda n: stock_sigmas(ms, name, n), steps, denoise).to(torch.float32)


def sample_cell(model: Any, positive, negative, cfg: float, latent: dict, sampler: Any, sigmas: torch.Tensor,
                seed: int, callback=None):
    """Sample one A/B cell as SamplerCustomAdvanced with RandomNoise(seed) would, through the catalogue's ``run``
    (which counts model calls and times the sampler). ``sampler``: a catalogue spec or a SAMPLER object.
    Returns (LATENT samples, catalogue Result)."""
    from ..solvers import catalogue

    samplers, sample_mod = _import("comfy.samplers"), _import("comfy.sample")
    samples = sample_mod.fix_empty_latent_channels(model, latent["samples"])
    noise = sample_mod.prepare_noise(samples, seed, latent.get("batch_index"))
    guider = samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    kind, box = model_kind_of(model), {}
    if isinstance(sampler, str):
        spec = sampler
    else:
        fn, options = sampler.sampler_function, dict(getattr(sampler, "extra_options", {}) or {})

        def spec(m, x, s, extra_args=None, callback=None, disable=None):
            return fn(m, x, s, extra_args=extra_args, callback=callback, disable=disable, **options)

    def through_catalogue(m, x, s, extra_args=None, callback=None, disable=None, **_):
        extra = dict(extra_args or {})
        # x is already ComfyUI's noised start (noise_scaling of the model kind), so sigma_start=1 keeps it as is
        box["result"] = catalogue.run(spec, s, _BoundModel(m, extra), x, kind=kind, seed=seed, sigma_start=1.0,
                                      provided=pack_settings(extra), callback=callback)
        return box["result"].x0

    out = guider.sample(noise, samples, samplers.KSAMPLER(through_catalogue), sigmas,
                        denoise_mask=latent.get("noise_mask"), callback=callback, disable_pbar=True, seed=seed)
    return out.to("cpu"), box["result"]


def interrupted_check() -> None:
    mm = _import("comfy.model_management")
    if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
        mm.throw_exception_if_processing_interrupted()
