"""Timestep search in the real host (docs/search.md, "Nodes"): a small search on the tiny checkpoint end to end, the
saved file through Searched Steps, sampling with sl_searched through the stock KSampler, and the errors that name
the input."""
from __future__ import annotations

import json

import sl_graphs as G


def _search_graph(filename: str, nfe: int = 3, width: int = 64) -> dict:
    g = G.base(width=width)
    g["guider"] = {"class_type": "CFGGuider", "inputs": {"model": g["_model"], "positive": ["pos", 0],
                                                         "negative": ["neg", 0], "cfg": 2.0}}
    g["sampler"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    g["search"] = {"class_type": "SL_TimestepSearch", "inputs": {
        "guider": ["guider", 0], "latent_image": ["latent", 0], "sampler": ["sampler", 0], "nfe": nfe, "population": 4,
        "generations": 2, "reference_steps": 8, "samples": 2, "holdout": 2, "fitness": "endpoint", "seed": 0,
        "filename": filename, "resume": True}}
    g["info"] = {"class_type": "SL_ScheduleInfo", "inputs": {"sigmas": ["search", 0]}}
    g.pop("_model")
    return g


def _errors(entry):
    return [m[1]["exception_message"] for m in entry["status"]["messages"] if m[0] == "execution_error"]


def test_search_then_searched_steps_then_sl_searched_in_the_stock_ksampler(comfy):
    entry = comfy.run(_search_graph("sl_it_search"), timeout=600)
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    saved = comfy.workdir / "schedules" / "sl_it_search.json"
    doc = json.loads(saved.read_text())
    assert doc["provenance"]["method"] == "timestep_search" and len(doc["sigmas"]) == 4
    assert [h["generation"] for h in doc["provenance"]["params"]["history"]] == [0, 1]
    assert (comfy.workdir / "schedules" / "sl_it_search.searchstate").is_file()

    sigmas = {"class_type": "SL_SearchedSteps", "inputs": {"model": "_model", "schedule": "sl_it_search.json",
                                                           "steps": 0, "denoise": 1.0}}
    entry = comfy.run(G.custom_advanced(sigmas, prefix="sl_searched_steps"))
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())

    entry = comfy.run(G.ksampler("euler", "sl_searched", steps=3, prefix="sl_searched_ks"))
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())


def test_sl_searched_without_a_search_for_this_step_count_names_the_search_node(comfy):
    entry = comfy.run(G.ksampler("euler", "sl_searched", steps=7, prefix="sl_searched_none"))
    assert entry["status"]["status_str"] == "error"
    assert any("Timestep Search" in m for m in _errors(entry)), entry["status"]


def test_search_bad_budget_names_the_input(comfy):
    g = _search_graph("sl_it_bad")
    g["search"]["inputs"]["reference_steps"] = 2
    entry = comfy.run(g)
    assert entry["status"]["status_str"] == "error"
    assert any("reference_steps" in m for m in _errors(entry)), entry["status"]


def test_search_shows_progress_honours_cancel_and_resumes(comfy):
    g = _search_graph("sl_it_cancel")
    g["search"]["inputs"].update(population=8, generations=12)
    entry, events = comfy.run_ws(g, interrupt_at_step=3, timeout=600)
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"]), entry["status"]
    texts = [e[2] for e in events if e[0] == "text" and e[1] == "search"]
    assert texts and texts[0].startswith("generation 1/12, evaluation 1, best endpoint"), texts[:3]
    state = json.loads((comfy.workdir / "schedules" / "sl_it_cancel.searchstate").read_text())
    assert not state["done"] and state["evaluations"] >= 3

    entry, events = comfy.run_ws(g, timeout=600)
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    texts = [e[2] for e in events if e[0] == "text" and e[1] == "search"]
    assert texts and texts[-1].startswith("resumed, 12 generations"), texts[-1:]


def test_frechet_search_against_vae_encoded_user_images(comfy):
    g = _search_graph("sl_it_target")
    g["img"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 3, "color": 8421504}}
    g["enc"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["img", 0], "vae": ["ckpt", 2]}}
    g["search"]["inputs"].update(fitness="frechet_pooled", target_latent=["enc", 0])
    entry = comfy.run(g, timeout=600)
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    doc = json.loads((comfy.workdir / "schedules" / "sl_it_target.json").read_text())
    assert "/target=3:" in doc["provenance"]["params"]["fitness"]


def test_refine_and_evolution_plus_refine_run_in_the_host(comfy):
    """ComfyUI runs nodes under torch.inference_mode(): refinement must get its gradient from forward calls."""
    g = _search_graph("sl_it_refine")
    g["search"]["inputs"].update(optimiser="refine", refine_iterations=3)
    entry, events = comfy.run_ws(g, timeout=600)
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    texts = [e[2] for e in events if e[0] == "text" and e[1] == "search"]
    assert any(t.startswith("refine iteration 3/3, held-out endpoint") for t in texts), texts
    p = json.loads((comfy.workdir / "schedules" / "sl_it_refine.json").read_text())["provenance"]["params"]
    assert p["optimiser"] == "refine" and p["refine"]["gradient"] == "finite_difference"
    assert len(p["refine"]["train_rmse"]) == 3 and p["history"] == [] and p["model_calls"]["refine"] > 0
    sig = json.loads((comfy.workdir / "schedules" / "sl_it_refine.json").read_text())["sigmas"]
    assert len(sig) == 4 and all(a > b for a, b in zip(sig, sig[1:], strict=False))

    g = _search_graph("sl_it_chain")
    g["search"]["inputs"].update(optimiser="evolution + refine", refine_iterations=2)
    entry = comfy.run(g, timeout=600)
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    p = json.loads((comfy.workdir / "schedules" / "sl_it_chain.json").read_text())["provenance"]["params"]
    assert p["optimiser"] == "evolution + refine" and len(p["history"]) == 2 and len(p["refine"]["train_rmse"]) == 2

    g = _search_graph("sl_it_refine_bad")
    g["search"]["inputs"].update(optimiser="refine", holdout=0)
    entry = comfy.run(g)
    assert entry["status"]["status_str"] == "error"
    assert any("holdout=0" in m for m in _errors(entry)), entry["status"]


def test_evolution_plus_polish_seeds_with_comfyuis_own_schedulers_in_the_host(comfy):
    """"evolution + polish": the node passes ComfyUI's stock schedulers' lists for this model (calculate_sigmas at
    nfe steps, the sl_ entries left out) as seeds, then polishes; the file records how many and the polish."""
    g = _search_graph("sl_it_polish")
    g["search"]["inputs"].update(optimiser="evolution + polish", refine_iterations=2)
    entry, events = comfy.run_ws(g, timeout=600)
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    texts = [e[2] for e in events if e[0] == "text" and e[1] == "search"]
    assert any(t.startswith("polish evaluation") for t in texts), texts
    p = json.loads((comfy.workdir / "schedules" / "sl_it_polish.json").read_text())["provenance"]["params"]
    assert p["optimiser"] == "evolution + polish" and p["genes"] is None
    # simple, sgm_uniform, karras, exponential, normal, beta, ... give distinct 3-step lists on SD1's table
    assert p["polish"]["seed_lists"] >= 5 and 1 <= p["polish"]["evaluations"] <= 8
    assert p["polish"]["fitness"] <= p["polish"]["start_fitness"]
