"""Benchmark metrics (docs/testbeds.md): solver error and distribution distances (NFE: schedules.model_calls).

* ``rmse`` — solver error against a converged endpoint.
* ``fd_cls`` — Fréchet distance in the bundled digits classifier's penultimate feature space.
* ``swd`` — sliced 2-Wasserstein distance (512 seeded projections).
* ``mode_agreement``, ``nearest_index``, ``nearest_distance`` — for the memorising exact denoiser (docs/testbeds.md).
Rows are compared flat: images (N, 1, 8, 8) and rows (N, 64) are interchangeable.
"""
from __future__ import annotations

import torch

from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats
from schedule_lab.kernels.sliced_wasserstein import sliced_wasserstein

__all__ = [
    "classifier_features", "fd_cls", "kid", "mode_agreement", "nearest_distance", "nearest_index",
    "rmse", "swd",
]


def _flat64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(x.shape[0], -1).to(device="cpu", dtype=torch.float64)


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Root mean squared difference over all elements, in float64."""
    if a.shape != b.shape:
        raise ValueError(f"rmse: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((_flat64(a) - _flat64(b)).square().mean().sqrt())


@torch.no_grad()
def classifier_features(x: torch.Tensor, classifier=None) -> torch.Tensor:
    """(N, F) float64 penultimate features of the bundled digits classifier (or ``classifier``)."""
    if classifier is None:
        from .models import load_classifier

        classifier = load_classifier()
    return classifier.features(x.detach().reshape(x.shape[0], -1).cpu().float()).double()


def fd_cls(samples: torch.Tensor, reference, classifier=None) -> float:
    """FD_cls: Fréchet distance between classifier features of ``samples`` and of ``reference``.

    ``reference`` is either a tensor of reference points (e.g. the test split) or precomputed
    ``(mu, cov)`` feature statistics (from ``gaussian_stats(classifier_features(ref))``) to save the work.
    The value is biased in N: compare only numbers computed with the same sample count.
    """
    mu1, cov1 = gaussian_stats(classifier_features(samples, classifier))
    if isinstance(reference, torch.Tensor):
        mu2, cov2 = gaussian_stats(classifier_features(reference, classifier))
    else:
        mu2, cov2 = reference
    return frechet_distance(mu1, cov1, mu2, cov2)


def kid(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """KID (Bińkowski et al. 2018): the unbiased squared MMD between two feature sets with the cubic polynomial
    kernel k(x, y) = (x·y / d + 1)³. Unbiased in N (unlike FD), so it can be compared across sample counts; it
    can be slightly negative when the two sets come from the same distribution."""
    a, b = features_a.double(), features_b.double()
    d = a.shape[1]
    m, n = a.shape[0], b.shape[0]
    kaa = (a @ a.T / d + 1) ** 3
    kbb = (b @ b.T / d + 1) ** 3
    kab = (a @ b.T / d + 1) ** 3
    within = (kaa.sum() - kaa.diagonal().sum()) / (m * (m - 1)) + (kbb.sum() - kbb.diagonal().sum()) / (n * (n - 1))
    return float(within - 2 * kab.mean())


def swd(a: torch.Tensor, b: torch.Tensor, n_projections: int = 512, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between the rows of a and b (see kernels.sliced_wasserstein)."""
    return sliced_wasserstein(a, b, n_projections=n_projections, seed=seed)


def _nearest(x: torch.Tensor, data: torch.Tensor, chunk: int = 1024):
    x, data = _flat64(x), _flat64(data)
    dists, idx = [], []
    for start in range(0, x.shape[0], chunk):
        d, i = torch.cdist(x[start:start + chunk], data).min(dim=1)
        dists.append(d)
        idx.append(i)
    return torch.cat(dists), torch.cat(idx)


def nearest_index(x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """(N,) index of each row's nearest (Euclidean) row of ``data``."""
    return _nearest(x, data)[1]


def nearest_distance(x: torch.Tensor, data: torch.Tensor, reduce: str = "mean"):
    """Euclidean distance from each row of x to its nearest row of ``data``: their mean (a float) by default,
    or the (N,) tensor with ``reduce="none"``."""
    d = _nearest(x, data)[0]
    if reduce == "none":
        return d
    if reduce == "mean":
        return float(d.mean())
    raise ValueError(f"nearest_distance: reduce must be 'mean' or 'none', got {reduce!r}")


def mode_agreement(samples: torch.Tensor, reference_samples: torch.Tensor, train: torch.Tensor) -> float:
    """Fraction of samples whose nearest training point is the matching reference sample's (same x_T)."""
    if samples.shape[0] != reference_samples.shape[0]:
        raise ValueError("mode_agreement: samples and reference_samples must pair up (same x_T, same count), "
                         f"got {samples.shape[0]} and {reference_samples.shape[0]}")
    same = nearest_index(samples, train) == nearest_index(reference_samples, train)
    return float(same.double().mean())
