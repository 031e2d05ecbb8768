"""Version drift and the host-level defects (docs/compat.md), with ComfyUI stand-ins (tests/unit/conftest.py): model
sampling classes of newer ComfyUI refused by name, noise_scale, the versioned V3 module and the io-member guard, the
sampler name a search records, Cancel through the host, LoRA identity in the calibration key."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from schedule_lab.nodes import host
from schedule_lab.schedules import ScheduleError


def _mix(M, base, pred):
    """A ``model_sampling`` object as ComfyUI builds one (the ``comfy`` fixture of tests/unit/conftest.py)."""
    return type(f"{base.__name__}_{pred.__name__}", (base, pred), {})()


def _newer_classes(M):
    """What newer ComfyUI (Comfy-Org/ComfyUI model_sampling.py, read 2026-11) adds: subclasses of CONST and a v-pred
    class outside EPS."""
    for name, base in (("IMG_TO_IMG_FLOW", M.CONST), ("IMG_TO_IMG_VELOCITY", M.CONST)):
        setattr(M, name, type(name, (base,), {}))
    M.V_PREDICTION_DDPM = type("V_PREDICTION_DDPM", (), {})
    return M


@pytest.mark.parametrize("cls", ["IMG_TO_IMG_FLOW", "IMG_TO_IMG_VELOCITY"])
def test_newer_const_subclasses_are_refused_by_name_not_taken_for_flow(comfy, cls):
    M = _newer_classes(comfy["comfy.model_sampling"])
    with pytest.raises(ScheduleError, match=cls):
        host.model_kind_from_sampling(_mix(M, M.ModelSamplingDiscreteFlow, getattr(M, cls)))


def test_v_prediction_ddpm_is_refused_by_name(comfy):
    M = _newer_classes(comfy["comfy.model_sampling"])
    with pytest.raises(ScheduleError, match="V_PREDICTION_DDPM"):
        host.model_kind_from_sampling(_mix(M, M.ModelSamplingDiscrete, M.V_PREDICTION_DDPM))


def test_an_unknown_class_of_comfy_model_sampling_is_refused_by_its_name(comfy):
    M = comfy["comfy.model_sampling"]
    M.EPS_SOMETHING_NEW = type("EPS_SOMETHING_NEW", (M.EPS,), {})
    with pytest.raises(ScheduleError, match="EPS_SOMETHING_NEW.*newer than"):
        host.model_kind_from_sampling(_mix(M, M.ModelSamplingDiscrete, M.EPS_SOMETHING_NEW))


def test_flow_noise_scale_other_than_one_is_refused_and_one_is_served(comfy):
    M = comfy["comfy.model_sampling"]
    ms = _mix(M, M.ModelSamplingDiscreteFlow, M.CONST)
    ms.noise_scale = 1.0
    assert host.model_kind_from_sampling(ms).kind == "flow"
    ms.noise_scale = 0.5
    with pytest.raises(ScheduleError, match="noise_scale=0.5"):
        host.model_kind_from_sampling(ms)


# -- the V3 API module and the io-member guard ----------------------------------------------------------------------

def _api(name, io):
    mod = types.ModuleType(name)
    mod.io, mod.ui, mod.ComfyExtension = io, types.SimpleNamespace(PreviewText=object), object
    return mod


def _full_io():
    member = type("Member", (), {"Input": object, "Output": object, "unique_id": "u", "slider": "s"})
    return types.SimpleNamespace(ComfyNode=object, Schema=object, NodeOutput=object,
                                 **{n: member for n in ("Hidden", "Int", "Float", "Combo", "Boolean", "String", "Model",
                                                        "Sigmas", "Latent", "Guider", "Sampler", "NumberDisplay")})


def test_the_versioned_v3_module_is_preferred(monkeypatch):
    versioned, latest = _api("comfy_api.v0_0_2", _full_io()), _api("comfy_api.latest", _full_io())
    monkeypatch.setitem(sys.modules, "comfy_api.v0_0_2", versioned)
    monkeypatch.setitem(sys.modules, "comfy_api.latest", latest)
    assert host.v3_api() is versioned
    monkeypatch.setitem(sys.modules, "comfy_api.v0_0_2", None)  # a host without it
    assert host.v3_api() is latest


def test_a_missing_io_member_is_warned_once_by_name(monkeypatch, caplog):
    io = _full_io()
    del io.Guider
    monkeypatch.setitem(sys.modules, "comfy_api.v0_0_2", _api("comfy_api.v0_0_2", io))
    host._warned.discard("v3-members")
    with caplog.at_level("WARNING", logger="schedule_lab"):
        host.v3_api()
        host.v3_api()
    assert [r.getMessage() for r in caplog.records if "io.Guider" in r.getMessage()].__len__() == 1


def test_the_guard_lists_every_io_and_ui_member_the_node_modules_use():
    used = set()
    for path in (Path(host.__file__).parent).glob("*_nodes.py"):
        used |= set(re.findall(r"\bio\.([A-Za-z_]+(?:\.[A-Za-z_]+)?)", path.read_text()))
    used = {u for u in used if u.split(".")[0][:1].isupper()}
    assert used <= set(host.IO_MEMBERS), used - set(host.IO_MEMBERS)


def test_a_node_whose_schema_needs_a_missing_member_is_left_out_alone(caplog):
    good = type("Good", (), {"define_schema": classmethod(lambda cls: "ok")})
    bad = type("Bad", (), {"define_schema": classmethod(lambda cls: types.SimpleNamespace().Guider)})
    host._warned.discard("node-Bad")
    with caplog.at_level("WARNING", logger="schedule_lab"):
        assert host.definable_nodes([good, bad]) == [good]
    assert any("Bad" in r.getMessage() and "Guider" in r.getMessage() for r in caplog.records)


# -- the sampler name a searched file records; Cancel through the host -----------------------------------------------

def test_sampler_name_is_the_dropdown_name_not_the_function_name(comfy, monkeypatch):
    ks = types.ModuleType("comfy.k_diffusion.sampling")

    def sample_euler(*a, **k):
        pass

    def dpm_fast_function(*a, **k):
        pass

    ks.sample_euler = sample_euler
    monkeypatch.setitem(sys.modules, "comfy.k_diffusion.sampling", ks)
    samplers = comfy["comfy.samplers"]
    samplers.KSampler = types.SimpleNamespace(SAMPLERS=["euler", "dpm_fast", "sl_tada"])
    assert host.sampler_name(types.SimpleNamespace(sampler_function=sample_euler)) == "euler"
    assert host.sampler_name(types.SimpleNamespace(sampler_function=dpm_fast_function)) == "dpm_fast"
    pack = host.comfy_sampler("sl_tada")
    assert host.sampler_name(types.SimpleNamespace(sampler_function=pack)) == "sl_tada"


def test_check_interrupted_raises_comfys_interruption(monkeypatch):
    mm = types.ModuleType("comfy.model_management")

    class InterruptProcessingException(Exception):
        pass

    def throw():
        raise InterruptProcessingException

    mm.throw_exception_if_processing_interrupted = throw
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    with pytest.raises(InterruptProcessingException):
        host.check_interrupted()


# -- the calibration cache key tells two LoRAs of equal strength apart ----------------------------------------------

def test_two_loras_at_equal_strength_have_different_fingerprints():
    class Adapter:
        def __init__(self, seed):
            gen = torch.Generator().manual_seed(seed)
            self.weights = (torch.randn(4, 2, generator=gen), torch.randn(2, 4, generator=gen))

    inner = types.SimpleNamespace(state_dict=lambda: {"w": torch.ones(4, 4)})

    def patched(seed):
        return types.SimpleNamespace(model=inner, patches={"w": [(1.0, Adapter(seed), 1.0, None, None)]})

    assert host.model_fingerprint(patched(1)) != host.model_fingerprint(patched(2))
    assert host.model_fingerprint(patched(1)) == host.model_fingerprint(patched(1))
