"""The one module of the pack that imports ComfyUI (lazily, by name).

Every other module reaches ComfyUI through :func:`load` (and :func:`v3_api`), so a symbol missing in some
ComfyUI version (version drift) logs one warning and disables only what needs it; the pack's own nodes keep
working. :data:`COMPAT` lists every ComfyUI symbol the pack uses and what breaks without it;
``tests/unit/test_architecture.py`` checks the list against the code in both directions.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger("schedule_lab")

_SAMPLING_KINDS = "reading the model kind (eps / v / EDM / flow)"
_DROPDOWN_SCHEDULERS = "pack schedulers in the KSampler dropdown"
_V3 = "the Schedule Lab nodes (V3 node API)"

#: Every ComfyUI symbol the pack uses (module.attribute...), and what breaks without it.
COMPAT: dict[str, str] = {
    "comfy.samplers.SCHEDULER_HANDLERS": _DROPDOWN_SCHEDULERS,
    "comfy.samplers.SCHEDULER_NAMES": _DROPDOWN_SCHEDULERS,
    "comfy.samplers.SchedulerHandler": _DROPDOWN_SCHEDULERS + " (ComfyUI >= 2025-01)",
    "comfy.samplers.KSAMPLER_NAMES": "pack samplers in the KSampler dropdown",
    "comfy.samplers.SAMPLER_NAMES": "pack samplers in the KSampler dropdown",
    "comfy.samplers.KSAMPLER": "pack SAMPLER nodes, Timestep Search and the Constant-Rate Scheduler",
    "comfy.k_diffusion.sampling": "pack samplers in the KSampler dropdown (sample_<name> functions set on it)",
    "comfy.model_sampling.StableCascadeSampling": "refusing Stable Cascade models by name",
    "comfy.model_sampling.ModelSamplingCosmosRFlow": "refusing Cosmos models by name",
    "comfy.model_sampling.COSMOS_RFLOW": "refusing Cosmos models by name",
    "comfy.model_sampling.X0": "refusing x0-prediction models by name",
    "comfy.model_sampling.IMG_TO_IMG": "refusing image-to-image models by name",
    "comfy.model_sampling.IMG_TO_IMG_FLOW": "refusing image-to-image flow models by name (newer ComfyUI)",
    "comfy.model_sampling.IMG_TO_IMG_VELOCITY": "refusing image-to-image velocity models by name (newer ComfyUI)",
    "comfy.model_sampling.V_PREDICTION_DDPM": "refusing CogVideoX-style v-prediction by name (newer ComfyUI)",
    "comfy.model_sampling.ModelSamplingAV": "refusing audio-video flow models by name (newer ComfyUI)",
    "comfy.samplers.KSampler.SAMPLERS": "the sampler name a Timestep Search records",
    "comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE": "Detail Level and Apply TPM telling when they had no effect",
    "comfy.patcher_extension.WrappersMP.APPLY_MODEL": "TPDM feature taps (Apply TPM)",
    "comfy.sample.fix_empty_latent_channels": "matching an empty latent's channels to the model (Timestep Search, "
                                              "Constant-Rate Scheduler)",
    "comfy.utils.ProgressBar": "progress bars of Timestep Search and the Constant-Rate Scheduler",
    "comfy.model_management.throw_exception_if_processing_interrupted": "Cancel during long node work",
    "comfyui_version.__version__": "the ComfyUI version in the registration log line",
    "folder_paths.models_dir": "the models/schedules, models/schedule_lab_calibration and models/tpm folders",
    "folder_paths.folder_names_and_paths": "the models/schedules, models/schedule_lab_calibration and models/tpm "
                                           "folders",
    "folder_paths.get_filename_list": "the schedule dropdowns of Load Schedule and Searched Steps, Load TPM's list",
    "folder_paths.get_full_path": "reading schedule files and TPM files",
    "folder_paths.get_folder_paths": "writing schedule files and the calibration cache",
    "server.PromptServer.instance.send_progress_text": "text shown on a node while it works",
    # live plots (route, stock scheduler names) and A/B Compare (cells sampled like SamplerCustomAdvanced)
    "comfy.samplers.calculate_sigmas": "live schedule plots of KSampler's scheduler names; A/B Compare schedules",
    "server.PromptServer.instance.routes": "the live schedule plot route (/schedule_lab/plot)",
    "comfy.samplers.CFGGuider": "A/B Compare (each cell sampled through a CFG guider)",
    "comfy.samplers.sampler_object": "A/B Compare entries naming a stock sampler; Few-Step Preset's stock samplers",
    "comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS": "Few-Step Preset's SIGMAS for uni_pc-type samplers "
                                                                  "(KSampler's discard rule)",
    "comfy.sample.prepare_noise": "A/B Compare (the same noise for every cell, as RandomNoise makes it)",
    "comfy_api.latest.io.Conditioning.Input": _V3 + ": A/B Compare",
    "comfy_api.latest.io.Vae.Input": _V3 + ": A/B Compare",
    "comfy_api.latest.io.Image.Output": _V3 + ": A/B Compare",
    "comfy_api.latest.io.Custom": _V3 + ": the A/B entries and the TPM sockets",
    "comfy_api.latest.ui.PreviewImage": _V3 + ": the A/B grid on the node",
    "comfy_api.latest.ComfyExtension": _V3,
    "comfy_api.latest.ui.PreviewText": _V3 + ": text previews",
    "comfy_api.latest.io.ComfyNode": _V3,
    "comfy_api.latest.io.Schema": _V3,
    "comfy_api.latest.io.NodeOutput": _V3,
    "comfy_api.latest.io.Hidden.unique_id": _V3 + ": progress text on the right node",
    "comfy_api.latest.io.NumberDisplay.slider": _V3 + ": the Detail Level slider",
    "comfy_api.latest.io.Boolean.Input": _V3,
    "comfy_api.latest.io.Combo.Input": _V3,
    "comfy_api.latest.io.Float.Input": _V3,
    "comfy_api.latest.io.Int.Input": _V3,
    "comfy_api.latest.io.String.Input": _V3,
    "comfy_api.latest.io.String.Output": _V3,
    "comfy_api.latest.io.Model.Input": _V3,
    "comfy_api.latest.io.Model.Output": _V3,
    "comfy_api.latest.io.Sigmas.Input": _V3,
    "comfy_api.latest.io.Sigmas.Output": _V3,
    "comfy_api.latest.io.Sampler.Input": _V3,
    "comfy_api.latest.io.Sampler.Output": _V3,
    "comfy_api.latest.io.Guider.Input": _V3,
    "comfy_api.latest.io.Latent.Input": _V3,
}

_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning("[Schedule Lab] %s", message)


def load(name: str):
    """The ComfyUI module ``name``, or None (after one warning) when this ComfyUI cannot import it."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import failure is version drift for us
        uses = sorted({v for k, v in COMPAT.items() if k.startswith(name + ".")}) or ["some features"]
        warn_once(name, f"cannot import {name} ({exc}); {'; '.join(uses)} disabled")
        return None


