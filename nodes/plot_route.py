"""The live-plot route: ``GET /schedule_lab/plot`` computes a schedule for the web extension.

The browser draws a node's schedule while its widgets change, before anything is queued, so the server computes it
from the widget values alone: a scheduler name from KSampler's list (stock or pack) or a saved schedule file, with
steps, denoise and a model family preset standing in for the model that is not loaded yet. Every query value is
validated; a bad one is answered with 400 and a message naming it (never a traceback). Files are only read from
ComfyUI's schedule folders, by a name that must be in their listing.

Query: ``family`` (sd1 | sdxl | sd2v | sd3 | flux), ``steps`` (1..1000; ``keep_steps=1`` keeps a file's own
count), ``denoise`` ((0, 1]), and one of ``scheduler`` (a KSampler scheduler name), ``schedule`` (a file in
models/schedules) or ``searched`` (a Searched Steps choice: a preset or a saved search). Answer:
``{"sigmas", "log_sigma", "log_snr", "flow_t", "kind", "label"}``; the final 0 has no log value (null).
"""
from __future__ import annotations

import math

import torch

from ..schedules.errors import ScheduleError
from ..schedules.resample import truncate_for_denoise
from . import host, schedule_ops, search_ops

ROUTE = "/schedule_lab/plot"
LIST_ROUTE = "/schedule_lab/schedules"
MAX_STEPS = 1000


def _int(query: dict, name: str, lo: int, hi: int, default: int) -> int:
    raw = query.get(name, default)
    try:
        value = int(str(raw))
    except ValueError:
        raise ScheduleError(f"{name}: {raw!r} is not an integer; pass {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise ScheduleError(f"{name}: {value} is out of range; pass {lo}..{hi}")
    return value


def _float(query: dict, name: str, lo: float, hi: float, default: float) -> float:
    raw = query.get(name, default)
    try:
        value = float(str(raw))
    except ValueError:
        raise ScheduleError(f"{name}: {raw!r} is not a number; pass a value in ({lo}, {hi}]") from None
    if not (math.isfinite(value) and lo < value <= hi):
        raise ScheduleError(f"{name}: {value} is out of range; pass a value in ({lo}, {hi}]")
    return value


def plot_axes(sigmas: torch.Tensor, kind) -> dict:
    s = sigmas.to(torch.float64)
    positive = s > 0
    def masked(values):  # noqa: E306 - the final 0 (and any non-positive level) has no log value; nor has a flow
        # model's pure-noise level (σ = 1: log-SNR = -inf), which JSON cannot carry
        return [float(v) if ok and math.isfinite(v) else None
                for v, ok in zip(values.tolist(), positive.tolist(), strict=True)]

    safe = torch.where(positive, s, torch.ones_like(s))
    return {"sigmas": s.tolist(), "log_sigma": masked(torch.log(safe)),
            "log_snr": masked(2.0 * kind.to_lambda(safe)), "flow_t": kind.to_flow_time(s).tolist()}


def steps_or_keep(query: dict, steps: int) -> int:
    """0 (keep the saved step count) when the query asks for it, as Load Schedule's steps=0 does."""
    return 0 if query.get("keep_steps") in ("1", "true") else steps


def plot_data(query: dict) -> dict:
    """The schedule described by the query (raises ScheduleError naming the bad value)."""
    family = str(query.get("family", "sd1"))
    steps = _int(query, "steps", 1, MAX_STEPS, 20)
    denoise = _float(query, "denoise", 0.0, 1.0, 1.0)
    ms = host.model_sampling_preset(family)
    kind = host.model_kind_from_sampling(ms)
    scheduler, schedule, searched = query.get("scheduler"), query.get("schedule"), query.get("searched")
    if sum(v is not None for v in (scheduler, schedule, searched)) != 1:
        raise ScheduleError("query: pass exactly one of scheduler (a KSampler scheduler name), schedule "
                            "(a file in models/schedules) or searched (a Searched Steps choice)")
    if scheduler is not None:
        names = host.scheduler_names()
        if scheduler not in names:
            raise ScheduleError(f"scheduler: {scheduler!r} is unknown; choose one of {', '.join(names)}")
        sigmas = truncate_for_denoise(lambda n: host.stock_sigmas(ms, scheduler, n), steps, denoise)
        label = scheduler
    elif searched is not None:
        choices = search_ops.schedule_choices(host.schedule_files())
        if searched not in choices:
            raise ScheduleError(f"searched: {searched!r} is not a preset or a saved search; "
                                f"available: {', '.join(choices)}")
        sigmas, _ = search_ops.searched_steps(searched, kind, host.schedule_read_path, steps_or_keep(query, steps),
                                              denoise)
        label = searched
    else:
        files = host.schedule_files()
        if schedule not in files:  # only names listed in the schedule folders: no paths, no traversal
            raise ScheduleError(f"schedule: no file named {schedule!r} in models/schedules; "
                                f"available: {', '.join(files) or 'none'}")
        sigmas = schedule_ops.load_schedule_file(host.schedule_read_path(schedule), kind,
                                                 steps_or_keep(query, steps), denoise, clamp_to_model=True)
        label = schedule
    return {"family": family, "kind": kind.kind, "label": label, "steps": len(sigmas) - 1, **plot_axes(sigmas, kind)}


async def plot_handler(request):
    try:
        return host.json_response(plot_data(dict(request.query)))
    except ScheduleError as e:
        return host.json_response({"error": str(e)}, status=400)
    except Exception as e:  # noqa: BLE001 - a message for the chart, never a traceback
        return host.json_response({"error": f"{type(e).__name__}: {e}"}, status=500)


async def schedules_handler(request):
    return host.json_response({"schedules": host.schedule_files(), "schedulers": host.scheduler_names(),
                               "families": list(host.FAMILIES)})


def register() -> bool:
    return host.add_get_route(ROUTE, plot_handler) and host.add_get_route(LIST_ROUTE, schedules_handler)
