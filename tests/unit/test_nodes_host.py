"""Host adapter against the stand-in of the few ``comfy`` symbols it uses (the ``comfy`` fixture, conftest.py).

Behaviour on the real host is checked in tests/integration; here: idempotence, in-place appends,
drift handling and the model_sampling → ModelKind mapping, fast and without ComfyUI.
"""
from __future__ import annotations

import math
import sys
import types

import pytest
import torch

from schedule_lab.nodes import host
from schedule_lab.nodes.host import registration
from schedule_lab.nodes.registry import DROPDOWN_SCHEDULERS
from schedule_lab.schedules import ModelKind, ScheduleError
from schedule_lab.solvers import catalogue


def _probe(monkeypatch, name, fn, **fields):
    """A sampler entry put into the catalogue's table for one test (the one place a sampler is declared)."""
    monkeypatch.setitem(catalogue.SAMPLERS, name, catalogue.Sampler(fn, "probe", **fields))
    return [name]


def _mix(ms_mod, base, pred):
    return type(f"{base.__name__}_{pred.__name__}", (base, pred), {})()


def test_schedulers_are_appended_in_place_after_the_stock_names(comfy):
    S = comfy["comfy.samplers"]
    names = S.SCHEDULER_NAMES
    added = host.register_schedulers()
    assert S.SCHEDULER_NAMES is names
    assert names == ["simple", "karras"] + list(DROPDOWN_SCHEDULERS)
    assert added == list(DROPDOWN_SCHEDULERS)


def test_registering_twice_changes_nothing(comfy, monkeypatch):
    probe = _probe(monkeypatch, "sl_probe", lambda *a, **k: None)
    host.register_schedulers()
    host.register_samplers(probe)
    S = comfy["comfy.samplers"]
    before = (list(S.SCHEDULER_NAMES), list(S.SAMPLER_NAMES), list(S.KSAMPLER_NAMES), dict(S.SCHEDULER_HANDLERS))
    assert host.register_schedulers() == []
    assert host.register_samplers(probe) == []
    assert (S.SCHEDULER_NAMES, S.SAMPLER_NAMES, S.KSAMPLER_NAMES, S.SCHEDULER_HANDLERS) == before


def test_samplers_resolve_by_comfy_naming_rule(comfy, monkeypatch):
    """ComfyUI runs sampler NAME as ``comfy.k_diffusion.sampling.sample_NAME``: that function runs the entry's."""
    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None, kind=None):
        return x * 2 + len(sigmas)

    host.register_samplers(_probe(monkeypatch, "sl_probe", fn))
    S, K = comfy["comfy.samplers"], comfy["comfy.k_diffusion.sampling"]
    assert torch.equal(K.sample_sl_probe(None, torch.ones(2), torch.tensor([1.0, 0.0])), torch.full((2,), 4.0))
    assert S.SAMPLER_NAMES[-1] == "sl_probe" and S.KSAMPLER_NAMES[-1] == "sl_probe"


def test_registered_handler_returns_float32_sigmas_for_the_model(comfy):
    host.register_schedulers()
    S, M = comfy["comfy.samplers"], comfy["comfy.model_sampling"]
    handler = S.SCHEDULER_HANDLERS["sl_ays_sd1"]
    assert handler.use_ms
    sig = handler.handler(_mix(M, M.ModelSamplingDiscrete, M.EPS), 10)
    assert sig.dtype == torch.float32 and len(sig) == 11 and sig[-1] == 0
    assert float(sig[0]) == pytest.approx(14.6146, rel=1e-4)


def test_the_searched_dropdown_is_given_the_saved_schedule_files_by_the_host(comfy, monkeypatch, tmp_path):
    from schedule_lab.schedules.files import save_schedule
    from schedule_lab.schedules.search.results import make_search_doc

    M = comfy["comfy.model_sampling"]
    sd = ModelKind.vp()
    save_schedule(tmp_path / "s.json", make_search_doc(torch.tensor([9.0, 2.0, 0.2, 0.0], dtype=torch.float64), sd,
                                                       nfe=3, sampler="euler", fitness="endpoint", best_fitness=0.1,
                                                       holdout_fitness=0.1, history=[], pack_version="test"))
    fp = types.ModuleType("folder_paths")  # ComfyUI's folder registry, listing tmp_path as models/schedules
    fp.models_dir, fp.folder_names_and_paths = str(tmp_path), {}
    fp.get_filename_list = lambda folder: sorted(p.name for p in tmp_path.glob("*.json"))
    fp.get_full_path = lambda folder, name: str(tmp_path / name) if (tmp_path / name).is_file() else None
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    host.register_schedulers()
    handler = comfy["comfy.samplers"].SCHEDULER_HANDLERS["sl_searched"].handler
    assert handler(_mix(M, M.ModelSamplingDiscrete, M.EPS), 3).tolist() == pytest.approx([9.0, 2.0, 0.2, 0.0])
    with pytest.raises(ScheduleError, match="Timestep Search node with nfe=4"):
        handler(_mix(M, M.ModelSamplingDiscrete, M.EPS), 4)


