"""The method tables (solvers/catalogue.py SAMPLERS, schedules/catalogue.py SCHEDULES): flags and call counts true
to behaviour, checked against the Gaussian testbed's closed-form ODE; ``run`` is the one way a cell is made (compare
and the benchmarks agree)."""
from __future__ import annotations

import pytest
import torch

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.schedules import ModelKind, ScheduleError, karras, validate_sigmas
from schedule_lab.schedules import catalogue as S
from schedule_lab.schedules.constant_rate.calibrate import schedule as constant_rate_schedule
from schedule_lab.schedules.constant_rate.construct import Velocity, data_free_velocity, default_schedule_settings
from schedule_lab.solvers import catalogue as C

SD = ModelKind.vp("eps")
ODE_SAMPLERS = [n for n, e in C.SAMPLERS.items() if not e.adaptive and not e.stochastic]
FIXED_STEP = [n for n, e in C.SAMPLERS.items() if not e.adaptive]
OWN_ODE = [n for n, e in C.SAMPLERS.items() if e.own_ode]


def _rmse(a, b) -> float:
    return float((a - b).double().square().mean().sqrt())


@pytest.fixture(scope="module")
def gauss():
    g = GaussianTestbed(16, mean=0.3, std=0.5)
    return g, g.sample_prior(64, SD.sigma_max, seed=0, dtype=torch.float64)


@pytest.mark.parametrize("name", ODE_SAMPLERS)
def test_every_deterministic_sampler_converges_to_the_exact_ode_endpoint(gauss, name):
    """The exact endpoint of a schedule ending σ_min → 0: the ODE solved in closed form down to σ_min, then the
    denoiser (the last step of every sampler here is that read-out)."""
    g, x_T = gauss
    at_min = g.ode_solution(x_T, torch.tensor(SD.sigma_max, dtype=torch.float64),
                            torch.tensor(SD.sigma_min, dtype=torch.float64))
    exact = g.denoiser(at_min, torch.full((len(x_T),), SD.sigma_min, dtype=torch.float64))
    errors = [_rmse(C.run(name, karras(n, SD.sigma_min, SD.sigma_max, dtype=torch.float64), g.denoiser, x_T,
                          sigma_start=1.0).x0, exact) for n in (10, 40, 160)]
    assert errors[1] < errors[0] / 2 and errors[2] < errors[1] / 2, errors
    assert errors[2] < 1e-2, errors


@pytest.mark.parametrize("name", FIXED_STEP)
@pytest.mark.parametrize("steps", [1, 3, 7])
def test_counted_model_calls_equal_the_documented_calls(gauss, name, steps):
    g, x_T = gauss
    result = C.run(name, "karras", g.denoiser, x_T[:2], kind=SD, steps=steps)
    assert result.nfe == C.SAMPLERS[name].calls(steps)
    assert len(result.sigmas) == steps + 1 and result.schedules is None


@pytest.mark.parametrize("name", [n for n, e in C.SAMPLERS.items() if e.self_contained])
def test_the_stochastic_flag_says_whether_the_seed_changes_the_endpoint(gauss, name):
    g, x_T = gauss
    a, b, again = (C.run(name, "karras", g.denoiser, x_T[:8], kind=SD, steps=5, seed=s, sigma_start=1.0).x0
                   for s in (0, 1, 0))
    assert torch.equal(a, again)  # a seed reproduces
    assert (not torch.equal(a, b)) == C.SAMPLERS[name].stochastic


