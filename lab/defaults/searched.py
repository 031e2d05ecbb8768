"""The searched lists of the defaults study's rows (docs/defaults.md §3b) and how a row's spec is read.

A leaf of ``bench`` (no import back): ``searched_sigmas(spec, testbed, part, steps)`` searches a list once
per (testbed, part, spec, NFE) on the part's own model, from noise no row uses (seed 301 on tuning parts, 401 on
held-out parts), and caches it with its cost in ``results/defaults_searched/<testbed>.json``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from schedule_lab.solvers import catalogue
from schedule_lab.solvers.catalogue import parse_spec

from ..testbeds.suite import kind, load_part

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
SEARCHED_DIR = RESULTS / "defaults_searched"
SEARCH_SEEDS = {"tuning": 301, "held_out": 401}
N_SEARCH, N_HOLDOUT = 128, 64
REFINE = {"iterations": 20, "lr": 0.2, "batch": 32, "eval_every": 2, "gradient": "finite_difference"}
EXTRA_SEED = 7  # extra_args["seed"] of every row and search (TADA's extra noise)


def split_spec(spec: str) -> tuple[str, dict, str, dict]:
    """A row's spec ``sampler(...)/schedule(...)`` → (sampler, options, schedule, options), each half read by the
    catalogue's parser (``solvers.catalogue.parse_spec``)."""
    sampler, schedule = spec.split("/", 1)
    return (*parse_spec(sampler), *parse_spec(schedule))


def catalogue_sampler(spec: str) -> str:
    """The catalogue name (with options) of a spec's sampler: the catalogue's own name, or its ``sl_`` name for the
    pack's methods (``tada(detail=2,order=2)`` → ``sl_tada(detail=2,order=2)``)."""
    sampler, opts, _, _ = split_spec(spec)
    name = next((n for n in (sampler, f"sl_{sampler}") if n in catalogue.SAMPLERS), None)
    if name is None:
        raise ValueError(f"unknown sampler in {spec!r}; the catalogue has {', '.join(catalogue.SAMPLERS)}")
    return f"{name}({','.join(f'{k}={v}' for k, v in opts.items())})" if opts else name


def crs_spec(nfe: int) -> str:
    """§3's data-free constant-rate default at ``nfe`` as a row's schedule spec (what the study searched from)."""
    from schedule_lab.schedules.constant_rate.construct import default_schedule_settings

    c = default_schedule_settings(nfe)  # §3's table: the study's own choice (the EDM family's is §10b's)
    return f"crs(measure={c['measure']},xi={c['xi']:g},end={c['end']})"


def _init_sigmas(init: str, nfe: int) -> torch.Tensor:
    """The refinement's starting list: Karras, or the shipped data-free constant-rate list at ``nfe`` (the same list
    as the rows' ``crs`` spec: tests/unit/test_defaults_suite.py)."""
    from schedule_lab.schedules.baseline import karras
    from schedule_lab.schedules.constant_rate.construct import (
        constant_rate_sigmas,
        data_free_velocity,
        default_schedule_settings,
    )

    k = kind()
    if init == "karras":
        return karras(nfe, k.sigma_min, k.sigma_max).to(torch.float64)
    if init == "crs":
        c = default_schedule_settings(nfe)
        return constant_rate_sigmas(data_free_velocity(c["measure"], k), k, nfe, xi=c["xi"],
                                    end=c["end"]).to(torch.float32).to(torch.float64)
    raise ValueError(f"unknown init {init!r}")


# ------------------------------------------------------------------------------------------------------------
# searched lists
# ------------------------------------------------------------------------------------------------------------
def _searched_path(testbed: str) -> Path:
    return SEARCHED_DIR / f"{testbed}.json"


def _load_searched(testbed: str) -> dict:
    path = _searched_path(testbed)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_searched(testbed: str, key: str, entry: dict) -> None:
    SEARCHED_DIR.mkdir(parents=True, exist_ok=True)
    mine = _load_searched(testbed)
    mine[key] = entry
    tmp = _searched_path(testbed).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(mine, indent=0, sort_keys=True) + "\n")
    os.replace(tmp, _searched_path(testbed))


def searched_sigmas(spec: str, testbed: str, part: str, steps: int) -> torch.Tensor:
    """The list ``spec``'s search found on ``testbed``'s ``part`` at ``steps`` (searched once, then cached)."""
    key = f"{testbed}|{part}|{spec}|{steps}"
    cached = _load_searched(testbed).get(key)
    if cached is None:
        cached = run_search(spec, testbed, part, steps)
        _save_searched(testbed, key, cached)
    return torch.tensor(cached["sigmas"], dtype=torch.float64)


def run_search(spec: str, testbed: str, part: str, nfe: int) -> dict:
    """One search (docs/defaults.md §3b): ``spec``'s sampler, settings from its ``searched(...)`` options."""
    from schedule_lab.schedules.search.evolution import EvolutionConfig
    from schedule_lab.schedules.search.fitness import EndpointFitness, ReferenceSet
    from schedule_lab.schedules.search.pipeline import optimise
    from schedule_lab.solvers.classic import sample_heun
    _, _, _, opts = split_spec(spec)
    p = load_part(testbed, part)
    sampler = catalogue.bind_sampler(catalogue_sampler(spec), kind())
    tada = spec.startswith("tada")
    reference_sampler = sampler if tada else sample_heun  # TADA is searched against its own ODE's endpoint
    t0 = time.perf_counter()
    ref = ReferenceSet(p.model, kind(), (p.dim,), n_search=N_SEARCH, n_holdout=N_HOLDOUT, seed=SEARCH_SEEDS[part],
                       reference_steps=p.reference_steps, nfe=nfe, extra_args={"seed": EXTRA_SEED},
                       reference_sampler=reference_sampler)
    t_ref = time.perf_counter() - t0
    # the node's pipeline (schedules.search.pipeline), with the study's settings (docs/defaults.md §3b)
    if opts["opt"] == "evolution":
        fit = EndpointFitness(p.model, sampler, ref, batch=64)
        run = optimise(p.model, sampler, ref, fit, nfe, evolution=EvolutionConfig(population=16, generations=8),
                       seed=0, label="endpoint")
    elif opts["opt"] == "refine":
        fit = EndpointFitness(p.model, sampler, ref)
        run = optimise(p.model, sampler, ref, fit, nfe, init=_init_sigmas(opts["init"], nfe), refine_options=REFINE,
                       seed=0)
    else:
        raise ValueError(f"unknown search setting in {spec!r}")
    sigmas, calls = run.sigmas, sum(run.calls.values())
    holdout = fit.holdout(sigmas.to(torch.float32))
    return {"sigmas": [float(s) for s in sigmas], "holdout_rmse": float(holdout), "model_calls": int(calls),
            "reference_calls": int(ref.model_calls), "seconds": round(time.perf_counter() - t0, 2),
            "reference_seconds": round(t_ref, 2)}


