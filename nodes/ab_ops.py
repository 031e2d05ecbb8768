"""A/B Compare as plain functions (no ComfyUI import): entries, sweeps and the labelled grid.

An entry is one cell recipe: a sampler (a SAMPLER object or a KSampler sampler name), a schedule (SIGMAS or a
scheduler name with steps and denoise) and a label. A sweep varies one setting of the first entry across cells.
Every refusal names the entry and the fix (``ScheduleError``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..schedules.constant_rate.calibrate import XI_MAX, XI_MIN
from ..schedules.errors import ScheduleError
from ..schedules.model_kind import ModelKind
from ..schedules.resample import truncate_for_denoise

SWEEPS = ("none", "detail", "steps", "denoise", "xi")
CONSTANT_RATE = "sl_constant_rate"


@dataclass(frozen=True)
class ABEntry:
    label: str
    sampler_name: str = "euler"
    scheduler: str = "karras"
    steps: int = 10
    denoise: float = 1.0
    sampler: Any = None  # a SAMPLER object wins over sampler_name
    sigmas: torch.Tensor | None = None  # SIGMAS win over scheduler/steps/denoise
    options: dict = field(default_factory=dict)  # explicit pack-sampler options (detail, ...)
    xi: float | None = None  # constant-rate exponent ξ (an sl_constant_rate entry of a ξ sweep); None = its default

    def describe(self) -> str:
        return f"entry {self.label!r}"


def parse_entry_list(text: str, samplers: list[str], schedulers: list[str]) -> list[ABEntry]:
    """One entry per line: ``sampler, scheduler, steps[, label]`` (``#`` starts a comment)."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        where = f"entry_list line {number} ({raw.strip()!r})"
        if len(parts) not in (3, 4):
            raise ScheduleError(f"{where}: write 'sampler, scheduler, steps[, label]', e.g. 'dpmpp_2m, karras, 10'")
        name, sched, steps = parts[:3]
        if name not in samplers:
            raise ScheduleError(f"{where}: sampler {name!r} is unknown; use a name from KSampler's sampler list")
        if sched not in schedulers:
            raise ScheduleError(f"{where}: scheduler {sched!r} is unknown; use a name from KSampler's scheduler list")
        try:
            n = int(steps)
        except ValueError:
            n = 0
        if not 1 <= n <= 1000:
            raise ScheduleError(f"{where}: steps {steps!r} must be an integer 1..1000")
        entries.append(ABEntry(label=parts[3] if len(parts) == 4 and parts[3] else f"{name} / {sched}",
                               sampler_name=name, scheduler=sched, steps=n))
    return entries


def parse_values(text: str, sweep: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ScheduleError(f"sweep_values: {text!r} is not a comma-separated list of numbers, e.g. '0.5, 1, 2'") \
            from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ScheduleError(f"sweep_values: give at least one finite number for the {sweep} sweep, e.g. '0.5, 1, 2'")
    return values


def expand_sweep(entries: list[ABEntry], sweep: str, values_text: str) -> list[ABEntry]:
    """The cells: the entries as they are, or the first entry once per sweep value (label says the value)
    followed by the other entries unchanged (e.g. TADA at three detail levels next to dpmpp_2m)."""
    if not entries:
        raise ScheduleError("entries: nothing to compare; connect an A/B Entry chain or write lines in entry_list")
    if sweep not in SWEEPS:
        raise ScheduleError(f"sweep: {sweep!r} is unknown; choose one of {', '.join(SWEEPS)}")
    if sweep == "none":
        return entries
    base, values = entries[0], parse_values(values_text, sweep)
    cells = []
    for v in values:
        if sweep == "steps":
            if base.sigmas is not None:
                raise ScheduleError(f"{base.describe()}: its schedule is fixed SIGMAS, so a steps sweep cannot "
                                    "change it; give the entry a scheduler name instead")
            if v != int(v) or not 1 <= v <= 1000:
                raise ScheduleError(f"sweep_values: steps {v} must be whole numbers 1..1000")
            cells.append(replace(base, steps=int(v), label=f"{base.label} · {int(v)} steps"))
        elif sweep == "denoise":
            if base.sigmas is not None:
                raise ScheduleError(f"{base.describe()}: its schedule is fixed SIGMAS, so a denoise sweep cannot "
                                    "change it; give the entry a scheduler name instead")
            if not 0 < v <= 1:
                raise ScheduleError(f"sweep_values: denoise {v} must lie in (0, 1]")
            cells.append(replace(base, denoise=v, label=f"{base.label} · denoise {v:g}"))
        elif sweep == "detail":
            if base.sampler is not None or not base.sampler_name.startswith("sl_tada"):
                raise ScheduleError(f"{base.describe()}: a detail sweep needs the sampler given by name as sl_tada "
                                    "(a connected SAMPLER keeps its own detail)")
            cells.append(replace(base, options={**base.options, "detail": v}, label=f"{base.label} · detail {v:g}"))
        else:  # xi: the constant-rate schedule's exponent
            if base.sigmas is not None or base.scheduler != CONSTANT_RATE:
                raise ScheduleError(f"{base.describe()}: a xi sweep needs the scheduler given by name as "
                                    f"{CONSTANT_RATE} (connected SIGMAS keep their own xi); feed A/B Compare the "
                                    "Constant-Rate Scheduler's MODEL output to sweep xi on a measured calibration")
            if not XI_MIN <= v <= XI_MAX:
                raise ScheduleError(f"sweep_values: xi {v:g} must lie in [{XI_MIN:g}, {XI_MAX:g}] (the Constant-Rate "
                                    "Scheduler's range; 1 = equal change per step)")
            # "xi", not "ξ": the grid's built-in font has no Greek glyphs
            cells.append(replace(base, xi=v, label=f"{base.label} · xi {v:g}"))
    return cells + list(entries[1:])


def constant_rate_cell_sigmas(kind: ModelKind, steps: int, denoise: float, xi: float, velocity=None) -> torch.Tensor:
    """Sigmas of a ξ-sweep cell: the catalogue's ``sl_constant_rate`` schedule (the calibration the MODEL carries,
    else the data-free default, exactly as in KSampler's dropdown) with ξ set, under KSampler's denoise rule."""
    from ..schedules.catalogue import schedule_sigmas

    return truncate_for_denoise(lambda n: schedule_sigmas(CONSTANT_RATE, kind, n, {"velocity": velocity}, xi=xi),
                                steps, denoise).to(torch.float32)


def check_labels(cells: list[ABEntry]) -> None:
    seen = set()
    for c in cells:
        if not c.label.strip():
            raise ScheduleError("entries: an entry has an empty label; give every entry a label")
        if c.label in seen:
            raise ScheduleError(f"{c.describe()}: two cells share this label; labels must tell cells apart")
        seen.add(c.label)


# ---- the grid -----------------------------------------------------------------------------------------------------
LABEL_HEIGHT = 34
MIN_CELL_WIDTH = 192


def cell_caption(label: str, steps: int, nfe: int, seconds: float) -> list[str]:
    return [label, f"{steps} steps · NFE {nfe} · {seconds:.2f} s"]


def draw_grid(images: torch.Tensor, captions: list[list[str]], columns: int = 0) -> torch.Tensor:
    """One IMAGE (1, H, W, 3) with every cell image under its caption lines; ``columns`` 0 = as square as
    possible. ``images`` is (N, h, w, 3) in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    n, h, w, _ = images.shape
    if w < MIN_CELL_WIDTH:  # small latents: enlarge (nearest) so the captions fit
        factor = -(-MIN_CELL_WIDTH // w)
        images = images.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
        n, h, w, _ = images.shape
    cols = columns if columns > 0 else math.ceil(math.sqrt(n))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    cell_h = h + LABEL_HEIGHT
    canvas = Image.new("RGB", (cols * w, rows * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i in range(n):
        r, c = divmod(i, cols)
        tile = (images[i].clamp(0, 1).cpu().numpy() * 255).round().astype("uint8")
        canvas.paste(Image.fromarray(tile[..., :3]), (c * w, r * cell_h + LABEL_HEIGHT))
        for k, line in enumerate(captions[i]):
            text = line
            while text and draw.textlength(text, font=font) > w - 6:
                text = text[:-2] + "…"
            draw.text((c * w + 3, r * cell_h + 3 + 14 * k), text, fill=(235, 235, 235) if k == 0 else (170, 200, 255),
                      font=font)
    import numpy as np

    return torch.from_numpy(np.asarray(canvas).astype("float32") / 255.0)[None]
