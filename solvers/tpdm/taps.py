"""Collecting the TPM's features across one sampler step, split into cond / uncond and CFG-combined
(docs/tpdm.md, "ComfyUI").

Pure torch. The host's hooks (nodes/host/tpdm.py) call :meth:`FeatureStash.put` with whatever rows the diffusion
model computed in a call and the call's ``cond_or_uncond`` list (ComfyUI: 0 = cond, 1 = uncond, one entry per chunk
of the batch; cond and uncond may come in one call or in separate calls). :meth:`FeatureStash.read` then returns
the features of the step, f = f_u + w (f_c − f_u) per feature (cond alone when there is no uncond, e.g. CFG 1), and
empties the stash for the next step.
"""
from __future__ import annotations

import torch

from ...schedules.errors import ScheduleError
from .tpm import TPMFeatures, combine_cfg

__all__ = ["COND", "UNCOND", "FeatureStash"]

COND, UNCOND = 0, 1
NAMES = ("h1", "h2", "temb")


class FeatureStash:
    """Per-step store of tapped features, keyed by feature name and cond/uncond label."""

    def __init__(self):
        self._rows: dict[tuple[str, int], torch.Tensor] = {}
        self.grid: tuple[int, int] | None = None
        self.context_tokens: int | None = None  # text tokens of the last call (hosts that know them set it)
        #: Set by a host whose calls must carry labels: unlabelled rows then make :meth:`read` raise this message
        #: under guidance (CFG ≠ 1) instead of treating every row as cond.
        self.unlabelled_error: str | None = None
        self._unlabelled = False

    def clear(self) -> None:
        self._rows.clear()
        self._unlabelled = False

    def put(self, name: str, value: torch.Tensor, cond_or_uncond: list[int] | None) -> None:
        """Store the rows of one call; ``cond_or_uncond`` splits them into equal chunks (None: all cond)."""
        if not cond_or_uncond:
            self._unlabelled = True
        labels = list(cond_or_uncond) if cond_or_uncond else [COND]
        if value.shape[0] % len(labels):
            raise ScheduleError(f"features: {value.shape[0]} rows do not split into {len(labels)} cond/uncond chunks.")
        # a copy: the model may change the tensor in place later in the call (e.g. ControlNet adds to h1)
        for label, chunk in zip(labels, value.detach().clone().chunk(len(labels), dim=0), strict=True):
            self._rows[(name, int(label))] = chunk  # several chunks of one label (area conds): the last is used

    def has(self, name: str) -> bool:
        return any(k[0] == name for k in self._rows)

    def read(self, cfg: float | None) -> TPMFeatures:
        """The step's features, CFG-combined with scale ``cfg``; the stash is emptied."""
        if self._unlabelled and self.unlabelled_error and cfg is not None and cfg != 1.0:
            self.clear()
            raise ScheduleError(self.unlabelled_error)
        out = {}
        for name in NAMES:
            cond, uncond = self._rows.get((name, COND)), self._rows.get((name, UNCOND))
            if cond is None and uncond is None:
                self.clear()
                raise ScheduleError(f"features: the model call produced no '{name}' feature; the TPM taps are not "
                                    "on this model. Connect the model through the Apply TPM node.")
            if cond is None:
                cond = uncond
            out[name] = cond if uncond is None or cfg is None else combine_cfg(uncond.float(), cond.float(), cfg)
        self.clear()
        return TPMFeatures(out["h1"], out["h2"], out["temb"], self.grid)
