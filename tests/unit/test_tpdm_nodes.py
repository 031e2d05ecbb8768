"""nodes/tpdm_ops.py: the sl_tpdm entry, the Apply TPM state (report, freeze, floors, warnings) without ComfyUI."""
from __future__ import annotations

import copy

import pytest
import torch

from schedule_lab.nodes import tpdm_ops
from schedule_lab.nodes.registry import DROPDOWN_SAMPLERS
from schedule_lab.nodes.schedule_ops import load_schedule_file
from schedule_lab.schedules.catalogue import model_needs
from schedule_lab.schedules.errors import ScheduleError
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import catalogue
from schedule_lab.solvers.classic import sample_euler
from schedule_lab.solvers.tpdm.sampler import effective_min_sigma, sample_sl_tpdm
from schedule_lab.solvers.tpdm.taps import COND, UNCOND
from schedule_lab.solvers.tpdm.tpm import TimePredictor


class TappedFlow:
    """A CFG-batched flow model (rows [cond; uncond]) whose taps fill the state's stash, like Apply TPM's hooks."""

    def __init__(self, state, x0):
        self.state, self.x0, self.cfg = state, x0, 3.0

    def __call__(self, x, sigma, **extra):
        b = x.shape[0]
        s = sigma.reshape(b, 1, 1, 1).float()
        both = torch.cat([x.float(), x.float() * 0.5])
        self.state.stash.put("h1", torch.cat([x.float(), x.float()]), [COND, UNCOND])
        self.state.stash.put("h2", both * torch.cat([s, s]), [COND, UNCOND])
        self.state.stash.put("temb", torch.cat([s.flatten(1), 0.5 * s.flatten(1)]).expand(2 * b, 4), [COND, UNCOND])
        return self.x0.expand_as(x)

    # the CFG scale the host reads from the guider
    def cfg_of(self, model):
        return self.cfg


def _state(**kw):
    torch.manual_seed(0)
    tpm = TimePredictor(in_channels=4, temb_dim=4, width=8, init_bias=(1.0, 1.0))
    return tpdm_ops.TPDMState(tpm=tpm, family="test", tpm_name="t.safetensors", **kw)


def test_sl_tpdm_is_in_the_sampler_table_and_needs_apply_tpm():
    assert "sl_tpdm" in DROPDOWN_SAMPLERS and catalogue.SAMPLERS["sl_tpdm"].fn is sample_sl_tpdm
    assert model_needs(catalogue.SAMPLERS["sl_tpdm"].needs) == ("tpdm",)
    assert catalogue.SAMPLERS["sl_tpdm"].adaptive and catalogue.SAMPLERS["sl_tpdm"].calls is None
    with pytest.raises(ScheduleError, match="Apply TPM"):
        sample_sl_tpdm(None, torch.zeros(1, 2, 2, 2), torch.tensor([1.0, 0.0]))


def test_state_survives_model_clones_by_identity():
    state = _state()
    assert copy.deepcopy({"tpdm": state})["tpdm"] is state


def test_freeze_writes_a_schedule_that_load_schedule_and_euler_reproduce_bitwise(tmp_path):
    reports = []
    state = _state(report=reports.append, freeze_name="frozen", schedule_dir=lambda: str(tmp_path))
    kind = ModelKind.flow(shift=3.0)
    x0 = torch.randn(1, 2, 4, 4)
    model = TappedFlow(state, x0)
    state.cfg_of = model.cfg_of
    noise = torch.randn(1, 2, 4, 4)
    out = sample_sl_tpdm(model, noise.clone(), torch.tensor([1.0, 0.5, 0.0]), kind=kind, tpdm=state,
                                  max_steps=30)
    (path,) = state.last_paths
    assert path.endswith("frozen.json") and "frozen to frozen.json" in reports[-1]
    sigmas = load_schedule_file(path, kind)
    assert torch.equal(sigmas, state.last[0]) and float(sigmas[-1]) == 0.0 and len(sigmas) > 2
    replay = sample_euler(model, noise.clone(), sigmas)
    assert torch.equal(out, replay)