@pytest.mark.parametrize("name", OWN_ODE)
def test_own_ode_samplers_converge_to_their_own_endpoint_not_the_standard_one(gauss, name):
    g, x_T = gauss
    # one ODE for every step count: a bare sl_tada follows the per-NFE defaults (a different detail, i.e. a
    # different ODE, at 10 steps than at 400), so its options are pinned here
    # ... and its integrator (on karras the default is "2m", docs/defaults.md §8)
    names = {"sl_tada": ["sl_tada(detail=1,order=2,integrator=ab)", "sl_tada(detail=1,order=2,integrator=2m)"]}
    for spec in names.get(name, [name]):
        own = C.run(spec, karras(400, SD.sigma_min, SD.sigma_max, dtype=torch.float64), g.denoiser, x_T, kind=SD,
                    seed=7, sigma_start=1.0).x0
        errors = [_rmse(C.run(spec, karras(n, SD.sigma_min, SD.sigma_max, dtype=torch.float64), g.denoiser, x_T,
                              kind=SD, seed=7, sigma_start=1.0).x0, own) for n in (5, 10, 20, 40)]
        # 2m (DPM-Solver++(2M) on TADA's state) is luckier at 5 steps than at 10 on this Gaussian: monotone from 10
        start = 1 if "2m" in spec else 0
        assert all(b < a for a, b in zip(errors[start:], errors[start + 1:], strict=False)), (spec, errors)
        assert errors[-1] < 0.2 * errors[0], (spec, errors)
        assert _rmse(own, g.ode_endpoint(x_T, SD.sigma_max)) > 10 * errors[-1]


def test_an_adaptive_sampler_reports_the_schedule_each_image_took_and_its_own_call_count(gauss):
    g, x_T = gauss

    def every_other_step(model, x, sigmas, extra_args=None, callback=None, disable=None):
        """Skips every other sigma; image 0 stops one step early (a per-image decision)."""
        taken = sigmas[::2] if len(sigmas) % 2 else torch.cat([sigmas[:-1:2], sigmas[-1:]])
        for i in range(len(taken) - 1):
            d = model(x, taken[i] * x.new_ones([x.shape[0]]))
            x = x + (x - d) / taken[i] * (taken[i + 1] - taken[i])
        per_image = [taken if b else torch.cat([taken[:-2], taken[-1:]]) for b in range(x.shape[0])]
        callback({"x": x, "i": len(taken) - 2, "sigma": taken[-2], "sigma_hat": taken[-2], "denoised": d,
                  "schedules": per_image})
        return x

    result = C.run(every_other_step, "karras", g.denoiser, x_T[:3], kind=SD, steps=8)
    assert result.nfe == 4 != len(result.sigmas) - 1
    assert [len(s) for s in result.schedules] == [4, 5, 5]


def test_options_in_the_name_win_over_provided_model_settings_which_win_over_defaults(gauss):
    g, x_T = gauss

    def detail_used(spec, provided=None):
        return C.run(spec, "karras", g.denoiser, x_T[:8], kind=SD, steps=4, seed=3, provided=provided).x0

    assert torch.equal(detail_used("sl_tada", {"detail": 3.0}), detail_used("sl_tada(detail=3)"))
    assert torch.equal(detail_used("sl_tada(detail=2)", {"detail": 3.0}), detail_used("sl_tada(detail=2)"))
    assert not torch.equal(detail_used("sl_tada"), detail_used("sl_tada(detail=3)"))
    assert torch.equal(detail_used("sl_tada", {"velocity": 1}), detail_used("sl_tada"))  # not needed: ignored


@pytest.mark.parametrize("steps", [4, 5, 10])
def test_sl_tada_without_a_detail_setting_runs_the_per_nfe_default_of_the_defaults_study(gauss, steps):
    """KSampler's sl_tada without a Detail Level node (the catalogue entry's defaults, which nodes/registry copies)
    samples with tada.default_settings(steps), not the node widget's detail 1 (docs/defaults.md §5)."""
    from schedule_lab.solvers import tada

    g, x_T = gauss
    kind = ModelKind.edm()
    detail, order = tada.default_settings(steps, kind)
    got = C.run("sl_tada", "karras", g.denoiser, x_T[:8], kind=kind, steps=steps, seed=3).x0
    want = C.run(f"sl_tada(detail={detail},order={order})", "karras", g.denoiser, x_T[:8], kind=kind, steps=steps,
                 seed=3).x0
    assert torch.equal(got, want)
    if detail != tada.DEFAULT_DETAIL:
        assert not torch.equal(got, C.run("sl_tada(detail=1)", "karras", g.denoiser, x_T[:8], kind=kind,
                                           steps=steps, seed=3).x0)


