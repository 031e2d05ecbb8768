"""The menu benchmark's bookkeeping (benchmarks.menu_bench) and the KID metric, without the ComfyUI host."""
import json
import math
import os

import pytest
import torch

from schedule_lab.lab.benchmarks import menu_bench as mb
from schedule_lab.lab.testbeds.metrics import kid
from schedule_lab.schedules.catalogue import schedule_sigmas
from schedule_lab.schedules.model_kind import ModelKind


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same = kid(a, b)
    shifted = kid(a, b + 0.5)
    assert abs(same) < 0.01 < shifted
    assert kid(a, b + 1.0) > shifted


def test_flux_setting_is_sd3_shift_exp_mu():
    # ComfyUI's flux_time_shift(mu, 1, t) = e^mu / (e^mu + 1/t - 1) equals SD3's shift t/(1 + (shift - 1) t)
    from schedule_lab.schedules.model_kind import flow_shift

    mu = 1.15
    for t in (0.1, 0.5, 0.9):
        flux = math.exp(mu) / (math.exp(mu) + (1 / t - 1))
        assert abs(flow_shift(t, math.exp(mu)) - flux) < 1e-12
    assert abs(mb.SETTINGS["flow-768/flux"].kind.shift - math.exp(mu)) < 1e-12


def _fake_cache(tmp_path):
    cache = mb.Cache(tmp_path / "rows.json")
    seed = mb.PARTS["tuning"][0]
    es = {("euler", "simple"): 0.30, ("dpmpp_2m", "simple"): 0.10, ("heun", "karras"): 0.20,
          ("deis", "beta"): 0.15, ("lms", "simple"): 0.5, ("ipndm", "karras"): 0.12, ("uni_pc", "beta"): 0.11,
          ("gradient_estimation", "simple"): 0.13}
    for (sa, sc), e in es.items():
        cache.rows[mb._key("E", "menu", sa, sc, 4, 8, seed)] = {"E": e, "nfe": 4, "steps": 4, "sigmas": []}
    return cache, seed


def test_candidates_are_the_lowest_error_rows_plus_the_stock_default(tmp_path):
    cache, seed = _fake_cache(tmp_path)
    setting = mb.SETTINGS["flow-768/shift3"]
    got = mb.candidates(cache, setting, 4, 8, seed)
    assert got[:mb.CANDIDATES] == [("dpmpp_2m", "simple"), ("uni_pc", "beta"), ("ipndm", "karras"),
                                   ("gradient_estimation", "simple"), ("deis", "beta"), ("heun", "karras")]
    assert got[-1] == ("euler", "simple")  # the flow family's stock default, 7th although its E is high


def test_tables_name_the_best_pairs_and_the_disagreements(tmp_path):
    cache, seed = _fake_cache(tmp_path)
    n = 16
    d = {("dpmpp_2m", "simple"): (2.0, 1.0, 0.05), ("uni_pc", "beta"): (1.5, 0.5, 0.07),
         ("euler", "simple"): (3.0, 2.0, 0.04)}
    for pair, (fd, k, sw) in d.items():
        cache.rows[mb._key("D", "menu", *pair, 4, n, seed)] = {"FD": fd, "KID": k, "SW2": sw}
    text, summary = mb.tables("flow-768/shift3", "tuning", [4], 8, n, cache)
    s = summary["4"]
    assert s["menu_best_E"][:2] == ["dpmpp_2m", "simple"] and s["menu_best_FD"][:2] == ["uni_pc", "beta"]
    assert s["stock_E_ratio"] == 3.0 and s["stock_FD_ratio"] == 2.0
    assert "best by SW2 is euler + simple (menu)" in text and "FD picks uni_pc + beta" in text


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH") and not os.environ.get("CI"),  # CI prepares the host first
                    reason="needs ComfyUI's code: eval \"$(../shared/host/comfyui-host.sh)\" sets COMFYUI_PATH / "
                    "COMFYUI_PYTHON")
