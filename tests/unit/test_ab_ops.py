"""A/B Compare's plain functions: entry lists, sweeps, labels and the grid layout."""
from __future__ import annotations

import pytest
import torch

from schedule_lab.nodes import ab_ops
from schedule_lab.schedules.constant_rate.calibrate import dropdown_sigmas
from schedule_lab.schedules.constant_rate.calibrate import schedule as cr_schedule
from schedule_lab.schedules.constant_rate.construct import data_free_velocity, default_schedule_settings
from schedule_lab.schedules.errors import ScheduleError
from schedule_lab.schedules.model_kind import ModelKind

SAMPLERS = ["euler", "dpmpp_2m", "sl_tada"]
SCHEDULERS = ["karras", "normal", "sl_constant_rate"]


def test_entry_list_lines_become_entries_with_default_labels():
    entries = ab_ops.parse_entry_list("dpmpp_2m, karras, 10, K\n# comment\n\neuler, normal, 4", SAMPLERS, SCHEDULERS)
    assert [(e.sampler_name, e.scheduler, e.steps, e.label) for e in entries] == [
        ("dpmpp_2m", "karras", 10, "K"), ("euler", "normal", 4, "euler / normal")]


@pytest.mark.parametrize("line, needle", [("dpmpp_2m, karras", "line 1"), ("nope, karras, 4", "sampler 'nope'"),
                                          ("euler, nope, 4", "scheduler 'nope'"), ("euler, karras, 0", "steps '0'")])
def test_a_bad_entry_line_is_refused_naming_the_line(line, needle):
    with pytest.raises(ScheduleError, match="entry_list line 1") as e:
        ab_ops.parse_entry_list(line, SAMPLERS, SCHEDULERS)
    assert needle in str(e.value)


def test_detail_sweep_varies_the_first_entry_and_keeps_the_others():
    entries = ab_ops.parse_entry_list("sl_tada, karras, 8, TADA\ndpmpp_2m, karras, 8, 2M", SAMPLERS, SCHEDULERS)
    cells = ab_ops.expand_sweep(entries, "detail", "0.5, 2")
    assert [c.label for c in cells] == ["TADA · detail 0.5", "TADA · detail 2", "2M"]
    assert [c.options.get("detail") for c in cells] == [0.5, 2.0, None]


def test_steps_sweep_on_fixed_sigmas_names_the_entry():
    entry = ab_ops.ABEntry(label="searched", sigmas=torch.tensor([1.0, 0.5, 0.0]))
    with pytest.raises(ScheduleError, match="entry 'searched'"):
        ab_ops.expand_sweep([entry], "steps", "4, 8")


def test_detail_sweep_needs_tada_by_name():
    with pytest.raises(ScheduleError, match="entry 'E'"):
        ab_ops.expand_sweep([ab_ops.ABEntry(label="E", sampler_name="euler")], "detail", "1")


def test_duplicate_or_empty_labels_are_refused():
    with pytest.raises(ScheduleError, match="entry 'A'"):
        ab_ops.check_labels([ab_ops.ABEntry(label="A"), ab_ops.ABEntry(label="A")])
    with pytest.raises(ScheduleError, match="empty label"):
        ab_ops.check_labels([ab_ops.ABEntry(label=" ")])


def test_no_entries_is_an_error_saying_how_to_add_them():
    with pytest.raises(ScheduleError, match="entry_list"):
        ab_ops.expand_sweep([], "none", "")


def test_grid_places_each_cell_under_its_caption():
    images = torch.stack([torch.full((200, 200, 3), v) for v in (0.0, 0.5, 1.0)])
    grid = ab_ops.draw_grid(images, [["a", "x"], ["b", "y"], ["c", "z"]], columns=0)
    cell_h = 200 + ab_ops.LABEL_HEIGHT
    assert grid.shape == (1, 2 * cell_h, 400, 3)  # 3 cells -> 2 columns x 2 rows
    top = ab_ops.LABEL_HEIGHT + 100
    assert grid[0, top, 100].tolist() == [0.0, 0.0, 0.0]
    assert grid[0, top, 300, 0].item() == pytest.approx(0.5, abs=1 / 255)
    assert grid[0, cell_h + top, 100].tolist() == [1.0, 1.0, 1.0]
    assert (grid[0, :ab_ops.LABEL_HEIGHT, :200] > 0.5).any(), "the caption is drawn"