@pytest.mark.parametrize("kind", [SD, ModelKind.edm(), ModelKind.flow()], ids=["vp", "edm", "flow"])
@pytest.mark.parametrize("name", [n for n, e in S.SCHEDULES.items() if e.self_contained])
def test_every_self_contained_schedule_is_a_valid_sigma_list_for_every_kind(name, kind):
    for steps in (1, 10):
        sigmas = S.schedule_sigmas(name, kind, steps)
        assert len(sigmas) == steps + 1 and float(sigmas[-1]) == 0.0
        validate_sigmas(sigmas)


def test_constant_rate_uses_a_provided_calibration_else_the_data_free_default():
    lam = torch.linspace(-3, 6, 40, dtype=torch.float64)
    bump = Velocity(lam, 1 + 4 * torch.exp(-(lam - 1) ** 2), "vx", {})
    edm = ModelKind.edm()  # EDM models use a calibration at 4 and 6 steps (docs/defaults.md §14)
    measured = S.schedule_sigmas("sl_constant_rate", edm, 6, {"velocity": bump})
    assert torch.equal(measured, constant_rate_schedule(bump, edm, 6))
    # the data-free default is the per-step-count one of docs/defaults.md (velocity, xi and last interval)
    data_free = data_free_velocity(default_schedule_settings(6, edm)["measure"], edm)
    assert torch.equal(S.schedule_sigmas("sl_constant_rate", edm, 6), constant_rate_schedule(data_free, edm, 6))
    assert not torch.allclose(measured, S.schedule_sigmas("sl_constant_rate", edm, 6))
    # at 8 steps the calibration measured worse than the data-free list on the 3072-d EDM model (§14): not used
    assert torch.equal(S.schedule_sigmas("sl_constant_rate", edm, 8, {"velocity": bump}),
                       S.schedule_sigmas("sl_constant_rate", edm, 8))
    # SD1-type (eps) models: the calibration measured worse than the data-free list at every step count (§10b)
    assert torch.equal(S.schedule_sigmas("sl_constant_rate", SD, 8, {"velocity": bump}),
                       S.schedule_sigmas("sl_constant_rate", SD, 8))


def test_searched_without_saved_files_is_an_error_naming_the_search_node():
    assert not S.SCHEDULES["sl_searched"].self_contained
    with pytest.raises(ScheduleError, match="Timestep Search"):
        S.schedule_sigmas("sl_searched", SD, 4)


def test_an_unknown_name_lists_the_catalogue():
    with pytest.raises(KeyError, match="dpmpp_2m"):
        C.bind_sampler("no_such_sampler")
    with pytest.raises(ValueError, match="kind= and steps="):
        C.run("euler", "karras", lambda x, s: x, torch.zeros(1, 2))


def test_compare_and_the_benchmark_make_identical_cells_through_run(tmp_path, monkeypatch):
    from schedule_lab.lab.benchmarks import methods as M
    from schedule_lab.lab.cli import compare as cmp
    from schedule_lab.lab.testbeds.models import load_edm_mlp

    cells = []
    real_run = C.run

    def recording(sampler, schedule, model, noise, **kw):
        result = real_run(sampler, schedule, model, noise, **kw)
        cells.append((sampler, schedule, noise, kw["seed"], result))
        return result

    monkeypatch.setattr(C, "run", recording)
    cmp.compare(3, ["heun", "sl_tada(detail=2)"], ["karras"], 5, 1, 8, tmp_path, sigma_range="sd1", log=lambda m: 0,
                model="digits")
    monkeypatch.setattr(C, "run", real_run)
    model = load_edm_mlp()
    assert [c[0] for c in cells] == ["heun", "sl_tada(detail=2)"]
    for sampler, schedule, noise, seed, result in cells:
        (method,) = M.sampler_methods(SD, [sampler], [schedule])
        bench = method.run(model, noise, 3, seed)
        assert torch.equal(bench.x0, result.x0) and torch.equal(bench.sigmas, result.sigmas)
        assert bench.nfe == result.nfe == C.SAMPLERS[C.parse_sampler(sampler)[0]].calls(3)