def comfy_version() -> str:
    mod = load("comfyui_version")
    return getattr(mod, "__version__", "unknown") if mod else "unknown"


#: V3 API modules, versioned first: a pinned version keeps its members when ``latest`` moves on (0.3.64 ships
#: comfy_api.v0_0_2 beside comfy_api.latest). COMPAT names the members under comfy_api.latest.
V3_MODULES = ("comfy_api.v0_0_2", "comfy_api.latest")
#: Every ``io`` / ``ui`` member the pack's node modules use (test_host_drift reads the node sources and fails if one is
#: missing here). A host lacking some disables only the nodes that use them, with one warning.
IO_MEMBERS = ("ComfyNode", "Schema", "NodeOutput", "Hidden.unique_id", "Int.Input", "Float.Input", "Combo.Input",
              "Boolean.Input", "String.Input", "String.Output", "Model.Input", "Model.Output", "Sigmas.Input",
              "Sigmas.Output", "Latent.Input", "Guider.Input", "Sampler.Input", "Sampler.Output",
              "NumberDisplay.slider", "Conditioning.Input", "Vae.Input", "Image.Output", "Custom")
UI_MEMBERS = ("PreviewText", "PreviewImage")


def _missing(module, members: tuple[str, ...]) -> list[str]:
    out = []
    for dotted in members:
        obj = module
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                out.append(dotted)
                break
    return out


def v3_api():
    """ComfyUI's V3 node API module (``io``, ``ui``, ``ComfyExtension``): the versioned module where the host has one,
    else ``comfy_api.latest``; None on older hosts. Missing ``io``/``ui`` members are warned about once, by name."""
    api = None
    for name in V3_MODULES:
        try:
            candidate = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing or broken module is version drift
            continue
        if all(hasattr(candidate, n) for n in ("io", "ui", "ComfyExtension")):
            api = candidate
            break
    if api is None:
        warn_once("v3", "this ComfyUI has no V3 node API (comfy_api.v0_0_2 / comfy_api.latest, ComfyUI >= 0.3.48); "
                  "the Schedule Lab nodes are unavailable, the KSampler dropdown entries still work")
        return None
    missing = [f"io.{m}" for m in _missing(api.io, IO_MEMBERS)] + [f"ui.{m}" for m in _missing(api.ui, UI_MEMBERS)]
    if missing:
        warn_once("v3-members", f"this ComfyUI's {api.__name__} lacks {', '.join(missing)}; the Schedule Lab nodes "
                  "that use them are disabled, the others and the KSampler dropdown entries still work")
    return api


def definable_nodes(nodes: list) -> list:
    """The node classes whose schema this host can build (``define_schema`` reads ``io`` members): a node needing a
    member this ComfyUI lacks is left out with one warning naming it and the member; the others load."""
    usable = []
    for node in nodes:
        try:
            node.define_schema()
        except AttributeError as e:
            warn_once(f"node-{node.__name__}", f"node {node.__name__} is disabled on this ComfyUI: {e}")
            continue
        usable.append(node)
    return usable
