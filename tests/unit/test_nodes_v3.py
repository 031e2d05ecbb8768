"""Every pack node's ``define_schema`` and ``execute`` against the V3 stand-in (the ``v3`` fixture, conftest.py),
with real tensors and oracles from the core: what a node outputs is what the core function gives for the model's
kind, files round-trip exactly, and the MODEL outputs carry what the dropdown entries read."""
from __future__ import annotations

import inspect
import json

import pytest
import torch

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.nodes import constant_rate_ops, search_ops
from schedule_lab.schedules import ModelKind, ScheduleError
from schedule_lab.schedules.constant_rate import calibrate as calibrate_module
from schedule_lab.schedules.constant_rate.construct import (
    constant_rate_sigmas,
    data_free_velocity,
    default_schedule_settings,
    default_velocity,
)
from schedule_lab.schedules.for_model import ays_for_model
from schedule_lab.schedules.search.presets import PRESETS, preset_sigmas
from schedule_lab.solvers.classic import sample_euler
from schedule_lab.solvers.tada import sample_tada

#: Permanent workflow identity: saved workflows refer to nodes by these ids.
NODE_IDS = {"SL_Scheduler", "SL_SaveSchedule", "SL_LoadSchedule", "SL_ScheduleInfo", "SL_TADASampler",
            "SL_DetailLevel", "SL_TimestepSearch", "SL_SearchedSteps", "SL_ConstantRateScheduler", "SL_LoadTPM",
            "SL_ApplyTPM", "SL_AdaptiveStepsSampler", "SL_ABEntry", "SL_ABCompare", "SL_FewStepPreset"}
#: The stand-in models and the kinds the core would be given for them, built without the host.
MODELS = {"eps": (("ModelSamplingDiscrete", "EPS"), ModelKind.vp("eps")),
          "flow": (("ModelSamplingDiscreteFlow", "CONST"), ModelKind.flow(shift=3.0)),
          "edm": (("ModelSamplingContinuousEDM", "EDM"), ModelKind.edm(sigma_min=0.002, sigma_max=120.0))}
LATENT = (1, 4, 4, 4)
BED = GaussianTestbed(64, mean=0.1, std=0.5)


def _run(node, **inputs):
    out = node.execute(**inputs)
    assert type(out).__name__ == "NodeOutput"
    return out


def _hidden(v3, monkeypatch, node, unique_id="7"):
    """What ComfyUI fills in before ``execute``: the node's id in the graph (``io.Hidden.unique_id``)."""
    holder = type("HiddenHolder", (), {"unique_id": unique_id})()
    monkeypatch.setattr(node, "hidden", holder)


# ------------------------------------------------------------------------------------------------------------------
# schemas
# ------------------------------------------------------------------------------------------------------------------
def test_entry_hands_comfy_every_node_once_with_its_permanent_id(v3):
    assert set(v3.nodes) == NODE_IDS and len(v3.node_list) == len(NODE_IDS)
    io = v3.entry.host.v3_api().io
    declared = {obj for mod in v3.entry.NODE_MODULES for obj in vars(__import__(
        f"schedule_lab.nodes.{mod}", fromlist=["_"])).values()
        if isinstance(obj, type) and issubclass(obj, io.ComfyNode) and obj is not io.ComfyNode}
    assert declared == set(v3.node_list)  # no node class defined without @node


def test_the_stand_in_provides_every_v3_symbol_the_pack_lists(v3):
    """The stand-in (conftest.py) is checked against COMPAT, which test_architecture checks against the code."""
    import sys

    from schedule_lab.nodes.host.access import COMPAT

    listed = [k for k in COMPAT if k.startswith("comfy_api.latest.")]
    assert listed
    for key in listed:
        obj = sys.modules["comfy_api.latest"]
        for part in key.removeprefix("comfy_api.latest.").split("."):
            obj = getattr(obj, part)


