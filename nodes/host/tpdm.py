"""Host adapter for TPDM: the ComfyUI touch points of the Load TPM / Apply TPM nodes (spec comfyui-host.md A6).

- ``models/tpm`` registered as a model folder (``.safetensors`` only);
- the model family and feature sizes of a MODEL (UNet: SD1.x/SD2/SDXL; MMDiT: SD3; Flux, experimental);
- feature taps on a *clone* of the MODEL, live only while that clone's ``apply_model`` runs (an APPLY_MODEL
  wrapper installs the torch hooks and removes them afterwards, so the shared weights never carry them):
  UNet: h1 = output of ``input_blocks.0.0`` (the input conv), h2 = input of ``out.2`` (after the final norm + SiLU),
  temb = output of ``time_embed``; MMDiT / Flux: h1 and temb = ``img`` and ``vec`` seen by the ``("double_block", 0)``
  patch (set with ``set_model_patch_replace``), h2 = input of ``final_layer.linear`` (a forward pre-hook);
  every capture is split by ``transformer_options["cond_or_uncond"]`` into the FeatureStash;
- the CFG scale of the running sampler (``model.inner_model.cfg``), for f_u + w (f_c − f_u).
"""
from __future__ import annotations

import math
from typing import Any

from ...schedules.errors import ScheduleError
from ..tpdm_ops import OFFICIAL_CONTEXT_TOKENS, TPDMState, check_tpm_fits
from .access import comfy_version, load
from .folders import ensure_folder, folder_files, missing_message, read_path, schedule_write_dir
from .patches import with_settings
from .progress import show_text

TPM_FOLDER = "tpm"
#: How to get a TPM file (Load TPM's missing-file message).
TPM_HINT = ("A TPM is trained for one model: `schedule-lab tpdm train` makes one (docs/tpdm.md), or use the official "
            "SD3-Medium TPM converted to .safetensors (pickled .pt/.ckpt files are refused).")
WRAPPER_KEY = "schedule_lab_tpdm"


TPM_EXTENSIONS = {".safetensors"}


def ensure_tpm_folder() -> None:
    """Register ``models/tpm`` (extensions: .safetensors) with ComfyUI's folder_paths, idempotently."""
    ensure_folder(TPM_FOLDER, TPM_EXTENSIONS)


def tpm_files() -> list[str]:
    return folder_files(TPM_FOLDER, TPM_EXTENSIONS)


def tpm_read_path(name: str) -> str:
    """Full path of a TPM file, found only inside ComfyUI's tpm folders."""
    return read_path(TPM_FOLDER, TPM_EXTENSIONS, name, "tpm_name", "the time predictor (.safetensors)", TPM_HINT)


def tpm_missing(name) -> str | None:
    """The missing-file message for a TPM name, or None when the file is there (validation before a run)."""
    return missing_message(tpm_read_path, name)


# --------------------------------------------------------------------------------------------------
# model family and feature sizes
# --------------------------------------------------------------------------------------------------
def family_of(model: Any) -> tuple[str, tuple[int, int, int]]:
    """(family, (h1 channels, h2 channels, temb size)) of a MODEL; a ScheduleError for families without taps."""
    dm = model.get_model_object("diffusion_model")
    name = type(dm).__name__
    bases = {cls.__name__ for cls in type(dm).__mro__}  # SD3's is OpenAISignatureMMDITWrapper(MMDiT)
    try:
        if "UNetModel" in bases:
            return "unet", (int(dm.input_blocks[0][0].out_channels), int(dm.out[0].num_channels),
                            int(dm.time_embed[-1].out_features))
        if "MMDiT" in bases:
            hidden = int(dm.x_embedder.proj.out_channels)
            return "mmdit", (hidden, int(dm.final_layer.linear.in_features), hidden)
        if "Flux" in bases:
            hidden = int(dm.img_in.out_features)
            return "flux", (hidden, int(dm.final_layer.linear.in_features), hidden)
    except (AttributeError, IndexError, TypeError) as exc:
        raise ScheduleError(f"model: its {name} does not have the layout the TPM taps expect ({exc}).") from None
    raise ScheduleError(f"model: TPDM feature taps exist for UNet (SD1.x/SD2/SDXL), MMDiT (SD3) and Flux models, "
                        f"not for {name}; use a stock sampler with this model.")


# --------------------------------------------------------------------------------------------------
# taps
# --------------------------------------------------------------------------------------------------
def _labels(transformer_options: dict | None):
    return (transformer_options or {}).get("cond_or_uncond")


def _unet_hooks(dm, stash, labels) -> list:
    def h1(module, args, output):
        stash.put("h1", output, labels)

    def temb(module, args, output):
        stash.put("temb", output, labels)

    def h2(module, args):
        stash.put("h2", args[0], labels)

    return [dm.input_blocks[0][0].register_forward_hook(h1), dm.time_embed.register_forward_hook(temb),
            dm.out[2].register_forward_pre_hook(h2)]


def _dit_hooks(dm, stash, labels) -> list:
    def h2(module, args):
        stash.put("h2", args[0], labels)

    return [dm.final_layer.linear.register_forward_pre_hook(h2)]


