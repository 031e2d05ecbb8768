"""Genes of the timestep search (AutoDiffusion, Li et al. 2023, arXiv 2309.10438): the grid and the operators.

A candidate is a tuple of ``nfe`` distinct grid indices, sorted from the highest sigma down. The grid is
``kind.comfy_table()`` (ascending), so conversion to sigmas is an exact table lookup:

* eps/v: the model's own discrete sigma table (index = ComfyUI timestep, 1000 entries for SD);
* edm: 1000 sigmas uniform in log sigma, i.e. a fine log-SNR grid (λ = −log σ) over the model's range;
* flow: ComfyUI's table ``shift(k / 1000)``, k = 1..1000 (includes σ = 1, where log-SNR is −∞).

``GeneSpace(kind, size=n)`` builds an ``n``-point grid of the same construction for edm/flow (finer or coarser).
Every operator takes a ``numpy.random.Generator``: nothing here touches a global random state.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ScheduleError
from ..model_kind import COMFY_TABLE_SIZE, ModelKind, flow_shift

__all__ = ["GeneSpace", "crossover", "karras_genes", "mutate", "nearest_genes", "random_genes", "uniform_genes"]

Genes = tuple[int, ...]


class GeneSpace:
    """The ascending sigma grid a search picks ``nfe`` distinct points from."""

    def __init__(self, kind: ModelKind, size: int | None = None):
        if not isinstance(kind, ModelKind):
            raise ScheduleError(f"kind={kind!r} is not a ModelKind; build one with ModelKind.vp/edm/flow.")
        self.kind = kind
        if kind.is_discrete:
            if size is not None and size != len(kind.comfy_table()):
                raise ScheduleError(f"grid size={size} cannot be chosen for a discrete {kind.kind} model: its "
                                    "genes are the indices of its own sigma table; leave size unset.")
            table = kind.comfy_table()
        else:
            size = COMFY_TABLE_SIZE if size is None else size  # Flux's own table has 10000: the grid stays 1000
            if isinstance(size, bool) or int(size) != size or size < 8:
                raise ScheduleError(f"grid size={size!r} must be a whole number >= 8 (1000 is ComfyUI's).")
            size = int(size)
            if kind.kind == "edm":
                table = torch.linspace(math.log(kind.sigma_min), math.log(kind.sigma_max), size,
                                       dtype=torch.float64).exp()
            else:
                table = flow_shift(torch.arange(1, size + 1, dtype=torch.float64) / size, kind.shift)
        self.table = table.to(torch.float64)
        self.size = len(self.table)

    def describe(self) -> dict:
        """JSON description (stored with a search state so a resume on another grid is refused)."""
        default = len(self.table) == (len(self.kind.comfy_table()) if self.kind.is_discrete else COMFY_TABLE_SIZE)
        return {"model": self.kind.to_dict(), "size": self.size, "default_grid": bool(default)}

    def check_nfe(self, nfe) -> int:
        """``nfe`` as an int in [2, size], else a ScheduleError naming the input and the fix."""
        if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)) or not 2 <= nfe <= self.size:
            raise ScheduleError(f"NFE budget nfe={nfe!r} must be a whole number from 2 to {self.size} (the size "
                                "of this model's timestep grid); pick 2-20 steps for a search.")
        return int(nfe)

    def sigmas(self, genes) -> torch.Tensor:
        """The schedule of a candidate: its grid sigmas, highest first, then 0 (float64)."""
        idx = sorted({int(g) for g in genes}, reverse=True)
        if len(idx) != len(genes) or idx[0] >= self.size or idx[-1] < 0:
            raise ScheduleError(f"genes {tuple(genes)} must be distinct indices in [0, {self.size - 1}].")
        return torch.cat([self.table[idx], self.table.new_zeros(1)])

    def nearest(self, sigma: float) -> int:
        """Grid index nearest to ``sigma`` in log sigma (ComfyUI's rounding of a timestep)."""
        return int((self.table.log() - math.log(float(sigma))).abs().argmin())

    def valid(self, genes) -> bool:
        """True iff ``genes`` is a sorted-descending tuple of distinct in-range ints."""
        return (isinstance(genes, tuple) and len(genes) >= 1 and all(isinstance(g, int) for g in genes)
                and all(a > b for a, b in zip(genes, genes[1:], strict=False))
                and 0 <= genes[-1] and genes[0] < self.size)


def _sorted(values) -> Genes:
    return tuple(sorted((int(v) for v in values), reverse=True))


def _spread(indices: list[int], size: int) -> Genes:
    """Make rounded indices distinct by pushing collisions down (then up at the bottom), keeping the order."""
    out = sorted(indices, reverse=True)
    for i in range(1, len(out)):
        out[i] = min(out[i], out[i - 1] - 1)
    for i in range(len(out) - 1, -1, -1):  # fix anything pushed below 0
        floor = 0 if i == len(out) - 1 else out[i + 1] + 1
        out[i] = max(out[i], floor)
    if out[0] >= size:
        raise ScheduleError(f"cannot place {len(out)} distinct steps on a grid of {size}.")
    return tuple(out)


def uniform_genes(space: GeneSpace, nfe: int) -> Genes:
    """ComfyUI's "simple" schedule on the grid: top entry, then every ``size / nfe``-th entry down."""
    stride = space.size / nfe
    return _sorted(space.size - 1 - int(i * stride) for i in range(nfe))


def karras_genes(space: GeneSpace, nfe: int, rho: float = 7.0) -> Genes:
    """Karras et al. (2022) eq. 5 over the grid's range, each sigma rounded to its nearest grid point."""
    lo, hi = float(space.table[0]), float(space.table[-1])
    ramp = np.linspace(0.0, 1.0, nfe)
    sig = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return _spread([space.nearest(s) for s in sig], space.size)


def nearest_genes(space: GeneSpace, sigmas) -> Genes:
    """The positive ``sigmas`` (highest first) on their nearest grid points, collisions pushed apart."""
    return _spread([space.nearest(float(s)) for s in sigmas], space.size)


def random_genes(space: GeneSpace, nfe: int, rng: np.random.Generator) -> Genes:
    """A uniformly random ``nfe``-subset of the grid."""
    return _sorted(rng.choice(space.size, size=nfe, replace=False))


def mutate(genes: Genes, space: GeneSpace, rng: np.random.Generator, m_prob: float,
           local_fraction: float = 0.5, radius: int | None = None) -> Genes:
    """Each gene, with probability ``m_prob``, moves to a grid point not in the candidate.

    With probability ``local_fraction`` the move is local: ±k grid points with k log-uniform in [1, ``radius``]
    (default size/50); a local move that lands on a used or out-of-range point, and every other move, is global:
    any unused point (the AutoDiffusion operator). Steps stay distinct.
    """
    radius = max(2, space.size // 50) if radius is None else int(radius)
    out = list(genes)
    used = set(out)
    for i in range(len(out)):
        if rng.random() >= m_prob:
            continue
        new = None
        if rng.random() < local_fraction:  # a step of 1..radius grid points, log-uniform: small moves are common
            step = int(round(math.exp(rng.random() * math.log(radius)))) * (1 if rng.random() < 0.5 else -1)
            if 0 <= out[i] + step < space.size and out[i] + step not in used:
                new = out[i] + step
        if new is None:
            new = int(rng.integers(space.size))
            while new in used:  # the grid is much larger than nfe, so this ends quickly
                new = int(rng.integers(space.size))
        used.discard(out[i])
        used.add(new)
        out[i] = new
    return _sorted(out)


def crossover(a: Genes, b: Genes, rng: np.random.Generator) -> Genes | None:
    """Uniform crossover aligned by rank (both parents sorted); ``None`` when the child repeats a step.

    AutoDiffusion's code keeps such children, silently losing steps (ADM) or running zero-length steps (SD);
    we reject them so every candidate has exactly ``nfe`` distinct steps.
    """
    pick = rng.random(len(a)) < 0.5
    child = [x if p else y for x, y, p in zip(a, b, pick, strict=True)]
    return _sorted(child) if len(set(child)) == len(child) else None
