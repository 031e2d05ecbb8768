"""Unit-test stand-ins of ComfyUI 0.3.64 for the node layer: the few ``comfy`` modules the host adapter loads and a
small copy of the V3 node API (``comfy_api.latest``), installed into ``sys.modules`` by two fixtures.

* ``comfy``: fake ``comfy.samplers`` / ``comfy.model_sampling`` / ``comfy.k_diffusion.sampling`` (the KSampler lists
  and the model_sampling classes), enough for registration and ``model_sampling -> ModelKind``;
* ``v3``: ``comfy`` plus the V3 ``io`` / ``ui`` API, ``folder_paths`` over a temporary ``models/`` folder, a
  ``server`` that records the text shown on nodes, progress / Cancel, and the pack's node modules imported afresh
  against them (``v3.nodes["SL_Scheduler"]`` is the node class).

Signatures follow ComfyUI 0.3.64 (``comfy_api/latest/_io.py``, ``_ui.py``, ``comfy/samplers.py``
``KSAMPLER``, ``comfy/model_patcher.py`` ``clone``); only what the pack uses is here, and
``tests/unit/test_architecture.py`` checks that the stand-in provides every ``comfy_api`` symbol listed in
``nodes/host/access.py`` COMPAT. Behaviour on the real host is tested in ``tests/integration``.
"""
from __future__ import annotations

import copy
import os
import sys
import types
from enum import Enum
from typing import Any, NamedTuple

import pytest
import torch

from schedule_lab.schedules import scaled_linear_sigmas


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"


class HiddenHolder:
    def __init__(self, unique_id=None, prompt=None, **_):
        self.unique_id, self.prompt = unique_id, prompt


class Input:
    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 extra_dict=None):
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy


class WidgetInput(Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None,
                 socketless=None, widget_type=None, force_input=None, extra_dict=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default = default


class Output:
    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _socket(io_type: str):
    """A socket-only type (MODEL, SIGMAS, ...): ``X.Input(id, ...)`` and ``X.Output(id=None, ...)``."""
    return type(io_type.title(), (), {"io_type": io_type,
                                      "Input": type("Input", (Input,), {"io_type": io_type}),
                                      "Output": type("Output", (Output,), {"io_type": io_type})})


Model, Sigmas, Sampler, Guider, Latent = (_socket(t) for t in ("MODEL", "SIGMAS", "SAMPLER", "GUIDER", "LATENT"))
Conditioning, Vae, Image = (_socket(t) for t in ("CONDITIONING", "VAE", "IMAGE"))  # A/B Compare


def Custom(io_type: str):  # noqa: N802 - ComfyUI's name: a socket type of the pack's own (A/B entries, the TPM)
    return _socket(io_type)


class Boolean:
    io_type = "BOOLEAN"

    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default: bool = None,
                     label_on: str = None, label_off: str = None, socketless=None, force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)

    Output = type("Output", (Output,), {"io_type": "BOOLEAN"})


class Int:
    io_type = "INT"

    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default: int = None,
                     min: int = None, max: int = None, step: int = None, control_after_generate: bool = None,
                     display_mode: NumberDisplay = None, socketless=None, force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step = min, max, step

    Output = type("Output", (Output,), {"io_type": "INT"})


class Float:
    io_type = "FLOAT"

    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default: float = None,
                     min: float = None, max: float = None, step: float = None, round: float = None,
                     display_mode: NumberDisplay = None, socketless=None, force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.display_mode = min, max, step, display_mode

    Output = type("Output", (Output,), {"io_type": "FLOAT"})


class String:
    io_type = "STRING"

    class Input(WidgetInput):
        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, multiline=False,
                     placeholder: str = None, default: str = None, dynamic_prompts: bool = None, socketless=None,
                     force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)

    Output = type("Output", (Output,), {"io_type": "STRING"})


