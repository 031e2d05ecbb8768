"""Fréchet distance between two Gaussians (the formula behind FID), by symmetric eigen-decompositions.

    FD = |μ1 - μ2|² + tr C1 + tr C2 - 2 tr (C1^½ C2 C1^½)^½

tr (C1 C2)^½ equals tr (C1^½ C2 C1^½)^½, and the matrix inside is symmetric positive semi-definite, so we
need only ``eigh`` (for C1^½) and ``eigvalsh`` (for its square-root trace): no general ``sqrtm``, no complex
parts. Everything runs in float64; eigenvalues that rounding makes slightly negative are clamped to 0.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["frechet_distance", "gaussian_stats"]


def _f64(a) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a).to(torch.float64)
    return torch.as_tensor(a).detach().to(device="cpu", dtype=torch.float64)


def _sym_sqrt(c: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix."""
    w, v = torch.linalg.eigh(0.5 * (c + c.T))
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet (2-Wasserstein) distance² between N(mu1, cov1) and N(mu2, cov2); a float ≥ 0.

    Accepts torch tensors or numpy arrays: means (d,), covariances (d, d).
    """
    mu1, cov1, mu2, cov2 = (_f64(a) for a in (mu1, cov1, mu2, cov2))
    if cov1.shape != cov2.shape or mu1.shape != mu2.shape or cov1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(f"frechet_distance: shape mismatch: mu {tuple(mu1.shape)}/{tuple(mu2.shape)}, "
                         f"cov {tuple(cov1.shape)}/{tuple(cov2.shape)}; expected (d,) and (d, d)")
    root1 = _sym_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    eig = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0)
    fd = (mu1 - mu2).square().sum() + torch.trace(cov1) + torch.trace(cov2) - 2.0 * eig.sqrt().sum()
    return max(float(fd), 0.0)


def gaussian_stats(features) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of the rows of an (N, d) feature matrix, in float64."""
    f = _f64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"gaussian_stats: expected (N >= 2, d) features, got {tuple(f.shape)}")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)