def test_batch_freeze_writes_one_file_per_image_and_reports_each(tmp_path):
    reports = []
    state = _state(report=reports.append, freeze_name="b", schedule_dir=lambda: str(tmp_path))
    model = TappedFlow(state, torch.zeros(2, 2, 4, 4))
    state.cfg_of = model.cfg_of
    sample_sl_tpdm(model, torch.randn(2, 2, 4, 4), torch.tensor([1.0, 0.0]), kind=ModelKind.flow(),
                            tpdm=state, max_steps=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b_0.json", "b_1.json"]
    assert reports[-1].count("steps:") == 2


def test_min_sigma_is_floored_at_the_smallest_level_of_discrete_models_only():
    kind = ModelKind.vp()
    assert effective_min_sigma(0.001, kind) == pytest.approx(kind.sigma_min)
    assert effective_min_sigma(0.5, kind) == 0.5
    assert effective_min_sigma(0.001, None) == 0.001
    sd3 = ModelKind.flow(shift=3.0)  # σ_min 0.003 is the end of ComfyUI's table, not of the flow's time
    assert sd3.sigma_min > 0.0029 and effective_min_sigma(0.001, sd3) == 0.001


def test_stop_on_sd3_ends_below_the_official_0p001_not_the_table_end(tmp_path):
    reports = []
    state = _state(report=reports.append)
    model = TappedFlow(state, torch.zeros(1, 2, 4, 4))
    state.cfg_of = model.cfg_of
    sample_sl_tpdm(model, torch.randn(1, 2, 4, 4), torch.tensor([1.0, 0.0]), kind=ModelKind.flow(shift=3.0),
                   tpdm=state, max_steps=200, final_step="stop")
    (schedule,) = state.last
    assert float(schedule[-1]) < 1e-3 <= float(schedule[-2])  # the table end 0.003 would have stopped above 0.001
    assert "raised" not in reports[-1]


def test_start_below_the_trained_level_warns():
    kind = ModelKind.flow()
    assert "below the level" in tpdm_ops.start_warning(0.6, 1.0, kind)
    assert "above the level" in tpdm_ops.start_warning(14.6, 5.0, ModelKind.vp())
    assert tpdm_ops.start_warning(1.0, 1.0, kind) == "" and tpdm_ops.start_warning(0.6, None, kind) == ""


def test_official_tpm_on_comfyui_t5_padding_is_warned():
    (note,) = tpdm_ops.regime_notes(7.0, (64, 64), 7.0, (64, 64), 154, tpdm_ops.OFFICIAL_CONTEXT_TOKENS)
    assert "154 tokens" in note and "256" in note and "333" in note
    assert tpdm_ops.regime_notes(7.0, (64, 64), 7.0, (64, 64), 333, 333) == []
    assert tpdm_ops.regime_notes(7.0, (64, 64), 7.0, (64, 64), 154, None) == []  # a pack-trained TPM: no claim


def test_regime_notes_for_cfg_and_grid_outside_training():
    notes = tpdm_ops.regime_notes(4.0, (48, 64), 7.0, (64, 64))
    assert len(notes) == 2 and "CFG 4" in notes[0] and "48x64" in notes[1]
    assert tpdm_ops.regime_notes(7.0, (64, 64), 7.0, (64, 64)) == []


def test_tpm_of_another_family_or_size_is_refused_naming_tpm():
    tpm = TimePredictor(in_channels=640, temb_dim=1280, width=8)
    tpdm_ops.check_tpm_fits(tpm, "unet", "unet", (320, 320, 1280))
    with pytest.raises(ScheduleError, match="^tpm: .*'unet' model family.*'mmdit'"):
        tpdm_ops.check_tpm_fits(tpm, "unet", "mmdit", (320, 320, 1280))
    with pytest.raises(ScheduleError, match="^tpm: built for .*640.*1280.*4 \\+ 4"):
        tpdm_ops.check_tpm_fits(tpm, "", "unet", (4, 4, 1280))


@pytest.mark.parametrize("kw, name", [({"min_sigma": 0.0}, "min_sigma"), ({"max_steps": 0}, "max_steps")])
def test_adaptive_options_name_the_bad_input(kw, name):
    opts = {"min_sigma": 0.001, "max_steps": 35, "stochastic": False, "final_step": "zero", **kw}
    with pytest.raises(ScheduleError, match=name):
        tpdm_ops.adaptive_options(**opts)


def test_official_stop_runs_freeze_as_split_schedules_and_a_split_input_is_reported(tmp_path):
    reports = []
    state = _state(report=reports.append, freeze_name="s", schedule_dir=lambda: str(tmp_path))
    model = TappedFlow(state, torch.zeros(1, 2, 4, 4))
    state.cfg_of = model.cfg_of
    sample_sl_tpdm(model, torch.randn(1, 2, 4, 4), torch.tensor([1.0, 0.3]), kind=ModelKind.flow(), tpdm=state,
                   max_steps=20, final_step="stop")
    from schedule_lab.schedules.files import load_schedule

    doc = load_schedule(tmp_path / "s.json")
    assert doc["split"] is True and doc["sigmas"][-1] > 0 and doc["provenance"]["params"]["final_step"] == "stop"
    assert "ignores it" in reports[-1]
