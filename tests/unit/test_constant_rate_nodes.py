"""Constant-Rate Scheduler: the node's plain functions, the dropdown entry and the host plumbing, without ComfyUI
(the ``comfy`` stand-in of conftest.py; the real host is exercised in tests/integration)."""
from __future__ import annotations

import logging
import sys
import types

import pytest
import torch

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.nodes import constant_rate_ops as ops
from schedule_lab.nodes import host
from schedule_lab.schedules import ModelKind, ScheduleError
from schedule_lab.schedules.catalogue import SCHEDULES, model_needs, schedule_sigmas
from schedule_lab.schedules.constant_rate import calibrate as core
from schedule_lab.schedules.constant_rate.construct import (
    Velocity,
    constant_rate_sigmas,
    data_free_velocity,
    default_schedule_settings,
    default_velocity,
)

KIND = ModelKind.vp()


def _data_free_default(kind, steps):
    """The uncalibrated sl_constant_rate list: the per-step-count data-free settings of docs/defaults.md."""
    auto = default_schedule_settings(steps, kind)
    return constant_rate_sigmas(data_free_velocity(auto["measure"], kind), kind, steps, xi=auto["xi"],
                                end=auto["end"])


def _mix(ms_mod, base, pred):
    return type(f"{base.__name__}_{pred.__name__}", (base, pred), {})()


class CountingModel:
    """A Gaussian-data denoiser on (B, C, H, W) latents that counts its calls and batch sizes."""

    def __init__(self):
        self.bed = GaussianTestbed(2 * 4 * 4, mean=0.2, std=0.6)
        self.calls, self.batches = 0, set()

    def __call__(self, x, sigma, **_):
        self.calls += 1
        self.batches.add(x.shape[0])
        return self.bed.denoiser(x.reshape(x.shape[0], -1), sigma).reshape(x.shape)


def test_data_free_calibration_generates_then_measures_and_counts_every_call():
    model, seen = CountingModel(), []
    latent = torch.zeros(2, 2, 4, 4)
    vel = ops.calibrate(model, KIND, latent, "vx", points=6, samples=3, progress=lambda d, t: seen.append((d, t)))
    reps = 2  # ceil(3 / 2) batches of 2
    assert model.calls == reps * core.GEN_STEPS + 6 * reps == vel.info["model_calls"]
    assert vel.info["generation_calls"] == reps * core.GEN_STEPS and model.batches == {2}
    assert seen == [(i, reps + 6) for i in range(1, reps + 7)]
    assert vel.measure == "vx" and "model samples" in vel.info["data"]


def test_a_latent_with_data_is_used_as_the_data_without_generation():
    model = CountingModel()
    latent = torch.randn(4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    vel = ops.calibrate(model, KIND, latent, "veps", points=5, samples=8)
    assert model.calls == 5 * 2 and vel.info["generation_calls"] == 0 and vel.info["data"] == "latent"


def test_vx_plus_cos_is_an_equal_mix_and_data_free_makes_no_calls():
    model = CountingModel()
    both = ops.calibrate(model, KIND, torch.zeros(1, 2, 4, 4), "vx+cos", points=6, samples=2)
    assert both.measure == "vx+cos" and both.info["model_calls"] == model.calls > 0
    free = ops.calibrate(None, KIND, torch.zeros(1, 2, 4, 4), "data-free")
    assert free.info["model_calls"] == 0 and torch.equal(free.values, default_velocity(KIND).values)


def test_frechet_on_latents_uses_pooled_channel_features():
    assert core.latent_features(torch.zeros(3, 4, 64, 64)).shape == (3, 64)
    assert core.latent_features(torch.zeros(3, 16, 2, 8, 8)).shape == (3, 256)
    model = CountingModel()
    with pytest.raises(ScheduleError, match="samples: 8 samples are too few.*32-dimensional"):
        ops.calibrate(model, KIND, torch.zeros(2, 2, 4, 4), "frechet", points=4, samples=8)
    assert model.calls == 0  # refused before generating anything
    with pytest.raises(ScheduleError, match="samples: 1 must be a whole number >= 2"):
        ops.calibrate(model, KIND, torch.zeros(1, 2, 4, 4), "vx", samples=1)


def test_a_latent_the_network_cannot_take_is_refused_naming_the_latent():
    def model(x, sigma):
        raise RuntimeError("expected input to have 4 channels, but got 16 channels instead")

    with pytest.raises(ScheduleError, match=r"latent: shape \(1, 16, 4, 4\) does not fit this model.*4 channels"):
        ops.calibrate(model, KIND, torch.zeros(1, 16, 4, 4), "vx", points=4, samples=2)


def test_cache_settings_follow_the_data_but_not_steps_xi_or_denoise():
    empty, data = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8)
    a = core.settings("vx", 24, 16, 0, KIND, empty)
    assert a == core.settings("vx", 24, 16, 0, KIND, torch.zeros(1, 4, 8, 8)) and a["data"] == "model"
    assert core.settings("vx", 24, 16, 0, KIND, data) != core.settings("vx", 24, 16, 0, KIND, 2 * data)
    assert core.settings("vx", 24, 16, 0, KIND, torch.zeros(1, 4, 16, 16)) != a
    assert core.settings("vx", 24, 16, 1, KIND, empty) != a


