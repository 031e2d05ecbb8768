"""Identity of a model and a guider for the calibration cache: cheap digests that any fine-tune, LoRA,
conditioning or CFG change alters."""
from __future__ import annotations

import hashlib
from typing import Any

import torch


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
    elif hasattr(value, "weights"):  # ComfyUI's weight adapters (LoRAAdapter & co., comfy.weight_adapter)
        h.update(type(value).__name__.encode())
        _digest_value(h, value.weights, depth + 1)


def model_fingerprint(model: Any) -> str:
    """Identity of a ModelPatcher for the calibration cache: class, weights (sampled) and weight patches (LoRA)."""
    h = hashlib.sha256()
    inner = getattr(model, "model", model)
    h.update(type(inner).__name__.encode())
    for name, t in sorted(inner.state_dict().items()):
        h.update(name.encode())
        _digest_tensor(h, t)
    for key in sorted(getattr(model, "patches", {}) or {}):
        h.update(str(key).encode())
        for patch in model.patches[key]:  # (strength, weights or adapter, strength_model, offset, function)
            _digest_value(h, list(patch))  # the LoRA's weights, not only its strength
    return h.hexdigest()[:32]


def guider_fingerprint(guider: Any) -> str:
    """Model fingerprint plus the guider's conditioning and CFG (both change the model's predictions)."""
    h = hashlib.sha256(model_fingerprint(guider.model_patcher).encode())
    h.update(type(guider).__name__.encode())
    _digest_value(h, getattr(guider, "original_conds", {}))
    _digest_value(h, getattr(guider, "cfg", None))
    return h.hexdigest()[:32]
