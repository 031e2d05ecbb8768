"""The constant-rate benchmark's summary: best measure per NFE and the issue's target ratios."""
from __future__ import annotations

import torch

from schedule_lab.lab.benchmarks.constant_rate_bench import _summary
from schedule_lab.schedules.constant_rate.construct import Velocity


def _row(sampler, schedule, nfe, err):
    return {"sampler": sampler, "schedule": schedule, "nfe_target": nfe, "mean": {"rmse": err}}


def test_summary_picks_the_best_measure_and_checks_both_targets():
    tb = {"rows": [_row("dpmpp_2m", "karras", 5, 1.0), _row("dpmpp_2m", "ays", 5, 0.9),
                   _row("dpmpp_2m", "crs:vx", 5, 0.7), _row("dpmpp_2m", "crs:veps", 5, 0.95),
                   _row("euler", "crs:veps", 5, 0.1),  # another sampler never counts
                   _row("dpmpp_2m", "karras", 10, 1.0), _row("dpmpp_2m", "ays", 10, 0.5),
                   _row("dpmpp_2m", "crs:vx", 10, 0.6),
                   _row("dpmpp_2m", "karras", 20, 1.0), _row("dpmpp_2m", "ays", 20, 1.0),
                   _row("dpmpp_2m", "crs:vx", 20, 0.9)]}
    v = Velocity(torch.linspace(0, 1, 3), torch.ones(3), "vx", {"model_calls": 44, "seconds": 0.3, "samples": 256,
                                                              "points": 32})
    text = "\n".join(_summary(tb, {"vx": v}))
    assert "| vx | 44 | 0.3 | 256 × 32 |" in text
    assert "| 5 | crs:vx | 0.7000 | 0.70 | 0.78 | met |" in text
    assert "| 10 | crs:vx | 0.6000 | 0.60 | 1.20 | missed |" in text
    assert "| 20 | crs:vx | 0.9000 | 0.90 | 0.90 | (no target) |" in text
