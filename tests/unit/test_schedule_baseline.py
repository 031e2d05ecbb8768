"""Baseline schedules: karras, exponential, simple, Align Your Steps, against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from schedule_lab.schedules import ModelKind, ScheduleError, ays, exponential, karras, simple

SD1 = ModelKind.vp("eps")

# Paper, Table 3 (Sabour et al. 2024, arXiv 2404.14507): published 10-step noise levels, 3 decimals.
AYS_PAPER = {
    "sd1": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "sdxl": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
    "svd": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}
# The 10-digit SD1 levels in ComfyUI 0.3.64's comfy_extras/nodes_align_your_steps.py (NOISE_LEVELS["SD1"]).
AYS_COMFY_SD1 = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
                 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582]


def _is_schedule(s, n):
    return s.shape == (n + 1,) and s[-1] == 0 and bool((s[1:] < s[:-1]).all())


def test_karras_by_hand():
    # rho = 7 between 1 and 2**7: sigma**(1/7) runs 2, 1.5, 1.
    assert karras(3, 1.0, 128.0, dtype=torch.float64).tolist() == pytest.approx([128.0, 1.5**7, 1.0, 0.0])
    assert karras(3, 1.0, 3.0, rho=1.0, dtype=torch.float64).tolist() == pytest.approx([3.0, 2.0, 1.0, 0.0])


def test_exponential_by_hand():
    assert exponential(3, 1.0, 100.0, dtype=torch.float64).tolist() == pytest.approx([100.0, 10.0, 1.0, 0.0])


def test_one_step_schedules_are_sigma_max_then_zero():
    assert karras(1, 0.1, 10.0).tolist() == pytest.approx([10.0, 0.0])
    assert exponential(1, 0.1, 10.0).tolist() == pytest.approx([10.0, 0.0])


@pytest.mark.parametrize("n", [1, 2, 10, 37])
def test_baselines_are_descending_float32_of_length_n_plus_1(n):
    for s in (karras(n, 0.0292, 14.6146), exponential(n, 0.0292, 14.6146), simple(SD1, n), ays(n)):
        assert s.dtype == torch.float32 and _is_schedule(s, n)


def test_karras_and_exponential_refuse_bad_ranges():
    for fn in (karras, exponential):
        with pytest.raises(ScheduleError, match="sigma_min"):
            fn(10, 0.0, 14.6)
        with pytest.raises(ScheduleError, match="sigma_min"):
            fn(10, 5.0, 1.0)


def test_simple_takes_evenly_spaced_table_entries_from_the_top():
    table = SD1.sigmas_table
    expected = [table[i].item() for i in (999, 749, 499, 249)] + [0.0]
    assert simple(SD1, 4, dtype=torch.float64).tolist() == expected


def test_simple_on_edm_is_uniform_in_log_sigma():
    edm = ModelKind.edm(0.002, 80.0)
    s = simple(edm, 4, dtype=torch.float64)[:-1]
    step = math.log(80.0 / 0.002) / 999
    for got, i in zip(s.tolist(), (999, 749, 499, 249), strict=True):
        assert got == pytest.approx(0.002 * math.exp(step * i), rel=1e-12)


def test_simple_on_flow_is_uniform_in_unshifted_time():
    flow = ModelKind.flow(shift=3.0)
    s = simple(flow, 4, dtype=torch.float64)[:-1]
    for got, t in zip(s.tolist(), (1.0, 0.75, 0.5, 0.25), strict=True):
        assert got == pytest.approx(3 * t / (1 + 2 * t), rel=1e-12)


def test_simple_refuses_more_steps_than_table_entries():
    with pytest.raises(ScheduleError, match="at most 1000"):
        simple(SD1, 1001)


@pytest.mark.parametrize("table", ["sd1", "sdxl", "svd"])
def test_ays_10_steps_is_the_published_table_with_a_final_zero(table):
    # SD1/SDXL levels are the SD table at the published timesteps; the paper's 3-decimal sigmas differ from
    # them by at most 1.4% (SDXL 0.113 vs 0.1114), SVD's are the published sigmas themselves.
    s = ays(10, table, dtype=torch.float64)
    assert s[:-1].tolist() == pytest.approx(AYS_PAPER[table][:-1], rel=0.015)
    assert s[-1] == 0
    if table == "svd":
        assert s[:-1].tolist() == AYS_PAPER["svd"][:-1]


def test_ays_sd1_matches_comfyui_digits():
    assert ays(10, "sd1", dtype=torch.float64)[:-1].tolist() == pytest.approx(AYS_COMFY_SD1[:-1], rel=1e-9)


def test_ays_5_steps_takes_every_other_level():
    # 11 levels log-linearly resampled to 6 points land on levels 0, 2, 4, 6, 8, 10; the last becomes 0.
    assert ays(5, "svd", dtype=torch.float64).tolist() == pytest.approx(
        [700.0, 15.886, 4.248, 0.981, 0.173, 0.0], rel=1e-12)


def test_ays_20_steps_puts_geometric_means_between_levels():
    s = ays(20, "svd", dtype=torch.float64)
    assert s[1].item() == pytest.approx(math.sqrt(700.0 * 54.5), rel=1e-12)
    assert s[2].item() == pytest.approx(54.5, rel=1e-12)


def test_ays_names_are_case_insensitive_and_unknown_ones_refused():
    assert torch.equal(ays(10, "SDXL"), ays(10, "sdxl"))
    with pytest.raises(ScheduleError, match="sd1, sdxl, svd"):
        ays(10, "flux")
