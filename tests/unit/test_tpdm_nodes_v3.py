"""The TPDM nodes' ``execute`` against the V3 stand-in (conftest.py ``v3``): Load TPM reads models/tpm and refuses
what it must, Apply TPM checks the TPM against the model's family and feature sizes and puts its state and taps on a
clone, the Adaptive Steps Sampler's options reach sl_tpdm. Sampling through the taps needs the real host
(tests/integration/test_tpdm_host.py)."""
from __future__ import annotations

import types

import pytest
import torch

from schedule_lab.schedules import ScheduleError
from schedule_lab.solvers.tpdm.official import save_tpm
from schedule_lab.solvers.tpdm.tpm import TimePredictor


class UNetModel(torch.nn.Module):
    """The parts of ComfyUI's UNetModel the taps read: conv_in, the output norm/act/conv and time_embed."""

    def __init__(self, channels=8, temb=16):
        super().__init__()
        self.input_blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Conv2d(4, channels, 3, padding=1))])
        self.out = torch.nn.Sequential(torch.nn.GroupNorm(2, channels), torch.nn.SiLU(),
                                       torch.nn.Conv2d(channels, 4, 3, padding=1))
        self.time_embed = torch.nn.Sequential(torch.nn.Linear(channels, temb))


def _tpm_file(v3, name, in_channels=16, temb=16, family="unet"):
    folder = v3.models / "tpm"
    folder.mkdir(parents=True, exist_ok=True)
    save_tpm(folder / name, TimePredictor(in_channels, temb, width=4), family=family)
    return name


def _unet_model(v3):
    model = v3.model()
    model.base["diffusion_model"] = UNetModel()
    return model


def _run(node, **inputs):
    return node.execute(**inputs).result


def test_load_tpm_lists_models_tpm_and_loads_a_file(v3):
    name = _tpm_file(v3, "small.safetensors")
    schema = v3.nodes["SL_LoadTPM"].define_schema()
    assert schema.inputs[0].options == [name]
    (tpm,) = _run(v3.nodes["SL_LoadTPM"], tpm_name=name)
    assert tpm.name == name and tpm.meta["family"] == "unet" and tpm.module.config["in_channels"] == 16


def test_load_tpm_refuses_a_pickle_and_a_missing_file_naming_tpm_name(v3):
    _tpm_file(v3, "small.safetensors")
    torch.save({"x": torch.zeros(1)}, v3.models / "tpm" / "evil.safetensors")
    with pytest.raises(ScheduleError, match="^tpm_name: .*safetensors"):
        _run(v3.nodes["SL_LoadTPM"], tpm_name="evil.safetensors")
    with pytest.raises(ScheduleError, match="^tpm_name: no file named 'gone.safetensors'"):
        _run(v3.nodes["SL_LoadTPM"], tpm_name="gone.safetensors")


def test_apply_tpm_puts_the_state_and_the_taps_on_a_clone(v3):
    (tpm,) = _run(v3.nodes["SL_LoadTPM"], tpm_name=_tpm_file(v3, "small.safetensors"))
    model = _unet_model(v3)
    (patched,) = _run(v3.nodes["SL_ApplyTPM"], model=model, tpm=tpm, freeze_as="")
    state = patched.model_options["transformer_options"]["schedule_lab"]["tpdm"]
    assert state.tpm is tpm.module and state.family == "unet"
    assert ("apply_model", "schedule_lab_tpdm") in patched.wrappers
    assert "schedule_lab" not in model.model_options["transformer_options"] and not model.wrappers  # untouched


def test_apply_tpm_refuses_a_tpm_of_another_family_or_size_naming_tpm(v3):
    model = _unet_model(v3)
    for name, kw, message in (("sd3.safetensors", {"family": "mmdit"}, "'mmdit' model family"),
                              ("wide.safetensors", {"in_channels": 64}, "built for features of 64 channels")):
        (tpm,) = _run(v3.nodes["SL_LoadTPM"], tpm_name=_tpm_file(v3, name, **kw))
        with pytest.raises(ScheduleError, match=f"^tpm: .*{message}"):
            _run(v3.nodes["SL_ApplyTPM"], model=model, tpm=tpm, freeze_as="")


def test_apply_tpm_on_a_model_family_without_taps_names_the_model(v3):
    (tpm,) = _run(v3.nodes["SL_LoadTPM"], tpm_name=_tpm_file(v3, "small.safetensors"))
    model = v3.model()
    model.base["diffusion_model"] = types.SimpleNamespace()
    with pytest.raises(ScheduleError, match="^model: TPDM feature taps exist for"):
        _run(v3.nodes["SL_ApplyTPM"], model=model, tpm=tpm, freeze_as="")


def test_adaptive_steps_sampler_options_reach_sl_tpdm_and_bad_ones_name_the_input(v3):
    (sampler,) = _run(v3.nodes["SL_AdaptiveStepsSampler"], min_sigma=0.01, max_steps=12, stochastic=True,
                      final_step="stop")
    assert sampler.extra_options == {"min_sigma": 0.01, "max_steps": 12, "stochastic": True, "final_step": "stop"}
    assert sampler.sampler_function.schedule_lab_name == "sl_tpdm"
    with pytest.raises(ScheduleError, match="^min_sigma=0.0"):
        _run(v3.nodes["SL_AdaptiveStepsSampler"], min_sigma=0.0, max_steps=12, stochastic=False, final_step="zero")
    # without Apply TPM on the model, sampling stops with the error naming the node
    guider = v3.Guider(v3.model(), lambda x, s: x * 0)
    with pytest.raises(ScheduleError, match="Apply TPM"):
        guider.sample(torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4), sampler, torch.tensor([14.6, 0.0]))


def test_load_tpm_validation_says_which_file_to_put_where(v3):
    name = _tpm_file(v3, "small.safetensors")
    node = v3.nodes["SL_LoadTPM"]
    assert node.validate_inputs(tpm_name=name) is True
    message = node.validate_inputs(tpm_name="tpm_sd3_medium.safetensors")
    assert message.startswith("tpm_name: no file named 'tpm_sd3_medium.safetensors' in models/tpm: put the time "
                              "predictor (.safetensors) at ComfyUI/models/tpm/tpm_sd3_medium.safetensors")
    assert str(v3.models / "tpm" / "tpm_sd3_medium.safetensors") in message and "schedule-lab tpdm train" in message