def test_the_menu_rows_come_from_comfyuis_code_and_agree_with_the_pack():
    from schedule_lab.lab.benchmarks.comfy_worker import run_menu
    from schedule_lab.lab.benchmarks.setups import load_model
    from schedule_lab.solvers import catalogue

    z = torch.randn(2, 768, generator=torch.Generator().manual_seed(3))
    for name in ("flow-768/shift3", "flow-768/flux"):
        setting = mb.SETTINGS[name]
        rows, note = run_menu(setting.model, setting.sampling, ["euler", "uni_pc"], ["simple", "OptimalSteps_FLUX"],
                              [3], {0: z}, log=lambda m: None)
        assert note is None and len(rows) == 4
        by = {(r["sampler"], r["schedule"]): r for r in rows}
        # ComfyUI's simple on its ModelSamplingDiscreteFlow / ModelSamplingFlux == the pack's simple on the kind
        pack = catalogue.schedule_sigmas("simple", setting.kind, 3)
        assert torch.allclose(torch.tensor(by[("euler", "simple")]["sigmas"]), pack, atol=1e-5)
        # KSampler's rule for uni_pc: one more step, the penultimate sigma dropped; 3 model calls
        more = catalogue.schedule_sigmas("simple", setting.kind, 4)
        uni = by[("uni_pc", "simple")]
        assert torch.allclose(torch.tensor(uni["sigmas"]), torch.cat([more[:-2], more[-1:]]), atol=1e-5)
        assert uni["runs"][0]["nfe"] == 3
        # the OptimalSteps node's FLUX list starts below 1 (0.9968): ComfyUI's own list, not a pack copy
        assert abs(by[("euler", "OptimalSteps_FLUX")]["sigmas"][0] - 0.9968) < 1e-4
        # ComfyUI's Euler and the pack's Euler on the same sigmas, same model, same start: the same endpoint
        sig = torch.tensor(by[("euler", "simple")]["sigmas"])
        ours = catalogue.run("euler", sig, load_model(setting.model), z).x0
        assert torch.allclose(by[("euler", "simple")]["runs"][0]["x0"], ours, atol=1e-4)


# -- the README's "What to expect per model family" (lab/benchmarks/family_expectations.py) ------------------------

def test_family_expectations_are_the_summarys_numbers_and_the_readme_holds_them_as_generated():
    from pathlib import Path

    from schedule_lab.lab.benchmarks.family_expectations import RESULTS, expectations

    summary = json.loads((RESULTS / "menu_summary.json").read_text())
    rule = RESULTS / "menu_rule.json"
    generated = expectations(summary, json.loads(rule.read_text()) if rule.exists() else None)
    assert (RESULTS / "family_expectations.md").read_text() == generated, (
        "run python -m schedule_lab.lab.benchmarks.family_expectations")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [line for line in generated.splitlines() if line and line not in readme]
    assert missing == [], missing[:1]


def test_family_expectation_sentences_quote_the_cells_and_name_what_is_not_measured():
    from schedule_lab.lab.benchmarks.family_expectations import expectations

    cell = {"menu_best_E": ["ipndm", "beta", 0.05], "stock_E_ratio": 2.0, "pack_best_E": ["dpmpp_2m", "sl_x", 0.9],
            "tada_best_E_own": ["sl_tada", "simple", 1.3]}
    text = expectations({"flow-768/shift3": {"tuning": {"4": {**cell, "stock_E_ratio": 1.5,
                                                              "pack_best_E": ["dpmpp_2m", "sl_x", 1.2]},
                                                        "8": cell},
                                             "held_out": {"6": cell}}})
    sd3 = next(line for line in text.splitlines() if line.startswith("- **SD3"))
    assert "6 steps** (the zoo's flow model, held_out part)" in sd3  # held-out rows win over tuning rows
    assert "ipndm + beta at 6" in sd3 and "stock default is 2.00×" in sd3 and "(a tie or better: 0.90× at 6)" in sd3
    assert "--setting flow-768/shift3 --part held_out --stage error" in sd3
    tuning = expectations({"flow-768/shift3": {"tuning": {"4": {**cell, "stock_E_ratio": 1.5,
                                                                "pack_best_E": ["dpmpp_2m", "sl_x", 1.2]},
                                                          "8": cell}}})
    sd3 = next(line for line in tuning.splitlines() if line.startswith("- **SD3"))
    assert "4–8 steps** (the zoo's flow model, tuning part)" in sd3 and "1.50–2.00×" in sd3
    assert "0.90–1.20×" in sd3 and "0.90× at 8" in sd3 and "sl_tada on simple 1.30×" in sd3
    eps = next(line for line in tuning.splitlines() if line.startswith("- **SD1.5"))
    assert "not measured against ComfyUI's menu yet" in eps and "eps-768/sd1" in eps


