"""Feature taps on the bundled trained testbed models, for TPDM's time predictor (docs/tpdm.md,
"Trainer").

A tap registers forward hooks on a frozen model and keeps what the *last* call produced, so a TPM reads the features
of the same forward pass that gave the denoised prediction (no second model call). Like the official SD3 taps it
takes three things:

* ``h1`` — right after the input projection (the testbeds' ``inp``; SD3: patch embedding + pos-embed);
* ``h2`` — right before the output projection (the testbeds' ``out_norm`` output; SD3: ``norm_out``, before
  ``proj_out``);
* ``temb`` — the model's own conditioning vector (the testbeds' noise embedding ``emb_mlp(fourier(c_noise))``;
  SD3: ``time_text_embed``).

``tap.read()`` returns a ``solvers.tpdm.tpm.TPMFeatures`` (detached, batch first). The MLP's hidden vectors are
given as 1×1 maps (B, C, 1, 1) (the UNet's are real maps): they have no spatial layout, and the TPM's 3×3
convolutions then reduce to their centre taps (a linear layer), the pools to copies. Use as a context manager
(hooks removed on exit) or call ``remove()``.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TAP_MODULES", "FeatureTap", "tap_for"]


class FeatureTap:
    """Forward hooks filling ``h1``, ``h2``, ``temb`` from named submodules' outputs on every model call."""

    NAMES = ("h1", "h2", "temb")

    def __init__(self, model: nn.Module, modules: dict[str, nn.Module]):
        missing = [n for n in self.NAMES if n not in modules]
        if missing:
            raise ValueError(f"FeatureTap: modules for {', '.join(missing)} are missing")
        self.model = model
        self._store: dict[str, torch.Tensor] = {}
        self._handles = [mod.register_forward_hook(self._hook(name)) for name, mod in modules.items()]

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            self._store[name] = output.detach()
        return hook

    def clear(self) -> None:
        self._store.clear()

    def read(self):
        """The TPMFeatures of the last model call; raises if the model has not run since ``clear()``."""
        from schedule_lab.solvers.tpdm.tpm import TPMFeatures

        missing = [n for n in self.NAMES if n not in self._store]
        if missing:
            raise RuntimeError(f"FeatureTap: no {', '.join(missing)} captured; run the model before reading")
        h1, h2, temb = (self._store[n] for n in self.NAMES)
        return TPMFeatures(_as_map(h1), _as_map(h2), temb.reshape(temb.shape[0], -1))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._store.clear()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _as_map(h: torch.Tensor) -> torch.Tensor:
    """(B, C) vectors → (B, C, 1, 1) maps; (B, C, H, W) maps unchanged."""
    return h if h.ndim == 4 else h.reshape(h.shape[0], -1, 1, 1)


#: The bundled trained testbeds name their input projection, final norm and noise embedding alike: the EDM MLP
#: (``inp`` Linear, ``out_norm`` LayerNorm, ``emb_mlp``) and the natural-image patch UNet (``inp`` Conv2d,
#: ``out_norm`` GroupNorm, ``emb_mlp``), so one tap serves both (vectors become 1×1 maps, maps stay maps).
TAP_MODULES = {"h1": "inp", "h2": "out_norm", "temb": "emb_mlp"}


def tap_for(model) -> FeatureTap:
    """The tap of a bundled trained testbed model: h1 = ``inp`` output, h2 = ``out_norm`` output (before the
    output projection), temb = ``emb_mlp`` output; a TypeError naming the missing modules otherwise."""
    missing = [m for m in TAP_MODULES.values() if not isinstance(getattr(model, m, None), nn.Module)]
    if missing:
        raise TypeError(f"no feature tap for {type(model).__name__}: it has no {', '.join(missing)} module(s); "
                        "build a FeatureTap with the modules right after the input projection, right before the "
                        "output projection and the time embedding")
    return FeatureTap(model, {k: getattr(model, m) for k, m in TAP_MODULES.items()})
