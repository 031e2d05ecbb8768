"""What the schedule nodes do, as plain functions (no ComfyUI import; unit-tested directly).

The node classes in :mod:`.schedule_nodes` only translate sockets to these calls.
"""
from __future__ import annotations

import os

import torch

from ..schedules import safe_json
from ..schedules.catalogue import schedule_sigmas
from ..schedules.errors import ScheduleError
from ..schedules.files import (
    MAX_FILE_BYTES,
    adapt_to_kind,
    load_schedule,
    make_schedule_doc,
    safe_schedule_name,
    save_schedule,
)
from ..schedules.model_kind import ModelKind
from ..schedules.resample import loglinear_resample, truncate_for_denoise
from ..schedules.validate import validate_denoise, validate_sigmas, validate_steps
from ..version import PACK_VERSION
from . import registry


def pack_schedule(kind: ModelKind, scheduler: str, steps: int, denoise: float,
                  provided: dict | None = None) -> torch.Tensor:
    """Sigmas of a pack scheduler in the dropdowns, with KSampler's denoise semantics; ``provided``: what the
    catalogue entry needs (``schedules.catalogue.NEEDS``), e.g. ``schedule_paths`` or the MODEL's ``velocity``."""
    if scheduler not in registry.DROPDOWN_SCHEDULERS:
        raise ScheduleError(f"scheduler: unknown name {scheduler!r}; choose one of "
                            f"{sorted(registry.DROPDOWN_SCHEDULERS)}")
    validate_steps(steps)
    validate_denoise(denoise)
    return truncate_for_denoise(lambda n: schedule_sigmas(scheduler, kind, n, provided), steps,
                                denoise).to(torch.float32)


def check_save_target(filename: str, directory: str, overwrite: bool) -> str:
    """The path a schedule named ``filename`` would be written to; refuses a name that cannot travel, and an existing
    file unless ``overwrite`` (nodes call it before long work, so a refusal costs nothing)."""
    try:
        name = safe_schedule_name(filename)
    except ScheduleError as e:
        raise ScheduleError(f"filename: {e}") from None
    path = os.path.join(directory, name)
    if os.path.exists(path) and not overwrite:
        raise ScheduleError(f"filename: {name!r} already exists in the schedules folder; choose another "
                            "name or enable overwrite")
    return path


def save_schedule_file(sigmas: torch.Tensor, kind: ModelKind, filename: str, directory: str,
                       method: str = "manual", params: dict | None = None, overwrite: bool = False) -> str:
    """Validate, then write atomically ``directory/filename`` (name checked for path tricks). Returns the path."""
    path = check_save_target(filename, directory, overwrite)
    split = bool(len(sigmas)) and float(sigmas[-1]) != 0.0
    sigmas = validate_sigmas(sigmas, name="sigmas", split=split)
    doc = make_schedule_doc(sigmas, kind, method=method, params=params or {}, pack_version=PACK_VERSION,
                            split=split)
    save_schedule(path, doc)
    return path


def file_fingerprint(name, read_path) -> str:
    """What ComfyUI compares to decide whether Load Schedule must run again: the sha256 of the file's bytes (a
    missing or unreadable file gives its error text, so the node runs and reports it)."""
    try:
        return safe_json.digest(read_path(name), MAX_FILE_BYTES)
    except ScheduleError as e:
        return f"unreadable: {e}"


def load_schedule_file(path: str, kind: ModelKind, steps: int = 0, denoise: float = 1.0,
                       clamp_to_model: bool = False) -> torch.Tensor:
    """Read a schedule file, carry it to ``kind``, optionally resample to ``steps`` and apply ``denoise``.

    ``steps == 0`` keeps the saved step count. Levels outside the model's range are refused unless
    ``clamp_to_model`` moves them onto it (e.g. a flow schedule starting at pure noise, s = 1, on an SD model).
    """
    validate_denoise(denoise)
    if steps != 0:
        validate_steps(steps)
    doc = load_schedule(path)
    try:
        sigmas = adapt_to_kind(doc, kind, clamp=clamp_to_model, clamp_hint="enable clamp_to_model")
    except ScheduleError as e:
        raise ScheduleError(f"schedule {os.path.basename(path)!r}: {e}") from None
    saved = len(sigmas) - 1
    return truncate_for_denoise(lambda n: sigmas if n == saved else loglinear_resample(sigmas, n),
                                steps or saved, denoise).to(torch.float32)


def schedule_info(sigmas: torch.Tensor, kind: ModelKind | None = None) -> str:
    """A short human-readable report: steps, sigma range and the log-SNR step sizes."""
    split = bool(len(sigmas)) and float(sigmas[-1]) != 0.0
    s = validate_sigmas(sigmas, name="sigmas", split=split).to(torch.float64)
    positive = s[s > 0]
    lines = [f"steps: {len(s) - 1}" + (" (split: does not end at 0)" if split else ""),
             f"sigma: {float(s[0]):.4g} -> {float(positive[-1]):.4g}" + ("" if split else " -> 0")]
    if kind is not None:
        lam = kind.to_lambda(positive)
        lines.append(f"model: {kind.describe()}")
    else:
        lam = -torch.log(positive)
    if len(lam) > 1:
        d = (lam[1:] - lam[:-1]).tolist()
        lines.append("log-SNR steps: " + ", ".join(f"{x:.3f}" for x in d))
        lines.append(f"largest/smallest log-SNR step: {max(d) / max(min(d), 1e-12):.2f}")
    lines.append("sigmas: " + ", ".join(f"{float(x):.4g}" for x in s))
    return "\n".join(lines)
