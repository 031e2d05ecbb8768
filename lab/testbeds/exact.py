"""Testbed 2: the exact (optimal) denoiser of an empirical dataset, as a k-diffusion model.

It memorises: the converged ODE lands exactly on training points, and the flow map is discontinuous, so read
docs/testbeds.md for the metrics that stay meaningful (mode agreement, SWD/FD against train with the
converged-ODE floor, RMSE at an intermediate σ).
"""
from __future__ import annotations

import hashlib

import torch

from schedule_lab.kernels.exact_denoiser import exact_denoise

__all__ = ["ExactDenoiser"]


class ExactDenoiser:
    """``model(x, sigma_vec, **kw)`` → posterior mean over the rows of ``data`` (M, d).

    x may be (B, d) or (B, *shape) with prod(shape) = d (e.g. (B, 1, 8, 8) digits); the output has x's shape
    and dtype. Extra keyword arguments (conditioning) are accepted and ignored.
    """

    def __init__(self, data: torch.Tensor, chunk: int = 2048):
        self.data = data.detach().reshape(data.shape[0], -1)
        self.chunk = chunk
        self._cast: dict = {}
        self._cache_key = None

    def _data_like(self, x: torch.Tensor) -> torch.Tensor:
        k = (x.dtype, x.device)
        if k not in self._cast:
            self._cast[k] = self.data.to(dtype=x.dtype, device=x.device)
        return self._cast[k]

    def __call__(self, x: torch.Tensor, sigma, **_: object) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        return exact_denoise(flat, sigma, self._data_like(x), chunk=self.chunk).reshape(x.shape)

    @property
    def cache_key(self) -> str:
        """A content hash of the data, for testbeds.reference's endpoint cache."""
        if self._cache_key is None:
            d = self.data.detach().cpu().to(torch.float64).contiguous()
            digest = hashlib.sha256(str(tuple(d.shape)).encode() + d.numpy().tobytes()).hexdigest()[:24]
            self._cache_key = f"exact-denoiser:{digest}"
        return self._cache_key
