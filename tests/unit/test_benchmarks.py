"""The benchmark harness and the compare job: peers reproduce our samplers, NFE is counted, outputs are written."""
from __future__ import annotations

import json

import pytest
import torch

from schedule_lab.benchmarks import methods as M
from schedule_lab.benchmarks.peers import ddim_sigmas, sample_diffusers
from schedule_lab.schedules.baseline import ays, karras
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers.classic import sample_dpmpp_2m, sample_euler
from schedule_lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.testbeds.metrics import NFECounter

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
        counter = NFECounter(g)
        sample_diffusers(name, counter, x_T, sigmas=karras(7, SD.sigma_min, SD.sigma_max))
        assert counter.nfe == 7, name


def test_second_order_sampler_gets_the_steps_that_fit_the_nfe_budget():
    heun = M.sampler_methods(SD, ["heun"], ["karras"])[0]
    # Heun: 2 NFE per step, 1 on the last step to σ = 0 → 2·steps − 1.
    assert [(M.steps_for_nfe(heun, n), M.count_nfe(heun, M.steps_for_nfe(heun, n))) for n in (5, 10, 20)] == [
        (3, 5), (5, 9), (10, 19)]


def test_nfe_counted_on_a_real_run_matches_the_probe(gauss):
    g, x_T = gauss
    heun = M.sampler_methods(SD, ["heun"], ["ays"])[0]
    counter = NFECounter(g)
    heun.run(counter, x_T, 4)
    assert counter.nfe == M.count_nfe(heun, 4) == 7


def test_a_sampler_with_noise_of_its_own_is_flagged_stochastic():
    def noisy_euler(model, x, sigmas, extra_args=None, **kw):
        gen = torch.Generator().manual_seed(extra_args["seed"])
        return sample_euler(model, x, sigmas) + 1e-3 * torch.randn(x.shape, generator=gen)

    euler = M.sampler_methods(SD, ["euler"], ["karras"])[0]
    noisy = M.Method("noisy", "karras", "test", M._k_run(noisy_euler, euler.sigmas), euler.sigmas)
    assert M.is_stochastic(noisy) and not M.is_stochastic(euler)


def test_harness_writes_valid_json_with_floors(tmp_path, monkeypatch):
    from schedule_lab.benchmarks.run import main

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
    from schedule_lab.benchmarks.comfy_worker import run_comfy

    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    results, note = run_comfy("exact-digits", "sd1", ["euler"], ["karras"], [5], {0: torch.zeros(2, 64)})
    assert results is None and "COMFYUI_PATH" in note


def test_compare_cli_writes_grid_plot_and_a_table_row_per_combination(tmp_path):
    from schedule_lab.benchmarks.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--steps", "2", "--samplers", "euler", "heun", "--schedulers", "karras", "ays",
                 "--columns", "2", "--n-samples", "16", "--out", str(out)]) == 0
    for png in ("grid.png", "schedules.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((out / "table.json").read_text())
    assert [(r["sampler"], r["schedule"]) for r in table["rows"]] == [
        ("euler", "karras"), ("euler", "ays"), ("heun", "karras"), ("heun", "ays")]
    assert (out / "table.md").read_text().count("\n| ") == 1 + 4  # header + one line per combination


def test_compare_defaults_include_every_registered_sampler_and_scheduler():
    from schedule_lab.benchmarks.compare import default_samplers, default_schedules
    from schedule_lab.nodes.registry import SAMPLERS, SCHEDULERS

    assert set(SAMPLERS) | {"euler", "dpmpp_2m"} <= set(default_samplers())
    fixed = {n for n, e in SCHEDULERS.items() if not e.saved_files}  # sl_searched needs the user's saved searches
    assert fixed | {"karras", "ays"} <= set(default_schedules(SD))


def test_compare_cli_rejects_an_unknown_name_listing_the_valid_ones(capsys):
    from schedule_lab.benchmarks.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "--samplers", "no_such_sampler"])
    err = capsys.readouterr().err
    assert "no_such_sampler" in err and "dpmpp_2m" in err
