"""Gradient refinement of a timestep list (the LD3 idea, Tong et al. ICLR 2025, arXiv 2405.15506).

The ``nfe`` positive sigmas are parameters; the loss is the mean squared distance between the sampler's endpoints
and the many-step reference endpoints from the same noise (``search_fitness.ReferenceSet``), backpropagated through
the sampler and the model. Strictly decreasing sigmas inside the model's range hold *by construction*:

    log σ_i = log σ_max − (log σ_max − log σ_min) · Σ_{j ≤ i} p_j,   i = 0..nfe−1,   then σ = 0,
    p = ε + (1 − (nfe + 1) ε) · softmax(w),   ε = 1e-4,

with ``nfe + 1`` logits ``w`` (the last share is the gap from the smallest sigma down to σ_min). Every share is at
least ε, so every gap is at least 0.01% of the log-sigma range whatever Adam does to ``w`` (a plain softmax can
underflow to equal sigmas in float arithmetic for large logits).

Over-fitting: the loss uses only the search part of the reference noise; the held-out part is scored every
``eval_every`` iterations and the list with the best held-out error is returned (early stopping), with both curves.
LD3's slack ("soft teacher") relaxation of the loss is not implemented; the plain paired MSE is used.

Samplers are the pack's own (``solvers.classic``): their ``@torch.no_grad`` is lifted with ``differentiable``,
so the refined list is scored by exactly the code that samples with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .errors import ScheduleError
from .model_kind import ModelKind
from .search_fitness import ReferenceSet, endpoint_rmse, run_sampler
from .validate import validate_sigmas

__all__ = ["RefineResult", "differentiable", "logits_from_sigmas", "refine", "sigmas_from_logits"]

_MIN_SHARE = 1e-4  # every gap is at least this share of the log-sigma range, so float rounding cannot merge steps
_GAP_FLOOR = 1e-3  # smallest share a gap starts with (an initial list that starts at σ_max has a 0 first gap)


def differentiable(sampler):
    """The sampler without its ``torch.no_grad`` decorator (samplers of solvers.classic), else unchanged."""
    return getattr(sampler, "__wrapped__", sampler)


def sigmas_from_logits(w: torch.Tensor, kind: ModelKind) -> torch.Tensor:
    """``len(w) − 1`` strictly decreasing sigmas in (σ_min, σ_max), then 0; differentiable in ``w``."""
    lo, hi = math.log(kind.sigma_min), math.log(kind.sigma_max)
    shares = _MIN_SHARE + (1.0 - _MIN_SHARE * len(w)) * torch.softmax(w, 0)
    log_sigmas = hi - (hi - lo) * torch.cumsum(shares[:-1], 0)
    return torch.cat([log_sigmas.exp(), w.new_zeros(1)])


def logits_from_sigmas(sigmas, kind: ModelKind) -> torch.Tensor:
    """Inverse of ``sigmas_from_logits`` (gaps below a 0.1% share of the range are raised to it)."""
    s = validate_sigmas(torch.as_tensor(sigmas, dtype=torch.float64), "sigmas")[:-1]
    lo, hi = math.log(kind.sigma_min), math.log(kind.sigma_max)
    if float(s[0]) > kind.sigma_max * (1 + 1e-6) or float(s[-1]) < kind.sigma_min * (1 - 1e-6):
        raise ScheduleError(f"sigmas from {float(s[0]):.4g} to {float(s[-1]):.4g} leave the model's range "
                            f"[{kind.sigma_min:.4g}, {kind.sigma_max:.4g}]; refine a list made for this model.")
    points = torch.cat([torch.tensor([hi], dtype=torch.float64), s.log().clamp(lo, hi),
                        torch.tensor([lo], dtype=torch.float64)])
    shares = (points[:-1] - points[1:]) / (hi - lo)
    shares = shares.clamp_min(_GAP_FLOOR)
    shares = shares / shares.sum()
    return ((shares - _MIN_SHARE) / (1.0 - _MIN_SHARE * len(shares))).log()


@dataclass
class RefineResult:
    sigmas: torch.Tensor                 # float64, the list with the best held-out error
    best_iteration: int
    train_rmse: list[float] = field(default_factory=list)    # per iteration, on the batch it trained on
    holdout_rmse: list[tuple[int, float]] = field(default_factory=list)  # (iteration, held-out RMSE)
    model_calls: int = 0                 # forward model calls, gradient passes included
    gradient_calls: int = 0              # of which under autograd (each backward costs about 2 more)
    model_samples: int = 0               # per-sample evaluations (calls × batch size)
    gradient_samples: int = 0            # of which under autograd
    overfit: bool = False                # the held-out error rose by > 5% above its best while training went on


def refine(model, sampler, reference: ReferenceSet, init_sigmas, iterations: int = 60, lr: float = 0.2,
           batch: int | None = 64, eval_every: int = 5, seed: int = 0, progress=None) -> RefineResult:
    """Refine ``init_sigmas`` (descending, ending in 0) for ``sampler`` on ``model``.

    Defaults are the benchmark's from-uniform setting (60 Adam steps, lr 0.2, 64 samples per step: docs/search.md).

    ``batch`` search samples are drawn per iteration (seeded; None = all); ``progress(info)`` is called after each
    iteration and may raise to cancel. Needs a reference with held-out samples (``n_holdout >= 2``).
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ScheduleError(f"iterations={iterations!r} must be a whole number >= 1 (20-100 is typical).")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ScheduleError(f"lr={lr!r} must be a positive number (0.2 from uniform, 0.1 after evolution).")
    if reference.n_holdout < 2:
        raise ScheduleError("refinement needs held-out reference noise to detect over-fitting; build the "
                            "ReferenceSet with n_holdout >= 2 (e.g. 64).")
    kind = reference.kind
    fn = differentiable(sampler)
    calls = {"all": 0, "grad": 0, "all_samples": 0, "grad_samples": 0}

    def counted(x, sigma, **kw):
        grad = torch.is_grad_enabled()
        calls["all"] += 1
        calls["grad"] += grad
        calls["all_samples"] += x.shape[0]
        calls["grad_samples"] += x.shape[0] * grad
        return model(x, sigma, **kw)

    w = logits_from_sigmas(init_sigmas, kind).to(reference.noise.dtype).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    n = reference.n_search
    hold = reference.holdout

    def holdout_error(sig) -> float:
        with torch.no_grad():
            x = run_sampler(fn, counted, reference.noise[hold], sig, reference.extra_args)
        return endpoint_rmse(x, reference.endpoints[hold])

    result = RefineResult(sigmas=sigmas_from_logits(w.detach().double(), kind), best_iteration=0)
    best = holdout_error(sigmas_from_logits(w.detach(), kind))
    result.holdout_rmse.append((0, best))
    for it in range(1, iterations + 1):
        idx = torch.arange(n) if batch is None or batch >= n else torch.randperm(n, generator=gen)[:batch]
        sig = sigmas_from_logits(w, kind)
        x = run_sampler(fn, counted, reference.noise[idx], sig, reference.extra_args)
        loss = (x - reference.endpoints[idx]).square().mean()
        opt.zero_grad()
        (grad,) = torch.autograd.grad(loss, [w])
        if not torch.isfinite(grad).all():
            break  # a diverging sampler; keep the best list so far
        w.grad = grad
        opt.step()
        result.train_rmse.append(float(loss.detach().sqrt()))
        if it % eval_every == 0 or it == iterations:
            err = holdout_error(sigmas_from_logits(w.detach(), kind))
            result.holdout_rmse.append((it, err))
            if err < best:
                best, result.best_iteration = err, it
                result.sigmas = sigmas_from_logits(w.detach().double(), kind)
        if progress is not None:
            progress({"iteration": it, "iterations": iterations, "train_rmse": result.train_rmse[-1],
                      "holdout_rmse": result.holdout_rmse[-1][1]})
    result.overfit = result.holdout_rmse[-1][1] > 1.05 * best
    result.model_calls, result.gradient_calls = calls["all"], calls["grad"]
    result.model_samples, result.gradient_samples = calls["all_samples"], calls["grad_samples"]
    return result
