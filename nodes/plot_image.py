"""A schedule's plot drawn on the server as an IMAGE (Pillow only), so API runs and saved outputs have the picture.

The same chart the web extension draws (``web/js/schedule_chart.js``): the schedule's values per step, larger values
higher up, one dot per noise level, the final 0 (no log value) on the bottom edge. ``axes`` is the dictionary of
:func:`.plot_route.plot_axes` (``sigmas``, ``log_sigma``, ``log_snr``, ``flow_t``); the vertical axis is log σ.
No ComfyUI import; unit-tested directly.
"""
from __future__ import annotations

import math

import numpy as np
import torch

WIDTH, HEIGHT = 512, 288
PAD = {"l": 58, "r": 14, "t": 30, "b": 34}
BACKGROUND = (24, 24, 24)
GRID = (58, 58, 58)
AXIS_TEXT = (170, 170, 170)
CURVE = (99, 179, 237)  # the extension's series colour
DOT = (236, 201, 75)


def point_positions(values: list, width: int = WIDTH, height: int = HEIGHT) -> tuple[list, tuple]:
    """Pixel positions (x, y) of each step's value and the value range (lo, hi). A missing value (None: the log of the
    final 0) sits on the bottom edge."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = (min(known), max(known)) if known else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    n = max(len(values) - 1, 1)
    iw, ih = width - PAD["l"] - PAD["r"], height - PAD["t"] - PAD["b"]
    pts = []
    for i, v in enumerate(values):
        x = PAD["l"] + iw * i / n
        y = PAD["t"] + ih if v is None or not math.isfinite(v) else PAD["t"] + ih * (hi - v) / (hi - lo)
        pts.append((round(x), round(y)))
    return pts, (lo, hi)


def _fmt(v: float) -> str:
    return f"{v:.2e}" if abs(v) >= 100 or (0 < abs(v) < 0.01) else f"{v:.3f}"


def draw_schedule(axes: dict, label: str = "", width: int = WIDTH, height: int = HEIGHT):
    """The chart as a PIL image (RGB)."""
    from PIL import Image, ImageDraw, ImageFont

    values = axes["log_sigma"]
    sigmas = axes["sigmas"]
    pts, (lo, hi) = point_positions(values, width, height)
    img = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, x1, y0, y1 = PAD["l"], width - PAD["r"], PAD["t"], height - PAD["b"]
    for k in range(5):  # horizontal grid lines with their log σ values
        y = y0 + (y1 - y0) * k / 4
        d.line([(x0, y), (x1, y)], fill=GRID)
        d.text((4, y - 6), _fmt(hi - (hi - lo) * k / 4), fill=AXIS_TEXT, font=font)
    d.rectangle([x0, y0, x1, y1], outline=GRID)
    steps = len(sigmas) - 1
    d.text((x0, height - PAD["b"] + 6), "step 0", fill=AXIS_TEXT, font=font)
    d.text((x1 - 40, height - PAD["b"] + 6), f"step {steps}", fill=AXIS_TEXT, font=font)
    d.text((x0 + (x1 - x0) // 2 - 26, height - PAD["b"] + 18), "log sigma", fill=AXIS_TEXT, font=font)
    positive = [s for s in sigmas if s > 0]
    # ASCII only: Pillow's built-in bitmap font has no Greek letters or arrows
    span = f"sigma {_fmt(sigmas[0])} -> {_fmt(positive[-1]) if positive else '0'}"
    span += " -> 0" if sigmas[-1] == 0 else ""
    d.text((x0, 8), f"{label}  |  {steps} steps  |  {span}"[:90], fill=(220, 220, 220), font=font)
    if len(pts) > 1:
        d.line(pts, fill=CURVE, width=2)
    for x, y in pts:
        d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=DOT)
    return img


def schedule_image(axes: dict, label: str = "") -> torch.Tensor:
    """The chart as ComfyUI's IMAGE: float32 [1, H, W, 3] in 0..1."""
    rgb = np.asarray(draw_schedule(axes, label), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb.copy()).unsqueeze(0)
