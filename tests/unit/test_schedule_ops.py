"""The schedule nodes' behaviour (nodes/schedule_ops.py) and the registry, without ComfyUI."""
from __future__ import annotations

import json

import pytest
import torch

from schedule_lab.nodes import schedule_ops
from schedule_lab.nodes.registry import DROPDOWN_SAMPLERS, DROPDOWN_SCHEDULERS
from schedule_lab.schedules import ModelKind, ScheduleError, ays, convert_sigmas
from schedule_lab.schedules.catalogue import SCHEDULES, schedule_sigmas
from schedule_lab.solvers.catalogue import SAMPLERS

EPS, FLOW = ModelKind.vp("eps"), ModelKind.flow(shift=3.0)


def test_every_registered_name_is_prefixed_and_described():
    for name, entry in [(n, SCHEDULES[n]) for n in DROPDOWN_SCHEDULERS] + [(n, SAMPLERS[n]) for n in DROPDOWN_SAMPLERS]:
        assert name.startswith("sl_") and entry.description.strip() and callable(entry.fn)


@pytest.mark.parametrize("name", [n for n in DROPDOWN_SCHEDULERS if SCHEDULES[n].self_contained])
@pytest.mark.parametrize("kind", [ModelKind.vp("eps"), ModelKind.vp("v"), ModelKind.edm(), FLOW],
                         ids=["eps", "v", "edm", "flow"])
@pytest.mark.parametrize("steps", [1, 4, 10, 37])
def test_every_scheduler_gives_a_valid_schedule_for_every_kind(name, kind, steps):
    sig = schedule_sigmas(name, kind, steps)
    assert sig.dtype == torch.float32 and sig.shape == (steps + 1,) and sig[-1] == 0
    assert bool((sig[:-1] > sig[1:]).all())
    assert kind.sigma_min * 0.999 <= float(sig[-2]) and float(sig[0]) <= kind.sigma_max * 1.001


def test_ays_on_an_sd_model_spans_the_published_levels_down_to_sigma_min():
    """The dropdown's fit (docs/defaults.md §10): 11 steps are the 11 published levels then 0; other step counts
    resample them log-linearly to N positive levels, so the last is SD1's σ_min (ComfyUI's AYS node ends higher)."""
    from schedule_lab.schedules.baseline import ays_noise_levels
    from schedule_lab.schedules.resample import loglinear_interp

    published = ays_noise_levels("sd1")
    assert torch.allclose(schedule_sigmas("sl_ays_sd1", EPS, 11).double()[:-1], published, rtol=1e-6)
    ten = schedule_sigmas("sl_ays_sd1", EPS, 10).double()
    assert torch.allclose(ten[:-1], loglinear_interp(published, 10), rtol=1e-6) and ten[-1] == 0
    assert float(ten[-2]) == pytest.approx(EPS.sigma_min, rel=1e-6)
    assert float(ays(10, "sd1")[-2]) > 5 * EPS.sigma_min  # ComfyUI's semantics, still the "comfy" fit:
    assert torch.equal(schedule_sigmas("sl_ays_sd1", EPS, 10, fit="comfy"), ays(10, "sd1"))


def test_ays_fit_stretched_spans_an_edm_models_range_and_the_dropdown_keeps_comfys_fit_there():
    edm = ModelKind.edm(sigma_min=0.002, sigma_max=80.0)
    sig = schedule_sigmas("sl_ays_sdxl", edm, 8, fit="stretched")
    assert float(sig[0]) == pytest.approx(80.0, rel=1e-6) and float(sig[-2]) == pytest.approx(0.002, rel=1e-5)
    # docs/defaults.md §10a: the held-out guard vetoed the stretch on EDM; the dropdown is ComfyUI's AYS there
    assert torch.equal(schedule_sigmas("sl_ays_sdxl", edm, 8), schedule_sigmas("sl_ays_sdxl", edm, 8, fit="comfy"))
    with pytest.raises(ScheduleError, match="fit"):
        schedule_sigmas("sl_ays_sd1", edm, 8, fit="ends")


def test_ays_on_a_flow_model_keeps_the_timesteps():
    fl = schedule_sigmas("sl_ays_sd1", FLOW, 10).double()
    # the published SD1 timesteps 999, 850, ..., 24 as the flow model's times (t + 1) / 1000, then SD3's shift 3
    t = torch.tensor([999, 850, 736, 645, 545, 455, 343, 233, 124, 24], dtype=torch.float64) + 1
    assert torch.allclose(fl[:-1], 3 * (t / 1000) / (1 + 2 * (t / 1000)), rtol=1e-5)


def test_pack_schedule_applies_ksampler_denoise_semantics():
    full = schedule_ops.pack_schedule(EPS, "sl_ays_sd1", 20, 1.0)
    half = schedule_ops.pack_schedule(EPS, "sl_ays_sd1", 10, 0.5)
    assert torch.equal(half, full[-11:])
    assert schedule_ops.pack_schedule(EPS, "sl_ays_sd1", 10, 0.0).numel() == 0


