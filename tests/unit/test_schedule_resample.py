"""loglinear_interp / loglinear_resample / truncate_for_denoise (KSampler's denoise rule)."""
from __future__ import annotations

import math

import pytest
import torch

from schedule_lab.schedules import (
    ScheduleError,
    karras,
    loglinear_interp,
    loglinear_resample,
    truncate_for_denoise,
)


def test_loglinear_interp_of_two_decades_puts_the_midpoint_at_the_geometric_mean():
    assert loglinear_interp([100.0, 1.0], 3).tolist() == pytest.approx([100.0, 10.0, 1.0], rel=1e-14)


def test_loglinear_interp_to_the_same_length_is_the_identity():
    v = [14.6, 6.4, 3.8, 1.0, 0.03]
    assert loglinear_interp(v, 5).tolist() == pytest.approx(v, rel=1e-14)


@pytest.mark.parametrize("values, n", [([1.0, 0.0], 3), ([1.0], 3), ([2.0, 1.0], 1), ([math.nan, 1.0], 3)])
def test_loglinear_interp_refuses_bad_input(values, n):
    with pytest.raises(ScheduleError):
        loglinear_interp(values, n)


def test_resample_keeps_sigma_max_and_the_smallest_positive_sigma():
    s = karras(7, 0.0292, 14.6146, dtype=torch.float64)
    out = loglinear_resample(s, 23)
    assert len(out) == 24 and out[-1] == 0
    assert out[0].item() == pytest.approx(s[0].item(), rel=1e-14)
    assert out[-2].item() == pytest.approx(s[-2].item(), rel=1e-14)
    assert bool((out[1:] < out[:-1]).all())


def test_resample_by_hand():
    assert loglinear_resample([100.0, 1.0, 0.0], 3).tolist() == pytest.approx([100.0, 10.0, 1.0, 0.0])
    assert loglinear_resample([100.0, 1.0, 0.0], 1).tolist() == [100.0, 0.0]


def test_resample_keeps_the_input_dtype():
    assert loglinear_resample(torch.tensor([4.0, 2.0, 1.0, 0.0]), 5).dtype == torch.float32


def test_resample_refuses_bad_schedules_and_step_counts():
    with pytest.raises(ScheduleError, match="sigmas to resample"):
        loglinear_resample(torch.tensor([1.0, 2.0, 0.0]), 4)
    with pytest.raises(ScheduleError, match="single positive sigma"):
        loglinear_resample(torch.tensor([1.0, 0.0]), 4)
    with pytest.raises(ScheduleError, match="steps"):
        loglinear_resample(torch.tensor([2.0, 1.0, 0.0]), 0)


def _recording(calls):
    def fn(n):
        calls.append(n)
        return karras(n, 0.1, 10.0)
    return fn


def test_full_denoise_builds_exactly_steps():
    calls = []
    out = truncate_for_denoise(_recording(calls), 10, 1.0)
    assert calls == [10] and torch.equal(out, karras(10, 0.1, 10.0))


def test_partial_denoise_keeps_the_tail_of_a_longer_schedule():
    calls = []
    out = truncate_for_denoise(_recording(calls), 10, 0.3)
    assert calls == [int(10 / 0.3)] and torch.equal(out, karras(33, 0.1, 10.0)[-11:])


def test_zero_denoise_gives_an_empty_float_tensor():
    out = truncate_for_denoise(_recording([]), 10, 0.0)
    assert out.dtype == torch.float32 and out.numel() == 0


def test_truncate_refuses_bad_steps_and_denoise():
    with pytest.raises(ScheduleError, match="steps"):
        truncate_for_denoise(_recording([]), 0, 0.5)
    with pytest.raises(ScheduleError, match="denoise"):
        truncate_for_denoise(_recording([]), 10, 1.5)
