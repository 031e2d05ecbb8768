"""Searched lists as shareable schedule files, and picking the best saved one for a model and step count.

A search result is an ordinary schedule file (``files.py``) whose provenance method is ``"timestep_search"`` and
whose params record what it was searched for and how it went::

    {"nfe": 4, "sampler": "dpmpp_2m", "fitness": "endpoint-rmse", "best_fitness": 0.081, "holdout_fitness": 0.083,
     "seed": 0, "config": {...}, "genes": [...], "refined": false, "history": [{generation, best_fitness, ...}],
     "optimiser": "evolution", "refine": null, "model_calls": {"reference": ..., "evolution": ...}}

``optimiser`` is ``"evolution"``, ``"refine"``, ``"evolution + refine"``, ``"refine from sl_constant_rate"`` or
``"evolution + polish"`` (then ``polish`` holds the polish's evaluations, start and final fitness and history);
``history`` is the evolution's (empty for refinement alone) and ``refine`` the refinement's record (gradient,
settings, training and held-out RMSE curves, best iteration, model calls); ``genes`` is null for a refined or
polished list (its sigmas are not grid points).

``best_saved_search`` is what the ``sl_searched`` dropdown scheduler uses: among saved searches for the same model
family and step count, the one with the lowest held-out fitness (else search fitness; ties: first file name);
no silent fallback; ``searched_sigmas`` reads the files first.
"""
from __future__ import annotations

import math

import torch

from .. import safe_json as sj
from ..errors import ScheduleError
from ..files import doc_kind, doc_sigmas, load_schedule, make_schedule_doc
from ..model_kind import ModelKind

__all__ = ["SEARCH_METHOD", "best_saved_search", "check_search_params", "make_search_doc", "same_model_family",
           "searched_sigmas"]

SEARCH_METHOD = "timestep_search"


def make_search_doc(sigmas, kind: ModelKind, *, nfe: int, sampler: str, fitness: str, best_fitness: float,
                    history: list, pack_version: str, holdout_fitness: float | None = None, seed: int = 0,
                    config: dict | None = None, genes=None, refined: bool = False, optimiser: str = "evolution",
                    refine: dict | None = None, model_calls: dict | None = None, polish: dict | None = None) -> dict:
    """A hashed schedule document for a search result (see the module docstring)."""
    params = {"nfe": int(nfe), "sampler": str(sampler), "fitness": str(fitness),
              "best_fitness": _finite(best_fitness), "holdout_fitness": _finite(holdout_fitness),
              "seed": int(seed), "config": dict(config or {}), "genes": None if genes is None else list(genes),
              "refined": bool(refined), "history": list(history), "optimiser": str(optimiser),
              "refine": None if refine is None else dict(refine),
              "model_calls": None if model_calls is None else {str(k): int(v) for k, v in model_calls.items()}}
    if polish is not None:  # "evolution + polish": the Nelder–Mead polish's record (absent for other optimisers)
        params["polish"] = dict(polish)
    return make_schedule_doc(sigmas, kind, SEARCH_METHOD, params, pack_version)


def check_search_params(doc: dict, source: str) -> dict:
    """The params a saved search is picked and described by (types and ranges), for a checked schedule document;
    other methods pass unchanged."""
    prov = doc["provenance"]
    if prov.get("method") != SEARCH_METHOD:
        return doc
    fix = "run the Timestep Search again, or delete the file"
    params = sj.obj(prov.get("params"), source, "provenance.params", fix, ("nfe", "sampler"))
    sj.integer(params["nfe"], source, "params.nfe", fix, 1, 10000)
    sj.string(params["sampler"], source, "params.sampler", fix, 200)
    for name in ("best_fitness", "holdout_fitness"):
        sj.number(params.get(name), source, f"params.{name}", fix, optional=True)
    sj.array(params.get("history", []), source, "params.history", fix, 0, 100_000)
    return doc


def _finite(v):
    return None if v is None or not math.isfinite(float(v)) else float(v)


def same_model_family(a: ModelKind, b: ModelKind) -> bool:
    """Same kind, same timestep table (or EDM/flow parameters) and the same sigma range to 1e-4."""
    if a.kind != b.kind:
        return False
    if not (math.isclose(a.sigma_min, b.sigma_min, rel_tol=1e-4) and math.isclose(a.sigma_max, b.sigma_max,
                                                                                    rel_tol=1e-4)):
        return False
    if a.is_discrete:
        if a.beta_params is not None or b.beta_params is not None:
            return a.beta_params == b.beta_params
        return len(a.sigmas_table) == len(b.sigmas_table) and torch.allclose(a.sigmas_table, b.sigmas_table,
                                                                             rtol=1e-5)
    return math.isclose(a.shift, b.shift, rel_tol=1e-6) and math.isclose(a.sigma_data, b.sigma_data, rel_tol=1e-6)


def best_saved_search(docs, kind: ModelKind, steps: int) -> tuple[str, torch.Tensor]:
    """``(name, sigmas)`` of the best saved search for ``kind`` with ``steps`` steps.

    ``docs`` is an iterable of ``(name, doc)`` for already checked schedule documents (other methods and
    unreadable files are the caller's to skip). Raises ScheduleError naming the Timestep Search node if none fits.
    """
    best = None
    for name, doc in docs:
        prov = doc.get("provenance", {})
        if prov.get("method") != SEARCH_METHOD or len(doc["sigmas"]) - 1 != steps:
            continue
        if not same_model_family(doc_kind(doc), kind):
            continue
        params = prov.get("params", {})
        score = params.get("holdout_fitness")
        score = params.get("best_fitness") if score is None else score
        key = (math.inf if score is None else float(score), name)
        if best is None or key < best[0]:
            best = (key, name, doc)
    if best is None:
        raise ScheduleError(
            f"sl_searched: there is no saved timestep search for this {kind.describe()} with {steps} steps in "
            f"models/schedules; run the Timestep Search node with nfe={steps} on this model first, or pick "
            "another scheduler."
        )
    return best[1], doc_sigmas(best[2])


def searched_sigmas(kind: ModelKind, steps: int, schedule_paths=()) -> torch.Tensor:
    """``sl_searched``: the best saved search for ``kind`` and ``steps`` among ``schedule_paths``, an iterable of
    ``(name, path)`` of the user's schedule files (the host lists them). A damaged or foreign file is skipped with one
    warning naming it (safe_json.scan; Load Schedule reports it in full) and never stops the others; none fitting is
    a ScheduleError (see best_saved_search)."""
    paths = dict(schedule_paths)
    docs = sj.scan(paths, lambda name: check_search_params(load_schedule(paths[name]), f"schedule file {name!r}"),
                   "schedule file")
    return best_saved_search(docs, kind, int(steps))[1].to(torch.float32)
