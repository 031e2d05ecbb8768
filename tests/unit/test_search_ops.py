"""Search node logic without ComfyUI (nodes/search_ops.py, schedules/search/results.py): saved results, resume,
Cancel, Searched Steps, and the sl_searched dropdown scheduler."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from schedule_lab.nodes import search_ops
from schedule_lab.schedules import ScheduleError, load_schedule, make_schedule_doc, save_schedule, validate_sigmas
from schedule_lab.schedules.catalogue import SCHEDULES, schedule_sigmas
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.schedules.search.presets import preset_sigmas
from schedule_lab.schedules.search.results import best_saved_search, make_search_doc
from schedule_lab.schedules.search.state import load_state
from schedule_lab.solvers.classic import sample_euler

SD = ModelKind.vp()


@lru_cache(maxsize=1)
def _model():
    from schedule_lab.lab.testbeds.digits import load_digits_split
    from schedule_lab.lab.testbeds.exact import ExactDenoiser

    return ExactDenoiser(load_digits_split().train[:300])


def _search(tmp_path, **kw):
    args = dict(sampler_name="euler", nfe=3, population=8, generations=3, reference_steps=20, seed=0,
                samples=16, holdout=16, directory=tmp_path, filename="digits_euler_3")
    args.update(kw)
    return search_ops.run_search(_model(), SD, (1, 8, 8), sample_euler, **args)


def test_search_saves_a_schedule_file_with_its_history_and_a_resumable_state(tmp_path):
    sigmas, path, report = _search(tmp_path)
    validate_sigmas(sigmas)
    doc = load_schedule(path)
    params = doc["provenance"]["params"]
    assert doc["provenance"]["method"] == "timestep_search" and params["nfe"] == 3 and params["sampler"] == "euler"
    assert [h["generation"] for h in params["history"]] == [0, 1, 2]
    assert params["holdout_fitness"] is not None
    assert torch.allclose(torch.tensor(doc["sigmas"], dtype=torch.float64), sigmas.double())
    state = load_state(tmp_path / "digits_euler_3.searchstate")
    assert state["done"] and "best" in report
    assert {d for _, d, _ in state["cache"]} == {0}  # all samples every time: one draw, elites never re-scored
    assert search_ops.schedule_choices(["digits_euler_3.json"])[-1] == "digits_euler_3.json"  # state not listed


class _Cancel(Exception):
    pass


def test_cancel_then_resume_gives_the_uninterrupted_result(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full, _, _ = _search(tmp_path / "a")
    n = {"calls": 0}

    def cancel(info):
        n["calls"] += 1
        if n["calls"] == 11:
            raise _Cancel

    with pytest.raises(_Cancel):
        _search(tmp_path / "b", progress=cancel)
    assert not load_state(tmp_path / "b" / "digits_euler_3.searchstate")["done"]
    resumed, _, report = _search(tmp_path / "b")
    assert report.startswith("resumed") and torch.equal(resumed, full)


def test_resuming_a_finished_search_needs_no_overwrite(tmp_path):
    """The node's defaults (overwrite off, resume on): queueing a finished search again reads its saved state back
    and gives the same schedule; a fresh search (resume off) under a taken name is still refused."""
    first, path, _ = _search(tmp_path, overwrite=False)
    again, path2, report = _search(tmp_path, overwrite=False, resume=True)
    assert path2 == path and report.startswith("resumed") and torch.equal(again, first)
    with pytest.raises(ScheduleError, match="already exists.*overwrite"):
        _search(tmp_path, overwrite=False, resume=False)
    with pytest.raises(ScheduleError, match="already exists"):  # refinement keeps no state to resume
        _search(tmp_path, overwrite=False, resume=True, optimiser="refine", refine_iterations=1)


def test_search_bad_inputs_name_the_input(tmp_path):
    with pytest.raises(ScheduleError, match="nfe=1"):
        _search(tmp_path, nfe=1)
    with pytest.raises(ScheduleError, match="population=3"):
        _search(tmp_path, population=3)
    with pytest.raises(ScheduleError, match="reference_steps=2 is below the NFE budget 3"):
        _search(tmp_path, reference_steps=2)
    with pytest.raises(ScheduleError, match="filename"):
        _search(tmp_path, filename="../x")
    with pytest.raises(ScheduleError, match="fitness="):
        _search(tmp_path, fitness="fid")


def test_resume_with_other_settings_is_refused(tmp_path):
    n = {"calls": 0}

    def cancel(info):
        n["calls"] += 1
        if n["calls"] == 5:
            raise _Cancel

    with pytest.raises(_Cancel):
        _search(tmp_path, progress=cancel)
    with pytest.raises(ScheduleError, match="different search.*seed"):
        _search(tmp_path, seed=1)
    sigmas, _, report = _search(tmp_path, seed=1, resume=False)  # a fresh search replaces the state
    validate_sigmas(sigmas)


def _doc(sigmas, kind, nfe, holdout, sampler="euler"):
    return make_search_doc(torch.tensor(sigmas, dtype=torch.float64), kind, nfe=nfe, sampler=sampler,
                           fitness="endpoint", best_fitness=holdout, holdout_fitness=holdout, history=[],
                           pack_version="test")


def test_best_saved_search_picks_the_lowest_held_out_fitness_for_this_model_and_step_count():
    docs = [("a.json", _doc([10.0, 1.0, 0.1, 0.0], SD, 3, 0.2)),
            ("b.json", _doc([9.0, 2.0, 0.2, 0.0], SD, 3, 0.1)),
            ("c.json", _doc([9.0, 2.0, 0.0], SD, 2, 0.01)),
            ("d.json", _doc([9.0, 2.0, 0.2, 0.0], ModelKind.edm(), 3, 0.001)),
            ("e.json", make_schedule_doc([9.0, 2.0, 0.2, 0.0], SD, "saved", {}, "test"))]
    name, sigmas = best_saved_search(docs, SD, 3)
    assert name == "b.json" and sigmas.tolist() == [9.0, 2.0, 0.2, 0.0]
    with pytest.raises(ScheduleError, match="Timestep Search node with nfe=5"):
        best_saved_search(docs, SD, 5)


def test_sl_searched_reads_the_schedule_folder_and_skips_damaged_files(tmp_path):
    save_schedule(tmp_path / "good.json", _doc([9.0, 2.0, 0.2, 0.0], SD, 3, 0.1))
    (tmp_path / "broken.json").write_text("{not json")
    paths = [(n, str(tmp_path / n)) for n in ("broken.json", "good.json")]
    sigmas = schedule_sigmas("sl_searched", SD, 3, {"schedule_paths": paths})
    assert sigmas.dtype == torch.float32 and sigmas.tolist() == pytest.approx([9.0, 2.0, 0.2, 0.0])
    assert not SCHEDULES["sl_searched"].self_contained
    with pytest.raises(ScheduleError, match="Timestep Search"):
        schedule_sigmas("sl_searched", ModelKind.edm(), 3, {"schedule_paths": paths})


def test_searched_steps_loads_presets_and_marks_resampling(tmp_path):
    sig, note = search_ops.searched_steps("preset: autodiffusion_sd1_dpmpp_2m_4", SD, None)
    assert torch.equal(sig, preset_sigmas("autodiffusion_sd1_dpmpp_2m_4", SD).float()) and "RESAMPLED" not in note
    sig8, note8 = search_ops.searched_steps("preset: autodiffusion_sd1_dpmpp_2m_4", SD, None, steps=8)
    assert len(sig8) == 9 and "RESAMPLED from 5 to 8" in note8
    save_schedule(tmp_path / "plain.json", make_schedule_doc([9.0, 2.0, 0.0], SD, "saved", {}, "test"))
    with pytest.raises(ScheduleError, match="not a saved timestep search"):
        search_ops.searched_steps("plain.json", SD, lambda n: str(tmp_path / n))
    save_schedule(tmp_path / "edm.json", _doc([9.0, 2.0, 0.0], ModelKind.edm(), 2, 0.1))
    with pytest.raises(ScheduleError, match="run Timestep Search for this model"):
        search_ops.searched_steps("edm.json", SD, lambda n: str(tmp_path / n))


def test_host_refuses_a_latent_that_does_not_fit_and_a_sampler_without_a_function():
    from types import SimpleNamespace

    from schedule_lab.nodes import host

    model = SimpleNamespace(get_model_object=lambda name: SimpleNamespace(latent_channels=4))
    host.check_latent_fits(model, torch.zeros(1, 4, 8, 8))
    with pytest.raises(ScheduleError, match="latent: shape \\(1, 16, 8, 8\\).*expects 4 channels"):
        host.check_latent_fits(model, torch.zeros(1, 16, 8, 8))
    with pytest.raises(ScheduleError, match="sampler: "):
        host.sampler_function(object())


def test_a_sampler_input_runs_with_its_own_options():
    """A SAMPLER (TADA Sampler node: sl_tada with detail 3) driven by Timestep Search gives TADA's detail-3 result."""
    from types import SimpleNamespace

    from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
    from schedule_lab.nodes import host
    from schedule_lab.solvers.tada import sample_tada

    bed = GaussianTestbed(8, mean=0.2, std=0.5)
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0)) * 10
    sigmas = torch.tensor([10.0, 3.0, 1.0, 0.3, 0.0])
    run = host.sampler_function(SimpleNamespace(sampler_function=sample_tada, extra_options={"detail": 3.0}))
    out = run(bed.denoiser, x, sigmas, extra_args={"seed": 4})
    assert torch.equal(out, sample_tada(bed.denoiser, x, sigmas, extra_args={"seed": 4}, detail=3.0))
    assert not torch.allclose(out, sample_tada(bed.denoiser, x, sigmas, extra_args={"seed": 4}))
    assert run.__name__ == "sample_tada"


