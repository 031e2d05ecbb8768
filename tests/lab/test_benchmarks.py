"""The benchmark harness: peers reproduce our samplers, NFE is counted, outputs are written (compare: test_compare)."""
from __future__ import annotations

import json

import pytest
import torch

from schedule_lab.lab.benchmarks import methods as M
from schedule_lab.lab.benchmarks.peers import ddim_sigmas, sample_diffusers
from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.schedules.baseline import ays, karras
from schedule_lab.schedules.model_calls import CountedModel
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers.classic import sample_dpmpp_2m, sample_euler

pytest.importorskip("diffusers")
# diffusers 0.42 calls np.array(tensor, copy=False) internally; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SD = ModelKind.vp("eps")
#: diffusers' multistep step() works in float32 whatever the input dtype, so agreement is at float32 rounding
#: (measured ≤ 1e-6 on this testbed); 1e-5 leaves a margin and still fails on any algorithmic difference (≥ 1e-3).
PEER_TOL = 1e-5


@pytest.fixture(scope="module")
def gauss():
    g = GaussianTestbed(16, mean=0.3, std=0.5)
    return g, g.sample_prior(64, SD.sigma_max, seed=0, dtype=torch.float32)


def _schedules(n):
    return {"karras": karras(n, SD.sigma_min, SD.sigma_max), "ays": ays(n, "sd1")}


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_diffusers_dpmsolver_reproduces_our_dpmpp_2m_on_the_same_sigmas(gauss, steps):
    g, x_T = gauss
    for sigmas in _schedules(steps).values():
        ours = sample_dpmpp_2m(g, x_T, sigmas)
        peer = sample_diffusers("diffusers.DPMSolverMultistep", g, x_T, sigmas=sigmas)
        assert (ours - peer).abs().max() < PEER_TOL


def test_diffusers_euler_and_ddim_reproduce_our_euler(gauss):
    g, x_T = gauss
    sigmas = karras(10, SD.sigma_min, SD.sigma_max)
    assert (sample_diffusers("diffusers.EulerDiscrete", g, x_T, sigmas=sigmas)
            - sample_euler(g, x_T, sigmas)).abs().max() < PEER_TOL
    x64 = x_T.double()
    assert (sample_diffusers("diffusers.DDIM", g, x64, steps=10)
            - sample_euler(g, x64, ddim_sigmas(10))).abs().max() < PEER_TOL


def test_unipc_flow_route_is_a_different_solver_but_converges_to_the_exact_endpoint(gauss):
    g, x_T = gauss
    exact = g.ode_endpoint(x_T, SD.sigma_max)
    errors = [float((sample_diffusers("diffusers.UniPCMultistep", g, x_T,
                                      sigmas=karras(n, SD.sigma_min, SD.sigma_max)) - exact).abs().max())
              for n in (10, 40)]
    assert errors[1] < errors[0] / 4 and errors[1] < 1e-2


def test_peers_count_one_nfe_per_step(gauss):
    g, x_T = gauss
    for name in ("diffusers.DPMSolverMultistep", "diffusers.UniPCMultistep", "diffusers.EulerDiscrete"):
        counter = CountedModel(g)
        sample_diffusers(name, counter, x_T, sigmas=karras(7, SD.sigma_min, SD.sigma_max))
        assert counter.calls == 7, name


def test_second_order_sampler_gets_the_steps_that_fit_the_nfe_budget():
    heun = M.sampler_methods(SD, ["heun"], ["karras"])[0]
    # Heun: 2 NFE per step, 1 on the last step to σ = 0 → 2·steps − 1.
    assert [(M.steps_for_nfe(heun, n), M.count_nfe(heun, M.steps_for_nfe(heun, n))) for n in (5, 10, 20)] == [
        (3, 5), (5, 9), (10, 19)]


def test_nfe_counted_on_a_real_run_matches_the_probe(gauss):
    g, x_T = gauss
    heun = M.sampler_methods(SD, ["heun"], ["ays"])[0]
    counter = CountedModel(g)
    result = heun.run(counter, x_T, 4, sigma_start=1.0)
    assert counter.calls == result.nfe == M.count_nfe(heun, 4) == 7


def test_a_sampler_with_noise_of_its_own_is_flagged_stochastic():
    def noisy_euler(model, x, sigmas, extra_args=None, **kw):
        gen = torch.Generator().manual_seed(extra_args["seed"])
        return sample_euler(model, x, sigmas) + 1e-3 * torch.randn(x.shape, generator=gen)

    euler = M.sampler_methods(SD, ["euler"], ["karras"])[0]
    noisy = M.Method("noisy", "karras", "test", euler.sigmas, SD, noisy_euler)
    assert M.is_stochastic(noisy) and not M.is_stochastic(euler)


