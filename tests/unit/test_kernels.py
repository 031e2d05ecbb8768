"""kernels/: each fast function against a plain, obvious reference and closed-form cases."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from schedule_lab.kernels.exact_denoiser import exact_denoise
from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats
from schedule_lab.kernels.sliced_wasserstein import random_directions, sliced_wasserstein


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- exact denoiser

def naive_exact_denoise(x, sigma, data):
    """The obvious B×M×d formula, float64."""
    x, data = x.double(), data.double()
    sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(x.shape[0])
    d2 = (x[:, None, :] - data[None, :, :]).square().sum(-1)
    w = torch.softmax(-d2 / (2 * sigma[:, None] ** 2), dim=1)
    return w @ data


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_exact_denoise_matches_naive_formula_for_any_chunk(chunk):
    data = torch.randn(50, 6, generator=_gen(0), dtype=torch.float64)
    x = torch.randn(9, 6, generator=_gen(1), dtype=torch.float64) * 2
    sigma = torch.tensor([0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 80.0, 0.3], dtype=torch.float64)
    got = exact_denoise(x, sigma, data, chunk=chunk)
    torch.testing.assert_close(got, naive_exact_denoise(x, sigma, data), rtol=1e-10, atol=1e-10)


def test_exact_denoise_scalar_sigma_equals_per_row_sigma():
    data = torch.randn(40, 5, generator=_gen(0))
    x = torch.randn(8, 5, generator=_gen(1))
    torch.testing.assert_close(exact_denoise(x, 0.7, data), exact_denoise(x, torch.full((8,), 0.7), data))


def test_exact_denoise_float32_close_to_float64():
    data = torch.rand(300, 64, generator=_gen(0)) * 2 - 1
    x = data[:16] + 0.5 * torch.randn(16, 64, generator=_gen(1))
    got = exact_denoise(x, 0.5, data, chunk=100)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), naive_exact_denoise(x, 0.5, data), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_denoise_tiny_sigma_gives_nearest_point_without_nan(dtype):
    data = (torch.rand(500, 64, generator=_gen(0)) * 2 - 1).to(dtype)
    x = data[:32] + 0.002 * torch.randn(32, 64, generator=_gen(1), dtype=dtype)
    got = exact_denoise(x, 0.002, data, chunk=128)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, data[:32], rtol=0, atol=1e-6)


def test_exact_denoise_sigma_zero_gives_nearest_point():
    data = torch.randn(30, 3, generator=_gen(0), dtype=torch.float64)
    x = torch.randn(5, 3, generator=_gen(1), dtype=torch.float64)
    nearest = data[torch.cdist(x, data).argmin(1)]
    torch.testing.assert_close(exact_denoise(x, 0.0, data), nearest)


def test_exact_denoise_huge_sigma_gives_data_mean():
    data = torch.randn(30, 3, generator=_gen(0), dtype=torch.float64)
    x = torch.randn(5, 3, generator=_gen(1), dtype=torch.float64)
    torch.testing.assert_close(exact_denoise(x, 1e6, data), data.mean(0).expand(5, 3), rtol=0, atol=1e-8)


def test_exact_denoise_rejects_unflattened_images():
    with pytest.raises(ValueError, match="flatten"):
        exact_denoise(torch.zeros(2, 1, 8, 8), 1.0, torch.zeros(3, 64))


# ---------------------------------------------------------------- Fréchet distance

def scipy_frechet(mu1, c1, mu2, c2):
    """The textbook FID formula with a general matrix square root."""
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


def _random_cov(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d


def test_frechet_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    c1, c2 = _random_cov(rng, 12), _random_cov(rng, 12)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(scipy_frechet(mu1, c1, mu2, c2), rel=1e-9)


def test_frechet_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(1)
    mu, c = rng.standard_normal(20), _random_cov(rng, 20, rank=5)  # rank-deficient: eigenvalue clamping
    assert frechet_distance(mu, c, mu, c) == pytest.approx(0.0, abs=1e-9)


def test_frechet_of_diagonal_covariances_is_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 0.25])
    expected = float((mu1 - mu2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum())
    assert frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_gaussian_stats_matches_numpy():
    f = np.random.default_rng(2).standard_normal((100, 7))
    mu, cov = gaussian_stats(torch.from_numpy(f))
    np.testing.assert_allclose(mu.numpy(), f.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(f, rowvar=False), atol=1e-12)


# ---------------------------------------------------------------- sliced Wasserstein

def test_sliced_wasserstein_of_identical_sets_is_zero():
    x = torch.randn(100, 5, generator=_gen(0))
    assert sliced_wasserstein(x, x.clone()) == 0.0


def test_sliced_wasserstein_in_1d_is_exact_w2_of_sorted_samples():
    x, y = torch.randn(200, 1, generator=_gen(0)), torch.randn(200, 1, generator=_gen(1)) + 0.3
    exact = (x.double().sort(0).values - y.double().sort(0).values).square().mean().sqrt()
    assert sliced_wasserstein(x, y, n_projections=8) == pytest.approx(float(exact), rel=1e-12)


def test_sliced_wasserstein_unequal_sizes_1d_equals_repeated_equal_size():
    # 3 and 6 points: repeating each of the 3 twice gives the same distribution at equal size 6.
    x = torch.tensor([[0.0], [1.0], [5.0]])
    y = torch.tensor([[0.5], [-1.0], [2.0], [3.0], [4.0], [7.0]])
    assert sliced_wasserstein(x, y, 4) == pytest.approx(sliced_wasserstein(x.repeat(2, 1), y, 4), rel=1e-12)


def test_sliced_wasserstein_unequal_sizes_against_fine_quantile_grid():
    x, y = torch.randn(37, 1, generator=_gen(0)), torch.randn(50, 1, generator=_gen(1)) * 2
    t = (torch.arange(37 * 50 * 4, dtype=torch.float64) + 0.5) / (37 * 50 * 4)
    qx = x.double().sort(0).values[(t * 37).long(), 0]
    qy = y.double().sort(0).values[(t * 50).long(), 0]
    assert sliced_wasserstein(x, y, 2) == pytest.approx(float((qx - qy).square().mean().sqrt()), rel=1e-9)


def test_sliced_wasserstein_of_translation_is_rms_of_projected_shift():
    x = torch.randn(300, 4, generator=_gen(0), dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    u = random_directions(4, 256, seed=3)
    expected = float((u @ c).square().mean().sqrt())
    assert sliced_wasserstein(x, x + c, n_projections=256, seed=3) == pytest.approx(expected, rel=1e-10)
    # and in expectation over directions that is |c| / √d
    assert expected == pytest.approx(float(c.norm()) / 2.0, rel=0.1)


def test_sliced_wasserstein_is_reproducible_for_a_seed():
    x, y = torch.randn(50, 8, generator=_gen(0)), torch.randn(60, 8, generator=_gen(1))
    assert sliced_wasserstein(x, y, seed=5) == sliced_wasserstein(x, y, seed=5)
    assert sliced_wasserstein(x, y, seed=5) != sliced_wasserstein(x, y, seed=6)
