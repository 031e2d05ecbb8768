"""Which catalogue names the pack adds to ComfyUI's KSampler dropdowns, and what each needs from the host.

A leaf: it reads the core catalogue (solvers/catalogue.py) and imports nothing from ``nodes/``. The host appends
these names to the stock lists and injects what an entry declares: ``model_settings`` (values a patch node put on
the MODEL: TADA's ``detail``, a Constant-Rate calibration's ``velocity``) and, for ``saved_files`` entries, the
user's saved schedule files as ``schedule_paths``. A sampler also gets ``kind=`` (the model's ModelKind).

Names are permanent workflow identity (saved workflows store them as strings): never rename one. All carry the
``sl_`` prefix because other packs append to the same lists.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..solvers import catalogue

#: Catalogue names in the dropdowns, in the order they are appended.
DROPDOWN_SCHEDULERS = ("sl_ays_sd1", "sl_ays_sdxl", "sl_searched", "sl_constant_rate")
DROPDOWN_SAMPLERS = ("sl_tada",)
#: Needs that a patch node stores on the MODEL (the rest: ``kind`` always, ``schedule_paths`` by ``saved_files``).
MODEL_SETTINGS = ("detail", "velocity")


@dataclass(frozen=True)
class Entry:
    """One public name. Samplers: ``fn(model, x, sigmas, extra_args, callback, disable, kind=..., **options)``.
    Schedulers: ``fn(kind, steps, **found) -> sigmas`` where ``found`` holds the ``model_settings`` the MODEL
    carries and, when ``saved_files``, ``schedule_paths`` (such an entry raises when no saved file fits, so sweeps
    over the whole registry skip it)."""

    fn: Callable[..., Any]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    model_settings: tuple[str, ...] = ()
    saved_files: bool = False


def _model_settings(needs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in needs if n in MODEL_SETTINGS)


def _scheduler(name: str) -> Entry:
    item = catalogue.SCHEDULES[name]

    def fn(kind, steps, **found):
        return catalogue.schedule_sigmas(name, kind, steps, found)

    fn.__name__ = name
    return Entry(fn, item.description, model_settings=_model_settings(item.needs),
                 saved_files="schedule_paths" in item.needs)


def _sampler(name: str) -> Entry:
    item = catalogue.SAMPLERS[name]
    return Entry(item.fn, item.description, dict(item.defaults), _model_settings(item.needs))


SCHEDULERS: dict[str, Entry] = {name: _scheduler(name) for name in DROPDOWN_SCHEDULERS}
SAMPLERS: dict[str, Entry] = {name: _sampler(name) for name in DROPDOWN_SAMPLERS}
