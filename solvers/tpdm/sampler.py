"""TPDM sampling: each image picks its own next noise level from the model's features (arXiv 2412.01243).

One model call per step, then the TPM reads the features captured during that call and gives Beta(α, β) over the
ratio r of the next noise *level* to the current one (the mode at inference, or a seeded sample), clamped to
[1e-3, 0.999]; an Euler step moves each image to its own next σ. An image stops when its next σ falls below
``min_sigma`` or after ``max_steps`` model calls; the batch still makes one batched call per step (the model gets a
per-image σ vector) and finished images are carried unchanged.

Where the ratio acts (docs/tpdm.md "eps / v / EDM"): the paper is flow-only, r multiplies the flow σ. For the other
kinds r multiplies the flow-equivalent level ℓ = σ / (1 + σ) (the noise level of an un-shifted rectified flow with the
same signal-to-noise ratio), so σ_next = ℓ' / (1 − ℓ'), ℓ' = r ℓ. ``kind=None`` means the paper's form on σ itself.
``min_sigma`` is always in the model's own σ units (what ComfyUI shows).

The last step (``final_step``): ``"zero"`` (default) lands the stopping step on σ = 0, i.e. returns the denoised
prediction of the last call: the same number of model calls as the official loop, the sample is clean and the
realised schedule ends in 0, so a frozen schedule with the plain Euler sampler reproduces the run exactly.
``"stop"`` is the official loop: the image ends at σ_N ∈ (0, min_sigma) (or wherever the step cap left it).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real

import numpy as np
import torch

from ...schedules.errors import ScheduleError
from ...schedules.model_kind import ModelKind
from ..classic import step_range
from .tpm import RATIO_CLAMP, TPMFeatures, beta_mode

__all__ = [
    "DEFAULT_MAX_STEPS", "DEFAULT_MIN_SIGMA", "FINAL_STEPS", "NEEDS_TPM", "SEED_OFFSET", "check_options",
    "from_level", "sample_sl_tpdm", "sample_tpdm", "to_level",
]

#: The official inference defaults ([GR] / the inference class): stop below σ = 0.001, at most 35 steps.
DEFAULT_MIN_SIGMA = 1e-3
DEFAULT_MAX_STEPS = 35
FINAL_STEPS = ("zero", "stop")
NEEDS_TPM = ("model: sl_tpdm needs a time predictor: in ComfyUI connect the model through Load TPM -> Apply TPM "
             "(the Apply TPM node carries the TPM and its feature taps); in Python pass tpdm=(tpm, read_features).")
#: Added to the run's seed for the Beta draws, so they are not the initial noise's stream.
SEED_OFFSET = 0x7D3


def _level_space(kind: ModelKind | None) -> str:
    return "sigma" if kind is None or kind.kind == "flow" else "flow_equivalent"


def to_level(sigma: torch.Tensor, kind: ModelKind | None) -> torch.Tensor:
    """The quantity the ratio multiplies: σ (flow, or kind None), else ℓ = σ / (1 + σ)."""
    return sigma if _level_space(kind) == "sigma" else sigma / (1 + sigma)


def from_level(level: torch.Tensor, kind: ModelKind | None) -> torch.Tensor:
    """Inverse of :func:`to_level`."""
    return level if _level_space(kind) == "sigma" else level / (1 - level)


def check_options(min_sigma, max_steps, final_step: str = "zero") -> tuple[float, int, str]:
    """(min_sigma, max_steps, final_step) validated; a ScheduleError naming the input otherwise."""
    if isinstance(min_sigma, bool) or not isinstance(min_sigma, Real) or not math.isfinite(min_sigma) \
            or min_sigma <= 0:
        raise ScheduleError(f"min_sigma={min_sigma!r} must be a finite number > 0 (an image stops once its noise "
                            f"level falls below it); use {DEFAULT_MIN_SIGMA} (official inference default).")
    if isinstance(max_steps, bool) or not isinstance(max_steps, Integral) or max_steps < 1:
        raise ScheduleError(f"max_steps={max_steps!r} must be an integer >= 1 (the most model calls per image); "
                            f"use {DEFAULT_MAX_STEPS} (official inference default).")
    if final_step not in FINAL_STEPS:
        raise ScheduleError(f"final_step={final_step!r} must be 'zero' (last step lands on sigma 0: clean sample) "
                            "or 'stop' (official: end just below min_sigma).")
    return float(min_sigma), int(max_steps), final_step


def _beta_sample(alpha: torch.Tensor, beta: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One Beta draw per image from a numpy generator (device-independent, reproducible from the seed)."""
    a = alpha.detach().to("cpu", torch.float64).numpy()
    b = beta.detach().to("cpu", torch.float64).numpy()
    return torch.from_numpy(rng.beta(a, b)).to(alpha.device, torch.float32)