def test_search_bench_report_divides_by_the_same_seeds_baselines():
    from schedule_lab.lab.benchmarks.search_bench import report

    def row(method, seed, err):
        return {"testbed": "t", "sampler": "euler", "nfe": 4, "seed": seed, "method": method, "rmse": err,
                "fd_cls": 1.0, "evaluations": 10, "cost_x3": 30, "reference_evaluations": 5, "seconds": 1.0}

    rows = [row("uniform", 0, 0.2), row("uniform", 1, 0.4), row("karras", 0, 0.4), row("karras", 1, 0.4),
            row("evolution", 0, 0.1), row("evolution", 1, 0.1)]
    line = next(x for x in report(rows, [0, 1]).splitlines() if "| evolution |" in x)
    cells = [c.strip() for c in line.split("|")]
    assert cells[7] == f"{(0.1 / 0.2 + 0.1 / 0.4) / 2:.2f}" and cells[8] == "0.25"


def test_frechet_search_against_user_latents_and_target_errors(tmp_path):
    from schedule_lab.lab.testbeds.digits import load_digits_split

    target = load_digits_split().test[:40].reshape(40, 1, 8, 8)
    sigmas, path, _ = _search(tmp_path, fitness="frechet_pooled", target=target)
    validate_sigmas(sigmas)
    assert "/target=40:" in load_schedule(path)["provenance"]["params"]["fitness"]
    with pytest.raises(ScheduleError, match="target_latent is only used by fitness 'frechet_pooled'"):
        _search(tmp_path, target=target)
    with pytest.raises(ScheduleError, match="target_latent: shape"):
        _search(tmp_path, fitness="frechet_pooled", target=target[:1])
    with pytest.raises(ScheduleError, match="different search.*fitness"):  # other images: no silent resume
        _search(tmp_path, fitness="frechet_pooled", target=target[:20], generations=3)