def test_small_cells_are_enlarged_so_captions_fit():
    grid = ab_ops.draw_grid(torch.zeros(2, 64, 64, 3), [["a"], ["b"]], columns=2)
    assert grid.shape[2] == 2 * 192


# ---- ξ sweep (the constant-rate schedule's exponent) ---------------------------------------------------------------
def _constant_rate_entries(text="dpmpp_2m, sl_constant_rate, 6, CR\ndpmpp_2m, karras, 6, K"):
    return ab_ops.parse_entry_list(text, SAMPLERS, SCHEDULERS)


def test_xi_sweep_varies_the_first_constant_rate_entry_and_keeps_the_others():
    cells = ab_ops.expand_sweep(_constant_rate_entries(), "xi", "1, 1.5, 2")
    assert [c.label for c in cells] == ["CR · xi 1", "CR · xi 1.5", "CR · xi 2", "K"]
    assert [c.xi for c in cells] == [1.0, 1.5, 2.0, None]


@pytest.mark.parametrize("entry, needle", [
    (ab_ops.ABEntry(label="K", scheduler="karras"), "sl_constant_rate"),
    (ab_ops.ABEntry(label="S", scheduler="sl_constant_rate", sigmas=torch.tensor([1.0, 0.0])), "connected SIGMAS"),
])
def test_xi_sweep_needs_constant_rate_by_name_and_names_the_entry(entry, needle):
    with pytest.raises(ScheduleError, match=f"entry '{entry.label}'") as e:
        ab_ops.expand_sweep([entry], "xi", "1")
    assert needle in str(e.value)


@pytest.mark.parametrize("values", ["0.1", "5", "1, 9"])
def test_xi_outside_the_constant_rate_range_is_refused(values):
    with pytest.raises(ScheduleError, match="sweep_values: xi .* must lie in \\[0.25, 4\\]"):
        ab_ops.expand_sweep(_constant_rate_entries(), "xi", values)


@pytest.mark.parametrize("kind", [ModelKind.vp(), ModelKind.flow(shift=3.0)], ids=["sd1", "flow"])
@pytest.mark.parametrize("steps", [6, 10])
def test_a_xi_cell_at_the_default_xi_is_the_dropdown_schedule(kind, steps):
    """Oracle: KSampler's sl_constant_rate uses the per-step-count default ξ; a sweep cell at that ξ is identical."""
    xi = default_schedule_settings(steps, kind)["xi"]
    cell = ab_ops.constant_rate_cell_sigmas(kind, steps, 1.0, xi)
    assert torch.equal(cell, dropdown_sigmas(kind, steps).to(torch.float32))


def test_xi_changes_the_schedule_as_the_constant_rate_construction_says():
    """Oracle: with the data-free velocity, the cell equals calibrate.schedule at that ξ, and larger ξ is a
    different schedule of the same length, same end points (ξ moves the steps, not the range)."""
    kind = ModelKind.vp()
    velocity = data_free_velocity(default_schedule_settings(8, kind)["measure"], kind)
    a = ab_ops.constant_rate_cell_sigmas(kind, 8, 1.0, 1.0)
    b = ab_ops.constant_rate_cell_sigmas(kind, 8, 1.0, 3.0)
    assert torch.equal(a, cr_schedule(velocity, kind, 8, xi=1.0))
    assert len(a) == len(b) == 9 and float(a[0]) == pytest.approx(float(b[0])) and float(a[-1]) == float(b[-1]) == 0
    assert not torch.allclose(a, b)


def test_xi_cell_uses_the_calibration_the_model_carries_and_keeps_the_denoise_tail():
    kind = ModelKind.vp()
    measured = data_free_velocity("cos+karras", kind)
    carried = ab_ops.constant_rate_cell_sigmas(kind, 6, 1.0, 2.0, velocity=measured)
    assert torch.equal(carried, cr_schedule(measured, kind, 6, xi=2.0))
    full = ab_ops.constant_rate_cell_sigmas(kind, 12, 1.0, 2.0)
    half = ab_ops.constant_rate_cell_sigmas(kind, 6, 0.5, 2.0)
    assert torch.equal(half, full[-7:])  # KSampler's denoise rule: the last 6 steps of a 12-step schedule
