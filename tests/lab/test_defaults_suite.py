"""The defaults testbed suite, the natural-image patches, the constant-rate endpoint option and the guard.

Oracles: the low-rank mixture denoiser against the full-covariance Bayes formula and against the closed-form
Gaussian testbed; exact-draw moments; split disjointness by construction; the ``land`` endpoint against its
definition; the guard's verdict on constructed rows.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.lab.testbeds.suite import (
    MIXTURES,
    TUNING_TESTBEDS,
    LowRankMixture,
    load_part,
    mixture_family,
)
from schedule_lab.schedules import ModelKind, ScheduleError
from schedule_lab.schedules.constant_rate.construct import (
    SETTINGS_BY_NFE,
    constant_rate_sigmas,
    default_schedule_settings,
    default_velocity,
)

F64 = {"dtype": torch.float64}


def _full_posterior_mean(x, sigma, means, spreads, weights, bases, extra):
    """E[y | x] by the textbook formula with dense covariances C_k = U diag(a) Uᵀ + s² I."""
    d = means.shape[1]
    logs, posts = [], []
    for k in range(means.shape[0]):
        c = bases[k] @ torch.diag(extra[k]) @ bases[k].T + spreads[k] ** 2 * torch.eye(d, **F64)
        s = c + sigma ** 2 * torch.eye(d, **F64)
        logs.append(weights[k].log() + torch.distributions.MultivariateNormal(means[k], s).log_prob(x))
        posts.append(means[k] + (x - means[k]) @ torch.linalg.solve(s, c).T)
    r = torch.softmax(torch.stack(logs, 1), 1)
    return sum(r[:, k:k + 1] * posts[k] for k in range(len(posts)))


@pytest.mark.parametrize("sigma", [0.05, 0.7, 3.0, 40.0])
def test_low_rank_mixture_denoiser_is_the_bayes_posterior_mean(sigma):
    gen = torch.Generator().manual_seed(0)
    d, k = 6, 3
    means = torch.randn(k, d, generator=gen, **F64)
    bases = torch.stack([torch.linalg.qr(torch.randn(d, 2, generator=gen, **F64))[0] for _ in range(k)])
    extra = 0.2 + torch.rand(k, 2, generator=gen, **F64)
    spreads = torch.tensor([0.1, 0.3, 0.5], **F64)
    weights = torch.tensor([0.2, 0.5, 0.3], **F64)
    mix = LowRankMixture(means, spreads, weights, bases, extra)
    x = means[torch.arange(8) % k] + (0.5 + sigma) * torch.randn(8, d, generator=gen, **F64)
    got = mix(x, torch.full((8,), sigma, **F64))
    want = _full_posterior_mean(x, sigma, means, spreads, weights, bases, extra)
    assert torch.allclose(got, want, atol=1e-10, rtol=1e-9)


def test_one_isotropic_component_is_the_closed_form_gaussian_denoiser():
    g = GaussianTestbed(16, 0.3, 0.7)
    mix = LowRankMixture(torch.full((1, 16), 0.3, **F64), torch.tensor([0.7], **F64), torch.ones(1, **F64))
    x = 5 * torch.randn(7, 16, generator=torch.Generator().manual_seed(1), **F64)
    for s in (0.01, 1.0, 80.0):
        assert torch.allclose(mix(x, torch.full((7,), s, **F64)), g(x, torch.full((7,), s, **F64)), atol=1e-12)


def test_mixture_draws_have_the_mixture_moments():
    mix = mixture_family("gmm-16", "tuning")
    y = mix.sample(40_000, seed=3).double()
    mean = (mix.weights[:, None] * mix.means).sum(0)
    second = (mix.weights * (mix.means.square().sum(1) + mix.dim * mix.spreads ** 2)).sum() / mix.dim
    assert (y.mean(0) - mean).abs().max() < 0.02
    assert abs(float(y.square().mean()) - float(second)) < 0.01 * float(second)


def test_manifold_draws_lie_close_to_their_rank_2_pieces():
    mix = mixture_family("manifold-512", "tuning")
    y = mix.sample(200, seed=0).double()
    # distance to the nearest piece's affine plane is the off-manifold noise: ~0.01·√(d−2)
    resid = []
    for k in range(mix.means.shape[0]):
        v = y - mix.means[k]
        p = v @ mix.bases[k]
        resid.append((v - p @ mix.bases[k].T).norm(dim=1))
    nearest = torch.stack(resid, 1).min(1).values
    assert float(nearest.median()) < 0.01 * math.sqrt(510) * 1.1


def test_tuning_and_held_out_parts_share_neither_noise_nor_mixture():
    for name in MIXTURES:
        a, b = mixture_family(name, "tuning"), mixture_family(name, "held_out")
        assert a.means.shape == b.means.shape and not torch.allclose(a.means, b.means)
    ta, ha = load_part("gmm-2", "tuning"), load_part("gmm-2", "held_out")
    assert not torch.equal(ta.noise, ha.noise)
    td, hd = load_part("digits-exact", "tuning"), load_part("digits-exact", "held_out")
    rows_t = {tuple(r.tolist()) for r in td.reference}
    assert td.reference.shape[0] + hd.reference.shape[0] == 1437
    assert sum(tuple(r.tolist()) in rows_t for r in hd.reference) < 5  # duplicates among digits only
    assert "patches-unet" not in TUNING_TESTBEDS
    with pytest.raises(ValueError, match="held-out only"):
        load_part("patches-unet", "tuning")


def test_patch_strips_are_disjoint_and_crops_stay_inside():
    from schedule_lab.lab.testbeds.patches import SPLITS, region

    for width in (128, 147, 192):
        spans = [region(width, s) for s in ("train", "tuning", "held_out")]
        assert spans[0][0] == 0 and spans[-1][1] == width
        assert all(spans[i][1] == spans[i + 1][0] for i in range(2))
    assert set(SPLITS) == {"train", "tuning", "held_out"}


# ---- constant-rate last interval ----------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 2, 5, 10])
def test_land_places_steps_plus_one_levels_and_drops_sigma_min(steps):
    kind = ModelKind.edm(0.002, 80.0)
    vel = default_velocity(kind)
    hold_more = constant_rate_sigmas(vel, kind, steps + 1, xi=1.5)
    land = constant_rate_sigmas(vel, kind, steps, xi=1.5, end="land")
    assert len(land) == steps + 1 and float(land[-1]) == 0.0 and float(land[0]) == 80.0
    assert torch.equal(land[:-1], hold_more[:-2])
    if steps > 1:
        assert float(land[-2]) > kind.sigma_min * 10  # no model call is spent at σ_min
    with pytest.raises(ScheduleError, match="end"):
        constant_rate_sigmas(vel, kind, steps, end="drop")


def test_default_schedule_settings_use_the_grid_nfe_below():
    grid = sorted(SETTINGS_BY_NFE)
    assert default_schedule_settings(grid[0] - 2) == SETTINGS_BY_NFE[grid[0]]
    assert default_schedule_settings(7) == SETTINGS_BY_NFE[6]
    assert default_schedule_settings(200) == SETTINGS_BY_NFE[20]
    for n in range(1, 40):  # every flow entry lands (docs/defaults.md §7) or is the data-free list (§11)
        assert default_schedule_settings(n, ModelKind.flow(3.0))["end"] == "land"
        assert default_schedule_settings(n, ModelKind.flow(3.0), measured=True).get("end", "land") == "land"


# ---- the guard -------------------------------------------------------------------------------------------------
def test_guard_flags_a_default_more_than_ten_percent_worse_on_a_held_out_part(monkeypatch):
    from schedule_lab.lab.defaults import guard as g
    from schedule_lab.lab.defaults.bench import row_key

    specs = {"m (karras)": "dpmpp_2m/crs(measure=data-free,xi=1,end=land)"}
    monkeypatch.setattr(g, "shipped_specs", lambda n: specs)
    rows = {}
    for n, ratio in ((4, 1.05), (5, 1.2)):
        rows[row_key("t", "held_out", "dpmpp_2m/karras", n)] = {"sw2": 1.0, "rmse": 1.0}
        rows[row_key("t", "held_out", specs["m (karras)"], n)] = {"sw2": ratio, "rmse": 0.5}
    lines, failures = g.check(rows, ["t"], [4, 5])
    assert [(f[3], f[2]) for f in failures] == [(5, "sw2")]
    assert any("**1.20**" in line for line in lines)


# ---- the shipped tables are the benchmark's output ---------------------------------------------------------------
def test_shipped_per_nfe_defaults_are_the_ones_the_benchmarks_chose():
    """solvers.tada.SETTINGS_BY_NFE and construct.SETTINGS_BY_NFE / MEASURED_SETTINGS_BY_NFE are copies of
    lab/benchmarks/results/defaults_chosen.json (`python -m schedule_lab.lab.defaults.bench --stage tune`, §3);
    construct.FAMILY_* of the per-family choice in lab/benchmarks/results/list_ends.json (`python -m
    schedule_lab.lab.benchmarks.list_ends`, §10b) minus the parts the held-out guard vetoed (§10a); the dropdown's
    AYS fit is §10's choice on the families the guard did not veto it for and ComfyUI's elsewhere."""
    from schedule_lab.lab.benchmarks.list_ends import family_tables
    from schedule_lab.lab.defaults.bench import CHOSEN_FILE, shipped_tables
    from schedule_lab.schedules.catalogue import SCHEDULES
    from schedule_lab.schedules.constant_rate import construct
    from schedule_lab.schedules.for_model import AYS_FIT_BY_FAMILY
    from schedule_lab.solvers import tada

    tada_table, crs_table, measured_table = shipped_tables(CHOSEN_FILE)
    assert tada.SETTINGS_BY_NFE == tada_table
    assert construct.SETTINGS_BY_NFE == crs_table
    assert construct.MEASURED_SETTINGS_BY_NFE == measured_table
    family_free, family_measured = family_tables()
    assert construct.FAMILY_SETTINGS_BY_NFE == family_free
    assert construct.FAMILY_MEASURED_SETTINGS_BY_NFE == family_measured
    chosen = json.loads((CHOSEN_FILE.parent / "list_ends.json").read_text())["ays"]
    assert set(chosen.values()) == {"stretched"}
    assert "fit" not in SCHEDULES["sl_ays_sd1"].defaults  # the dropdown runs fit="auto", AYS_FIT_BY_FAMILY
    assert {f: AYS_FIT_BY_FAMILY[f] for f in ("eps", "v", "edm")} == {"eps": "stretched", "v": "stretched",
                                                                       "edm": "comfy"}


def test_a_family_table_applies_to_its_family_only_and_karras_measure_is_karras():
    from schedule_lab.schedules.baseline import karras
    from schedule_lab.schedules.catalogue import schedule_sigmas
    from schedule_lab.schedules.constant_rate import construct

    for fam, kind in (("eps", ModelKind.vp("eps")), ("v", ModelKind.vp("v")), ("edm", ModelKind.edm())):
        table = construct.FAMILY_SETTINGS_BY_NFE.get(fam, SETTINGS_BY_NFE)
        assert default_schedule_settings(200, kind) == table[max(table)]
        for n, entry in table.items():
            if entry == {"measure": "karras", "xi": 1.0, "end": "hold"}:  # the dropdown's list is Karras's own
                torch.testing.assert_close(schedule_sigmas("sl_constant_rate", kind, n).double(),
                                           karras(n, kind.sigma_min, kind.sigma_max, 7.0, dtype=torch.float64),
                                           rtol=1e-5, atol=1e-7)
    assert default_schedule_settings(200) == SETTINGS_BY_NFE[20]  # no kind: §3's table


def test_a_calibration_the_family_table_does_not_use_gives_the_data_free_list():
    from schedule_lab.schedules.constant_rate import construct
    from schedule_lab.schedules.constant_rate.calibrate import schedule
    from schedule_lab.schedules.constant_rate.construct import power_velocity

    unused = [(fam, n) for fam, t in construct.FAMILY_MEASURED_SETTINGS_BY_NFE.items() for n, e in t.items()
              if e == {"use": "data-free"}]
    kinds = {"eps": ModelKind.vp("eps"), "v": ModelKind.vp("v"), "edm": ModelKind.edm()}
    measured = power_velocity(-0.5, "sigma")  # any non-data-free velocity
    for fam, n in unused:
        kind = kinds[fam]
        free = construct.data_free_velocity(default_schedule_settings(n, kind)["measure"], kind)
        assert torch.equal(schedule(measured, kind, n), schedule(free, kind, n))
        assert not torch.equal(schedule(measured, kind, n, xi=1.0), schedule(free, kind, n))  # explicit ξ: measured


# ---- the benchmark's rows are the shipped code's ---------------------------------------------------------------
@pytest.mark.parametrize("measure", ["data-free", "cos+karras"])
@pytest.mark.parametrize("steps", [4, 5, 10])
def test_benchmark_constant_rate_rows_are_the_construction_with_the_ends_they_name(measure, steps):
    """lab.defaults.bench's ``crs(..., end=E)`` is ``constant_rate_sigmas(..., end=E)`` for both ends, whatever the
    per-NFE default of schedule() is (the bench once left end to that default: its "hold" rows then landed)."""
    from schedule_lab.lab.defaults.bench import crs_sigmas, kind
    from schedule_lab.schedules.constant_rate.construct import data_free_velocity

    v = data_free_velocity(measure, kind())
    for end in ("hold", "land"):
        want = constant_rate_sigmas(v, kind(), steps, xi=1.25, end=end).to(torch.float32)
        assert torch.allclose(crs_sigmas(v, steps, 1.25, end), want, rtol=1e-6, atol=0), end
    assert crs_sigmas(v, steps, 1.25, "hold")[-2] == pytest.approx(kind().sigma_min)
    assert crs_sigmas(v, steps, 1.25, "land")[-2] > 2 * kind().sigma_min  # land: no step ends at σ_min


def test_benchmark_rows_run_through_the_catalogue_with_the_specs_sampler_and_options():
    from schedule_lab.lab.defaults.bench import catalogue_sampler
    from schedule_lab.lab.defaults.searched import split_spec
    from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
    from schedule_lab.schedules import ModelKind
    from schedule_lab.solvers import catalogue

    # no map of its own: the catalogue's names (pack methods by their sl_ name) and the catalogue's parser
    assert catalogue_sampler("tada(detail=2,order=3)/karras") == "sl_tada(detail=2,order=3)"
    assert catalogue_sampler("dpmpp_2m/crs(measure=data-free,xi=1.5,end=land)") == "dpmpp_2m"
    assert catalogue_sampler("euler/searched(opt=refine,init=crs)") == "euler"
    assert catalogue_sampler("heun/karras") == "heun"
    assert split_spec("dpmpp_2m/crs(measure=vx+cos,xi=1.5,end=land)") == (
        "dpmpp_2m", {}, "crs", {"measure": "vx+cos", "xi": 1.5, "end": "land"})
    with pytest.raises(ValueError, match="unknown sampler"):
        catalogue_sampler("nope/karras")
    # detail written as an int binds exactly like the float the study used to write
    g, kind = GaussianTestbed(4, mean=0.1, std=0.5), ModelKind.edm()
    noise = torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b = (catalogue.run(s, "karras", g.denoiser, noise, kind=kind, steps=4, seed=7).x0
            for s in ("sl_tada(detail=2,order=3)", "sl_tada(detail=2.0,order=3)"))
    assert torch.equal(a, b)


def test_shipped_search_settings_are_the_ones_the_rule_chose():
    """schedules.search.defaults.SETTINGS_BY_NFE is a copy of lab/benchmarks/results/defaults_search.json (written by
    `python -m schedule_lab.lab.defaults.search`, the rule of docs/defaults.md §3b)."""
    from schedule_lab.lab.defaults.search import CHOSEN_FILE, shipped_search_table
    from schedule_lab.schedules.search import defaults

    assert defaults.SETTINGS_BY_NFE == shipped_search_table(CHOSEN_FILE)
    for optimiser, init in defaults.SETTINGS_BY_NFE.values():
        assert optimiser in defaults.OPTIMISERS and init in defaults.INITS
    grid = sorted(defaults.SETTINGS_BY_NFE)
    assert defaults.default_search_settings(grid[0] - 2) == defaults.SETTINGS_BY_NFE[grid[0]]
    assert defaults.default_search_settings(7) == defaults.SETTINGS_BY_NFE[max(n for n in grid if n <= 7)]
    assert defaults.default_search_settings(200) == defaults.SETTINGS_BY_NFE[grid[-1]]


def test_the_few_step_preset_is_the_studys_best_setting_without_a_search():
    """solvers.presets.PRESETS["sl_few_steps"] (sl_tada on sl_constant_rate) is the row the rule of §3b found best
    without a search at its step count (lab/benchmarks/results/defaults_search.json, best_without_search)."""
    import json

    from schedule_lab.lab.defaults.search import CHOSEN_FILE
    from schedule_lab.schedules.catalogue import SCHEDULES
    from schedule_lab.solvers import catalogue
    from schedule_lab.solvers.presets import PRESETS

    preset = PRESETS["sl_few_steps"]
    assert preset.sampler in catalogue.SAMPLERS and preset.scheduler in SCHEDULES
    best = json.loads(CHOSEN_FILE.read_text())["best_without_search"][str(preset.steps)]
    assert best["label"] == "sl_tada on sl_constant_rate"
    assert preset.entry_line("few steps") == "sl_tada, sl_constant_rate, 5, few steps"


@pytest.mark.parametrize("nfe", [4, 5, 6, 8, 10])
def test_search_from_the_constant_rate_list_starts_from_the_rows_constant_rate_list(nfe):
    """The refinement 'init=crs' starts from exactly the list of the shipped data-free constant-rate row."""
    from schedule_lab.lab.defaults.bench import sigmas_for
    from schedule_lab.lab.defaults.searched import _init_sigmas, crs_spec

    row = sigmas_for(f"dpmpp_2m/{crs_spec(nfe)}", "gmm-16", "tuning", nfe)
    assert torch.equal(_init_sigmas("crs", nfe).float(), row.float())
    assert torch.equal(_init_sigmas("karras", nfe).float(), sigmas_for("dpmpp_2m/karras", "gmm-16", "tuning",
                                                                         nfe).float())


@pytest.mark.parametrize("search", ["opt=refine,init=karras", "opt=evolution"])
def test_the_studys_searches_run_the_nodes_pipeline_with_the_studys_settings(search):
    """lab/defaults/searched.run_search is schedules.search.pipeline.optimise with the study's settings: the same
    list as the evolution / refinement called directly (what the study ran before it shared the pipeline)."""
    from schedule_lab.lab.defaults import searched as S
    from schedule_lab.lab.testbeds.suite import kind, load_part
    from schedule_lab.schedules.search.evolution import EvolutionConfig, EvolutionSearch
    from schedule_lab.schedules.search.fitness import EndpointFitness, ReferenceSet
    from schedule_lab.schedules.search.genes import GeneSpace
    from schedule_lab.schedules.search.refine import refine
    from schedule_lab.solvers import catalogue
    from schedule_lab.solvers.classic import sample_heun

    spec, nfe = f"euler/searched({search})", 3
    got = S.run_search(spec, "gmm-2", "tuning", nfe)
    p = load_part("gmm-2", "tuning")
    sampler = catalogue.bind_sampler("euler", kind())
    ref = ReferenceSet(p.model, kind(), (p.dim,), n_search=S.N_SEARCH, n_holdout=S.N_HOLDOUT,
                       seed=S.SEARCH_SEEDS["tuning"], reference_steps=p.reference_steps, nfe=nfe,
                       extra_args={"seed": S.EXTRA_SEED}, reference_sampler=sample_heun)
    if search == "opt=evolution":
        fit = EndpointFitness(p.model, sampler, ref, batch=64)
        direct = EvolutionSearch(GeneSpace(kind()), nfe, fit, EvolutionConfig(population=16, generations=8), seed=0,
                                 label="endpoint").run().sigmas
    else:
        direct = refine(p.model, sampler, ref, S._init_sigmas("karras", nfe), seed=0, **S.REFINE).sigmas
    assert got["sigmas"] == [float(s) for s in direct] and got["model_calls"] > 0


def test_flow_tables_are_the_flow_rule_s_choice_and_simple_measure_is_simple():
    """construct.FLOW_SETTINGS_BY_NFE / FLOW_MEASURED_SETTINGS_BY_NFE are copies of lab/benchmarks/results/
    flow_ends.json (`python -m schedule_lab.lab.benchmarks.flow_ends`, docs/defaults.md §11) minus a vetoed part
    (flow_ends.VETOED: the part keeps FLOW_SETTINGS / FLOW_MEASURED_SETTINGS); measure "simple" with ξ 1 on a flow
    kind is ComfyUI's simple list up to its table's rounding (one level in 1000 of the un-shifted time)."""
    from schedule_lab.lab.benchmarks.flow_ends import shipped
    from schedule_lab.schedules.catalogue import schedule_sigmas
    from schedule_lab.schedules.constant_rate import construct
    from schedule_lab.schedules.constant_rate.calibrate import schedule

    free, measured = shipped()
    assert construct.FLOW_SETTINGS_BY_NFE == free
    assert construct.FLOW_MEASURED_SETTINGS_BY_NFE == measured
    vel = construct.data_free_velocity("simple")
    for kind in (ModelKind.flow(1.0), ModelKind.flow(3.0), ModelKind.flux(1.15)):
        for n in (4, 5, 6, 8, 30):
            ours = schedule(vel, kind, n, xi=1.0, end="land").double()
            stock = schedule_sigmas("simple", kind, n).double()
            assert ours[0] == 1.0 and ours[-1] == 0.0
            gap = kind.to_flow_time(ours[1:-1]) - kind.to_flow_time(stock[1:-1])  # un-shifted time
            assert gap.abs().max() < 2e-3, (kind, n, gap)
