"""Adding a sampler or a schedule touches its own module and one table entry (docs/architecture.md, "Adding a sampler
or a schedule"): a toy sampler and a toy schedule, defined here only, declared once each in their table (plus their
names in the registry's dropdown lists), reach ComfyUI's KSampler lists, the SL_Scheduler node, the binders, the
catalogue's ``run`` and the lab's method lists with nothing else edited."""
from __future__ import annotations

import types

import pytest
import torch

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.nodes import host, registry, schedule_ops
from schedule_lab.schedules import ModelKind, validate_sigmas
from schedule_lab.schedules import catalogue as schedule_table
from schedule_lab.solvers import catalogue

SD = ModelKind.vp("eps")
seen: list = []


def sample_toy(model, x, sigmas, extra_args=None, callback=None, disable=None, kind=None, gain=1.0):
    """Euler on the probability-flow ODE, recording what it was bound with."""
    seen.append({"kind": kind, "gain": gain})
    extra_args = extra_args or {}
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * x.new_ones([x.shape[0]]), **extra_args)
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i]) * gain
    return x


def toy_sigmas(kind: ModelKind, steps: int, power: float = 1.0) -> torch.Tensor:
    """Uniform in σ^(1/power) over the model's range, then 0."""
    lo, hi = kind.sigma_min ** (1 / power), kind.sigma_max ** (1 / power)
    s = torch.linspace(hi, lo, steps, dtype=torch.float64) ** power
    return torch.cat([s, s.new_zeros(1)])


@pytest.fixture
def toy(monkeypatch):
    """The whole addition: one entry per table and the two names in the dropdown lists."""
    seen.clear()
    monkeypatch.setitem(catalogue.SAMPLERS, "sl_toy", catalogue.Sampler(
        sample_toy, "A toy Euler.", defaults={"gain": 1.0}, needs=("kind",), ours=True, calls=lambda n: n))
    monkeypatch.setitem(schedule_table.SCHEDULES, "sl_toy_schedule", schedule_table.Schedule(
        toy_sigmas, "A toy power schedule.", defaults={"power": 1.0}, ours=True))
    monkeypatch.setattr(registry, "DROPDOWN_SAMPLERS", registry.DROPDOWN_SAMPLERS + ("sl_toy",))
    monkeypatch.setattr(registry, "DROPDOWN_SCHEDULERS", registry.DROPDOWN_SCHEDULERS + ("sl_toy_schedule",))


def _mix(M, base, pred):
    return type(f"{base.__name__}_{pred.__name__}", (base, pred), {})()


def test_the_toy_methods_reach_the_ksampler_lists_and_run_through_comfys_naming_rule(comfy, toy):
    added = host.register_all()
    S, K, M = comfy["comfy.samplers"], comfy["comfy.k_diffusion.sampling"], comfy["comfy.model_sampling"]
    assert added["samplers"][-1] == "sl_toy" and S.SAMPLER_NAMES[-1] == S.KSAMPLER_NAMES[-1] == "sl_toy"
    assert added["schedulers"][-1] == "sl_toy_schedule" and S.SCHEDULER_NAMES[-1] == "sl_toy_schedule"
    ms = _mix(M, M.ModelSamplingDiscrete, M.EPS)
    sig = S.SCHEDULER_HANDLERS["sl_toy_schedule"].handler(ms, 5)
    assert sig.dtype == torch.float32 and torch.allclose(sig, toy_sigmas(host.model_kind_from_sampling(ms), 5).float())
    class InSampler:  # what ComfyUI passes a sampler: KSamplerX0Inpaint -> CFGGuider -> BaseModel(model_sampling)
        inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(model_sampling=ms))

        def __call__(self, x, sigma, **kwargs):
            return x * 0

    out = K.sample_sl_toy(InSampler(), torch.ones(2), sig, gain=0.5)  # an explicit option wins over the default
    assert seen[-1] == {"kind": host.model_kind_from_sampling(ms), "gain": 0.5}
    K.sample_sl_toy(InSampler(), torch.ones(2), sig)
    assert seen[-1]["gain"] == 1.0 and torch.isfinite(out).all()


def test_the_toy_methods_reach_the_binders_and_run(toy):
    g = GaussianTestbed(4, mean=0.1, std=0.5)
    noise = torch.randn(8, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = catalogue.run("sl_toy(gain=1)", "sl_toy_schedule", g.denoiser, noise, kind=SD, steps=6)
    assert result.nfe == catalogue.SAMPLERS["sl_toy"].calls(6) and seen[-1] == {"kind": SD, "gain": 1}
    validate_sigmas(result.sigmas)
    assert torch.equal(result.sigmas, toy_sigmas(SD, 6))
    assert torch.equal(schedule_table.schedule_sigmas("sl_toy_schedule", SD, 6, power=2.0), toy_sigmas(SD, 6, 2.0))
    catalogue.bind_sampler("sl_toy(gain=3)", SD)(g.denoiser, noise, result.sigmas)
    assert seen[-1] == {"kind": SD, "gain": 3}


def test_the_toy_schedule_reaches_the_scheduler_node_and_the_lab(toy):
    from schedule_lab.lab.benchmarks import methods
    from schedule_lab.lab.cli.compare import default_samplers, default_schedules

    assert torch.equal(schedule_ops.pack_schedule(SD, "sl_toy_schedule", 6, 1.0), toy_sigmas(SD, 6).float())
    assert "sl_toy" in methods.sampler_names() and "sl_toy_schedule" in methods.schedule_names()
    assert "sl_toy" in default_samplers() and "sl_toy_schedule" in default_schedules()


def test_the_scheduler_node_lists_the_toy_schedule(toy, v3):
    schema = v3.nodes["SL_Scheduler"].define_schema()
    combo = next(i for i in schema.inputs if i.id == "scheduler")
    assert combo.options[-1] == "sl_toy_schedule"
