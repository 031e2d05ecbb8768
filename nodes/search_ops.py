"""What the search nodes do, as plain functions (no ComfyUI import; unit-tested with testbed denoisers).

* ``run_search`` — Timestep Search: an evolutionary search (schedules.search), gradient refinement with
  finite differences (schedules.search.refine, forward model calls only: ComfyUI runs nodes under inference mode)
  or evolution followed by refinement, with a reference made by the same model; the evolution's state is autosaved
  (``<name>.searchstate`` next to the schedule files, not listed as a schedule) and resumed when asked; the result
  is saved as a schedule file with the optimiser and its fitness history (schedules.search.results).
* ``searched_steps`` — Searched Steps: a saved search or a preset as SIGMAS, resampled only on request.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..schedules.constant_rate.calibrate import dropdown_sigmas
from ..schedules.errors import ScheduleError
from ..schedules.files import adapt_to_kind, doc_kind, load_schedule, safe_schedule_name, save_schedule
from ..schedules.latents import latent_features, shape_checked
from ..schedules.resample import loglinear_resample, truncate_for_denoise
from ..schedules.search.evolution import EvolutionConfig
from ..schedules.search.fitness import EndpointFitness, FrechetFitness, ReferenceSet
from ..schedules.search.genes import GeneSpace, uniform_genes
from ..schedules.search.pipeline import optimise
from ..schedules.search.presets import PRESETS, preset_sigmas
from ..schedules.search.refine import FD_STEP
from ..schedules.search.results import SEARCH_METHOD, check_search_params, make_search_doc, same_model_family
from ..schedules.validate import validate_denoise, validate_steps
from ..solvers.classic import sample_heun
from ..version import PACK_VERSION
from .schedule_ops import file_fingerprint

FITNESSES = ("endpoint", "frechet_pooled")
#: Appended last, never reordered (saved workflows store the value): "refine from sl_constant_rate" starts the
#: refinement from sl_constant_rate's list (data-free default) at that step count (docs/defaults.md §3b).
OPTIMISERS = ("evolution", "refine", "evolution + refine", "refine from sl_constant_rate", "evolution + polish")
#: "evolution + polish": fitness calls of the Nelder–Mead polish per refine_iteration (one sampler run each)
POLISH_PER_ITERATION = 4
#: from uniform / after evolution (docs/search.md); from the constant-rate list as measured (docs/defaults.md §3b)
REFINE_LR = {"refine": 0.2, "evolution + refine": 0.1, "refine from sl_constant_rate": 0.2}
REFINE_EVAL_EVERY = 2  # held-out check every 2 iterations (one run of the held-out samples)
STATE_SUFFIX = ".searchstate"
PRESET_PREFIX = "preset: "


def state_path(directory, filename: str) -> Path:
    name = safe_schedule_name(filename)
    return Path(directory) / (name[: -len(".json")] + STATE_SUFFIX)


def run_search(model, kind, shape, sampler, *, sampler_name: str, nfe: int, population: int = 16,
               generations: int = 8, reference_steps: int = 50, seed: int = 0, fitness: str = "endpoint",
               samples: int = 8, holdout: int = 8, directory, filename: str, resume: bool = True,
               progress=None, extra_args=None, device=None, reference_sampler=sample_heun, target=None,
               optimiser: str = "evolution", refine_iterations: int = 20, should_stop=None, overwrite: bool = True,
               initial=()):
    """Search ``nfe`` steps for ``sampler`` on ``model``; returns ``(sigmas float32, path, report)``.

    ``model`` is a k-diffusion denoiser, ``shape`` one latent's shape, ``sampler`` a k-diffusion sampler function.
    ``optimiser``: ``"evolution"``, ``"refine"`` (finite-difference refinement of the uniform list; ``"refine from
    sl_constant_rate"`` of the data-free constant-rate list,
    ``refine_iterations`` steps of ``2·nfe`` sampler runs on all ``samples``; needs ``holdout >= 2`` and the
    endpoint fitness), ``"evolution + refine"`` (refinement of the evolution's result) or ``"evolution + polish"``
    (the evolution with ``initial`` lists — the node passes ComfyUI's own schedulers' lists at ``nfe`` steps — in
    its first generation, then a Nelder–Mead polish of its best list: ``POLISH_PER_ITERATION · refine_iterations``
    sampler runs on the search samples; schedules.search.polish).
    ``progress(info)`` is called per evaluation of the evolution (``info["stage"] == "evolution"``) and per
    refinement iteration (``"refine"``) and may raise (Cancel): the evolution's state is saved first, and the next
    run with ``resume`` continues it (refinement restarts: it is deterministic). ``target`` (user latents in the
    model's space, ≥ 2) replaces the reference endpoints as the Fréchet fitness's target. ``should_stop()`` is
    called before every model call (reference, candidates, refinement) and may raise to cancel within one call.
    ``overwrite=False`` refuses an existing schedule file of the same name before any model call, unless ``resume``
    continues the evolution saved under that name (a finished one is read back and saved again). Every bad input
    is a ScheduleError naming it.
    """
    try:
        path = Path(directory) / safe_schedule_name(filename)
    except ScheduleError as e:
        raise ScheduleError(f"filename: {e}") from None
    # resume continues the search saved under this name (finished or not): its own result file is no obstacle
    resuming = (resume and isinstance(optimiser, str) and not optimiser.startswith("refine")
                and state_path(directory, filename).exists())
    if not overwrite and path.exists() and not resuming:
        raise ScheduleError(f"filename: {path.name!r} already exists in the schedules folder; choose another name "
                            "or turn on overwrite.")
    if fitness not in FITNESSES:
        raise ScheduleError(f"fitness={fitness!r} is unknown; choose one of {', '.join(FITNESSES)}.")
    if optimiser not in OPTIMISERS:
        raise ScheduleError(f"optimiser={optimiser!r} is unknown; choose one of {', '.join(OPTIMISERS)}.")
    polishing = optimiser == "evolution + polish"
    refining = optimiser not in ("evolution", "evolution + polish")
    if polishing and (isinstance(refine_iterations, bool) or not isinstance(refine_iterations, int)
                      or refine_iterations < 1):
        raise ScheduleError(f"refine_iterations={refine_iterations!r} must be a whole number >= 1: with "
                            f"'evolution + polish' the polish makes {POLISH_PER_ITERATION} sampler runs per "
                            "iteration (20 is typical).")
    if refining:
        if fitness != "endpoint":
            raise ScheduleError(f"optimiser={optimiser!r} refines the endpoint distance (LD3); set fitness to "
                                "'endpoint' or choose optimiser 'evolution' for frechet_pooled.")
        if holdout < 2:
            raise ScheduleError(f"holdout={holdout!r}: optimiser {optimiser!r} needs at least 2 held-out samples to "
                                "stop refining before it over-fits; set holdout to 2 or more (4 is typical).")
        if isinstance(refine_iterations, bool) or not isinstance(refine_iterations, int) or refine_iterations < 1:
            raise ScheduleError(f"refine_iterations={refine_iterations!r} must be a whole number >= 1 (20-60 is "
                                "typical).")
    target_tag = ""
    if target is not None:
        if fitness != "frechet_pooled":
            raise ScheduleError("target_latent is only used by fitness 'frechet_pooled'; switch the fitness or "
                                "disconnect target_latent.")
        if target.ndim != len(shape) + 1 or tuple(target.shape[1:2]) != tuple(shape[:1]) or target.shape[0] < 2:
            raise ScheduleError(f"target_latent: shape {tuple(target.shape)} does not fit latents of shape "
                                f"{tuple(shape)}; VAE-encode at least 2 images with this model's VAE.")
        digest = hashlib.sha256(target.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:12]
        target_tag = f"/target={target.shape[0]}:{digest}"
    space = GeneSpace(kind)
    nfe = space.check_nfe(nfe)
    # every candidate is scored on all `samples` noise samples (few, expensive model calls), so the fitness does
    # not depend on the draw: resample_noise=False keeps elites from being re-scored on identical noise
    config = EvolutionConfig(population=population, top_k=max(1, population // 4), mutations=population // 2,
                             crossovers=population // 4, generations=generations, resample_noise=False).check()
    model = shape_checked(model, tuple(shape))
    ref = ReferenceSet(model, kind, shape, n_search=samples, n_holdout=holdout, seed=seed,
                       reference_steps=reference_steps, nfe=nfe, extra_args=extra_args, device=device,
                       reference_sampler=reference_sampler, should_stop=should_stop)
    if fitness == "endpoint":
        fit = EndpointFitness(model, sampler, ref, should_stop=should_stop)
    else:
        fit = FrechetFitness(model, sampler, ref, latent_features,
                             target=None if target is None else target.to(ref.noise), should_stop=should_stop)
    # the latent shape is part of what was searched: a state saved for another size is not resumed
    label = (f"{fitness}/{sampler_name}/samples={samples}+{holdout}/reference={reference_steps}{target_tag}"
             f"/latent={'x'.join(str(int(d)) for d in shape)}")
    if optimiser == "refine":
        init = space.sigmas(uniform_genes(space, nfe))
    elif optimiser == "refine from sl_constant_rate":
        init = dropdown_sigmas(kind, nfe).to(torch.float64)  # the data-free constant-rate list sl_constant_rate uses
    else:
        init = None
    refine_options = None if not refining else {
        "iterations": refine_iterations, "lr": REFINE_LR[optimiser], "batch": None, "eval_every": REFINE_EVAL_EVERY,
        "gradient": "finite_difference"}
    run = optimise(model, sampler, ref, fit, nfe, evolution=None if init is not None else config, init=init,
                   refine_options=refine_options, seed=seed, label=label, state_path=state_path(directory, filename),
                   resume=resume, progress=progress, should_stop=should_stop,
                   initial=list(initial) if polishing else (),
                   polish_options={"evaluations": POLISH_PER_ITERATION * refine_iterations} if polishing else None)
    sigmas, refined, genes, history = run.sigmas, run.refined, run.genes, run.history
    calls = {"reference": ref.model_calls, **run.calls}
    before = fit.model_calls
    polished = run.polished
    if polishing:
        genes = None  # the polished sigmas are not grid points
    # the refined list on the search samples (the polish scored it already, on the same deterministic fitness)
    best = fit(sigmas) if refining else polished.fitness if polishing else run.fitness
    held = fit.holdout(sigmas) if holdout >= 2 else None
    calls["scoring"] = fit.model_calls - before
    refine_doc = None if refined is None else {
        "gradient": refined.gradient, "fd_step": FD_STEP, "iterations": refine_iterations,
        "lr": REFINE_LR[optimiser], "eval_every": REFINE_EVAL_EVERY, "best_iteration": refined.best_iteration,
        "overfit": refined.overfit, "model_calls": refined.model_calls,
        "train_rmse": [round(v, 6) for v in refined.train_rmse],
        "holdout_rmse": [[i, round(v, 6)] for i, v in refined.holdout_rmse]}
    doc = make_search_doc(sigmas, kind, nfe=nfe, sampler=sampler_name, fitness=label, best_fitness=best,
                          holdout_fitness=held, seed=seed, config=run.config, genes=genes, history=history,
                          pack_version=PACK_VERSION, refined=refined is not None, optimiser=optimiser,
                          refine=refine_doc, model_calls=calls,
                          polish=None if polished is None else {
                              "evaluations": polished.evaluations, "start_fitness": _finite(polished.start_fitness),
                              "fitness": _finite(polished.fitness), "seed_lists": len(initial),
                              "history": [round(v, 6) for v in polished.history]})
    save_schedule(path, doc)
    parts = []
    if not optimiser.startswith("refine"):
        parts.append(f"{'resumed, ' if run.resumed else ''}{len(history)} generations, {run.evaluations} "
                     "evaluations")
    if polished is not None:
        parts.append(f"seeded with {len(initial)} of ComfyUI's lists, polished by {polished.evaluations} "
                     f"evaluations ({polished.start_fitness:.4g} -> {polished.fitness:.4g})")
    if refined is not None:
        parts.append(f"refined {len(refined.train_rmse)} iterations by finite differences (best at "
                     f"{refined.best_iteration}{', over-fitting after it' if refined.overfit else ''})")
    report = ("; ".join(parts) + f"; best {fitness} {best:.4g}" + ("" if held is None else f", held-out {held:.4g}")
              + "\nmodel calls: " + ", ".join(f"{k} {v}" for k, v in calls.items())
              + ("" if genes is None or refined is not None else f"\nsteps (grid indices): {genes}")
              + "\nsigmas: " + ", ".join(f"{float(s):.4g}" for s in sigmas) + f"\nsaved {path}")
    return sigmas.to(torch.float32), str(path), report


def schedule_choices(files: list[str]) -> list[str]:
    """Searched Steps dropdown: the presets first, then the schedule files."""
    return [PRESET_PREFIX + name for name in PRESETS] + list(files)


def choice_fingerprint(choice, read_path) -> str:
    """Searched Steps' fingerprint for ComfyUI's cache: a preset's name, or the chosen file's content hash."""
    if not isinstance(choice, str) or choice.startswith(PRESET_PREFIX):
        return str(choice)
    return file_fingerprint(choice, read_path)


def choice_missing(choice, schedule_missing) -> str | None:
    """Searched Steps' validation before a run: None when the choice can be read; else what to do (an unknown
    preset lists the presets; a missing file says which file to put where, naming Timestep Search)."""
    if not isinstance(choice, str):
        return f"schedule: {choice!r} is not a schedule name"
    if choice.startswith(PRESET_PREFIX):
        if choice[len(PRESET_PREFIX):] in PRESETS:
            return None
        return f"schedule: unknown preset {choice!r}; choose one of {', '.join(PRESET_PREFIX + p for p in PRESETS)}"
    message = schedule_missing(choice)
    if message is None:
        return None
    return (message + " A searched file is written by the Timestep Search node (run the timestep_search example "
            "workflow with filename set to this name), or pick a 'preset: ...' entry.")


def searched_steps(choice: str, kind, read_path, steps: int = 0, denoise: float = 1.0):
    """SIGMAS of a preset or a saved search for ``kind``; ``steps`` 0 keeps the searched count, any other value
    resamples log-linearly (and says so). Returns ``(sigmas float32, note)``."""
    validate_denoise(denoise)
    if steps != 0:
        validate_steps(steps)
    if choice.startswith(PRESET_PREFIX):
        name = choice[len(PRESET_PREFIX):]
        try:
            sigmas = preset_sigmas(name, kind)
        except ScheduleError as e:
            raise ScheduleError(f"schedule: {e}") from None
        note = f"preset {name}: {PRESETS[name].note} Source: {PRESETS[name].source}."
    else:
        doc = check_search_params(load_schedule(read_path(choice)), f"schedule file {choice!r}")
        if doc["provenance"].get("method") != SEARCH_METHOD:
            raise ScheduleError(f"schedule: {choice!r} is not a saved timestep search (method "
                                f"{doc['provenance'].get('method')!r}); use Load Schedule for other files.")
        if not same_model_family(doc_kind(doc), kind):
            raise ScheduleError(f"schedule: {choice!r} was searched for a {doc_kind(doc).describe()}, not for this "
                                f"{kind.describe()}; run Timestep Search for this model.")
        sigmas = adapt_to_kind(doc, kind)
        p = doc["provenance"]["params"]
        note = f"searched for {p.get('sampler')} at {p.get('nfe')} steps, fitness {p.get('best_fitness')}"
    saved = len(sigmas) - 1
    if steps not in (0, saved):
        note += f"\nRESAMPLED from {saved} to {steps} steps: not a searched list at this step count."
    out = truncate_for_denoise(lambda n: sigmas if n == saved else loglinear_resample(sigmas, n),
                               steps or saved, denoise)
    return out.to(torch.float32), note


def _finite(v):
    import math

    return None if v is None or not math.isfinite(float(v)) else float(v)
