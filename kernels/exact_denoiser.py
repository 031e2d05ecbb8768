"""The optimal (minimum-MSE) denoiser of an empirical dataset.

For data points y_1..y_M and x = y + σ·n, the posterior mean is

    D(x, σ) = Σ_i w_i(x, σ) y_i,   w = softmax_i( -|x - y_i|² / (2σ²) ).

We expand |x - y|² = |x|² - 2 x·y + |y|² and drop |x|², a per-row constant that cancels in the softmax,
so the logits are (2 x·y - |y|²) / (2σ²). The data are centred first (their mean subtracted from x and y,
added back at the end) to keep the dot products small, which matters in float32 at tiny σ. The softmax is
accumulated over chunks of the data with a running log-sum-exp, so memory is B×chunk, never B×M×d.
"""
from __future__ import annotations

import torch

__all__ = ["exact_denoise"]

# σ is floored here so σ = 0 gives the nearest data point instead of 0/0. 1/(2·1e-10²) = 5e19 keeps
# logits of squared distances up to ~1e18 finite in float32 (max ~3.4e38).
_SIGMA_FLOOR = 1e-10


def exact_denoise(
    x: torch.Tensor, sigma: torch.Tensor | float, data: torch.Tensor, chunk: int = 2048
) -> torch.Tensor:
    """Posterior mean E[y | x] for y uniform over the rows of ``data`` and x = y + σ·n, n ~ N(0, I).

    Args:
        x: (B, d) noisy points.
        sigma: noise level, a scalar or a (B,) tensor (one σ per row).
        data: (M, d) data points; cast to ``x``'s dtype and device.
        chunk: data rows processed at once (memory is B×chunk).

    Returns:
        (B, d) tensor in ``x``'s dtype. σ → 0 gives the nearest data point, σ → ∞ the data mean.
    """
    if x.ndim != 2 or data.ndim != 2 or x.shape[1] != data.shape[1]:
        raise ValueError(f"exact_denoise: expected x (B, d) and data (M, d), got {tuple(x.shape)} and "
                         f"{tuple(data.shape)}; flatten images to rows first")
    if chunk < 1:
        raise ValueError(f"exact_denoise: chunk must be >= 1, got {chunk}")
    data = data.to(dtype=x.dtype, device=x.device)
    center = data.mean(0)
    xc = x - center
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
    inv_two_var = 0.5 / sigma.clamp_min(_SIGMA_FLOOR).square()  # (B,)

    run_max = torch.full((x.shape[0],), float("-inf"), dtype=x.dtype, device=x.device)
    run_sum = torch.zeros_like(run_max)
    run_acc = torch.zeros_like(xc)
    for start in range(0, data.shape[0], chunk):
        yc = data[start:start + chunk] - center
        logits = (2.0 * (xc @ yc.T) - yc.square().sum(1)) * inv_two_var[:, None]  # (B, c)
        new_max = torch.maximum(run_max, logits.amax(1))
        rescale = torch.exp(run_max - new_max)  # exp(-inf) = 0 on the first chunk
        weights = torch.exp(logits - new_max[:, None])
        run_sum = run_sum * rescale + weights.sum(1)
        run_acc = run_acc * rescale[:, None] + weights @ yc
        run_max = new_max
    return run_acc / run_sum[:, None] + center