def test_refine_optimisers_run_in_inference_mode_and_record_the_optimiser(tmp_path):
    """What the node does in ComfyUI: everything under torch.inference_mode(), so refinement must use
    finite differences; the saved file says which optimiser ran and keeps its curves."""
    seen = []
    with torch.inference_mode():
        evo, evo_path, _ = _search(tmp_path, filename="evo")
        ref_sigmas, path, report = _search(tmp_path, filename="ref", optimiser="refine", refine_iterations=6,
                                           progress=seen.append)
        chain, chain_path, chain_report = _search(tmp_path, filename="chain", optimiser="evolution + refine",
                                                  refine_iterations=4)
    validate_sigmas(ref_sigmas)
    p = load_schedule(path)["provenance"]["params"]
    assert p["optimiser"] == "refine" and p["refined"] and p["genes"] is None and p["history"] == []
    r = p["refine"]
    assert r["gradient"] == "finite_difference" and len(r["train_rmse"]) == 6
    assert [i for i, _ in r["holdout_rmse"]] == [0, 2, 4, 6]
    held = dict(r["holdout_rmse"])
    assert p["holdout_fitness"] == pytest.approx(held[r["best_iteration"]], rel=1e-5)
    assert r["best_iteration"] > 0 and held[r["best_iteration"]] < held[0]  # beats the uniform start
    assert p["model_calls"]["refine"] == 6 * (2 * 3) * 3 + 4 * 3  # 2·nfe runs of nfe calls + 4 held-out runs
    assert [i["stage"] for i in seen] == ["refine"] * 6 and "refined 6 iterations" in report
    assert load_schedule(evo_path)["provenance"]["params"]["optimiser"] == "evolution"
    c = load_schedule(chain_path)["provenance"]["params"]
    assert c["optimiser"] == "evolution + refine" and len(c["history"]) == 3 and len(c["refine"]["train_rmse"]) == 4
    assert c["holdout_fitness"] <= load_schedule(evo_path)["provenance"]["params"]["holdout_fitness"] + 1e-9
    assert "3 generations" in chain_report and "model calls: reference" in chain_report