@pytest.mark.parametrize("node_id", sorted(NODE_IDS))
def test_schema_every_input_has_a_tooltip_and_matches_execute(v3, node_id):
    """ComfyUI calls ``execute(**inputs)`` by input id: the ids are execute's parameters, optional ones defaulted."""
    schema = v3.nodes[node_id].define_schema()
    assert schema.node_id == node_id and schema.display_name and schema.description and schema.category
    for socket in schema.inputs + schema.outputs:
        assert isinstance(socket.tooltip, str) and len(socket.tooltip) > 10, (node_id, socket.id)
    params = inspect.signature(v3.nodes[node_id].execute).parameters
    assert list(params) == [i.id for i in schema.inputs]
    for i in schema.inputs:
        assert (params[i.id].default is not inspect.Parameter.empty) == bool(i.optional), (node_id, i.id)
        if getattr(i, "default", None) is not None and hasattr(i, "min") and i.min is not None:
            assert i.min <= i.default <= i.max, (node_id, i.id)


@pytest.mark.parametrize("node_id", sorted(NODE_IDS))
def test_stock_conventions_seed_range_and_latent_name(v3, node_id):
    """As KSampler: a seed takes 0 .. 2**64 - 1, and the start latent is ``latent_image`` (saved workflows of the
    earlier name ``latent`` are renamed on load by the web extension, web/js/schedule_plot.js RENAMED_INPUTS)."""
    for i in v3.nodes[node_id].define_schema().inputs:
        if i.id in ("seed", "noise_seed"):
            assert (i.min, i.max) == (0, 2**64 - 1), (node_id, i.id)
        if getattr(i, "io_type", None) == "LATENT":
            assert i.id != "latent", f"{node_id}: the start latent is latent_image on the stock nodes"


def test_largest_stock_seed_runs(v3):
    guider = v3.Guider(v3.model(), BED.denoiser)
    sigmas = _constant_rate(v3, guider, "vx", seed=2**64 - 1)[0]
    assert torch.isfinite(sigmas).all() and len(sigmas) == 7


# ------------------------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------------------------
def _in_model_time(kind, sigmas):
    return kind.from_flow_time(sigmas) if kind.kind == "flow" else sigmas


@pytest.mark.parametrize("kind_name", sorted(MODELS))
def test_schedule_lab_scheduler_gives_the_core_functions_sigmas_for_the_model_kind(v3, kind_name):
    (base, pred), kind = MODELS[kind_name]
    node, model = v3.nodes["SL_Scheduler"], v3.model(base, pred)
    def auto(n):
        return default_schedule_settings(n, kind)

    oracles = {"sl_ays_sd1": lambda n: ays_for_model(kind, n, table="sd1"),
               "sl_ays_sdxl": lambda n: ays_for_model(kind, n, table="sdxl"),
               # the data-free default of an n-step list (per-step-count settings, docs/defaults.md; with denoise
               # the host asks for the full list, so its length picks the settings)
               # (flow: placed in the model's time, the un-shifted list mapped through the shift)
               "sl_constant_rate": lambda n: _in_model_time(kind, constant_rate_sigmas(
                   data_free_velocity(auto(n)["measure"], kind), kind.unshifted(), n, xi=auto(n)["xi"],
                   end=auto(n)["end"], dtype=torch.float64))}
    for name, oracle in oracles.items():
        full = _run(node, model=model, scheduler=name, steps=7, denoise=1.0)[0]
        assert full.dtype == torch.float32 and len(full) == 8 and float(full[-1]) == 0.0
        torch.testing.assert_close(full, oracle(7).float(), rtol=2e-4, atol=1e-6, msg=name)
        half = _run(node, model=model, scheduler=name, steps=7, denoise=0.5)[0]  # KSampler: last 8 of 14 steps
        torch.testing.assert_close(half, oracle(14).float()[-8:], rtol=2e-4, atol=1e-6, msg=name)
    with pytest.raises(ScheduleError, match="scheduler: unknown name 'karras'"):
        node.execute(model=model, scheduler="karras", steps=7, denoise=1.0)


