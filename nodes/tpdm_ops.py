"""What the TPDM nodes do, as plain functions (no ComfyUI import; unit-tested directly).

:class:`TPDMState` travels on a MODEL patched by Apply TPM (in ``transformer_options["schedule_lab"]["tpdm"]``): the
time predictor, the feature stash the taps fill, how to read the CFG scale, and what to do after a run (show the
realised schedules on the node, freeze them to a schedule file). The catalogue's ``sl_tpdm``
(solvers/tpdm/sampler.sample_sl_tpdm) runs the loop for the KSampler dropdown and the Adaptive Steps Sampler and
calls the state's ``prepare`` before it and ``finish`` after it: the loop never runs from here.
Decisions in docs/tpdm.md.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..schedules.errors import ScheduleError
from ..schedules.files import make_schedule_doc, safe_schedule_name, save_schedule
from ..schedules.model_kind import ModelKind
from ..solvers.tpdm.sampler import check_options, to_level
from ..solvers.tpdm.taps import FeatureStash
from ..solvers.tpdm.tpm import TimePredictor
from ..version import PACK_VERSION

log = logging.getLogger("schedule_lab")



@dataclass(eq=False)
class TPDMState:
    """Everything sl_tpdm needs from Apply TPM. Shared by every clone of the patched MODEL (deepcopy is identity)."""

    tpm: TimePredictor
    family: str
    tpm_name: str = ""
    cfg_of: Callable[[Any], float | None] = lambda model: None
    report: Callable[[str], None] = lambda text: log.info("[Schedule Lab] %s", text)
    freeze_name: str = ""
    schedule_dir: Callable[[], str] | None = None
    trained_start: float | None = None
    trained_cfg: float | None = None
    trained_grid: tuple[int, int] | None = None
    trained_context: int | None = None
    stash: FeatureStash = field(default_factory=FeatureStash)
    last: list = field(default_factory=list)
    last_paths: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def __deepcopy__(self, memo):  # ModelPatcher.clone deep-copies model_options: keep one state per Apply TPM
        return self

    def prepare(self, model, x, sigmas, kind: ModelKind | None, options: dict):
        """Before sl_tpdm's loop (the core calls it): notes on the settings, the TPM on the latent's device, a fresh
        feature stash; returns the feature reader of this run."""
        self.notes = []
        if options["min_sigma"] != options["requested_min_sigma"]:
            self.notes.append(f"min_sigma {options['requested_min_sigma']:g} raised to the model's smallest noise "
                              f"level {options['min_sigma']:.4g}")
        start = float(sigmas[0]) if len(sigmas) else 0.0
        if len(sigmas) > 1 and float(sigmas[-1]) > 0:
            self.notes.append(f"the incoming schedule ends at sigma {float(sigmas[-1]):.4g} (e.g. KSamplerAdvanced's "
                              "end_at_step); sl_tpdm ignores it: the TPM decides where each image stops")
        warning = start_warning(start, self.trained_start, kind)
        if warning:
            log.warning("[Schedule Lab] %s", warning)
            self.notes.append(warning)
        if next(self.tpm.parameters()).device != x.device:
            self.tpm.to(x.device)
        self.stash.clear()
        return lambda: self.stash.read(self.cfg_of(model))

    def finish(self, model, schedules: list[torch.Tensor], kind: ModelKind | None, options: dict):
        """After sl_tpdm's loop: the realised schedules kept for the node, frozen to files if asked, the report."""
        self.last, self.last_paths = schedules, []
        notes = self.notes + regime_notes(self.cfg_of(model), self.stash.grid, self.trained_cfg, self.trained_grid,
                                          self.stash.context_tokens, self.trained_context)
        if self.freeze_name and self.schedule_dir is not None and kind is not None:
            params = {"tpm": self.tpm_name, "min_sigma": options["min_sigma"], "max_steps": options["max_steps"],
                      "stochastic": options["stochastic"], "final_step": options["final_step"]}
            self.last_paths = freeze_schedules(schedules, kind, self.freeze_name, self.schedule_dir(), params)
        self.report(run_report(schedules, self.last_paths, notes))


def start_warning(start: float, trained_start: float | None, kind: ModelKind | None) -> str:
    """A warning when sampling starts off the level the TPM was trained from (img2img / denoise < 1 below it, a
    scheduler starting above it), compared on the level the ratio acts on."""
    if trained_start is None or start <= 0:
        return ""
    here = float(to_level(torch.tensor(start, dtype=torch.float64), kind))
    trained = float(to_level(torch.tensor(trained_start, dtype=torch.float64), kind))
    if here < trained * (1 - 1e-3):
        return (f"sl_tpdm: sampling starts at sigma {start:.4g}, below the level this TPM was trained from "
                f"({trained_start:.4g}); img2img / denoise < 1 was never trained, so its step choices may be off.")
    if here > trained * (1 + 1e-3):
        return (f"sl_tpdm: sampling starts at sigma {start:.4g}, above the level this TPM was trained from "
                f"({trained_start:.4g}); its first steps were never trained, so its step choices may be off.")
    return ""