def test_the_larger_models_clause_and_the_targets_table_quote_their_cells():
    from schedule_lab.lab.benchmarks.family_expectations import expectations, targets

    cell = {"menu_best_E": ["ipndm", "beta", 0.05], "stock_E_ratio": 2.0, "pack_best_E": ["dpmpp_2m", "sl_x", 0.9],
            "tada_best_E_own": ["sl_tada", "simple", 0.7]}
    win = {**cell, "pack_best_E": ["uni_pc", "sl_x", 0.75], "stock_E_ratio": 1.5}
    summary = {"flow-768/shift3": {"tuning": {"4": cell}}, "flow-3072/shift3": {"held_out": {"4": cell, "8": win}}}
    sd3 = next(line for line in expectations(summary).splitlines() if line.startswith("- **SD3"))
    assert ("On the 3072-d model (flow-3072/shift3, held-out part, 4–8 steps) the stock default is 1.50–2.00× and "
            "the pack's best schedule without a search (dpmpp_2m + sl_x, uni_pc + sl_x) 0.75–0.90×") in sd3
    flux = next(line for line in expectations(summary).splitlines() if line.startswith("- **Flux"))
    assert "3072-d" not in flux  # no larger model's rows for it
    table = targets(summary).splitlines()
    row4 = next(r for r in table if r.startswith("| flow-3072/shift3 | held_out | 4 |"))
    row8 = next(r for r in table if r.startswith("| flow-3072/shift3 | held_out | 8 |"))
    assert "dpmpp_2m + sl_x 0.90× | **no** | on simple 0.70× |" in row4 and "uni_pc + sl_x 0.75× | yes |" in row8
    assert any(r.startswith("| flow-768/shift3 | tuning | 4 |") for r in table)


def test_the_worker_gives_comfyuis_samplers_the_packs_lists_as_ksampler_would():
    """comfy_worker._menu_sigmas on an extra (pack) list: KSampler.calculate_sigmas asks a registered scheduler for
    steps + 1 when the sampler is in DISCARD_PENULTIMATE_SIGMA_SAMPLERS and drops the penultimate sigma; other
    samplers get the list for steps as it is."""
    from types import SimpleNamespace

    from schedule_lab.lab.benchmarks.comfy_worker import _menu_sigmas

    comfy_samplers = SimpleNamespace(KSampler=SimpleNamespace(DISCARD_PENULTIMATE_SIGMA_SAMPLERS={"uni_pc"}),
                                     calculate_sigmas=None)  # never called for an extra list
    extra = {"sl_x": {"3": [1.0, 0.5, 0.2, 0.0], "4": [1.0, 0.6, 0.3, 0.1, 0.0]}}
    assert _menu_sigmas(comfy_samplers, {}, None, "euler", "sl_x", 3, extra).tolist() == pytest.approx(
        [1.0, 0.5, 0.2, 0.0])
    assert _menu_sigmas(comfy_samplers, {}, None, "uni_pc", "sl_x", 3, extra).tolist() == pytest.approx(
        [1.0, 0.6, 0.3, 0.0])