def test_saved_schedule_loads_back_exactly_and_is_listed(v3):
    model = v3.model()
    sigmas = _run(v3.nodes["SL_Scheduler"], model=model, scheduler="sl_ays_sd1", steps=9, denoise=1.0)[0]
    out = _run(v3.nodes["SL_SaveSchedule"], sigmas=sigmas, model=model, filename="mine", note="from a test",
               overwrite=False)
    path = out[0]
    assert path == str(v3.models / "schedules" / "mine.json") and out.ui.value == f"saved {path}"
    assert json.loads(open(path).read())["provenance"]["params"] == {"note": "from a test"}
    load = v3.nodes["SL_LoadSchedule"]
    assert "mine.json" in next(i for i in load.define_schema().inputs if i.id == "schedule").options
    back = _run(load, model=model, schedule="mine.json", steps=0, denoise=1.0)[0]
    assert torch.equal(back, sigmas)
    resampled = _run(load, model=model, schedule="mine.json", steps=4, denoise=1.0)[0]
    assert len(resampled) == 5 and resampled[0] == sigmas[0]
    with pytest.raises(ScheduleError, match="filename: 'mine.json' already exists"):
        v3.nodes["SL_SaveSchedule"].execute(sigmas=sigmas, model=model, filename="mine", note="", overwrite=False)
    with pytest.raises(ScheduleError, match="schedule: no file named 'other.json'"):
        load.execute(model=model, schedule="other.json", steps=0, denoise=1.0)


def test_a_flow_schedule_loads_onto_an_eps_model_only_when_clamped(v3):
    flow, eps = v3.model("ModelSamplingDiscreteFlow", "CONST"), v3.model()
    sigmas = torch.tensor([1.0, 0.6, 0.3, 0.0])
    _run(v3.nodes["SL_SaveSchedule"], sigmas=sigmas, model=flow, filename="flow", note="", overwrite=False)
    load = v3.nodes["SL_LoadSchedule"]
    with pytest.raises(ScheduleError, match="enable clamp_to_model"):
        load.execute(model=eps, schedule="flow.json", steps=0, denoise=1.0)
    moved = _run(load, model=eps, schedule="flow.json", steps=0, denoise=1.0, clamp_to_model=True)[0]
    assert float(moved[0]) == pytest.approx(ModelKind.vp().sigma_max, rel=1e-4) and len(moved) == 4


def test_schedule_info_reports_and_plots_the_input_sigmas(v3):
    (base, pred), kind = MODELS["flow"]
    sigmas = torch.tensor([1.0, 0.5, 0.2, 0.0])
    out = _run(v3.nodes["SL_ScheduleInfo"], sigmas=sigmas, model=v3.model(base, pred))
    lam = kind.to_lambda(sigmas[:-1].double())
    steps = ", ".join(f"{float(d):.3f}" for d in lam[1:] - lam[:-1])
    assert f"log-SNR steps: {steps}" in out[0] and out[0].startswith("steps: 3")
    (plot,) = out.ui["schedule_lab_sigmas"]
    assert out.ui["text"] == (out[0],) and plot["sigmas"] == sigmas.tolist() and plot["kind"] == "flow"
    # the plot's log-SNR axis is the model kind's: 2 lambda; none for the final 0, nor for the pure-noise level
    # σ = 1 of a flow model (-inf, which JSON cannot carry: the browser would drop the whole message)
    assert float(lam[0]) == float("-inf") and plot["log_snr"][0] is None and plot["log_snr"][-1] is None
    assert plot["log_snr"][1:-1] == pytest.approx((2 * lam[1:]).tolist())
    json.dumps(plot, allow_nan=False)
    # the plot as an IMAGE, appended after the text output (saved links keep slot 0 = info)
    outputs = v3.nodes["SL_ScheduleInfo"].define_schema().outputs
    assert [o.io_type for o in outputs] == ["STRING", "IMAGE"]
    image = out[1]
    assert image.shape == (1, 288, 512, 3) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