@torch.no_grad()
def sample_tpdm(model, x, sigmas, extra_args=None, callback=None, disable=None, *, tpm: torch.nn.Module,
                read_features: Callable[[], TPMFeatures], min_sigma: float = DEFAULT_MIN_SIGMA,
                max_steps: int | None = None, stochastic: bool = False, seed: int | None = None,
                final_step: str = "zero", kind: ModelKind | None = None, trace: list | None = None,
                schedules: list | None = None, trace_cache: tuple | None = None):
    """TPDM: per-image adaptive steps chosen by the TPM (Ye et al. 2024, arXiv 2412.01243; docs/tpdm.md).

    ``sigmas[0]`` is the start level (the rest of ``sigmas`` is ignored); ``max_steps`` (default ``len(sigmas) − 1``,
    the KSampler's step count) caps the model calls per image. ``read_features()`` returns the
    :class:`TPMFeatures` captured during the last model call (CFG-combined). ``stochastic``: draw r ~ Beta(α, β)
    from a generator seeded with ``seed`` (default ``extra_args["seed"]``) + SEED_OFFSET, else the mode.

    ``trace`` (a list) receives one dict per step: ``sigma``, ``sigma_next`` (B,), ``ratio``, ``alpha``, ``beta``,
    ``log_prob`` (Beta log-density of the clamped ratio), ``active`` (bool, the images that took this step; the
    others' entries are to be masked) and ``features`` (detached fp32). ``schedules`` (a list) receives each image's
    realised σ sequence (1-D float32, start to end). ``trace_cache`` = (device, dtype) moves the traced features
    there as they are made (a trainer's CPU / fp16 cache), else they stay fp32 where the model made them.
    Returns the samples.
    """
    extra_args = {} if extra_args is None else extra_args
    sigmas = torch.as_tensor(sigmas)
    if max_steps is None:
        max_steps = max(len(sigmas) - 1, 1)
    min_sigma, max_steps, final_step = check_options(min_sigma, max_steps, final_step)
    if len(sigmas) == 0 or float(sigmas[0]) <= 0:
        return x  # nothing to denoise (denoise = 0)
    rng = None
    if stochastic:
        base = extra_args.get("seed", 0) if seed is None else seed
        rng = np.random.Generator(np.random.PCG64((int(base or 0) + SEED_OFFSET) % 2**63))
    bsz = x.shape[0]
    sigma = torch.full((bsz,), float(sigmas[0]), dtype=torch.float32, device=x.device)
    active = torch.ones(bsz, dtype=torch.bool, device=x.device)
    taken = torch.zeros(bsz, dtype=torch.long, device=x.device)
    realised = [[float(sigma[b])] for b in range(bsz)]
    lo, hi = RATIO_CLAMP
    view = (bsz,) + (1,) * (x.ndim - 1)
    for i in step_range(max_steps, disable):
        if not bool(active.any()):
            break
        denoised = model(x, sigma.to(x.dtype) if x.dtype.is_floating_point else sigma, **extra_args)
        features = read_features()
        alpha, beta = tpm(features)
        alpha, beta = alpha.to(x.device), beta.to(x.device)
        if not (bool(torch.isfinite(alpha).all()) and bool(torch.isfinite(beta).all())
                and bool((alpha > 1).all()) and bool((beta > 1).all())):
            raise ScheduleError(f"tpm: gave alpha={alpha.tolist()} beta={beta.tolist()} at step {i}; both must be "
                                "finite and > 1. The TPM does not fit this model's features (retrain it for them).")
        ratio = _beta_sample(alpha, beta, rng) if rng is not None else beta_mode(alpha, beta)
        ratio = ratio.clamp(lo, hi)
        log_prob = torch.distributions.Beta(alpha, beta).log_prob(ratio)
        level = to_level(sigma.double(), kind) * ratio.double()
        proposed = from_level(level, kind).float()
        done = active & ((proposed < min_sigma) | (taken + 1 >= max_steps))
        nxt = torch.where(done, torch.zeros_like(proposed), proposed) if final_step == "zero" else proposed
        nxt = torch.where(active, nxt, sigma)
        for b in torch.nonzero(active).flatten().tolist():
            realised[b].append(float(nxt[b]))
        if callback is not None:
            info = {"x": x, "i": i, "sigma": sigma[active].max(), "sigma_hat": sigma[active].max(),
                    "denoised": denoised, "sigmas": sigma, "sigmas_next": nxt, "active": active}
            if not bool((active & ~done).any()) or i == max_steps - 1:  # the last step: the catalogue contract
                info["schedules"] = [torch.tensor(r, dtype=torch.float32) for r in realised]
            callback(info)
        if trace is not None:
            trace.append({"step": i, "sigma": sigma.clone(), "sigma_next": nxt.clone(), "ratio": ratio,
                          "alpha": alpha, "beta": beta, "log_prob": log_prob, "active": active.clone(),
                          "features": features.detach(*trace_cache) if trace_cache else features.detach()})
        # Euler, written as the stock sampler writes it (x + d·dt, d = (x − D)/σ), so a frozen run reproduces bitwise.
        d = (x - denoised) / sigma.to(x.dtype).reshape(view)
        stepped = x + d * (nxt.to(x.dtype) - sigma.to(x.dtype)).reshape(view)
        x = torch.where(active.reshape(view), stepped, x)
        taken = taken + active.long()
        sigma = torch.where(active & ~done, nxt, sigma)  # finished images keep their last (positive) call level
        active = active & ~done
    if schedules is not None:
        schedules.extend(torch.tensor(r, dtype=torch.float32) for r in realised)
    return x


