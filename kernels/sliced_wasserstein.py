"""Sliced 2-Wasserstein distance between two point clouds.

    SW2(X, Y) = ( mean_u W2²(u·X, u·Y) )^½   over unit directions u

The directions come from a seeded CPU generator, so the value is reproducible and two calls with the same seed
compare on the same slices. In 1-D, W2² is the integral over t ∈ (0, 1) of (F_X⁻¹(t) − F_Y⁻¹(t))², where the
empirical quantile functions are step functions of the sorted projections. For equal sizes that is the mean
squared difference of the sorted values; for unequal sizes (n, m) we integrate the two step functions exactly
over the merged breakpoints {i/n} ∪ {j/m}, so no resampling error is added.
"""
from __future__ import annotations

import torch

__all__ = ["random_directions", "sliced_wasserstein", "wasserstein_1d_squared"]


def random_directions(dim: int, n_projections: int, seed: int = 0) -> torch.Tensor:
    """(n_projections, dim) float64 unit vectors, uniform on the sphere, from a seeded CPU generator."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    u = torch.randn(n_projections, dim, generator=gen, dtype=torch.float64)
    return u / u.norm(dim=1, keepdim=True)


def wasserstein_1d_squared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact W2² between the empirical distributions of the columns of a (n, P) and b (m, P); returns (P,)."""
    a, _ = torch.sort(a, dim=0)
    b, _ = torch.sort(b, dim=0)
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return (a - b).square().mean(0)
    # Breakpoints on the common grid 1/(n·m): i/n = i·m/(nm), j/m = j·n/(nm). Exact integers, no rounding.
    ticks = torch.unique(torch.cat([torch.arange(n + 1) * m, torch.arange(m + 1) * n]))
    widths = (ticks[1:] - ticks[:-1]).to(torch.float64) / (n * m)
    starts = ticks[:-1]  # on (t_k, t_k+1] the quantile index of a is floor(t_k·n) = start // m
    ia, ib = starts // m, starts // n
    return (widths[:, None] * (a[ia] - b[ib]).square()).sum(0)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_projections: int = 512, seed: int = 0) -> float:
    """SW2 between the rows of x (n, ...) and y (m, ...), trailing dims flattened, in float64; a float ≥ 0."""
    x = x.detach().reshape(x.shape[0], -1).to(device="cpu", dtype=torch.float64)
    y = y.detach().reshape(y.shape[0], -1).to(device="cpu", dtype=torch.float64)
    if x.shape[1] != y.shape[1] or x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"sliced_wasserstein: need non-empty sets of equal dimension, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    u = random_directions(x.shape[1], n_projections, seed)
    return float(wasserstein_1d_squared(x @ u.T, y @ u.T).mean().sqrt())