# ------------------------------------------------------------------------------------------------------------------
# TADA
# ------------------------------------------------------------------------------------------------------------------
def _sample(v3, model, sampler, seed=3):
    noise = torch.randn(LATENT, generator=torch.Generator().manual_seed(seed)) * 14.6
    sigmas = ays_for_model(ModelKind.vp(), 6).float()
    return v3.Guider(model, BED.denoiser).sample(noise, torch.zeros(LATENT), sampler, sigmas, seed=seed), noise, sigmas


def test_tada_sampler_node_runs_the_core_sampler_with_its_inputs(v3):
    out = _run(v3.nodes["SL_TADASampler"], detail=2.5, n_aug=3, order="2")
    sampler = out[0]
    x, noise, sigmas = _sample(v3, v3.model(), sampler)
    core = sample_tada(BED.denoiser, noise, sigmas, extra_args={"seed": 3}, detail=2.5, n_aug=3, order=2,
                       kind=ModelKind.vp())
    torch.testing.assert_close(x, core, rtol=1e-5, atol=1e-5)
    default = sample_tada(BED.denoiser, noise, sigmas, extra_args={"seed": 3}, kind=ModelKind.vp())
    assert (x - default).abs().max() > 1e-3  # the inputs matter
    with pytest.raises(ScheduleError, match="detail"):
        v3.nodes["SL_TADASampler"].execute(detail=0.0, n_aug=2, order="auto")


def test_detail_level_model_carries_the_detail_that_sl_tada_reads(v3, monkeypatch):
    node = v3.nodes["SL_DetailLevel"]
    _hidden(v3, monkeypatch, node, "12")
    loaded = v3.model()
    patched = _run(node, model=loaded, detail=3.0)[0]
    assert loaded.model_options == {"transformer_options": {}} and patched is not loaded  # the input is untouched
    ksampling = v3.comfy["comfy.k_diffusion.sampling"]
    KSAMPLER = v3.comfy["comfy.samplers"].KSAMPLER
    dropdown = KSAMPLER(ksampling.sample_sl_tada)  # what KSampler with sampler 'sl_tada' runs
    x, noise, sigmas = _sample(v3, patched, dropdown)
    core = sample_tada(BED.denoiser, noise, sigmas, extra_args={"seed": 3}, detail=3.0, kind=ModelKind.vp())
    torch.testing.assert_close(x, core, rtol=1e-5, atol=1e-5)
    plain, _, _ = _sample(v3, loaded, dropdown)
    assert (x - plain).abs().max() > 1e-3
    explicit = _run(v3.nodes["SL_TADASampler"], detail=0.5, n_aug=2, order="auto")[0]
    wins, _, _ = _sample(v3, patched, explicit)  # the TADA Sampler node's own detail wins over the model's
    torch.testing.assert_close(wins, sample_tada(BED.denoiser, noise, sigmas, extra_args={"seed": 3}, detail=0.5,
                                                 kind=ModelKind.vp()), rtol=1e-5, atol=1e-5)

    wrapper = patched.wrappers[("sampler_sample", "schedule_lab_detail_level")]
    for sampler in (dropdown, KSAMPLER(sample_euler), explicit):
        executor = type("Executor", (), {"class_obj": sampler, "__call__": lambda self, *a, **k: "sampled"})()
        assert wrapper(executor) == "sampled"
    assert v3.shown == [("12", "Detail Level 3 used by sl_tada."),
                        ("12", "Detail Level 3 had no effect: this graph sampled with 'euler', not TADA. "
                               "Pick 'sl_tada' in KSampler or use the TADA Sampler node."),
                        ("12", "Detail Level 3 had no effect: the TADA Sampler node's own detail 0.5 wins.")]


