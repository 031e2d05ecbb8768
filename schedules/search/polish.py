"""Continuous polish of a timestep list: Nelder–Mead on its log-sigmas, forward calls only.

The evolution (``evolution``) picks grid points and stops where its mutations stop paying; the gradient refinement
(``refine``) needs ``2·nfe`` sampler runs per step and a learning rate. The polish is a derivative-free local search
for the last few per cent: the free coordinates are ``log σ_i`` of the positive sigmas (the first one stays where
it is unless ``fix_first=False``: a list that starts at σ_max keeps starting there, as the converged reference does),
the simplex starts at the list plus a step of ``step`` × the smallest neighbouring log-gap of each coordinate, and a
point whose sigmas are not strictly decreasing inside [σ_min, σ_max] scores ``inf`` (so the polish never leaves the
model's range or merges steps). Each iteration costs one to ``n + 1`` fitness calls (``n`` free coordinates); the
fitness must be deterministic (the same noise every call: ``EndpointFitness`` with ``batch=None``, draw 0).

The result is the best list seen, never worse than the start (its fitness is the first call), with the history of
best values per call. Pure numpy/torch; any sampler function works (ComfyUI's, through the node or the lab's worker).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ScheduleError
from ..model_kind import ModelKind
from ..validate import validate_sigmas

__all__ = ["PolishResult", "polish"]


@dataclass
class PolishResult:
    sigmas: torch.Tensor            # float64, descending, ending in 0: the best list seen
    fitness: float                  # its fitness
    start_fitness: float            # the fitness of the list it started from
    start_sigmas: torch.Tensor | None = None  # that list (float64)
    evaluations: int = 0            # fitness calls
    history: list[float] = field(default_factory=list)  # best fitness after each call


def polish(fitness: Callable[[torch.Tensor], float], init_sigmas, kind: ModelKind, evaluations: int = 80,
           step: float = 0.25, fix_first: bool = True, progress=None) -> PolishResult:
    """Nelder–Mead (reflection 1, expansion 2, contraction ½, shrink ½) on the log-sigmas of ``init_sigmas``.

    ``fitness(sigmas) -> float`` (lower is better, deterministic); ``evaluations`` caps its calls; ``progress(info)``
    is called after every call (``evaluation``, ``evaluations``, ``fitness``, ``best_fitness``) and may raise to
    cancel.
    """
    if isinstance(evaluations, bool) or not isinstance(evaluations, (int, np.integer)) or evaluations < 1:
        raise ScheduleError(f"evaluations={evaluations!r} must be a whole number >= 1 (40-150 is typical).")
    if not (isinstance(step, (int, float)) and math.isfinite(step) and 0 < step < 1):
        raise ScheduleError(f"step={step!r} must be in (0, 1): the share of the smallest neighbouring log-gap the "
                            "first simplex moves each sigma (0.25 is the default).")
    s = validate_sigmas(torch.as_tensor(init_sigmas, dtype=torch.float64), "init_sigmas")
    positive = s[:-1].numpy().copy()
    lo, hi = math.log(kind.sigma_min), math.log(kind.sigma_max)
    logs = np.log(positive)
    if logs[0] > hi + 1e-6 or logs[-1] < lo - 1e-6:
        raise ScheduleError(f"init_sigmas from {positive[0]:.4g} to {positive[-1]:.4g} leave the model's range "
                            f"[{kind.sigma_min:.4g}, {kind.sigma_max:.4g}]; polish a list made for this model.")
    free = np.arange(1 if fix_first else 0, len(logs))
    result = PolishResult(sigmas=s.clone(), fitness=math.inf, start_fitness=math.inf, start_sigmas=s.clone())
    if len(free) == 0:  # one step from a fixed start: nothing to move
        result.fitness = result.start_fitness = _finite(fitness(s))
        result.evaluations, result.history = 1, [result.fitness]
        return result

    def to_sigmas(u: np.ndarray) -> torch.Tensor | None:
        v = logs.copy()
        v[free] = u
        if not (np.all(np.diff(v) < 0) and v[0] <= hi + 1e-9 and v[-1] >= lo - 1e-9):
            return None
        out = positive.copy()
        out[free] = np.exp(u)  # a fixed sigma keeps its exact value
        return torch.cat([torch.from_numpy(out), torch.zeros(1, dtype=torch.float64)])

    def f(u: np.ndarray) -> float:
        sig = to_sigmas(u)
        if sig is None:  # outside the range or out of order: no model call, never accepted
            return math.inf
        value = _finite(fitness(sig))
        result.evaluations += 1
        if value < result.fitness:
            result.fitness, result.sigmas = value, sig
        result.history.append(result.fitness)
        if progress is not None:
            progress({"evaluation": result.evaluations, "evaluations": evaluations, "fitness": value,
                      "best_fitness": result.fitness})
        return value

    x0 = logs[free]
    result.start_fitness = f(x0)
    # first simplex: each free log-sigma moved by a share of its smallest neighbouring gap (the range ends count)
    edges = np.concatenate([[hi], logs, [lo]])
    idx = free + 1
    gaps = np.minimum(edges[idx - 1] - edges[idx], edges[idx] - edges[idx + 1])
    gaps = np.where(gaps > 1e-9, gaps, np.maximum(edges[idx - 1] - edges[idx], edges[idx] - edges[idx + 1]))
    simplex = [x0] + [x0 - step * gaps[i] * np.eye(len(free))[i] for i in range(len(free))]
    values = [result.start_fitness] + [f(x) for x in simplex[1:] if result.evaluations < evaluations]
    simplex = simplex[: len(values)]
    rounds = 0
    while result.evaluations < evaluations and len(values) == len(free) + 1 and rounds < 10 * evaluations:
        rounds += 1
        order = np.argsort(values, kind="stable")
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        centroid = np.mean(simplex[:-1], axis=0)
        worst = simplex[-1]
        xr = centroid + (centroid - worst)
        fr = f(xr)
        if fr < values[0]:
            if result.evaluations >= evaluations:
                simplex[-1], values[-1] = xr, fr
                break
            xe = centroid + 2.0 * (centroid - worst)
            fe = f(xe)
            simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = xr, fr
        else:
            if result.evaluations >= evaluations:
                break
            outside = fr < values[-1]
            xc = centroid + 0.5 * ((xr if outside else worst) - centroid)
            fc = f(xc)
            if fc < (fr if outside else values[-1]):
                simplex[-1], values[-1] = xc, fc
            else:  # shrink towards the best point
                for i in range(1, len(simplex)):
                    if result.evaluations >= evaluations:
                        break
                    simplex[i] = simplex[0] + 0.5 * (simplex[i] - simplex[0])
                    values[i] = f(simplex[i])
        if max(np.max(np.abs(x - simplex[0])) for x in simplex[1:]) < 1e-5:
            break  # collapsed: nothing left to gain at this resolution
    return result


def _finite(v) -> float:
    v = float(v)
    return v if math.isfinite(v) else math.inf