def test_schedule_applies_denoise_like_ksampler_and_checks_xi():
    vel = default_velocity(KIND)
    # the settings are the per-step-count defaults of the 10 steps that run (docs/defaults.md)
    auto = default_schedule_settings(10, KIND)
    full = constant_rate_sigmas(vel, KIND, 20, xi=auto["xi"], end=auto["end"])
    assert torch.equal(core.schedule(vel, KIND, 10, denoise=0.5), full[-11:])
    with pytest.raises(ScheduleError, match="xi=0"):
        core.schedule(vel, KIND, 10, xi=0)
    with pytest.raises(ScheduleError, match="measure: 'fid' is unknown"):
        core.check_measure("fid")


def test_report_says_where_the_schedule_came_from():
    vel = Velocity(torch.linspace(-2, 5, 5), torch.ones(5), "vx", {"model_calls": 48, "seconds": 1.5,
                                                                    "samples": 16, "data": "latent", "points": 6})
    sig = torch.tensor([1.0, 0.0])
    assert "cached calibration (0 model calls now; measuring took 48 model calls" in ops.report(vel, "hit", sig)
    assert "measured now: 48 model calls" in ops.report(vel, "miss", sig)
    assert "old cache entry corrupt: x" in ops.report(vel, "corrupt: x", sig)
    assert "data-free default" in ops.report(default_velocity(KIND), "data-free", sig)


# ---------------------------------------------------------------------------------------------------------------
# sl_constant_rate in the KSampler dropdown
# ---------------------------------------------------------------------------------------------------------------
def test_dropdown_uses_the_calibration_attached_to_this_model_else_the_default(comfy, caplog):
    host.register_schedulers()
    S, M = comfy["comfy.samplers"], comfy["comfy.model_sampling"]
    handler = S.SCHEDULER_HANDLERS["sl_constant_rate"].handler
    # EDM-type models use a calibration at 4 and 6 steps (docs/defaults.md §14)
    ms, other = _mix(M, M.ModelSamplingContinuousEDM, M.EDM), _mix(M, M.ModelSamplingContinuousEDM, M.EDM)
    with caplog.at_level(logging.INFO, logger="schedule_lab"):
        default = handler(ms, 6)
    assert "data-free default" in caplog.text
    kind = host.model_kind_from_sampling(ms)
    assert torch.allclose(default, _data_free_default(kind, 6))
    bump = Velocity(torch.linspace(-3, 4, 30, dtype=torch.float64),
                    1 + 5 * torch.exp(-torch.linspace(-3, 4, 30, dtype=torch.float64) ** 2), "vx",
                    {"model_calls": 7})
    host.attach_model_setting(ms, "velocity", bump)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="schedule_lab"):
        measured = handler(ms, 6)
    assert "using the vx calibration measured on this model (7 model calls)" in caplog.text
    assert torch.allclose(measured, core.schedule(bump, kind, 6)) and not torch.allclose(measured, default)
    assert torch.allclose(handler(other, 6), default)  # another model keeps the default
    assert model_needs(SCHEDULES["sl_constant_rate"].needs) == ("velocity",)