# ------------------------------------------------------------------------------------------------------------------
# searched schedules
# ------------------------------------------------------------------------------------------------------------------
def test_searched_steps_gives_a_preset_for_the_model_kind(v3):
    name = next(iter(PRESETS))
    out = _run(v3.nodes["SL_SearchedSteps"], model=v3.model(), schedule="preset: " + name, steps=0, denoise=1.0)
    torch.testing.assert_close(out[0], preset_sigmas(name, ModelKind.vp()).float(), rtol=1e-4, atol=1e-6)
    assert out[1].startswith(f"preset {name}: ") and "RESAMPLED" not in out[1]
    resampled = _run(v3.nodes["SL_SearchedSteps"], model=v3.model(), schedule="preset: " + name, steps=9,
                     denoise=1.0)
    assert len(resampled[0]) == 10 and "RESAMPLED" in resampled[1]


def test_timestep_search_node_runs_the_search_and_saves_what_searched_steps_loads(v3, monkeypatch):
    node = v3.nodes["SL_TimestepSearch"]
    _hidden(v3, monkeypatch, node, "4")
    KSAMPLER = v3.comfy["comfy.samplers"].KSAMPLER
    guider = v3.Guider(v3.model(), BED.denoiser)
    settings = dict(nfe=3, population=4, generations=2, reference_steps=8, samples=2, holdout=2,
                    fitness="endpoint", seed=1)
    out = _run(node, guider=guider, latent_image={"samples": torch.zeros(LATENT)}, sampler=KSAMPLER(sample_euler),
               filename="found", resume=False, **settings)
    sigmas, report = out[0], out[1]
    (v3.models / "direct").mkdir()
    direct, path, _ = search_ops.run_search(BED.denoiser, ModelKind.vp(), LATENT[1:], sample_euler,
                                            sampler_name="sample_euler", directory=v3.models / "direct",
                                            filename="found", resume=False, **settings)
    torch.testing.assert_close(sigmas, direct, rtol=1e-4, atol=1e-6)
    assert report.endswith(f"saved {v3.models / 'schedules' / 'found.json'}")
    assert len(v3.ticks) == 4 * 2 and {t for t, _ in v3.ticks} == {8}  # one tick per candidate evaluated
    assert v3.shown[-1] == ("4", report) and v3.shown[0][1].startswith("generation 1/2")
    back = _run(v3.nodes["SL_SearchedSteps"], model=v3.model(), schedule="found.json", steps=0, denoise=1.0)
    assert torch.equal(back[0], sigmas) and back[1].startswith("searched for euler at 3 steps")
    # sl_searched finds it too: in the Schedule Lab Scheduler node and in KSampler's dropdown (host-injected files)
    node = _run(v3.nodes["SL_Scheduler"], model=v3.model(), scheduler="sl_searched", steps=3, denoise=1.0)[0]
    handler = v3.comfy["comfy.samplers"].SCHEDULER_HANDLERS["sl_searched"].handler
    dropdown = handler(v3.model().get_model_object("model_sampling"), 3)
    torch.testing.assert_close(node, sigmas, rtol=1e-6, atol=0)
    torch.testing.assert_close(dropdown, sigmas, rtol=1e-6, atol=0)
    with pytest.raises(ScheduleError, match="Timestep Search"):
        v3.nodes["SL_Scheduler"].execute(model=v3.model(), scheduler="sl_searched", steps=5, denoise=1.0)


# ------------------------------------------------------------------------------------------------------------------
# constant-rate
# ------------------------------------------------------------------------------------------------------------------
def _constant_rate(v3, guider, measure, **kw):
    inputs = dict(guider=guider, latent_image={"samples": torch.zeros(2, 4, 4, 4)}, steps=6, denoise=1.0,
                  measure=measure, xi=1.5, samples=2, points=4, seed=0)
    return _run(v3.nodes["SL_ConstantRateScheduler"], **{**inputs, **kw})