def test_refine_from_sl_constant_rate_starts_from_the_dropdowns_list_and_never_ends_worse(tmp_path, monkeypatch):
    """"refine from sl_constant_rate" (the search initialised from the constant-rate list, docs/defaults.md §3b):
    the refinement's first list is sl_constant_rate's data-free list at that step count, and the list it keeps is no
    worse on the held-out samples than that start (iteration 0 is scored too)."""
    from schedule_lab.schedules.constant_rate.calibrate import dropdown_sigmas
    from schedule_lab.schedules.search import pipeline

    starts, real = [], pipeline.refine

    def recording(model, sampler, ref, init, **kw):
        starts.append(init.clone())
        return real(model, sampler, ref, init, **kw)

    monkeypatch.setattr(pipeline, "refine", recording)  # the node's search runs the shared pipeline
    with torch.inference_mode():
        sigmas, path, report = _search(tmp_path, filename="crs", optimiser="refine from sl_constant_rate",
                                       refine_iterations=4)
    assert len(starts) == 1 and torch.allclose(starts[0], dropdown_sigmas(SD, 3).double())
    p = load_schedule(path)["provenance"]["params"]
    assert p["optimiser"] == "refine from sl_constant_rate" and p["history"] == [] and p["genes"] is None
    held = dict(p["refine"]["holdout_rmse"])
    assert p["holdout_fitness"] == pytest.approx(min(held.values()), rel=1e-5) and min(held.values()) <= held[0]
    assert "generations" not in report and "refined 4 iterations" in report


def test_refine_optimiser_bad_inputs_name_the_input(tmp_path):
    with pytest.raises(ScheduleError, match="optimiser="):
        _search(tmp_path, optimiser="adam")
    with pytest.raises(ScheduleError, match="set fitness to 'endpoint'"):
        _search(tmp_path, optimiser="refine", fitness="frechet_pooled")
    with pytest.raises(ScheduleError, match="holdout=0"):
        _search(tmp_path, optimiser="evolution + refine", holdout=0)
    with pytest.raises(ScheduleError, match="refine_iterations=0"):
        _search(tmp_path, optimiser="refine", refine_iterations=0)
    _search(tmp_path, holdout=0, refine_iterations=0)  # evolution alone ignores the refinement settings