def sample_sl_tpdm(model, x, sigmas, extra_args=None, callback=None, disable=None, *, kind: ModelKind | None = None,
                   tpdm=None, min_sigma: float = DEFAULT_MIN_SIGMA, max_steps: int | None = None,
                   stochastic: bool = False, final_step: str = "zero"):
    """The catalogue's ``sl_tpdm``: TPDM with the TPM that ``tpdm`` carries.

    ``tpdm`` is a ``(tpm, read_features)`` pair, or an object that observes the run (ComfyUI: the state Apply TPM
    puts on the MODEL) with ``tpm``, ``prepare(model, x, sigmas, kind, options) -> read_features`` (called once
    before the loop: warnings, device, feature stash) and ``finish(model, schedules, kind, options)`` (after it:
    reports, frozen schedule files). The loop itself always runs here, in the core. ``sigmas[0]`` is the start
    level; ``max_steps`` defaults to ``len(sigmas) − 1`` (KSampler's steps); ``min_sigma`` is raised to the model's
    smallest noise level (``effective_min_sigma``)."""
    if tpdm is None:
        raise ScheduleError(NEEDS_TPM)
    if isinstance(tpdm, tuple):
        tpm, read_features = tpdm
        return sample_tpdm(model, x, sigmas, extra_args, callback, disable, tpm=tpm, read_features=read_features,
                           kind=kind, min_sigma=min_sigma, max_steps=max_steps, stochastic=stochastic,
                           final_step=final_step)
    if max_steps is None:
        max_steps = max(len(sigmas) - 1, 1)
    min_sigma, max_steps, final_step = check_options(min_sigma, max_steps, final_step)
    options = {"requested_min_sigma": min_sigma, "min_sigma": effective_min_sigma(min_sigma, kind),
               "max_steps": max_steps, "stochastic": bool(stochastic), "final_step": final_step}
    read_features = tpdm.prepare(model, x, sigmas, kind, options)
    schedules: list[torch.Tensor] = []
    out = sample_tpdm(model, x, sigmas, extra_args, callback, disable, tpm=tpdm.tpm, read_features=read_features,
                      min_sigma=options["min_sigma"], max_steps=max_steps, stochastic=stochastic,
                      final_step=final_step, kind=kind, schedules=schedules)
    tpdm.finish(model, schedules, kind, options)
    return out


def effective_min_sigma(min_sigma: float, kind: ModelKind | None) -> float:
    """min_sigma floored at the model's smallest noise level, except on flow models. A discrete eps / v model has no
    timestep below σ_min; a flow model's timestep is multiplier·σ for any σ in (0, 1] (SD3's σ_min 0.003 is only the
    end of ComfyUI's 1000-entry table), so there the official stop below 0.001 is kept (docs/tpdm.md,
    "Decisions on the spec's open questions", stopping defaults). EDM models keep the floor: their TPMs are trained
    down to σ_min (e.g. the patch UNet's 0.002)."""
    if kind is None or kind.kind == "flow":
        return float(min_sigma)
    return max(float(min_sigma), float(kind.sigma_min))