class Combo:
    io_type = "COMBO"

    class Input(WidgetInput):
        def __init__(self, id, options=None, display_name=None, optional=False, tooltip=None, lazy=None,
                     default=None, control_after_generate=None, upload=None, image_folder=None, remote=None,
                     socketless=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
            self.options = options

    class Output(Output):
        def __init__(self, id=None, display_name=None, options=None, tooltip=None, is_output_list=False):
            super().__init__(id, display_name, tooltip, is_output_list)


class Schema:
    def __init__(self, node_id: str, display_name: str = None, category: str = "sd", inputs=None, outputs=None,
                 hidden=None, description: str = "", is_input_list=False, is_output_node=False,
                 is_deprecated=False, is_experimental=False, is_api_node=False, not_idempotent=False,
                 enable_expand=False):
        self.node_id, self.display_name, self.category = node_id, display_name, category
        self.inputs, self.outputs, self.hidden = inputs or [], outputs or [], hidden or []
        self.description, self.is_output_node = description, is_output_node


class ComfyNode:
    hidden: HiddenHolder | None = None  # ComfyUI fills this in during execution


class NodeOutput:
    def __init__(self, *args: Any, ui=None, expand: dict = None, block_execution: str = None):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    def __getitem__(self, index):
        return self.args[index]


class PreviewText:
    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self):
        return {"text": (self.value,)}


class PreviewImage:
    def __init__(self, image, animated: bool = False, cls=None, **kwargs):
        self.image = image

    def as_dict(self):
        return {"images": [], "animated": (False,)}


class ComfyExtension:
    async def on_load(self) -> None:
        pass


def _api_modules() -> dict[str, types.ModuleType]:
    io = types.ModuleType("comfy_api.latest.io")
    for name in ("NumberDisplay", "Hidden", "Input", "WidgetInput", "Output", "Model", "Sigmas", "Sampler",
                 "Guider", "Latent", "Boolean", "Int", "Float", "String", "Combo", "Schema", "ComfyNode",
                 "NodeOutput", "Conditioning", "Vae", "Image", "Custom"):
        setattr(io, name, globals()[name])
    ui = types.ModuleType("comfy_api.latest.ui")
    ui.PreviewText, ui.PreviewImage = PreviewText, PreviewImage
    latest = types.ModuleType("comfy_api.latest")
    latest.io, latest.ui, latest.ComfyExtension = io, ui, ComfyExtension
    root = types.ModuleType("comfy_api")
    root.latest = latest
    return {"comfy_api": root, "comfy_api.latest": latest, "comfy_api.latest.io": io, "comfy_api.latest.ui": ui}


# ------------------------------------------------------------------------------------------------------------------
# comfy: KSampler lists, model_sampling classes
# ------------------------------------------------------------------------------------------------------------------
def _fake_comfy():
    samplers = types.ModuleType("comfy.samplers")

    class SchedulerHandler(NamedTuple):
        handler: object
        use_ms: bool = True

    samplers.SchedulerHandler = SchedulerHandler
    samplers.SCHEDULER_HANDLERS = {"simple": SchedulerHandler(lambda ms, n: None), "karras": SchedulerHandler(None)}
    samplers.SCHEDULER_NAMES = list(samplers.SCHEDULER_HANDLERS)
    samplers.KSAMPLER_NAMES = ["euler", "heun"]
    samplers.SAMPLER_NAMES = samplers.KSAMPLER_NAMES + ["ddim"]

    ms = types.ModuleType("comfy.model_sampling")
    for name in ("EPS", "CONST", "X0", "IMG_TO_IMG", "COSMOS_RFLOW"):
        setattr(ms, name, type(name, (), {}))
    ms.V_PREDICTION = type("V_PREDICTION", (ms.EPS,), {})
    ms.EDM = type("EDM", (ms.V_PREDICTION,), {})

    class ModelSamplingDiscrete:
        def __init__(self):
            self.sigmas = scaled_linear_sigmas().float()
            self.sigma_data = 1.0

        sigma_min = property(lambda self: self.sigmas[0])
        sigma_max = property(lambda self: self.sigmas[-1])

    class ModelSamplingDiscreteFlow:
        def __init__(self, shift=3.0):
            self.shift, self.multiplier = shift, 1000.0
            self.sigma_min, self.sigma_max = 0.001 * shift / (1 + (shift - 1) * 0.001), 1.0

    class ModelSamplingFlux:
        def __init__(self, mu=1.15):
            self.shift, self.multiplier = mu, 1.0
            self.sigma_min, self.sigma_max = 0.0001, 1.0

    class ModelSamplingContinuousEDM:
        sigma_min, sigma_max, sigma_data = 0.002, 120.0, 0.5

    class StableCascadeSampling(ModelSamplingDiscrete):
        pass

    for cls in (ModelSamplingDiscrete, ModelSamplingDiscreteFlow, ModelSamplingFlux, ModelSamplingContinuousEDM,
                StableCascadeSampling):
        setattr(ms, cls.__name__, cls)

    ksampling = types.ModuleType("comfy.k_diffusion.sampling")
    comfy = types.ModuleType("comfy")
    kd = types.ModuleType("comfy.k_diffusion")
    comfy.samplers, comfy.model_sampling, comfy.k_diffusion, kd.sampling = samplers, ms, kd, ksampling
    return {"comfy": comfy, "comfy.samplers": samplers, "comfy.model_sampling": ms, "comfy.k_diffusion": kd,
            "comfy.k_diffusion.sampling": ksampling}


