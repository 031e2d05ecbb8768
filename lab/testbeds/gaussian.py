"""Testbed 1: Gaussian data N(μ, s²I), where the denoiser and the ODE flow have closed forms.

For y ~ N(μ, s²I) and x = y + σ·n the posterior mean is linear,
    D(x, σ) = μ + (x − μ) · s² / (s² + σ²),
so the probability-flow ODE dx/dσ = (x − D)/σ = (x − μ) σ / (s² + σ²) has the solution
    x(σ) − μ = (x(σ₀) − μ) · √(s² + σ²) / √(s² + σ₀²).
Its endpoint x(0) = μ + (x_T − μ) · s / √(s² + σ_max²) is an exact, reference-free target for solver order.
"""
from __future__ import annotations

import torch

__all__ = ["GaussianTestbed"]


class GaussianTestbed:
    """Isotropic Gaussian data in ``dim`` dimensions with mean ``mean`` (scalar or (dim,)) and std ``std``.

    ``denoiser`` follows the k-diffusion model contract, so it can be handed to any sampler directly.
    Tensors of shape (B, dim) or (B, *shape) with prod(shape) == dim are accepted.
    """

    def __init__(self, dim: int, mean=0.0, std: float = 1.0):
        if std <= 0:
            raise ValueError(f"GaussianTestbed: std must be > 0, got {std}")
        self.dim = int(dim)
        self.mean = torch.as_tensor(mean, dtype=torch.float64).expand(self.dim).clone()
        self.std = float(std)

    def _mu(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean.to(x).reshape(x.shape[1:])

    @staticmethod
    def _per_row(sigma, x: torch.Tensor) -> torch.Tensor:
        sigma = sigma.to(x) if isinstance(sigma, torch.Tensor) else torch.as_tensor(sigma, dtype=x.dtype)
        return sigma.reshape(-1, *([1] * (x.ndim - 1)))

    def denoiser(self, x: torch.Tensor, sigma, **_: object) -> torch.Tensor:
        """Posterior mean D(x, σ) = μ + (x − μ) s² / (s² + σ²); σ a scalar or (B,)."""
        mu, var = self._mu(x), self.std ** 2
        return mu + (x - mu) * (var / (var + self._per_row(sigma, x) ** 2))

    __call__ = denoiser

    def ode_solution(self, x: torch.Tensor, sigma_from, sigma_to) -> torch.Tensor:
        """Exact ODE flow from σ_from to σ_to (scalars or (B,))."""
        mu, var = self._mu(x), self.std ** 2
        ratio = ((var + self._per_row(sigma_to, x) ** 2) / (var + self._per_row(sigma_from, x) ** 2)).sqrt()
        return mu + (x - mu) * ratio

    def ode_endpoint(self, x_T: torch.Tensor, sigma_max) -> torch.Tensor:
        """x(0) = μ + (x_T − μ) · s / √(s² + σ_max²)."""
        return self.ode_solution(x_T, sigma_max, 0.0)

    def sample_prior(self, n: int, sigma_max: float, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
        """n points x_T = μ + √(s² + σ_max²) · n, the exact marginal at σ_max, from a seeded CPU generator."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        return (self.mean + z * (self.std ** 2 + sigma_max ** 2) ** 0.5).to(dtype)