def test_the_pack_lists_are_the_catalogues_and_the_calibrated_one_is_the_nodes(monkeypatch):
    """menu_bench.pack_list: the data-free lists are schedules.catalogue.schedule_sigmas for the setting's kind; the
    calibrated one is sl_constant_rate given the velocity the node's default calibration measures."""
    from schedule_lab.schedules.catalogue import schedule_sigmas
    from schedule_lab.schedules.constant_rate.construct import Velocity, data_free_velocity

    setting = mb.SETTINGS["flow-768/shift3"]
    for name in ("sl_constant_rate", "sl_ays_sd1", "sl_ays_sdxl"):
        assert torch.equal(mb.pack_list(setting, name, 6), schedule_sigmas(name, setting.kind, 6))
    free = data_free_velocity("cos+karras", setting.kind)  # a stand-in for a measurement: no model calls here
    vel = Velocity(free.lam, free.values, "vx+cos", {"model_calls": 1})
    monkeypatch.setitem(mb._VELOCITY, f"{setting.model}|{setting.kind!r}", vel)
    assert torch.equal(mb.pack_list(setting, "calibrated", 6),
                       schedule_sigmas("sl_constant_rate", setting.kind, 6, {"velocity": vel}))


def test_family_expectations_end_each_family_with_the_rules_choice_when_it_exists():
    from schedule_lab.lab.benchmarks.family_expectations import expectations

    cell = {"menu_best_E": ["ipndm", "beta", 0.05], "stock_E_ratio": 2.0, "pack_best_E": ["dpmpp_2m", "sl_x", 0.9]}
    rule = {"command": "python -m schedule_lab.lab.benchmarks.menu_rule --family flow edm", "families": {
        "flow": {"preset": "sl_flow_few_steps", "sampler": "ipndm", "scheduler": "sl_constant_rate",
                 "calibrated": False, "score": 0.91, "provisional": True,
                 "parts": {"held_out": {"worst_ratio_menu_best_4_8": 0.95, "meets_target_0.8": False}}},
        "edm": {"preset": None, "sampler": None}}}
    text = expectations({"flow-768/shift3": {"tuning": {"5": cell}}, "patch-unet/edm": {"tuning": {"5": cell}}}, rule)
    sd3 = next(line for line in text.splitlines() if line.startswith("- **SD3"))
    assert sd3.endswith(" The per-family rule chose **ipndm + sl_constant_rate** (preset sl_flow_few_steps) for flow "
                        "models: worst 0.91× the menu's best E at 4–8 NFE on the tuning part, 0.95× on the held-out "
                        "part (misses the 0.8× target) (provisional: some never-lose rows at NFE 10–30 were not "
                        "measured) (`python -m schedule_lab.lab.benchmarks.menu_rule --family flow edm`).")
    edm = next(line for line in text.splitlines() if line.startswith("- **EDM"))
    assert "per-family rule" not in edm  # it chose nothing there: nothing is claimed
    assert "and `menu_rule.json`" in text


@pytest.mark.parametrize("kind", [ModelKind.edm(0.002, 80.0, 0.5), ModelKind.vp("eps"), ModelKind.vp("v"),
                                  ModelKind.flow(3.0)])
def test_tada_rows_own_endpoint_uses_the_options_the_row_ran_with(kind):
    """menu_bench's sl_tada rows: tada_options is what sl_tada without options resolves to on that list (the same
    sample, bit for bit), and the dense 128-step reference runs with those options, which differ from the
    128-step list's own defaults on some lists (the endpoint would then belong to another ODE)."""
    from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
    from schedule_lab.solvers import tada

    bed = GaussianTestbed(8)
    x = bed.sample_prior(4, 1.0, seed=1, dtype=torch.float64)
    differs = False
    for name in ("karras", "sl_constant_rate", "simple"):
        dense = schedule_sigmas(name, kind, mb.REF_STEPS)
        for steps in (4, 5, 8, 15):
            sig = schedule_sigmas(name, kind, steps).to(torch.float64)
            options = mb.tada_options(sig, kind)
            detail, order, integrator = options
            auto = tada.sample_tada(bed.denoiser, x * float(sig[0]), sig, extra_args={"seed": 2}, kind=kind)
            explicit = tada.sample_tada(bed.denoiser, x * float(sig[0]), sig, extra_args={"seed": 2}, kind=kind,
                                        detail=detail, order=order, integrator=integrator)
            assert torch.equal(auto, explicit), (name, steps, options)
            differs |= options != mb.tada_options(dense, kind)
    if kind.kind != "flow":  # eps/v/EDM: the few-step options are not the 128-step ones
        assert differs