def sampling(comfy, base: str = "ModelSamplingDiscrete", pred: str = "EPS"):
    """A ``model_sampling`` object as ComfyUI builds one: the sampling class mixed with the prediction type."""
    M = comfy["comfy.model_sampling"]
    return type(f"{base}_{pred}", (getattr(M, base), getattr(M, pred)), {})()


@pytest.fixture
def comfy(monkeypatch):
    from schedule_lab.nodes.host import access

    mods = _fake_comfy()
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    access._warned.clear()
    return mods


# ------------------------------------------------------------------------------------------------------------------
# the rest of the host for node tests: ModelPatcher, KSAMPLER, folder_paths, server, progress
# ------------------------------------------------------------------------------------------------------------------
class _BaseModel(torch.nn.Module):
    """ComfyUI's BaseModel as far as the pack sees it: weights (for fingerprints) and ``process_latent_in``."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(2, 2)
        torch.nn.init.constant_(self.proj.weight, 0.5)
        torch.nn.init.zeros_(self.proj.bias)

    def process_latent_in(self, latent):
        return latent * 2


class ModelPatcher:
    """The ModelPatcher methods the pack calls, with ComfyUI's semantics (clone deep-copies model_options)."""

    def __init__(self, model_sampling, latent_channels=4):
        self.model_options = {"transformer_options": {}}
        self.object_patches: dict[str, Any] = {}
        self.base = {"model_sampling": model_sampling,
                     "latent_format": types.SimpleNamespace(latent_channels=latent_channels)}
        self.wrappers: dict[tuple, Any] = {}
        self.model, self.patches = _BaseModel(), {}

    def clone(self):
        n = copy.copy(self)
        n.model_options = copy.deepcopy(self.model_options)
        n.object_patches, n.wrappers = dict(self.object_patches), dict(self.wrappers)
        return n

    def get_model_object(self, name):
        return self.object_patches.get(name, self.base[name])

    def add_object_patch(self, name, obj):
        self.object_patches[name] = obj

    def add_wrapper_with_key(self, wrapper_type, key, fn):
        self.wrappers[(wrapper_type, key)] = fn

    def remove_wrappers_with_key(self, wrapper_type, key):
        self.wrappers.pop((wrapper_type, key), None)

    def set_model_patch_replace(self, patch, name, block_name, number):
        to = self.model_options["transformer_options"]
        to.setdefault("patches_replace", {}).setdefault(name, {})[(block_name, number)] = patch


class KSAMPLER:
    def __init__(self, sampler_function, extra_options={}, inpaint_options={}):  # noqa: B006 - ComfyUI's signature
        self.sampler_function = sampler_function
        self.extra_options = extra_options
        self.inpaint_options = inpaint_options