@pytest.mark.parametrize("kwargs,match", [({"scheduler": "karras"}, "scheduler"), ({"steps": 0}, "steps"),
                                          ({"denoise": 1.5}, "denoise")])
def test_pack_schedule_bad_input_names_the_input(kwargs, match):
    args = {"scheduler": "sl_ays_sd1", "steps": 10, "denoise": 1.0, **kwargs}
    with pytest.raises(ScheduleError, match=match):
        schedule_ops.pack_schedule(EPS, **args)


def test_save_then_load_is_exact_for_the_same_model(tmp_path):
    sig = schedule_ops.pack_schedule(EPS, "sl_ays_sdxl", 12, 1.0)
    path = schedule_ops.save_schedule_file(sig, EPS, "mine", str(tmp_path), method="test", params={"a": 1})
    assert path.endswith("mine.json")
    assert json.loads(open(path).read())["provenance"]["params"] == {"a": 1}
    assert torch.equal(schedule_ops.load_schedule_file(path, EPS), sig)


def test_load_resamples_and_truncates(tmp_path):
    sig = schedule_sigmas("sl_ays_sd1", EPS, 10)
    path = schedule_ops.save_schedule_file(sig, EPS, "ten", str(tmp_path))
    twenty = schedule_ops.load_schedule_file(path, EPS, steps=20)
    assert len(twenty) == 21 and float(twenty[0]) == pytest.approx(float(sig[0]))
    assert float(twenty[-2]) == pytest.approx(float(sig[-2]), rel=1e-5)
    assert torch.equal(schedule_ops.load_schedule_file(path, EPS, steps=10, denoise=0.5),
                       schedule_ops.load_schedule_file(path, EPS, steps=20)[-11:])
    kept = schedule_ops.load_schedule_file(path, EPS, steps=0, denoise=0.5)
    assert len(kept) == 11


def test_load_carries_a_schedule_to_a_flow_model(tmp_path):
    sig = schedule_ops.pack_schedule(EPS, "sl_ays_sd1", 8, 1.0)
    path = schedule_ops.save_schedule_file(sig, EPS, "vp", str(tmp_path))
    # a saved file is carried at equal signal-to-noise ratio
    assert torch.allclose(schedule_ops.load_schedule_file(path, FLOW), convert_sigmas(sig, EPS, FLOW).float(),
                          rtol=1e-5)


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    sig = schedule_ops.pack_schedule(EPS, "sl_ays_sd1", 4, 1.0)
    schedule_ops.save_schedule_file(sig, EPS, "x", str(tmp_path))
    with pytest.raises(ScheduleError, match="filename"):
        schedule_ops.save_schedule_file(sig, EPS, "x", str(tmp_path))
    schedule_ops.save_schedule_file(sig, EPS, "x", str(tmp_path), overwrite=True)


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "..", "", "/abs"])
def test_save_refuses_unsafe_names_and_writes_nothing(tmp_path, bad):
    sig = schedule_ops.pack_schedule(EPS, "sl_ays_sd1", 4, 1.0)
    with pytest.raises(ScheduleError, match="^filename: "):
        schedule_ops.save_schedule_file(sig, EPS, bad, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_nan_sigmas_and_writes_nothing(tmp_path):
    with pytest.raises(ScheduleError, match="sigmas"):
        schedule_ops.save_schedule_file(torch.tensor([2.0, float("nan"), 0.0]), EPS, "n", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_info_reports_steps_range_and_log_snr_steps():
    text = schedule_ops.schedule_info(torch.tensor([4.0, 2.0, 1.0, 0.0]), EPS)
    assert text.startswith("steps: 3")
    assert "log-SNR steps: 0.693, 0.693" in text
    assert "largest/smallest log-SNR step: 1.00" in text


def test_info_on_a_split_schedule_says_so():
    assert "split" in schedule_ops.schedule_info(torch.tensor([4.0, 2.0, 1.0]))


def test_a_flow_schedule_from_pure_noise_on_an_sd_model_is_refused_unless_clamped(tmp_path):
    flow = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0])
    path = schedule_ops.save_schedule_file(flow, FLOW, "flow", str(tmp_path))
    with pytest.raises(ScheduleError, match="clamp_to_model"):
        schedule_ops.load_schedule_file(path, EPS)
    sig = schedule_ops.load_schedule_file(path, EPS, clamp_to_model=True)
    assert float(sig[0]) == pytest.approx(EPS.sigma_max, rel=1e-6)
    assert torch.allclose(sig[1:-1].double(), torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64), rtol=1e-5)


def test_detail_level_reports_no_effect_with_another_sampler(v3):
    from schedule_lab.nodes.tada_nodes import detail_report  # imported against the V3 stand-in

    assert "had no effect" in detail_report(2.0, "euler", {}) and "'euler'" in detail_report(2.0, "euler", {})
    assert "wins" in detail_report(2.0, "sl_tada", {"detail": 0.5})
    assert detail_report(2.0, "sl_tada", {"n_aug": 2}) == "Detail Level 2 used by sl_tada."