def _dit_block_patch(stash, previous=None, call=None):
    """The ("double_block", 0) replacement: stash img (h1) and vec (temb), then run the block unchanged.

    The cond/uncond labels come from the patch's own ``args["transformer_options"]``; MMDiT builds of ComfyUI that do
    not pass it to block patches get them from the model call that the APPLY_MODEL wrapper saw (``call``)."""

    def patch(args, extra):
        labels = _labels(args.get("transformer_options"))
        if labels is None and call is not None:
            labels = call.get("labels")
        stash.put("h1", args["img"], labels)
        stash.put("temb", args["vec"], labels)
        return previous(args, extra) if previous is not None else extra["original_block"](args)

    return patch


def unlabelled_message(version: str) -> str:
    return (f"model: this ComfyUI ({version}) does not say which rows of a model call are cond and which uncond "
            "(transformer_options['cond_or_uncond']), so TPDM cannot combine the TPM's features with the guidance "
            "scale. Update ComfyUI to 0.3.64 or newer (the version the pack is tested with), or sample at CFG 1.")


def install_taps(model: Any, family: str, stash) -> Any:
    """Taps on ``model`` (already a clone): an APPLY_MODEL wrapper that installs the hooks for the call."""
    ext = load("comfy.patcher_extension")
    wrappers = getattr(ext, "WrappersMP", None)
    if wrappers is None or not hasattr(wrappers, "APPLY_MODEL") or not hasattr(model, "add_wrapper_with_key"):
        raise ScheduleError("model: this ComfyUI has no model wrappers (comfy.patcher_extension); update ComfyUI "
                            "to use TPDM.")
    hooks = _unet_hooks if family == "unet" else _dit_hooks
    # a host whose model calls carry no cond/uncond labels: the stash refuses to CFG-combine unlabelled rows
    stash.unlabelled_error = unlabelled_message(comfy_version())
    call: dict = {}  # the labels of the model call in progress, for block patches called without them

    def apply_model(executor, *args, **kwargs):
        options = args[5] if len(args) > 5 else kwargs.get("transformer_options", {})
        call["labels"] = _labels(options)
        context = args[3] if len(args) > 3 else kwargs.get("c_crossattn")
        if family == "mmdit" and hasattr(context, "shape") and len(context.shape) == 3:
            stash.context_tokens = int(context.shape[1])
        dm = executor.class_obj.diffusion_model
        if family != "unet" and len(args) and hasattr(args[0], "shape"):
            p = int(getattr(dm, "patch_size", 2))
            stash.grid = (math.ceil(args[0].shape[-2] / p), math.ceil(args[0].shape[-1] / p))
        handles = hooks(dm, stash, _labels(options))
        try:
            return executor(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()

    model.remove_wrappers_with_key(wrappers.APPLY_MODEL, WRAPPER_KEY)
    model.add_wrapper_with_key(wrappers.APPLY_MODEL, WRAPPER_KEY, apply_model)
    if family != "unet":
        replace = model.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
        model.set_model_patch_replace(_dit_block_patch(stash, replace.get(("double_block", 0)), call), "dit",
                                      "double_block", 0)
    return model


def cfg_of(model: Any) -> float | None:
    """The CFG scale of the running sampler: ``model`` is KSamplerX0Inpaint → CFGGuider (``.cfg``)."""
    cfg = getattr(getattr(model, "inner_model", None), "cfg", None)
    return float(cfg) if isinstance(cfg, (int, float)) else None


def apply_tpm(model: Any, tpm, meta: dict, tpm_name: str, node_id: str | None, freeze_as: str = "") -> Any:
    """A clone of MODEL carrying the TPM, its feature taps and the after-run report / freeze (Apply TPM)."""
    family, sizes = family_of(model)
    tpm_family = meta.get("family", "") or ("mmdit" if "schedule_lab.tpm" not in meta else "")
    for key in ("start_sigma", "cfg"):
        try:
            float(meta.get(key) or 0)
        except ValueError:
            raise ScheduleError(f"tpm: its metadata {key}={meta[key]!r} is not a number; re-save the TPM.") from None
    check_tpm_fits(tpm, tpm_family, family, sizes)
    start = meta.get("start_sigma")
    official = "schedule_lab.tpm" not in meta  # the released SD3-Medium TPM: 1024², CFG 7, from sigma 1
    state = TPDMState(
        tpm=tpm, family=family, tpm_name=tpm_name, cfg_of=cfg_of, report=lambda text: show_text(node_id, text),
        freeze_name=freeze_as.strip(), schedule_dir=schedule_write_dir,
        trained_start=float(start) if start not in (None, "") else (1.0 if official else None),
        trained_cfg=float(meta["cfg"]) if meta.get("cfg") else (7.0 if official else None),
        trained_grid=(64, 64) if official else None,
        trained_context=OFFICIAL_CONTEXT_TOKENS if official and family == "mmdit" else None,
    )

    def watch(sampler_name: str, explicit: dict) -> None:
        if sampler_name != "sl_tpdm":
            show_text(node_id, f"Apply TPM had no effect: this graph sampled with '{sampler_name}'. Pick "
                                    "'sl_tpdm' in KSampler or use the Adaptive Steps Sampler node.")

    patched = with_settings(model, "schedule_lab_tpm_watch", watch, tpdm=state)
    return install_taps(patched, family, state.stash)