class FakeGuider:
    """A CFGGuider whose ``sample`` calls the SAMPLER's function like ComfyUI does: the model it hands over is
    KSamplerX0Inpaint -> CFGGuider -> BaseModel (so pack samplers find model_sampling), carries the latent as
    ``latent_image``, and denoises with ``denoiser(x, sigma)``; every call passes ``model_options``."""

    def __init__(self, patcher: ModelPatcher, denoiser, conds=None, cfg=1.0):
        self.model_patcher, self.denoiser = patcher, denoiser
        self.original_conds, self.cfg = conds or {"positive": []}, cfg
        self.calls = 0

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None):
        guider = self
        base = types.SimpleNamespace(model_sampling=self.model_patcher.get_model_object("model_sampling"))

        class ModelK:
            inner_model = types.SimpleNamespace(inner_model=base)
            latent_image = None

            def __call__(self, x, sigma, denoise_mask=None, model_options=None, seed=None):
                assert model_options is guider.model_patcher.model_options
                guider.calls += 1
                return guider.denoiser(x, sigma)

        model_k = ModelK()
        model_k.latent_image = latent_image
        extra = {"denoise_mask": denoise_mask, "model_options": self.model_patcher.model_options, "seed": seed}
        return sampler.sampler_function(model_k, noise, sigmas, extra_args=extra, callback=callback,
                                        disable=disable_pbar, **sampler.extra_options)


class _WrappersMP:
    SAMPLER_SAMPLE = "sampler_sample"
    APPLY_MODEL = "apply_model"


def _host_modules(tmp_path, shown: list, ticks: list) -> dict[str, types.ModuleType]:
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path / "models")
    fp.folder_names_and_paths = {}
    fp.get_folder_paths = lambda name: fp.folder_names_and_paths[name][0][:]

    def get_full_path(folder, filename):
        for d in fp.folder_names_and_paths[folder][0]:
            path = os.path.join(d, filename)
            if os.path.isfile(path):
                return path
        return None

    def get_filename_list(folder):
        paths, exts = fp.folder_names_and_paths[folder]
        return sorted(f for d in paths if os.path.isdir(d) for f in os.listdir(d) if os.path.splitext(f)[1] in exts)

    fp.get_full_path, fp.get_filename_list = get_full_path, get_filename_list

    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(
        send_progress_text=lambda text, node_id: shown.append((node_id, text))))
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = lambda total: types.SimpleNamespace(update=lambda n: ticks.append((total, n)))
    mm = types.ModuleType("comfy.model_management")
    mm.throw_exception_if_processing_interrupted = lambda: None
    sample = types.ModuleType("comfy.sample")
    sample.fix_empty_latent_channels = lambda model, latent: latent
    pe = types.ModuleType("comfy.patcher_extension")
    pe.WrappersMP = _WrappersMP
    return {"folder_paths": fp, "server": server, "comfy.utils": utils, "comfy.model_management": mm,
            "comfy.sample": sample, "comfy.patcher_extension": pe}


@pytest.fixture
def v3(comfy, monkeypatch, tmp_path):
    """The stand-in host with ``nodes/entry.py`` imported against it: pack names registered into the fake KSampler
    lists, the node modules loaded. ``v3.nodes[node_id]`` is a node class, ``v3.shown`` the texts shown on nodes
    ``(node_id, text)``, ``v3.ticks`` the progress bar updates ``(total, n)``, ``v3.models`` the models folder."""
    import asyncio
    import importlib

    shown, ticks = [], []
    comfy["comfy.samplers"].KSAMPLER = KSAMPLER
    for name, mod in {**_api_modules(), **_host_modules(tmp_path, shown, ticks)}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    fresh = [m for m in sys.modules if m == "schedule_lab.nodes.entry" or m.endswith("_nodes")
             and m.startswith("schedule_lab.nodes.")]
    for m in fresh:
        monkeypatch.delitem(sys.modules, m)
    entry = importlib.import_module("schedule_lab.nodes.entry")
    extension = asyncio.run(entry.comfy_entrypoint())
    node_list = asyncio.run(extension.get_node_list())
    yield types.SimpleNamespace(entry=entry, node_list=node_list, shown=shown, ticks=ticks,
                                models=tmp_path / "models", comfy=comfy, Guider=FakeGuider,
                                model=lambda base="ModelSamplingDiscrete", pred="EPS": ModelPatcher(
                                    sampling(comfy, base, pred)),
                                nodes={cls.define_schema().node_id: cls for cls in node_list})
    for m in [m for m in sys.modules if m.startswith("schedule_lab.nodes.") and
              (m.endswith("_nodes") or m.endswith(".entry"))]:
        sys.modules.pop(m)  # monkeypatch puts back the modules imported before this test