def test_constant_rate_data_free_matches_the_core_and_its_model_feeds_the_dropdown(v3, monkeypatch):
    _hidden(v3, monkeypatch, v3.nodes["SL_ConstantRateScheduler"])
    (base, pred), kind = MODELS["flow"]
    guider = v3.Guider(v3.model(base, pred), BED.denoiser)
    sigmas, report, model = _constant_rate(v3, guider, "data-free", save_as="cr").args
    oracle = _in_model_time(kind, constant_rate_sigmas(default_velocity(kind), kind.unshifted(), 6, xi=1.5,
                                                       end="land", dtype=torch.float64))
    torch.testing.assert_close(sigmas, oracle.float(), rtol=2e-4, atol=1e-6)
    assert guider.calls == 0 and "data-free default (no model calls)" in report
    handler = v3.comfy["comfy.samplers"].SCHEDULER_HANDLERS["sl_constant_rate"].handler
    torch.testing.assert_close(handler(model.get_model_object("model_sampling"), 6),
                               calibrate_module.schedule(default_velocity(kind), kind, 6))
    saved = _run(v3.nodes["SL_LoadSchedule"], model=guider.model_patcher, schedule="cr.json", steps=0, denoise=1.0)
    assert torch.equal(saved[0], sigmas)


def test_constant_rate_measures_once_then_reads_the_cache_and_the_model_carries_it(v3):
    guider = v3.Guider(v3.model(), BED.denoiser)
    sigmas, report, model = _constant_rate(v3, guider, "vx").args
    calls = guider.calls
    assert calls > 0 and "measured now" in report and (v3.models / "schedule_lab_calibration").is_dir()

    def direct(x, sigma):
        return BED.denoiser(x, sigma)

    velocity = constant_rate_ops.calibrate(direct, ModelKind.vp(), torch.zeros(2, 4, 4, 4), "vx", 4, 2, 0)
    torch.testing.assert_close(sigmas, calibrate_module.schedule(velocity, ModelKind.vp(), 6, xi=1.5),
                               rtol=1e-4, atol=1e-6)
    again = _constant_rate(v3, v3.Guider(v3.model(), BED.denoiser), "vx")
    assert torch.equal(again[0], sigmas) and "cached calibration (0 model calls now" in again[1]
    handler = v3.comfy["comfy.samplers"].SCHEDULER_HANDLERS["sl_constant_rate"].handler
    torch.testing.assert_close(handler(model.get_model_object("model_sampling"), 6),
                               calibrate_module.schedule(velocity, ModelKind.vp(), 6), rtol=1e-4, atol=1e-6)
    with pytest.raises(ScheduleError, match="measure: 'fid' is unknown"):
        _constant_rate(v3, guider, "fid")


def test_schedule_loaders_validation_says_which_file_to_put_where(v3):
    model, sigmas = v3.model(), torch.tensor([14.6, 3.0, 0.5, 0.0])
    _run(v3.nodes["SL_SaveSchedule"], sigmas=sigmas, model=model, filename="here", note="", overwrite=True)
    load, searched = v3.nodes["SL_LoadSchedule"], v3.nodes["SL_SearchedSteps"]
    assert load.validate_inputs(schedule="here.json") is True
    message = load.validate_inputs(schedule="constant_rate_sd1_10.json")
    assert message.startswith("schedule: no file named 'constant_rate_sd1_10.json' in models/schedules: put the "
                              "schedule file (.json) at ComfyUI/models/schedules/constant_rate_sd1_10.json")
    assert str(v3.models / "schedules" / "constant_rate_sd1_10.json") in message
    missing = searched.validate_inputs(schedule="searched_dpmpp_2m_4.json")
    assert "ComfyUI/models/schedules/searched_dpmpp_2m_4.json" in missing and "Timestep Search" in missing
    first_preset = next(c for c in searched.define_schema().inputs[1].options if c.startswith("preset: "))
    assert searched.validate_inputs(schedule=first_preset) is True
    assert "unknown preset" in searched.validate_inputs(schedule="preset: nope")


