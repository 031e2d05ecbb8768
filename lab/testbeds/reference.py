"""Converged ODE endpoints: many-step Heun on Karras sigmas, cached on disk as .safetensors.

The reference is what "solver error" is measured against (docs/testbeds.md: RMSE to the converged ODE, mode
agreement). Heun-500 costs ~1000 NFE, so results are cached under a hash of everything that determines them:
the model's identity (``key``, or the model's own ``cache_key``), the starting noise x_T and the sigmas.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from schedule_lab.schedules.baseline import karras
from schedule_lab.solvers.classic import sample_heun

__all__ = ["cache_directory", "converged_endpoint", "karras_sigmas"]

_FORMAT = "schedule-lab/converged-endpoint/v1"


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, dtype=torch.float32):
    """Karras et al. 2022 (eq. 5) schedule of n sigmas from σ_max to σ_min, plus a final 0 (n + 1 values)."""
    return karras(n, sigma_min, sigma_max, rho, dtype=dtype)


def cache_directory(cache_dir=None) -> Path:
    """``cache_dir`` if given, else $SCHEDULE_LAB_CACHE, else ~/.cache/schedule-lab."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("SCHEDULE_LAB_CACHE") or Path.home() / ".cache" / "schedule-lab")


def _digest(key: str, x_T: torch.Tensor, sigmas: torch.Tensor) -> str:
    h = hashlib.sha256()
    for part in (_FORMAT, key, str(tuple(x_T.shape)), str(x_T.dtype)):
        h.update(part.encode() + b"\0")
    h.update(x_T.detach().cpu().contiguous().numpy().tobytes())
    h.update(sigmas.detach().cpu().to(torch.float64).contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def converged_endpoint(
    model,
    x_T: torch.Tensor,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    steps: int = 500,
    sigmas: torch.Tensor | None = None,
    cache_dir=None,
    key: str | None = None,
    extra_args: dict | None = None,
    sampler=None,
    sampler_key: str | None = None,
) -> torch.Tensor:
    """Heun with ``steps`` Karras steps (2·steps − 1 NFE) from x_T at σ_max down to 0, cached on disk.

    ``sampler`` replaces Heun by another converging solver ``sampler(model, x, sigmas) -> x0`` (e.g. TADA bound to
    a seed: its own ODE, whose endpoint depends on the seed); ``sampler_key`` must then name it and every option
    that changes its endpoint, since it goes into the cache hash.

    Args:
        model: k-diffusion denoiser ``model(x, sigma_vec, **extra_args)``.
        x_T: starting noise, already scaled to σ_max (e.g. ``σ_max · randn``).
        sigma_min, sigma_max, rho, steps: the Karras schedule; ignored when ``sigmas`` is given.
        sigmas: an explicit descending schedule ending in 0 (hashed as is).
        cache_dir: cache folder (default $SCHEDULE_LAB_CACHE or ~/.cache/schedule-lab).
        key: a string naming the model (weights, data, config). Defaults to ``model.cache_key`` when the
            model has one (ExactDenoiser, the bundled EDM MLP); with neither, nothing is cached.

    Returns:
        The endpoint, same shape and dtype as x_T.
    """
    if sigmas is None:
        sigmas = karras_sigmas(steps, sigma_min, sigma_max, rho, dtype=torch.float64)
    sigmas = sigmas.to(device=x_T.device, dtype=x_T.dtype)
    key = key if key is not None else getattr(model, "cache_key", None)
    path = None
    if sampler is not None and sampler_key is None:
        raise ValueError("converged_endpoint: a custom `sampler` needs a `sampler_key` naming it and its options "
                         "(it is part of the cache hash)")
    if key is not None:
        if sampler is not None:
            key = f"{key}|sampler={sampler_key}"
        if extra_args:
            raise ValueError("converged_endpoint: extra_args cannot be hashed; fold them into `key` and "
                             "bind them into the model (functools.partial) instead")
        path = cache_directory(cache_dir) / f"endpoint-{_digest(str(key), x_T, sigmas)}.safetensors"
        if path.exists():
            return load_file(str(path))["x0"].to(device=x_T.device, dtype=x_T.dtype)
    if sampler is not None:
        x0 = sampler(model, x_T, sigmas)
    else:
        x0 = sample_heun(model, x_T, sigmas, extra_args=extra_args)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({"x0": x0.detach().cpu().contiguous()}, str(tmp),
                  metadata={"format": _FORMAT, "key": str(key), "steps": str(len(sigmas) - 1)})
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return x0
