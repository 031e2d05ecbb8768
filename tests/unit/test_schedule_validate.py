"""validate_sigmas / validate_steps / validate_denoise: what a schedule and its two knobs may be."""
from __future__ import annotations

import math

import pytest
import torch

from schedule_lab.schedules import ScheduleError, validate_denoise, validate_sigmas, validate_steps


def test_a_valid_schedule_is_returned_unchanged():
    s = torch.tensor([14.6, 3.0, 0.5, 0.0])
    assert validate_sigmas(s) is s


def test_lists_become_float64_tensors():
    out = validate_sigmas([2, 1, 0])
    assert out.dtype == torch.float64 and out.tolist() == [2.0, 1.0, 0.0]


def test_split_schedules_may_end_above_zero():
    assert validate_sigmas(torch.tensor([5.0, 2.0]), split=True).tolist() == [5.0, 2.0]


@pytest.mark.parametrize("sigmas, problem", [
    (torch.tensor([[1.0, 0.0]]), "1-D"),
    (torch.tensor([0.0]), "at least 2"),
    (torch.tensor([]), "at least 2"),
    (torch.tensor([math.inf, 1.0, 0.0]), "finite"),
    (torch.tensor([math.nan, 1.0, 0.0]), "finite"),
    (torch.tensor([1.0, -0.5, 0.0]), "negative"),
    (torch.tensor([1.0, 2.0, 0.0]), "descending"),
    (torch.tensor([2.0, 1.0, 1.0, 0.0]), "descending"),
    (torch.tensor([2.0, 1.0]), "not 0"),
    ("abc", "list of numbers"),
])
def test_invalid_schedules_name_the_input_and_the_problem(sigmas, problem):
    with pytest.raises(ScheduleError, match=problem) as err:
        validate_sigmas(sigmas, name="my_sigmas")
    assert "my_sigmas" in str(err.value)


def test_missing_final_zero_message_gives_the_fix():
    with pytest.raises(ScheduleError, match="append a final 0"):
        validate_sigmas(torch.tensor([2.0, 1.0]))


@pytest.mark.parametrize("steps, expected", [(1, 1), (20, 20), (10000, 10000), (7.0, 7)])
def test_valid_steps(steps, expected):
    assert validate_steps(steps) == expected and isinstance(validate_steps(steps), int)


@pytest.mark.parametrize("steps", [0, -3, 10001, True, 2.5, "3", None])
def test_invalid_steps_are_refused(steps):
    with pytest.raises(ScheduleError, match="steps"):
        validate_steps(steps)


@pytest.mark.parametrize("denoise", [0, 0.0, 0.35, 1, 1.0])
def test_valid_denoise(denoise):
    assert validate_denoise(denoise) == float(denoise)


@pytest.mark.parametrize("denoise", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
def test_invalid_denoise_is_refused(denoise):
    with pytest.raises(ScheduleError, match="denoise"):
        validate_denoise(denoise)
