"""A/B Compare's plain functions: entry lists, sweeps, labels and the grid layout."""
from __future__ import annotations

import pytest
import torch

from schedule_lab.nodes import ab_ops
from schedule_lab.schedules.errors import ScheduleError

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