def test_harness_writes_valid_json_with_floors(tmp_path, monkeypatch):
    from schedule_lab.lab.benchmarks.run import main

    monkeypatch.setenv("SCHEDULE_LAB_CACHE", str(tmp_path / "cache"))
    main(["--testbed", "exact-digits", "--nfe", "3", "--seeds", "0", "1", "--n-samples", "24",
          "--samplers", "euler", "heun", "--schedules", "karras", "ays", "--peers", "diffusers.DPMSolverMultistep",
          "--comfy-samplers", "--ref-steps", "20", "--out", str(tmp_path), "--name", "t"])
    doc = json.loads((tmp_path / "t.json").read_text())
    tb = doc["testbeds"][0]
    assert doc["schema"] == "schedule-lab/benchmark/v1" and doc["threads"] == torch.get_num_threads()
    assert len(tb["rows"]) == 6  # (euler, heun, DPMSolverMultistep) × (karras, ays)
    heun = next(r for r in tb["rows"] if r["sampler"] == "heun")
    assert heun["steps"] == 2 and heun["nfe"] == [3, 3]
    assert all(len(r["fd_cls"]) == 2 and "swd" in r["mean"] and "mode_agreement" in r["std"] for r in tb["rows"])
    floors = {f["name"].split(" (")[0]: f for f in tb["floors"]}
    assert floors["converged ODE"]["rmse"] == 0.0 and len(floors["converged ODE"]["fd_cls"]) == 2
    assert floors["test split vs train split"]["fd_cls"] > 0
    assert tb["cross_check"] and max(c["max_abs_diff"] for c in tb["cross_check"]) < 1e-3
    assert "**Floors**" in (tmp_path / "t.md").read_text()


def test_comfy_rows_are_skipped_with_a_note_without_comfyui_path(monkeypatch):
    from schedule_lab.lab.benchmarks.comfy_worker import run_comfy

    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    results, note = run_comfy("exact-digits", "sd1", ["euler"], ["karras"], [5], {0: torch.zeros(2, 64)})
    assert results is None and "COMFYUI_PATH" in note


def test_sampler_options_parse_and_reach_the_sampler():
    assert M.parse_sampler("sl_tada(detail=2,order=3)") == ("sl_tada", {"detail": 2.0, "order": 3})
    assert M.parse_sampler("euler") == ("euler", {})
    for bad in ("sl_tada(detail=2", "sl_tada(detail)", "sl_tada(detail=high)"):
        with pytest.raises(ValueError, match="sl_tada"):
            M.parse_sampler(bad)
    g = GaussianTestbed(16)
    x_T = g.sample_prior(8, SD.sigma_max, seed=0, dtype=torch.float32)
    a, b = (M.sampler_methods(SD, [f"sl_tada(detail={d})"], ["karras"])[0] for d in (0.5, 4))
    assert a.sampler == "sl_tada(detail=0.5)" and a.own_endpoint is not None
    # detail changes the extra state, so the same x_T and seed give different samples
    assert not torch.allclose(a.run(g.denoiser, x_T, 4, 0, 1.0).x0, b.run(g.denoiser, x_T, 4, 0, 1.0).x0)
    assert M.sampler_methods(SD, ["euler"], ["karras"])[0].own_endpoint is None


def test_tada_own_endpoint_is_what_many_steps_converge_to():
    """The own-ODE yardstick: few-step TADA error to it shrinks with steps, and it differs from the standard ODE."""
    g = GaussianTestbed(16, mean=0.3, std=0.5)
    x_T = g.sample_prior(256, SD.sigma_max, seed=0, dtype=torch.float64)
    # the integrator pinned (on karras the default is "2m", docs/defaults.md §8: DPM-Solver++(2M) on TADA's state,
    # luckier at 5 steps than at 10 on this Gaussian, so monotone from 10 steps)
    for spec, start in (("sl_tada(detail=1,integrator=ab)", 0), ("sl_tada(detail=1,integrator=2m)", 1)):
        m = M.sampler_methods(SD, [spec], ["karras"])[0]
        own = m.own_endpoint(g.denoiser, x_T, 7, karras(400, SD.sigma_min, SD.sigma_max, dtype=torch.float64))
        errs = [float((m.run(g.denoiser, x_T, n, 7, 1.0).x0 - own).square().mean().sqrt()) for n in (5, 10, 20, 40)]
        assert all(b < a for a, b in zip(errs[start:], errs[start + 1:], strict=False)), (spec, errs)
        assert errs[-1] < 0.2 * errs[0]
        ode = g.ode_endpoint(x_T, SD.sigma_max)
        assert float((own - ode).square().mean().sqrt()) > 10 * errs[-1]  # a different endpoint: extra noise