def test_missing_scheduler_handler_warns_once_and_raises_nothing(comfy, caplog):
    del comfy["comfy.samplers"].SchedulerHandler
    with caplog.at_level("WARNING", logger="schedule_lab"):
        assert host.register_schedulers() == []
        assert host.register_schedulers() == []
    assert len([r for r in caplog.records if "SchedulerHandler" in r.getMessage()]) == 1


def test_register_all_never_raises(comfy, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("host changed")

    monkeypatch.setattr(registration, "register_schedulers", boom)
    assert host.register_all() == {"schedulers": [], "samplers": []}


def test_without_comfy_registration_is_a_logged_no_op(monkeypatch):
    monkeypatch.setitem(sys.modules, "comfy.samplers", None)  # import raises ImportError
    host._warned.clear()
    assert host.register_schedulers() == []


@pytest.mark.parametrize("pred,kind", [("EPS", "eps"), ("V_PREDICTION", "v")])
def test_discrete_models_map_to_vp_kinds_with_their_table(comfy, pred, kind):
    M = comfy["comfy.model_sampling"]
    k = host.model_kind_from_sampling(_mix(M, M.ModelSamplingDiscrete, getattr(M, pred)))
    assert k.kind == kind
    assert k.sigma_max == pytest.approx(ModelKind.vp(kind).sigma_max, rel=1e-6)
    assert k.to_timestep(torch.tensor(k.sigma_max)).item() == pytest.approx(999, abs=1e-3)


def test_sd3_flow_maps_to_a_kind_with_comfys_shifted_sigma(comfy):
    """ComfyUI's ModelSamplingDiscreteFlow: sigma(t) = shift·t / (1 + (shift − 1)·t), timestep = 1000·sigma."""
    M = comfy["comfy.model_sampling"]
    k = host.model_kind_from_sampling(_mix(M, M.ModelSamplingDiscreteFlow, M.CONST))
    t = torch.tensor([0.001, 0.3, 0.7, 1.0], dtype=torch.float64)
    torch.testing.assert_close(k.from_flow_time(t), 3.0 * t / (1 + 2.0 * t))
    torch.testing.assert_close(k.to_timestep(torch.tensor(0.5, dtype=torch.float64)),
                               torch.tensor(500.0, dtype=torch.float64))


def test_flux_exponential_shift_becomes_the_equivalent_sd3_shift(comfy):
    M = comfy["comfy.model_sampling"]
    k = host.model_kind_from_sampling(_mix(M, M.ModelSamplingFlux, M.CONST))
    assert k.shift == pytest.approx(math.exp(1.15))
    # Flux's time shift e^mu / (e^mu + 1/t - 1) equals the SD3 shift with shift = e^mu:
    t = 0.3
    assert k.from_flow_time(torch.tensor(t)).item() == pytest.approx(math.exp(1.15) / (math.exp(1.15) + 1 / t - 1))


def test_continuous_edm_maps_to_a_kind_with_comfys_edm_timestep(comfy):
    """ComfyUI's ModelSamplingContinuousEDM: timestep(sigma) = 0.25·log sigma (not a table index as for SD)."""
    M = comfy["comfy.model_sampling"]
    k = host.model_kind_from_sampling(_mix(M, M.ModelSamplingContinuousEDM, M.EDM))
    sigma = torch.tensor([0.002, 1.0, 120.0], dtype=torch.float64)
    torch.testing.assert_close(k.to_timestep(sigma), 0.25 * torch.log(sigma))
    torch.testing.assert_close(k.to_lambda(sigma), -torch.log(sigma))


def test_unsupported_sampling_is_refused_by_name(comfy):
    M = comfy["comfy.model_sampling"]
    with pytest.raises(ScheduleError, match="StableCascadeSampling"):
        host.model_kind_from_sampling(_mix(M, M.StableCascadeSampling, M.EPS))


def _sampler_model(ms):
    """What ComfyUI passes to a sampler: KSamplerX0Inpaint -> CFGGuider -> BaseModel(model_sampling)."""
    base = types.SimpleNamespace(model_sampling=ms)
    return types.SimpleNamespace(inner_model=types.SimpleNamespace(inner_model=base))


def test_pack_sampler_gets_the_model_kind_and_model_settings_with_explicit_options_winning(comfy, monkeypatch):
    seen = []

    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None, detail=1.0, other=0, kind=None):
        seen.append((kind.kind, detail, other))
        return x

    _probe(monkeypatch, "sl_probe2", fn, defaults={"other": 7}, needs=("kind", "detail"))
    sample = host.comfy_sampler("sl_probe2")
    M = comfy["comfy.model_sampling"]
    model = _sampler_model(_mix(M, M.ModelSamplingDiscreteFlow, M.CONST))
    stored = {"model_options": {"transformer_options": {host.SETTINGS_KEY: {"detail": 3.0, "other": 99}}}}
    x = torch.zeros(1)
    sample(model, x, torch.tensor([1.0, 0.0]), extra_args=stored)
    sample(model, x, torch.tensor([1.0, 0.0]), extra_args=stored, detail=0.5)
    sample(model, x, torch.tensor([1.0, 0.0]), extra_args=None)
    # "other" is not a model setting of this entry, so the stored 99 is ignored.
    assert seen == [("flow", 3.0, 7), ("flow", 0.5, 7), ("flow", 1.0, 7)]