# ------------------------------------------------------------------------------------------------------------------
# Few-Step Preset
# ------------------------------------------------------------------------------------------------------------------
def test_few_step_preset_auto_gives_the_presets_sampler_and_sigmas_for_the_models_family(v3):
    """sl_few_steps on an ε model (by name; 'auto' picks the ε family's own preset): SIGMAS = the Schedule Lab
    Scheduler's sl_constant_rate at the preset's 5 steps, SAMPLER = what KSampler's 'sl_tada' runs; steps and
    denoise as KSampler's (the stock samplers of a family's own preset run on the real host:
    tests/integration)."""
    from schedule_lab.solvers.presets import PRESETS

    preset = PRESETS["sl_few_steps"]
    model = v3.model()
    sampler, sigmas = _run(v3.nodes["SL_FewStepPreset"], model=model, preset="sl_few_steps", steps=0,
                           denoise=1.0)[:2]

    want = _run(v3.nodes["SL_Scheduler"], model=model, scheduler=preset.scheduler, steps=preset.steps,
                denoise=1.0)[0]
    assert len(sigmas) == preset.steps + 1
    torch.testing.assert_close(sigmas, want)
    ksampling = v3.comfy["comfy.k_diffusion.sampling"]
    dropdown = v3.comfy["comfy.samplers"].KSAMPLER(ksampling.sample_sl_tada)
    x, _, _ = _sample(v3, model, sampler)
    ref, _, _ = _sample(v3, model, dropdown)
    torch.testing.assert_close(x, ref)
    eight = _run(v3.nodes["SL_FewStepPreset"], model=model, preset="sl_few_steps", steps=8, denoise=1.0)[1]
    torch.testing.assert_close(eight, _run(v3.nodes["SL_Scheduler"], model=model, scheduler=preset.scheduler,
                                           steps=8, denoise=1.0)[0])
    half = _run(v3.nodes["SL_FewStepPreset"], model=model, preset="sl_few_steps", steps=4, denoise=0.5)[1]
    torch.testing.assert_close(half, _run(v3.nodes["SL_Scheduler"], model=model, scheduler=preset.scheduler,
                                          steps=4, denoise=0.5)[0])


def test_few_step_preset_refuses_a_family_it_was_not_chosen_for_naming_the_input(v3):
    node, flow = v3.nodes["SL_FewStepPreset"], v3.model("ModelSamplingDiscreteFlow", "CONST")
    with pytest.raises(ScheduleError, match=r"^preset: sl_few_steps was chosen for .*EDM.* models, and the "
                                            r"connected model is rectified flow .*sl_tada.*sl_constant_rate"):
        node.execute(model=flow, preset="sl_few_steps", steps=0, denoise=1.0)
    from schedule_lab.nodes import preset_ops

    assert preset_ops.resolve_preset("auto", "flow")[0] == "sl_flow_few_steps"  # the flow family's own (§5d)
    without_flow = {n: p for n, p in preset_ops.PRESETS.items() if "flow" not in p.families}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(preset_ops, "PRESETS", without_flow)
        with pytest.raises(ScheduleError, match=r"^preset: 'auto' found no preset chosen for rectified flow"):
            node.execute(model=flow, preset="auto", steps=0, denoise=1.0)
    with pytest.raises(ScheduleError, match=r"^steps: -1"):
        node.execute(model=v3.model(), preset="auto", steps=-1, denoise=1.0)