def test_search_bench_merges_rows_and_charges_backward_passes_only_to_autograd():
    from schedule_lab.lab.benchmarks.search_bench import _refine_cost, merge_rows, report
    from schedule_lab.schedules.search.refine import RefineResult

    def result(gradient):
        return RefineResult(sigmas=torch.zeros(2), best_iteration=0, model_samples=100, gradient_samples=80,
                            gradient=gradient)

    assert _refine_cost(result("autograd")) == (100, 260) and _refine_cost(result("finite_difference")) == (100, 100)

    def row(method, seed, err):
        return {"testbed": "t", "sampler": "euler", "nfe": 4, "seed": seed, "method": method, "rmse": err,
                "fd_cls": 1.0, "evaluations": 10, "cost_x3": 10, "reference_evaluations": 5, "seconds": 1.0}

    old = [row("uniform", 0, 0.2), row("uniform", 1, 0.4), row("karras", 0, 0.4), row("karras", 1, 0.4),
           row("refine (finite differences)", 0, 0.3)]
    merged = merge_rows(old, [row("refine (finite differences)", 0, 0.1), row("refine (finite differences)", 1, 0.2)])
    assert len(merged) == 6 and sorted(r["rmse"] for r in merged if r["method"].startswith("refine")) == [0.1, 0.2]
    only_seed_1 = old[:4] + [row("refine (finite differences)", 1, 0.2)]  # paired with seed 1's baselines
    line = next(x for x in report(only_seed_1, [0, 1]).splitlines() if "| refine (finite differences) |" in x)
    assert [c.strip() for c in line.split("|")][7:9] == ["0.50", "0.50"]


def test_cancel_during_refinement_then_run_again_gives_the_uninterrupted_result(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kw = dict(optimiser="evolution + refine", refine_iterations=4)
    full, _, _ = _search(tmp_path / "a", **kw)

    def cancel(info):
        if info["stage"] == "refine" and info["iteration"] == 2:
            raise _Cancel

    with pytest.raises(_Cancel):
        _search(tmp_path / "b", progress=cancel, **kw)
    assert load_state(tmp_path / "b" / "digits_euler_3.searchstate")["done"]  # the evolution part is kept
    again, _, report = _search(tmp_path / "b", **kw)
    assert report.startswith("resumed") and torch.equal(again, full)


def test_evolution_plus_polish_starts_from_the_given_lists_and_never_ends_worse(tmp_path):
    """"evolution + polish" (docs/search.md, searched lists against ComfyUI's menu): the given lists (the node
    passes ComfyUI's own schedulers' lists) join the first generation, the Nelder-Mead polish then moves the best
    list off the grid; the saved file records the polish, which starts from the evolution's best and ends no worse."""
    seeds = [schedule_sigmas(name, SD, 3) for name in ("karras", "simple")]
    seen = []
    with torch.inference_mode():
        evo, evo_path, _ = _search(tmp_path, filename="evo")
        sigmas, path, report = _search(tmp_path, filename="pol", optimiser="evolution + polish", refine_iterations=5,
                                       initial=seeds, progress=seen.append)
    validate_sigmas(sigmas)
    p = load_schedule(path)["provenance"]["params"]
    e = load_schedule(evo_path)["provenance"]["params"]
    assert p["optimiser"] == "evolution + polish" and p["genes"] is None and len(p["history"]) == 3
    pol = p["polish"]
    assert pol["evaluations"] <= 4 * 5 and pol["seed_lists"] == 2 and len(pol["history"]) == pol["evaluations"]
    assert p["best_fitness"] == pytest.approx(pol["fitness"]) and pol["fitness"] <= pol["start_fitness"]
    assert pol["start_fitness"] == pytest.approx(p["history"][-1]["best_fitness"])  # it polished the evolution's best
    assert e["genes"] is not None and e.get("polish") is None
    assert p["model_calls"]["polish"] == 3 * pol["evaluations"]
    assert [i["stage"] for i in seen].count("polish") == pol["evaluations"]
    assert "seeded with 2 of ComfyUI's lists, polished by" in report
    with pytest.raises(ScheduleError, match="refine_iterations"):
        _search(tmp_path, filename="bad", optimiser="evolution + polish", refine_iterations=0)
