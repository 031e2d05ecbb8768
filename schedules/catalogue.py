"""The schedule table: every schedule the pack knows, declared once, and what any entry may need.

``SCHEDULES`` maps a name to a :class:`Schedule`: ``fn(kind, steps, **options) -> sigmas`` (1-D, descending, ending
in 0), a one-line description, its default options and what it ``needs`` from whoever runs it. The stock baselines
(karras, exponential, simple, ays) sit next to ours (``sl_`` names). The samplers' table is its sibling,
``solvers/catalogue.py`` (which also holds ``run`` for any sampler × schedule pair); ``nodes/registry.py`` only says
which names appear in ComfyUI's dropdowns.

``NEEDS`` is the one vocabulary of needs for both tables: for each, where it comes from. ``"kind"`` is the model's
ModelKind; a ``"model"`` need is a setting a patch node stores on the MODEL (ComfyUI) or the caller passes in
``provided`` (benchmarks, the CLI); a ``"files"`` need is the user's saved schedule files.

Adding a schedule: write its function (``fn(kind, steps, **options)``) in its own module under ``schedules/`` and add
one entry here (docs/architecture.md, "Adding a sampler or a schedule").
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from . import baseline
from .constant_rate.calibrate import dropdown_sigmas
from .for_model import ays_for_model
from .model_kind import ModelKind
from .search.results import searched_sigmas

__all__ = ["NEEDS", "SCHEDULES", "Need", "Schedule", "entry", "model_needs", "schedule_sigmas", "supplied"]


@dataclass(frozen=True)
class Need:
    """Where a need comes from: ``"kind"`` (the model's ModelKind), ``"model"`` (a setting carried by the MODEL,
    or passed in ``provided``) or ``"files"`` (the user's saved schedule files)."""

    source: str
    description: str


NEEDS: dict[str, Need] = {
    "kind": Need("kind", "the model's ModelKind (sampler option; run passes its kind)"),
    "detail": Need("model", "the Detail Level node's value on the MODEL (TADA)"),
    "velocity": Need("model", "the Constant-Rate Scheduler's calibration carried by the MODEL"),
    "tpdm": Need("model", "Apply TPM's time predictor and feature taps on the MODEL (TPDM), or (tpm, read_features)"),
    "schedule_paths": Need("files", "the user's saved schedule files, (name, path) pairs (models/schedules in "
                                    "ComfyUI)"),
}


def model_needs(needs: tuple[str, ...]) -> tuple[str, ...]:
    """The needs of an entry that a MODEL carries (``NEEDS[n].source == "model"``)."""
    return tuple(n for n in needs if NEEDS[n].source == "model")


def supplied(needs: tuple[str, ...], provided: dict | None) -> dict:
    """What of ``provided`` an entry with ``needs`` takes."""
    return {k: v for k, v in (provided or {}).items() if k in needs}


def entry(table: dict, name: str, what: str):
    """``table[name]``, or a KeyError listing the names there are."""
    if name not in table:
        raise KeyError(f"unknown {what} {name!r}; the catalogue has {', '.join(table)}")
    return table[name]


@dataclass(frozen=True)
class Schedule:
    """``fn(kind, steps, **options) -> sigmas``: 1-D, descending, ending in 0."""

    fn: Callable[..., torch.Tensor]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    ours: bool = False
    #: Non-empty for an entry kept only so saved workflows reproduce: why, and what to use instead (the
    #: description starts with it; running the entry logs it once per process).
    deprecated: str = ""

    @property
    def self_contained(self) -> bool:
        """True when (kind, steps) alone make the schedule (no saved files), so a sweep over names can run it."""
        return not any(NEEDS[n].source == "files" for n in self.needs)


def _karras(kind: ModelKind, steps: int, rho: float = 7.0) -> torch.Tensor:
    return baseline.karras(steps, kind.sigma_min, kind.sigma_max, rho)


def _exponential(kind: ModelKind, steps: int) -> torch.Tensor:
    return baseline.exponential(steps, kind.sigma_min, kind.sigma_max)


def _simple(kind: ModelKind, steps: int) -> torch.Tensor:
    return baseline.simple(kind, steps)


def _ays(kind: ModelKind, steps: int, table: str = "sd1") -> torch.Tensor:
    return baseline.ays(steps, table)


#: docs/defaults.md §15: why the Align Your Steps entries are deprecated, and what to use instead.
_AYS_DEPRECATED = (
    "Deprecated, not a Schedule Lab default: on every learned model the pack guards (eps, v, EDM and flow) it loses "
    "to the model family's stock scheduler (karras or simple) on error to the converged result "
    "(docs/defaults.md §15). Kept so saved workflows reproduce. Use sl_constant_rate, or ComfyUI's "
    "AlignYourStepsScheduler node for the published levels on the SD1.5 / SDXL / SVD weights they were made for.")


def _description(deprecated: str, text: str) -> str:
    return f"{deprecated} {text}" if deprecated else text


SCHEDULES: dict[str, Schedule] = {
    "karras": Schedule(_karras, "Karras et al. (2022), eq. 5: uniform in σ^(1/ρ) over the model's σ range.",
                       defaults={"rho": 7.0}),
    "exponential": Schedule(_exponential, "Uniform in log σ over the model's σ range."),
    "simple": Schedule(_simple, "ComfyUI's simple: evenly spaced entries of the model's own σ table."),
    "ays": Schedule(_ays, "Align Your Steps, the published SD1.5 noise levels as they are (ComfyUI semantics), "
                    "whatever the model.", defaults={"table": "sd1"}),
    "sl_ays_sd1": Schedule(
        ays_for_model, _description(_AYS_DEPRECATED,
        "Align Your Steps (SD1.5 table, Sabour et al. 2024) resampled log-linearly to any step count. On "
        "SD1/SD2/SDXL models its levels span the model's range down to σ_min, then 0 (ComfyUI's AYS node ends "
        "higher); on EDM models they are carried over at equal signal-to-noise ratio; on flow models (SD3, Flux) "
        "the same timesteps in the model's time, so the list starts at σ = 1 and follows the shift."),
        defaults={"table": "sd1"}, ours=True, deprecated=_AYS_DEPRECATED),
    "sl_ays_sdxl": Schedule(
        ays_for_model, _description(_AYS_DEPRECATED,
        "Align Your Steps (SDXL table, Sabour et al. 2024) resampled log-linearly to any step count. On "
        "SD1/SD2/SDXL models its levels span the model's range down to σ_min, then 0 (ComfyUI's AYS node ends "
        "higher); on EDM models they are carried over at equal signal-to-noise ratio; on flow models (SD3, Flux) "
        "the same timesteps in the model's time, so the list starts at σ = 1 and follows the shift."),
        defaults={"table": "sdxl"}, ours=True, deprecated=_AYS_DEPRECATED),
    "sl_searched": Schedule(
        searched_sigmas,
        "The best saved Timestep Search result (models/schedules) for this model and step count; an error naming "
        "the Timestep Search node if there is none (no silent fallback).",
        needs=("schedule_paths",), ours=True),
    "sl_constant_rate": Schedule(
        dropdown_sigmas,
        "Constant-rate schedule (Okada et al. 2024): steps placed so the noisy image changes at an even pace. Uses "
        "the calibration the Constant-Rate Scheduler node measured on this model, else a data-free default.",
        needs=("velocity",), ours=True),
}


log = logging.getLogger("schedule_lab")
_WARNED: set[str] = set()  # deprecated entries already logged in this process


def schedule_sigmas(name: str, kind: ModelKind, steps: int, provided: dict | None = None, **options) -> torch.Tensor:
    """Sigmas of schedule ``name`` for ``kind`` and ``steps``, given whatever of ``provided`` it needs; ``options``
    (e.g. ``xi=`` of ``sl_constant_rate``) win over both."""
    item = entry(SCHEDULES, name, "schedule")
    if item.deprecated and name not in _WARNED:
        _WARNED.add(name)
        log.warning("Schedule Lab: %s: %s", name, item.deprecated)
    return item.fn(kind, int(steps), **{**item.defaults, **supplied(item.needs, provided), **options})