def test_dropdown_on_eps_models_says_the_calibration_is_not_used_and_gives_the_data_free_list(comfy, caplog):
    """On eps models the calibration measured worse than the data-free list at every step count (§10b): the
    dropdown logs that and gives the data-free list, not a silent switch."""
    host.register_schedulers()
    S, M = comfy["comfy.samplers"], comfy["comfy.model_sampling"]
    handler = S.SCHEDULER_HANDLERS["sl_constant_rate"].handler
    ms = _mix(M, M.ModelSamplingDiscrete, M.EPS)
    kind = host.model_kind_from_sampling(ms)
    bump = Velocity(torch.linspace(-3, 4, 30, dtype=torch.float64),
                    1 + 5 * torch.exp(-torch.linspace(-3, 4, 30, dtype=torch.float64) ** 2), "vx",
                    {"model_calls": 7})
    host.attach_model_setting(ms, "velocity", bump)
    with caplog.at_level(logging.INFO, logger="schedule_lab"):
        got = handler(ms, 8)
    assert "the data-free list, not the calibration" in caplog.text
    assert torch.allclose(got, _data_free_default(kind, 8))
    explicit = core.schedule(bump, kind, 8, xi=1.0)  # an explicit ξ still uses the calibration
    assert not torch.allclose(explicit, got)


def test_the_calibrated_model_is_a_patched_clone_and_the_loaded_model_is_untouched(comfy):
    """with_model_setting: only the returned MODEL carries the velocity (an object patch on a clone)."""
    host.register_schedulers()
    S, M = comfy["comfy.samplers"], comfy["comfy.model_sampling"]
    handler = S.SCHEDULER_HANDLERS["sl_constant_rate"].handler

    class Patcher:  # the two ModelPatcher methods used, with ComfyUI's object-patch semantics
        def __init__(self, ms, patches=None):
            self.ms, self.object_patches = ms, dict(patches or {})

        def clone(self):
            return Patcher(self.ms, self.object_patches)

        def add_object_patch(self, name, obj):
            self.object_patches[name] = obj

        def get_model_object(self, name):
            return self.object_patches.get(name, self.ms)

    loaded = Patcher(_mix(M, M.ModelSamplingDiscrete, M.EPS))
    bump = Velocity(torch.linspace(-3, 4, 30, dtype=torch.float64),
                    1 + 5 * torch.exp(-torch.linspace(-3, 4, 30, dtype=torch.float64) ** 2), "vx", {})
    calibrated = host.with_model_setting(loaded, "velocity", bump)
    kind = host.model_kind_from_sampling(loaded.ms)
    assert calibrated is not loaded and not loaded.object_patches
    patched_ms = calibrated.get_model_object("model_sampling")
    assert patched_ms is not loaded.ms and torch.equal(patched_ms.sigmas, loaded.ms.sigmas)
    assert torch.allclose(handler(patched_ms, 8), core.schedule(bump, kind, 8))
    assert torch.allclose(handler(loaded.get_model_object("model_sampling"), 8), _data_free_default(kind, 8))