def test_few_step_preset_with_a_stock_pair_gives_comfyuis_sampler_and_ksamplers_sigmas(v3, monkeypatch):
    """A preset naming ComfyUI samplers/schedulers (as per-family presets do): ComfyUI's own SAMPLER object, its own
    scheduler's list, and KSampler's discard-penultimate rule for uni_pc-type samplers; 'auto' picks the preset of
    the model's family chosen nearest the requested step count."""
    from schedule_lab.solvers.presets import PRESETS, Preset

    samplers = v3.comfy["comfy.samplers"]
    monkeypatch.setattr(samplers, "SAMPLER_NAMES", samplers.SAMPLER_NAMES + ["uni_pc", "ipndm"], raising=False)
    monkeypatch.setattr(samplers, "sampler_object", lambda name: ("comfy sampler", name), raising=False)
    monkeypatch.setattr(samplers, "calculate_sigmas", lambda ms, name, n: torch.linspace(1.0, 0.0, n + 1) * (
        2.0 if name == "beta" else 1.0), raising=False)
    monkeypatch.setattr(samplers, "KSampler", type("KSampler", (), {"DISCARD_PENULTIMATE_SIGMA_SAMPLERS": {"uni_pc"}}),
                        raising=False)
    monkeypatch.setitem(PRESETS, "flow_4", Preset("uni_pc", "simple", 4, "test", "cmd", families=("flow",)))
    monkeypatch.setitem(PRESETS, "flow_8", Preset("ipndm", "beta", 8, "test", "cmd", families=("flow",)))
    flow = v3.model("ModelSamplingDiscreteFlow", "CONST")
    node = v3.nodes["SL_FewStepPreset"]
    sampler, sigmas = _run(node, model=flow, preset="flow_4", steps=0, denoise=1.0)[:2]
    assert sampler == ("comfy sampler", "uni_pc")
    full = torch.linspace(1.0, 0.0, 6)  # steps + 1, then the penultimate sigma dropped
    torch.testing.assert_close(sigmas, torch.cat([full[:-2], full[-1:]]))
    sampler, sigmas = _run(node, model=flow, preset="auto", steps=7, denoise=1.0)[:2]
    assert sampler == ("comfy sampler", "ipndm")  # chosen at 8, nearer 7 than flow_4's 4
    torch.testing.assert_close(sigmas, torch.linspace(1.0, 0.0, 8) * 2.0)
    assert _run(node, model=flow, preset="auto", steps=5, denoise=1.0)[0] == ("comfy sampler", "uni_pc")
    monkeypatch.setitem(PRESETS, "gone", Preset("no_such", "simple", 4, "test", "cmd", families=("flow",)))
    with pytest.raises(ScheduleError, match="sampler: this ComfyUI .* has no sampler 'no_such'"):
        node.execute(model=flow, preset="gone", steps=0, denoise=1.0)


def test_few_step_preset_tooltips_say_the_family_and_the_command_of_every_preset(v3):
    from schedule_lab.solvers.presets import PRESETS

    schema = v3.nodes["SL_FewStepPreset"].define_schema()
    preset_input = next(i for i in schema.inputs if i.id == "preset")
    assert preset_input.options == ["auto", *PRESETS]
    for name, p in PRESETS.items():
        assert f"{name}: {p.sampler} + {p.scheduler}, {p.steps} steps; chosen for" in preset_input.tooltip
        assert p.source in preset_input.tooltip
    assert "EDM" in preset_input.tooltip and "ε-prediction" in preset_input.tooltip
    scheduler = next(i for i in v3.nodes["SL_Scheduler"].define_schema().inputs if i.id == "scheduler")
    line = next(t for t in scheduler.tooltip.splitlines() if t.startswith("sl_constant_rate:"))
    assert "preset sl_few_steps (sl_tada + sl_constant_rate, 5 steps) was chosen for" in line and "EDM" in line


def test_few_step_preset_auto_prefers_the_preset_chosen_for_the_models_family_alone(v3):
    """On a v model both sl_few_steps (chosen across eps, v, EDM) and sl_v_few_steps (the per-family rule's choice on
    the v model) apply at 5 steps: 'auto' runs the family's own; the same on an ε model (sl_sd1_few_steps)."""
    from schedule_lab.nodes.preset_ops import resolve_preset
    from schedule_lab.solvers.presets import PRESETS

    assert {"sl_few_steps", "sl_v_few_steps"} <= set(PRESETS)
    assert resolve_preset("auto", "v")[0] == "sl_v_few_steps"
    assert resolve_preset("auto", "v", steps=5)[0] == "sl_v_few_steps"
    assert resolve_preset("auto", "eps")[0] == "sl_sd1_few_steps"
    assert resolve_preset("sl_few_steps", "eps")[0] == "sl_few_steps"
    assert resolve_preset("auto", "edm", steps=5)[0] == "sl_few_steps"
    assert resolve_preset("sl_few_steps", "v")[0] == "sl_few_steps"  # by name: what was asked for