#: The official SD3 TPM's text context: 77 CLIP-L/G tokens + T5 padded to 256 (max_sequence_length=256 in [M]).
OFFICIAL_CONTEXT_TOKENS = 77 + 256


def regime_notes(cfg: float | None, grid, trained_cfg: float | None, trained_grid, context_tokens: int | None = None,
                 trained_context: int | None = None) -> list[str]:
    """Warnings when the run is outside what the TPM was trained on (CFG scale, token grid, text context length);
    sampling goes on."""
    notes = []
    if trained_context is not None and context_tokens is not None and context_tokens != trained_context:
        notes.append(f"the text context has {context_tokens} tokens (ComfyUI pads SD3's T5 to 77: 77 + 77 = 154); the "
                     f"official TPM was trained with {trained_context} (T5 padded to 256), which shifts the features "
                     "it reads a little (the pooled vector and temb are the same), so its steps may differ slightly")
    if trained_cfg is not None and cfg is not None and abs(cfg - trained_cfg) > 1e-6:
        notes.append(f"CFG {cfg:g} differs from the TPM's training CFG {trained_cfg:g}: the TPM reads CFG-extrapolated "
                     "features, so its steps may be off" + (" (CFG 1 gives it cond-only features)" if cfg == 1 else ""))
    if trained_grid is not None and grid is not None and tuple(grid) != tuple(trained_grid):
        notes.append(f"token grid {grid[0]}x{grid[1]} differs from the TPM's training grid {trained_grid[0]}x"
                     f"{trained_grid[1]} (SD3 official: 1024x1024); its steps may be off")
    for note in notes:
        log.warning("[Schedule Lab] sl_tpdm: %s", note)
    return notes


def freeze_schedules(schedules: list[torch.Tensor], kind: ModelKind, name: str, directory: str,
                     params: dict) -> list[str]:
    """Write each image's realised schedule as a schedule file (``name``, or ``name_<i>`` for batches); the file is
    rewritten on every run. Returns the paths."""
    try:
        base = safe_schedule_name(name)[: -len(".json")]
    except ScheduleError as e:
        raise ScheduleError(f"freeze_as: {e}") from None
    paths = []
    for i, s in enumerate(schedules):
        fname = safe_schedule_name(base if len(schedules) == 1 else f"{base}_{i}")
        split = float(s[-1]) != 0.0
        doc = make_schedule_doc(s.to(torch.float32), kind, method="tpdm", params={**params, "image": i},
                                pack_version=PACK_VERSION, split=split)
        path = os.path.join(directory, fname)
        save_schedule(path, doc)
        paths.append(path)
    return paths


def run_report(schedules: list[torch.Tensor], paths: list[str], notes: list[str] | None = None) -> str:
    """What Apply TPM shows after a run: each image's step count and realised noise levels."""
    lines = []
    for i, s in enumerate(schedules):
        levels = ", ".join(f"{float(v):.4g}" for v in s)
        lines.append(f"image {i}: {len(s) - 1} steps: {levels}")
    if paths:
        lines.append("frozen to " + ", ".join(os.path.basename(p) for p in paths) + " (models/schedules; "
                     "Load Schedule + euler reproduces the run without the TPM)")
    lines.extend(notes or [])
    return "sl_tpdm: " + "\n".join(lines)


def check_tpm_fits(tpm: TimePredictor, tpm_family: str, family: str, sizes: tuple[int, int, int]) -> None:
    """A ScheduleError naming the ``tpm`` input when the TPM was built for another family or other feature sizes."""
    c1, c2, d = sizes
    cfg = tpm.config
    if tpm_family and tpm_family != family:
        raise ScheduleError(f"tpm: this TPM was trained for the '{tpm_family}' model family, but the model is a "
                            f"'{family}' model; load a TPM made for this model.")
    if cfg["in_channels"] != c1 + c2 or cfg["temb_dim"] != d:
        raise ScheduleError(f"tpm: built for features of {cfg['in_channels']} channels (h1 + h2) and a "
                            f"{cfg['temb_dim']}-d time embedding, but this {family} model gives {c1} + {c2} channels "
                            f"and {d}; load a TPM trained for this model.")


@dataclass(eq=False)
class LoadedTPM:
    """The TPM socket value: the module (fp32, eval), its file's metadata and name."""

    module: TimePredictor
    meta: dict
    name: str

    def __deepcopy__(self, memo):
        return self


def load_tpm_file(path: str, name: str) -> LoadedTPM:
    """A TPM from a ``.safetensors`` file (official SD3-Medium layout or saved by Schedule Lab), errors naming it."""
    from ..solvers.tpdm.official import load_tpm

    try:
        module, meta = load_tpm(path)
    except ScheduleError as e:
        raise ScheduleError(f"tpm_name: {e}") from None
    return LoadedTPM(module, meta, name)


def adaptive_options(min_sigma: float, max_steps: int, stochastic: bool, final_step: str) -> dict:
    """The Adaptive Steps Sampler's options, validated (errors name the input)."""
    min_sigma, max_steps, final_step = check_options(min_sigma, max_steps, final_step)
    return {"min_sigma": min_sigma, "max_steps": max_steps, "stochastic": bool(stochastic), "final_step": final_step}
