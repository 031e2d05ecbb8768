"""Loading TPM weights from ``.safetensors`` (never pickle): the official SD3-Medium checkpoint and the pack's own.

The official checkpoint (HF ``MAPLE-WestLake-AIGC/TPDM``, ``sd3/model.safetensors``) is the trainer's RL wrapper:
keys may carry an ``agent_model.`` prefix and the TPM's own keys start with ``time_predictor.``; other keys (e.g. a
frozen backbone) are ignored. Decisions (docs/tpdm.md "Checkpoint loader"): the prefix is stripped, only the
``time_predictor.`` keys are read, all 12 tensors must be there with the official shapes (missing, unexpected and
mis-shaped keys are named in the error), any floating dtype is accepted and the module runs in fp32.

The pack's own TPM files store the same 12 names (with or without the ``time_predictor.`` prefix) and the sizes in
the safetensors metadata (``schedule_lab.tpm`` = JSON config, ``family``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ...schedules.errors import ScheduleError
from .tpm import OFFICIAL_CONFIG, TimePredictor

__all__ = ["PREFIX", "WRAPPER_PREFIX", "load_official_tpm", "load_tpm", "read_state", "save_tpm"]

PREFIX = "time_predictor."
WRAPPER_PREFIX = "agent_model."
META_KEY = "schedule_lab.tpm"
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def _check_file(path) -> Path:
    p = Path(os.fspath(path))
    if p.suffix.lower() in _PICKLE_SUFFIXES or p.suffix.lower() != ".safetensors":
        raise ScheduleError(f"tpm file {p.name!r}: only .safetensors files are read (pickle files such as .pt/.ckpt "
                            "can run code when loaded); convert it to .safetensors.")
    if not p.is_file():
        raise ScheduleError(f"tpm file {p.name!r} does not exist; put it in ComfyUI's models/tpm folder.")
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[:2] in (b"\x80\x02", b"\x80\x04", b"PK"):
        raise ScheduleError(f"tpm file {p.name!r} is not a safetensors file (it looks like a pickle/zip "
                            "checkpoint); only .safetensors weights are loaded.")
    return p


def read_state(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(TPM tensors, metadata) of a ``.safetensors`` file; see :func:`_read`."""
    tensors, meta, _ = _read(path)
    return tensors, meta


def _read(path) -> tuple[dict[str, torch.Tensor], dict[str, str], bool]:
    """(TPM tensors, metadata, whether the keys carried ``time_predictor.``) of a ``.safetensors`` file, refusing
    anything else with a ScheduleError.

    Keys lose an ``agent_model.`` prefix; when some keys start with ``time_predictor.``, only those are read (without
    the prefix), so a checkpoint that also holds a frozen backbone costs no more than the TPM."""
    from safetensors import safe_open

    p = _check_file(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            names = {k.removeprefix(WRAPPER_PREFIX): k for k in f.keys()}
            had_prefix = any(k.startswith(PREFIX) for k in names)
            if had_prefix:
                wanted = {k[len(PREFIX):]: full for k, full in names.items() if k.startswith(PREFIX)}
            else:
                wanted = names
            return {k: f.get_tensor(full) for k, full in wanted.items()}, meta, had_prefix
    except ScheduleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file for the user
        raise ScheduleError(f"tpm file {p.name!r} cannot be read as safetensors ({exc}); re-export it.") from exc


def _load_into(module: TimePredictor, sub: dict[str, torch.Tensor], name: str) -> TimePredictor:
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(sub))
    unexpected = sorted(set(sub) - set(expected))
    wrong = sorted(f"{k} {tuple(sub[k].shape)} (expected {expected[k]})" for k in set(sub) & set(expected)
                   if tuple(sub[k].shape) != expected[k])
    bad_dtype = sorted(k for k, v in sub.items() if not v.dtype.is_floating_point)
    if missing or unexpected or wrong or bad_dtype:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(PREFIX + k for k in missing)}")
        if unexpected:
            parts.append(f"unexpected {', '.join(PREFIX + k for k in unexpected)}")
        if wrong:
            parts.append(f"wrong shapes {'; '.join(wrong)}")
        if bad_dtype:
            parts.append(f"non-float tensors {', '.join(bad_dtype)}")
        raise ScheduleError(f"tpm file {name!r} does not have the layout of this TPM ({' | '.join(parts)}); use a "
                            "TPM file made for this model (official SD3-Medium TPM, or one saved by Schedule Lab).")
    module.load_state_dict({k: v.to(torch.float32) for k, v in sub.items()})
    return module.float().eval()


def load_official_tpm(path) -> TimePredictor:
    """The official SD3-Medium TPM from its ``.safetensors`` file, in fp32 (the loader's decisions: docs/tpdm.md,
    "Decisions on the spec's open questions")."""
    sub, _, had_prefix = _read(path)
    if not had_prefix:
        raise ScheduleError(f"tpm file {Path(path).name!r} has no '{PREFIX}' keys (optionally under "
                            f"'{WRAPPER_PREFIX}'); it is not a TPDM checkpoint.")
    return _load_into(TimePredictor(**OFFICIAL_CONFIG), sub, Path(path).name)


def save_tpm(path, module: TimePredictor, family: str = "", extra: dict | None = None) -> Path:
    """Save a TPM as ``.safetensors`` with its sizes (and the model family it was built for) in the metadata."""
    from safetensors.torch import save_file

    p = Path(os.fspath(path))
    if p.suffix != ".safetensors":
        raise ScheduleError(f"tpm file {p.name!r}: save TPMs with the .safetensors extension.")
    meta = {META_KEY: json.dumps(module.config, sort_keys=True), "family": str(family)}
    meta.update({str(k): str(v) for k, v in (extra or {}).items()})
    tensors = {PREFIX + k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(p), metadata=meta)
    return p


def load_tpm(path) -> tuple[TimePredictor, dict[str, str]]:
    """Any TPM file: a Schedule Lab file (sizes in the metadata) or the official SD3-Medium layout.

    Returns (module in fp32, metadata). The sizes come from the metadata when present, else from the tensors' shapes
    (conv1: (width, in_channels, 3, 3), norm1.linear: (2·width, temb_dim)).
    """
    sub, meta = read_state(path)
    name = Path(path).name
    if META_KEY in meta:
        try:
            cfg = json.loads(meta[META_KEY])
            module = TimePredictor(int(cfg["in_channels"]), int(cfg["temb_dim"]), int(cfg["width"]),
                                   h1_channels=cfg.get("h1_channels"), head=str(cfg.get("head", "exp")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ScheduleError(f"tpm file {name!r}: its '{META_KEY}' metadata is unreadable ({exc}).") from exc
    else:
        conv1, lin = sub.get("conv1.weight"), sub.get("norm1.linear.weight")
        if conv1 is None or lin is None or conv1.ndim != 4 or lin.ndim != 2:
            missing = [PREFIX + k for k in ("conv1.weight", "norm1.linear.weight") if k not in sub]
            raise ScheduleError(f"tpm file {name!r} is not a TPM (missing {', '.join(missing) or 'usable conv1/norm1'}"
                                "); use the official TPDM checkpoint or a TPM saved by Schedule Lab.")
        module = TimePredictor(int(conv1.shape[1]), int(lin.shape[1]), int(conv1.shape[0]))
    return _load_into(module, sub, name), meta