def test_the_registry_is_a_leaf_that_names_catalogue_entries_only():
    import ast
    from pathlib import Path

    from schedule_lab.nodes import registry

    tree = ast.parse((Path(registry.__file__)).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and n.module != "__future__"]
    assert imports == [], "nodes/registry.py only names dropdown entries; it imports nothing"
    assert all(S.SCHEDULES[name].ours for name in registry.DROPDOWN_SCHEDULERS)
    assert all(C.SAMPLERS[name].ours and "kind" in C.SAMPLERS[name].needs for name in registry.DROPDOWN_SAMPLERS)


def test_every_need_of_an_entry_is_in_the_one_needs_vocabulary():
    for table in (C.SAMPLERS, S.SCHEDULES):
        for name, item in table.items():
            assert set(item.needs) <= set(S.NEEDS), name
    assert {need.source for need in S.NEEDS.values()} == {"kind", "model", "files"}
    assert S.model_needs(("kind", "detail", "velocity", "tpdm", "schedule_paths")) == ("detail", "velocity", "tpdm")


def test_schedule_options_win_over_provided_settings_which_win_over_defaults():
    lam = torch.linspace(-3, 6, 40, dtype=torch.float64)
    bump = Velocity(lam, 1 + 4 * torch.exp(-(lam - 1) ** 2), "vx", {})
    assert torch.equal(S.schedule_sigmas("karras", SD, 6, {"velocity": bump}), karras(6, SD.sigma_min, SD.sigma_max))
    assert torch.equal(S.schedule_sigmas("karras", SD, 6, rho=3.0), karras(6, SD.sigma_min, SD.sigma_max, 3.0))
    assert torch.equal(S.schedule_sigmas("sl_constant_rate", SD, 8, {"velocity": bump}, xi=2.0),
                       constant_rate_schedule(bump, SD, 8, xi=2.0))


def test_deprecated_entries_log_why_once_and_still_give_the_same_list(caplog):
    """docs/defaults.md §15: the Align Your Steps entries stay (saved workflows reproduce), say they are deprecated
    first in their description, and log it once per process when run."""
    import logging

    from schedule_lab.schedules import catalogue as cat
    from schedule_lab.schedules.for_model import ays_for_model
    from schedule_lab.schedules.model_kind import ModelKind

    kind = ModelKind.vp("eps")
    for name, table in (("sl_ays_sd1", "sd1"), ("sl_ays_sdxl", "sdxl")):
        item = cat.SCHEDULES[name]
        assert item.description.startswith("Deprecated") and "sl_constant_rate" in item.deprecated
        cat._WARNED.discard(name)
        with caplog.at_level(logging.WARNING, logger="schedule_lab"):
            first = cat.schedule_sigmas(name, kind, 8)
            again = cat.schedule_sigmas(name, kind, 10)
        said = [r for r in caplog.records if name in r.getMessage()]
        assert len(said) == 1 and "AlignYourStepsScheduler" in said[0].getMessage()
        assert torch.equal(first, ays_for_model(kind, 8, table)) and len(again) == 11
        caplog.clear()
    assert not any(s.deprecated for n, s in cat.SCHEDULES.items() if n != "sl_ays_sd1" and n != "sl_ays_sdxl")
