"""The server-side schedule plot (Schedule Info's IMAGE output): every step's dot is where its value says, larger
values higher up, the final 0 on the bottom edge; nothing but Pillow and numpy draws it."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from schedule_lab.nodes.plot_image import CURVE, DOT, HEIGHT, PAD, WIDTH, point_positions, schedule_image
from schedule_lab.nodes.plot_route import plot_axes
from schedule_lab.schedules import ModelKind
from schedule_lab.schedules.for_model import ays_for_model


def _pixel(image: torch.Tensor, x: int, y: int) -> tuple:
    return tuple(int(round(float(c) * 255)) for c in image[0, y, x])


@pytest.mark.parametrize("kind", [ModelKind.vp(), ModelKind.flow(shift=3.0)])
def test_each_step_is_drawn_at_its_value(kind):
    sigmas = ays_for_model(ModelKind.vp(), 10).double() if kind.kind != "flow" else torch.linspace(1, 0, 9).double()
    axes = plot_axes(sigmas, kind)
    image = schedule_image(axes, "test")
    assert image.shape == (1, HEIGHT, WIDTH, 3) and image.dtype == torch.float32
    pts, (lo, hi) = point_positions(axes["log_sigma"])
    assert len(pts) == len(sigmas)
    for x, y in pts:  # a dot at every step's position
        assert _pixel(image, x, y) == DOT, (x, y)
    ys = [y for _, y in pts]
    assert ys == sorted(ys) and ys[0] == PAD["t"] and ys[-1] == HEIGHT - PAD["b"]  # descending: top to bottom
    # an interior value: its height is its place between the range's ends
    known = [v for v in axes["log_sigma"] if v is not None]
    k = len(known) // 2
    want = PAD["t"] + (HEIGHT - PAD["t"] - PAD["b"]) * (hi - known[k]) / (hi - lo)
    assert abs(pts[k][1] - want) <= 1
    # the curve joins consecutive dots: its colour midway between two of them
    (xa, ya), (xb, yb) = pts[1], pts[2]
    mid = image[0, (ya + yb) // 2 - 2:(ya + yb) // 2 + 3, (xa + xb) // 2 - 2:(xa + xb) // 2 + 3].numpy()
    assert (np.abs(mid * 255 - np.array(CURVE)).sum(-1) < 30).any()


def test_another_schedule_gives_another_picture():
    a = schedule_image(plot_axes(torch.tensor([14.6, 3.0, 0.5, 0.0], dtype=torch.float64), ModelKind.vp()))
    b = schedule_image(plot_axes(torch.tensor([14.6, 8.0, 0.05, 0.0], dtype=torch.float64), ModelKind.vp()))
    assert float((a - b).abs().sum()) > 100


def test_no_heavy_plotting_dependency():
    source = (Path(__file__).resolve().parents[2] / "nodes" / "plot_image.py").read_text()
    tree = ast.parse(source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "matplotlib" not in imported and imported <= {"__future__", "math", "numpy", "torch", "PIL"}, imported
