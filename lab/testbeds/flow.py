"""Any exact testbed as a rectified-flow model (SD3 / Flux parameterisation), for the flow rows of the defaults.

A denoiser of data y under VE noise, D_VE(y + σ n, σ), is the denoiser of every parameterisation (docs/testbeds.md):
a flow model's input is x = (1 − s) y + s n (ComfyUI's CONST with σ = s), i.e. x / (1 − s) = y + s/(1 − s) n, so
D_flow(x, s) = D_VE(x / (1 − s), s / (1 − s)), and at s = 1 (pure noise) the posterior mean is the data mean. Which
flow model (SD3's shift, Flux's mu) only changes the schedules ComfyUI builds, never this map: the kinds are
``ModelKind.flow(shift)`` and ``ModelKind.flux(mu)``.
"""
from __future__ import annotations

import torch

from schedule_lab.schedules.baseline import karras

__all__ = ["FlowDenoiser", "data_mean", "flow_part", "flow_reference_sigmas"]


class FlowDenoiser:
    """``ve_model`` (k-diffusion contract, VE sigma) seen as a rectified-flow model; ``data_mean`` is its output at
    s = 1. Keeps the wrapped model's ``cache_key`` (prefixed), so converged endpoints are cached per model."""

    def __init__(self, ve_model, data_mean: torch.Tensor):
        self.ve_model = ve_model
        self.data_mean = data_mean.detach().to(torch.float64).reshape(-1)
        base = getattr(ve_model, "cache_key", None)
        self.cache_key = None if base is None else f"flow:{base}"

    def __call__(self, x: torch.Tensor, sigma, **kwargs) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        noise_only = s >= 1.0
        keep = torch.where(noise_only, torch.zeros_like(s), 1.0 - s)  # 1 − s, 0 where s = 1
        scale = torch.where(noise_only, torch.ones_like(s), 1.0 / keep.clamp_min(1e-300))
        shape = (-1,) + (1,) * (x.ndim - 1)
        y = x.to(torch.float64) * scale.reshape(shape)
        out = self.ve_model(y.to(x.dtype), (s * scale).to(x.dtype), **kwargs)
        mean = self.data_mean.to(out.dtype).reshape(1, *x.shape[1:]).expand_as(out)
        return torch.where(noise_only.reshape(shape), mean, out)


def flow_reference_sigmas(steps: int = 500) -> torch.Tensor:
    """A converging flow list for Heun from s = 1: Karras steps (ρ = 7, VE σ 0.002–80) as s = σ/(1 + σ), after s = 1
    (float64, ``steps + 1`` levels and the final 0)."""
    ve = karras(steps, 0.002, 80.0, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), ve / (1.0 + ve)])


def data_mean(model) -> torch.Tensor:
    """The posterior mean at pure noise of an exact testbed: Σ w_k μ_k of a mixture, the mean of an exact denoiser's
    data."""
    if hasattr(model, "weights") and hasattr(model, "means"):
        return model.weights @ model.means
    if hasattr(model, "data"):
        return model.data.to(torch.float64).mean(0)
    raise ValueError(f"{type(model).__name__} is not an exact testbed (a LowRankMixture or an ExactDenoiser)")


def flow_part(name: str, part: str, n: int | None = None):
    """(Part, FlowDenoiser) of an exact suite testbed (``testbeds.suite.load_part``); x_T is ``Part.noise`` at s = 1."""
    from .suite import load_part

    p = load_part(name, part, n)
    return p, FlowDenoiser(p.model, data_mean(p.model))
