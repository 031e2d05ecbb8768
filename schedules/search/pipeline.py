"""The search pipeline, one for the Timestep Search node and the lab: evolution, refinement, or evolution then
refinement, on a reference set and a fitness the caller builds.

:func:`optimise` runs the optimisers and counts their model calls; the caller chooses the fitness (endpoint RMSE or
Fréchet, its batch), the evolution's settings, the refinement's settings and the list a pure refinement starts from,
then scores and stores the result its own way (the node: a schedule file and a report, nodes/search_ops.py; the lab:
the defaults study's cache, lab/defaults/searched.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .evolution import EvolutionConfig, EvolutionSearch
from .fitness import ReferenceSet
from .genes import GeneSpace
from .polish import PolishResult, polish
from .refine import RefineResult, refine
from .state import load_state

__all__ = ["SearchRun", "optimise"]


@dataclass
class SearchRun:
    """What the optimisers found: the list, and what it took."""

    sigmas: torch.Tensor
    fitness: float | None = None          # the evolution's best fitness (None without evolution)
    genes: list[int] | None = None
    history: list = field(default_factory=list)
    evaluations: int = 0
    config: dict = field(default_factory=dict)  # the evolution's settings (empty without evolution)
    resumed: bool = False
    refined: RefineResult | None = None
    polished: PolishResult | None = None
    calls: dict[str, int] = field(default_factory=dict)  # model calls by stage: evolution, refine


def optimise(model, sampler, reference: ReferenceSet, fit, nfe: int, *, evolution: EvolutionConfig | None = None,
             init: torch.Tensor | None = None, refine_options: dict | None = None, seed: int = 0, label: str = "",
             state_path: str | Path | None = None, resume: bool = False,
             progress: Callable[[dict], None] | None = None, should_stop: Callable[[], None] | None = None,
             initial=(), polish_options: dict | None = None) -> SearchRun:
    """Search ``nfe`` steps for ``sampler`` on ``model``.

    With ``evolution`` an evolutionary search over the reference's ``GeneSpace`` scored by ``fit`` (autosaved to and,
    with ``resume``, continued from ``state_path``), else the list ``init``; then, with ``refine_options`` (the
    keyword arguments of ``schedules.search.refine.refine``), a refinement of that list. ``progress(info)`` gets
    ``info["stage"]`` = ``"evolution"`` per evaluation, ``"refine"`` per iteration and ``"polish"`` per fitness call,
    and may raise to cancel; ``should_stop()`` is asked before every refinement model call. ``initial``: sigma lists
    that seed the evolution's first generation (e.g. the best lists of ComfyUI's menu). ``polish_options`` (the
    keyword arguments of ``schedules.search.polish.polish``): last, a Nelder–Mead polish of the list on ``fit`` at
    draw 0 (deterministic only when ``fit`` scores every search sample: ``batch=None``).
    """
    if evolution is None and init is None:
        raise ValueError("optimise: pass evolution= (a search) or init= (the list a refinement starts from)")
    run = SearchRun(sigmas=init)
    if evolution is not None:
        search = EvolutionSearch(GeneSpace(reference.kind), nfe, fit, evolution, seed=seed, label=label,
                                 initial=initial)
        if state_path is not None and resume and Path(state_path).exists():
            search.restore(load_state(state_path), source=f"search state {Path(state_path).name!r}")
            run.resumed = True
        evo_progress = None if progress is None else (lambda info: progress({**info, "stage": "evolution"}))
        result = search.run(progress=evo_progress, autosave=state_path)
        run.sigmas, run.fitness, run.genes = result.sigmas, result.fitness, list(result.genes)
        run.history, run.evaluations, run.config = result.history, result.evaluations, asdict(evolution)
        run.calls["evolution"] = fit.model_calls
    if refine_options is not None:
        ref_progress = None if progress is None else (lambda info: progress({**info, "stage": "refine"}))
        run.refined = refine(model, sampler, reference, run.sigmas, seed=seed, progress=ref_progress,
                             should_stop=should_stop, **refine_options)
        run.sigmas = run.refined.sigmas
        run.calls["refine"] = run.refined.model_calls
    if polish_options is not None:
        before = fit.model_calls
        pol_progress = None if progress is None else (lambda info: progress({**info, "stage": "polish"}))
        run.polished = polish(lambda s: fit(s, 0), run.sigmas, reference.kind, progress=pol_progress,
                              **polish_options)
        run.sigmas = run.polished.sigmas
        run.calls["polish"] = fit.model_calls - before
    return run