def test_dropdown_default_is_usable_without_comfy_for_every_kind():
    for kind in (ModelKind.vp("v"), ModelKind.edm(), ModelKind.flow(3.0)):
        sig = schedule_sigmas("sl_constant_rate", kind, 6)
        assert len(sig) == 7 and sig[-1] == 0 and float(sig[0]) == pytest.approx(kind.sigma_max, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# host plumbing: fingerprints and the guider run
# ---------------------------------------------------------------------------------------------------------------
class FakePatcher:
    def __init__(self, ms, weight=1.0):
        self.model = torch.nn.Linear(3, 3)
        torch.nn.init.constant_(self.model.weight, weight)
        torch.nn.init.zeros_(self.model.bias)
        self.patches = {}
        self.ms = ms

    def get_model_object(self, name):
        assert name in ("model_sampling", "latent_format")
        return self.ms if name == "model_sampling" else None  # no latent format: the channel check is skipped


class FakeGuider:
    """Calls the sampler function like comfy.samplers.KSAMPLER does, with the processed latent on the model."""

    def __init__(self, patcher, conds, cfg=2.0):
        self.model_patcher, self.original_conds, self.cfg = patcher, conds, cfg

    def sample(self, noise, latent_image, sampler, sigmas, disable_pbar=False, seed=None):
        denoiser, processed = CountingModel(), latent_image * 2

        class ModelK:  # KSamplerX0Inpaint: the latent after process_latent_in (here: times 2)
            latent_image = processed

            def __call__(self, x, sigma, denoise_mask=None, model_options=None, seed=None):
                assert model_options == {"probe": 1}
                return denoiser(x, sigma)

        extra = {"denoise_mask": None, "model_options": {"probe": 1}, "seed": seed}
        return sampler.sampler_function(ModelK(), noise, sigmas, extra_args=extra)


def _with_ksampler(comfy):
    class KSAMPLER:
        def __init__(self, fn, extra_options=None):
            self.sampler_function = fn

    comfy["comfy.samplers"].KSAMPLER = KSAMPLER


def test_calibrate_with_guider_hands_work_the_model_call_kind_and_processed_latent(comfy):
    _with_ksampler(comfy)
    M = comfy["comfy.model_sampling"]
    guider = FakeGuider(FakePatcher(_mix(M, M.ModelSamplingDiscrete, M.EPS)), {"positive": []})
    latent = {"samples": torch.ones(2, 2, 4, 4)}

    def work(call, kind, latent_in):
        out = call(latent_in, torch.full((2,), 1.0))
        return kind.kind, latent_in.mean().item(), tuple(out.shape)

    assert host.calibrate_with_guider(guider, latent, work) == ("eps", 2.0, (2, 2, 4, 4))


def test_fingerprints_change_with_weights_patches_conditioning_and_cfg(comfy):
    M = comfy["comfy.model_sampling"]
    ms = _mix(M, M.ModelSamplingDiscrete, M.EPS)
    a, same, tuned = FakePatcher(ms), FakePatcher(ms), FakePatcher(ms, weight=1.001)
    assert host.model_fingerprint(a) == host.model_fingerprint(same) != host.model_fingerprint(tuned)
    lora = FakePatcher(ms)
    lora.patches = {"weight": [(0.8, torch.zeros(3, 3), 1.0)]}
    assert host.model_fingerprint(lora) != host.model_fingerprint(a)
    conds = {"positive": [{"cross_attn": torch.ones(1, 2, 3)}]}
    g = host.guider_fingerprint(FakeGuider(a, conds))
    assert g == host.guider_fingerprint(FakeGuider(same, {"positive": [{"cross_attn": torch.ones(1, 2, 3)}]}))
    assert g != host.guider_fingerprint(FakeGuider(a, {"positive": [{"cross_attn": torch.zeros(1, 2, 3)}]}))
    assert g != host.guider_fingerprint(FakeGuider(a, conds, cfg=7.0))


def test_calibration_folder_is_registered_and_created(comfy, monkeypatch, tmp_path):
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(tmp_path)
    fp.folder_names_and_paths = {}
    fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths[name][0])
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    path = host.calibration_dir()
    assert path == str(tmp_path / host.CALIBRATION_FOLDER) and (tmp_path / host.CALIBRATION_FOLDER).is_dir()
    custom = tmp_path / "elsewhere"
    fp.folder_names_and_paths[host.CALIBRATION_FOLDER][0].append(str(custom))
    assert host.calibration_dir() == str(custom) and custom.is_dir()


def test_data_free_calibration_in_the_core_takes_its_generator_from_the_caller():
    """schedules/ never imports solvers/: without images the core asks for ``generate``; the node's calibrate passes
    ``solvers.classic.model_samples`` and spends its generation calls."""
    model = lambda x, sigma, **kw: x * 0  # noqa: E731
    with pytest.raises(ScheduleError, match="generate="):
        core.calibrate(model, KIND, torch.zeros(1, 2, 4, 4), "vx", points=4, samples=2)
    vel = ops.calibrate(model, KIND, torch.zeros(1, 2, 4, 4), "vx", points=4, samples=2)
    assert vel.info["generation_calls"] == 2 * core.GEN_STEPS