def _target_tb(tada_5, tada_by_nfe, peer_5=1.0, peer_20=0.9, floor=0.8):
    def row(sampler, source, nfe, value):
        return {"sampler": sampler, "schedule": "karras", "source": source, "nfe_target": nfe,
                "mean": {"fd_cls": value, "swd": value, **({"rmse_own": value} if "tada" in sampler
                                                             else {"rmse": value})}}
    rows = [row("diffusers.X", "diffusers", 5, peer_5), row("diffusers.X", "diffusers", 20, peer_20),
            row("diffusers.Y", "diffusers", 5, peer_5 + 0.5), row("sl_tada(detail=1)", "registry, stochastic", 5,
                                                                   tada_5)]
    rows += [row("sl_tada(detail=1)", "registry, stochastic", n, v) for n, v in tada_by_nfe.items()]
    return {"name": "t", "rows": rows, "floors": [{"fd_cls": [floor, floor], "swd": [floor, floor]}]}


def test_tada_targets_read_the_match_nfe_and_the_ratios_off_the_rows():
    from schedule_lab.lab.benchmarks.tada_targets import tada_targets, targets_markdown

    tb = _target_tb(0.85, {6: 0.95, 7: 0.88, 20: 0.8})
    t = tada_targets(tb)
    fd = t["fd_cls"]
    assert fd["peer_20"]["value"] == 0.9 and fd["peer_5"]["label"] == "diffusers.X / karras"
    (r,) = fd["tada"]
    assert r["match_nfe"] == 5 and r["ratio_raw"] == pytest.approx(0.85)
    assert r["ratio_excess"] == pytest.approx(0.05 / 0.2)
    assert t["endpoint"]["tada"][0]["ratio_excess"] == pytest.approx(0.85)  # floor 0: raw = excess
    assert "both met" in targets_markdown(tb, t)
    missed = tada_targets(_target_tb(1.2, {8: 0.91, 20: 0.95}))["fd_cls"]["tada"][0]
    assert missed["match_nfe"] is None and missed["ratio_excess"] == pytest.approx(2.0)
    assert tada_targets({"rows": [r for r in tb["rows"] if "tada" not in r["sampler"]], "floors": []}) is None


def test_harness_scores_tada_against_its_own_ode_and_writes_the_targets(tmp_path, monkeypatch):
    from schedule_lab.lab.benchmarks.run import main

    monkeypatch.setenv("SCHEDULE_LAB_CACHE", str(tmp_path / "cache"))
    main(["--testbed", "edm-digits", "--nfe", "5", "20", "--seeds", "0", "--n-samples", "24",
          "--samplers", "sl_tada(detail=2)", "--schedules", "karras", "--peers", "diffusers.EulerDiscrete",
          "--comfy-samplers", "--ref-steps", "30", "--out", str(tmp_path), "--name", "t"])
    tb = json.loads((tmp_path / "t.json").read_text())["testbeds"][0]
    tada = [r for r in tb["rows"] if r["sampler"] == "sl_tada(detail=2)"]
    assert len(tada) == 2 and all("rmse_own" in r["mean"] and "rmse" not in r["mean"] for r in tada)
    assert tada[1]["mean"]["rmse_own"] < tada[0]["mean"]["rmse_own"]  # 20 NFE is closer to its own endpoint
    assert tb["tada_targets"]["endpoint"]["peer_20"]["label"] == "diffusers.EulerDiscrete / karras"
    assert "#### TADA targets on edm-digits" in (tmp_path / "t.md").read_text()


def test_overhead_report_judges_the_ten_step_ratio_against_one_percent():
    from schedule_lab.lab.benchmarks.tada_overhead import markdown, sampler_overhead
    from schedule_lab.solvers.tada import sample_tada

    seconds = sampler_overhead(sample_tada, 3, latent=(1, 4, 8, 8), repeats=2)
    assert 0 < seconds < 1

    def result(per_step):
        r = {"per_step_10_s": per_step, "per_step_30_s": per_step, "marginal_s": per_step,
             "ratio_10": per_step / 2.0, "ratio_30": per_step / 2.0, "ratio_marginal": per_step / 2.0}
        return {"unet_forward_s": 2.0, "unet_parameters": 860e6, "latent": [1, 4, 64, 64], "torch": "x",
                "machine": "y", "threads": 1, "samplers": {"sl_tada (n_aug 2, order 2)": r}}

    assert "| met |" in markdown(result(0.019), "cmd") and "| missed |" in markdown(result(0.021), "cmd")


def test_the_results_writer_writes_markdown_json_and_the_summary_it_prints(tmp_path):
    from schedule_lab.lab.benchmarks.report import write_results

    said = []
    md = write_results(tmp_path / "r", "x", "# table\n", {"rows": [1.5]}, "| ratio | 0.8 |\n", log=said.append)
    assert md.read_text() == "# table\n" and (tmp_path / "r" / "x_summary.md").read_text() == "| ratio | 0.8 |\n"
    assert json.loads((tmp_path / "r" / "x.json").read_text()) == {"rows": [1.5]}
    assert said[0] == "| ratio | 0.8 |\n" and "x.json" in said[1]
    write_results(tmp_path / "s", "y", "only\n", log=said.append)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["y.md"]
