"""Per-step tensor work of the TADA sampler (solvers/tada.py) on a stacked augmented state.

The state is one 2-D tensor ``z`` of shape (K, d): rows 0..N−1 are the augmented variables X⁽ʲ⁾ flattened (d =
numel of the latent, batch included, since every coefficient is shared by all pixels and all batch items) and the
remaining rows are the ring of stored forces F. Every combination Σ_j v[j]·z[j] is a single matrix–vector
product (one pass over the rows, one write), and updates run in place, so a step allocates only the model input.
Weights are 1-D tensors already on z's device and dtype (the sampler precomputes them for all steps at once).
"""
from __future__ import annotations

import torch

__all__ = ["ab_update_", "combine", "force_into_", "lift_", "lower_triangular_apply_"]


def combine(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_j weights[j]·rows[j] for rows (K, d) and weights (K,): a new (d,) tensor."""
    return torch.mv(rows.T, weights)


def force_into_(out: torch.Tensor, denoised: torch.Tensor, state: torch.Tensor, a: float,
                p: torch.Tensor) -> torch.Tensor:
    """out ← a·denoised − Σ_j p[j]·state[j] in one pass (the TADA force F = N!/sᴺ (x̂ − Σ X⁽ʲ⁾ sʲ/j!))."""
    return torch.addmv(denoised, state.T, p, beta=a, alpha=-1.0, out=out)


def ab_update_(z: torch.Tensor, n: int, weights: torch.Tensor) -> torch.Tensor:
    """In place: z[a] ← z[a] + Σ_{b>a} weights[a, b]·z[b] for a = 0..n−1 (ascending).

    With weights[a, b<n] = Φ_A(h)[a, b] (upper triangular, unit diagonal) and weights[a, n+slot] the
    Adams–Bashforth coefficients of the force stored in that slot, this is X ← Φ_A(h) X + Σ_j C_j F_{i−j}
    without a second copy of X: row a only reads rows b > a, which are still the old values.
    """
    for a in range(n):
        z[a].addmv_(z[a + 1:].T, weights[a, a + 1:])
    return z


def lower_triangular_apply_(x: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """In place: x ← L x for a lower-triangular L (n, n) on rows x (n, d), last row first."""
    n = x.shape[0]
    for a in range(n - 1, -1, -1):
        x[a].mul_(lower[a, a])
        if a:
            x[a].addmv_(x[:a].T, lower[a, :a])
    return x


def lift_(x: torch.Tensor, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """In place rank-one update x[j] ← x[j] + c[j]·r (x (n, d), c (n,), r (d,))."""
    return x.addr_(c, r)
