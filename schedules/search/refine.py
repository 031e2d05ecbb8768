"""Gradient refinement of a timestep list (the LD3 idea, Tong et al. ICLR 2025, arXiv 2405.15506).

The ``nfe`` positive sigmas are parameters; the loss is the mean squared distance between the sampler's endpoints
and the many-step reference endpoints from the same noise (``fitness.ReferenceSet``), backpropagated through
the sampler and the model. Strictly decreasing sigmas inside the model's range hold *by construction*:

    log σ_i = log σ_max − (log σ_max − log σ_min) · Σ_{j ≤ i} p_j,   i = 0..nfe−1,   then σ = 0,
    p = ε + (1 − (nfe + 1) ε) · softmax(w),   ε = 1e-4,

with ``nfe + 1`` logits ``w`` (the last share is the gap from the smallest sigma down to σ_min). Every share is at
least ε, so every gap is at least 0.01% of the log-sigma range whatever Adam does to ``w`` (a plain softmax can
underflow to equal sigmas in float arithmetic for large logits).

Over-fitting: the loss uses only the search part of the reference noise; the held-out part is scored every
``eval_every`` iterations and the list with the best held-out error is returned (early stopping), with both curves.
LD3's slack ("soft teacher") relaxation of the loss is not implemented; the plain paired MSE is used.

Two ways to get the gradient of that loss with respect to the logits (``gradient=``):

* ``"autograd"`` — backpropagation through the sampler and the model. Samplers are the pack's own
  (``solvers.classic``): their ``@torch.no_grad`` is lifted with ``differentiable``, so the refined list is scored by
  exactly the code that samples with it. Needs a model whose weights can be saved for backward: not the case inside
  a ComfyUI node, which runs under ``torch.inference_mode()`` (its weights are inference tensors).
* ``"finite_difference"`` — central differences with forward model calls only (runs under ``torch.no_grad`` or
  inference mode, with any sampler function). The loss does not change when the same constant is added to every
  logit, so the gradient lies in the ``nfe``-dimensional complement of the all-ones direction; it is measured along
  an orthonormal basis of that complement: ``2·nfe`` sampler runs per iteration (each ``nfe`` model calls for a
  one-call-per-step sampler), every run on the same noise batch (paired, so the difference is not swamped by
  sampling noise). The reported training error is the mean over the ``±h`` runs (O(h²) from the loss at w).
  Measurements and the comparison with SPSA: docs/search.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..errors import ScheduleError
from ..model_calls import CountedModel
from ..model_kind import ModelKind
from ..validate import validate_sigmas
from .fitness import ReferenceSet, endpoint_rmse, run_sampler

__all__ = ["GRADIENTS", "RefineResult", "differentiable", "finite_difference_basis", "logits_from_sigmas",
           "loss_gradient", "refine", "sigmas_from_logits"]

_MIN_SHARE = 1e-4  # every gap is at least this share of the log-sigma range, so float rounding cannot merge steps
_GAP_FLOOR = 1e-3  # smallest share a gap starts with (an initial list that starts at σ_max has a 0 first gap)
GRADIENTS = ("autograd", "finite_difference")
FD_STEP = 1e-2  # central-difference step in logit space (docs/search.md: agreement with autograd by step size)


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


def finite_difference_basis(n_logits: int) -> torch.Tensor:
    """(n_logits, n_logits − 1) float64 orthonormal basis of the vectors orthogonal to all-ones (the directions that
    change the list; adding a constant to every logit changes nothing)."""
    a = torch.cat([torch.ones(n_logits, 1, dtype=torch.float64), torch.eye(n_logits, dtype=torch.float64)], 1)
    q, _ = torch.linalg.qr(a)
    return q[:, 1:n_logits]


@dataclass
class RefineResult:
    sigmas: torch.Tensor                 # float64, the list with the best held-out error
    best_iteration: int
    train_rmse: list[float] = field(default_factory=list)    # per iteration, on the batch it trained on
    holdout_rmse: list[tuple[int, float]] = field(default_factory=list)  # (iteration, held-out RMSE)
    model_calls: int = 0                 # forward model calls, gradient passes included
    gradient_calls: int = 0              # of which for the gradient (autograd: each also pays a backward ≈ 2 more)
    model_samples: int = 0               # per-sample evaluations (calls × batch size)
    gradient_samples: int = 0            # of which for the gradient
    overfit: bool = False                # the held-out error rose by > 5% above its best while training went on
    gradient: str = "autograd"           # how the gradient was computed (GRADIENTS)

    @property
    def backward_samples(self) -> int:
        """Per-sample evaluations that also paid a backward pass (0 for finite differences)."""
        return self.gradient_samples if self.gradient == "autograd" else 0


def loss_gradient(model, sampler, reference: ReferenceSet, logits: torch.Tensor, idx,
                  gradient: str = "autograd", fd_step: float = FD_STEP) -> tuple[torch.Tensor, float]:
    """``(gradient, loss)`` of the mean squared distance between ``sampler``'s endpoints for the list of ``logits``
    and the reference endpoints of the search samples ``idx``; the gradient is float64 in logit space.

    ``"autograd"``: one sampler run with backward (``sampler`` must be differentiable, see ``differentiable``).
    ``"finite_difference"``: central differences along ``finite_difference_basis``, ``2·(len(logits) − 1)`` sampler
    runs under ``torch.no_grad``; the loss is their mean. A non-finite run gives a non-finite loss.
    """
    noise, target = reference.noise[idx], reference.endpoints[idx]
    if gradient == "autograd":
        w = logits.detach().to(noise.dtype).requires_grad_(True)
        try:
            x = run_sampler(sampler, model, noise, sigmas_from_logits(w, reference.kind), reference.extra_args)
            loss = (x - target).square().mean()
            (grad,) = torch.autograd.grad(loss, [w])
        except RuntimeError as e:
            if "nference tensor" not in str(e):
                raise
            raise ScheduleError("gradient='autograd' cannot backpropagate through this model: its weights are "
                                "inference tensors (made under torch.inference_mode(), as in ComfyUI); use "
                                f"gradient='finite_difference'. ({e})") from None
        return grad.double(), float(loss.detach())
    w = logits.detach().double()
    basis = finite_difference_basis(len(w))

    def mse(v) -> float:
        with torch.no_grad():
            x = run_sampler(sampler, model, noise, sigmas_from_logits(v, reference.kind), reference.extra_args)
        return endpoint_rmse(x, target) ** 2

    diffs, losses = [], []
    for k in range(basis.shape[1]):
        up, down = mse(w + fd_step * basis[:, k]), mse(w - fd_step * basis[:, k])
        diffs.append((up - down) / (2 * fd_step))
        losses += [up, down]
    return basis @ torch.tensor(diffs, dtype=torch.float64), sum(losses) / len(losses)


def refine(model, sampler, reference: ReferenceSet, init_sigmas, iterations: int = 60, lr: float = 0.2,
           batch: int | None = 64, eval_every: int = 5, seed: int = 0, progress=None,
           gradient: str = "autograd", fd_step: float = FD_STEP, should_stop=None) -> RefineResult:
    """Refine ``init_sigmas`` (descending, ending in 0) for ``sampler`` on ``model``.

    Defaults are the benchmark's from-uniform setting (60 Adam steps, lr 0.2, 64 samples per step: docs/search.md).

    ``batch`` search samples are drawn per iteration (seeded; None = all); ``progress(info)`` is called after each
    iteration and may raise to cancel. Needs a reference with held-out samples (``n_holdout >= 2``).
    ``gradient``: ``"autograd"`` (backward through sampler and model) or ``"finite_difference"`` (forward calls
    only, ``2·nfe`` sampler runs per iteration, works under ``torch.inference_mode()``; ``fd_step`` is the step in
    logit space). ``should_stop()`` is called before every model call and may raise to cancel within one call.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ScheduleError(f"iterations={iterations!r} must be a whole number >= 1 (20-100 is typical).")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ScheduleError(f"lr={lr!r} must be a positive number (0.2 from uniform, 0.1 after evolution).")
    if gradient not in GRADIENTS:
        raise ScheduleError(f"gradient={gradient!r} is unknown; choose one of {', '.join(GRADIENTS)} "
                            "(finite_difference needs only forward model calls, e.g. inside ComfyUI).")
    if not (isinstance(fd_step, (int, float)) and math.isfinite(fd_step) and 0 < fd_step <= 1):
        raise ScheduleError(f"fd_step={fd_step!r} must be in (0, 1] (default {FD_STEP}).")
    if reference.n_holdout < 2:
        raise ScheduleError("refinement needs held-out reference noise to detect over-fitting; build the "
                            "ReferenceSet with n_holdout >= 2 (e.g. 64).")
    if gradient == "autograd" and torch.is_inference_mode_enabled():
        raise ScheduleError("gradient='autograd' needs backpropagation through the model, which inference mode "
                            "(every ComfyUI node runs in it) forbids; use gradient='finite_difference'.")
    kind = reference.kind
    fd = gradient == "finite_difference"
    fn = sampler if fd else differentiable(sampler)
    counted = CountedModel(model, should_stop)  # keeps the model's attributes (SDE samplers read inner_model)
    grad_calls = grad_samples = 0

    # finite differences perturb float64 logits by fd_step; autograd keeps them in the noise's dtype (as before)
    w = logits_from_sigmas(init_sigmas, kind).to(torch.float64 if fd else reference.noise.dtype)
    opt = torch.optim.Adam([w], lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    n = reference.n_search
    hold = reference.holdout

    def holdout_error(sig) -> float:
        with torch.no_grad():
            x = run_sampler(fn, counted, reference.noise[hold], sig, reference.extra_args)
        return endpoint_rmse(x, reference.endpoints[hold])

    result = RefineResult(sigmas=sigmas_from_logits(w.double(), kind), best_iteration=0, gradient=gradient)
    best = holdout_error(sigmas_from_logits(w, kind))
    result.holdout_rmse.append((0, best))
    for it in range(1, iterations + 1):
        idx = torch.arange(n) if batch is None or batch >= n else torch.randperm(n, generator=gen)[:batch]
        before = counted.calls, counted.samples
        grad, loss = loss_gradient(counted, fn, reference, w, idx, gradient, fd_step)
        grad_calls += counted.calls - before[0]
        grad_samples += counted.samples - before[1]
        if not (torch.isfinite(grad).all() and math.isfinite(loss)):
            break  # a diverging sampler; keep the best list so far
        w.grad = grad.to(w.dtype)
        opt.step()
        result.train_rmse.append(math.sqrt(loss))
        if it % eval_every == 0 or it == iterations:
            err = holdout_error(sigmas_from_logits(w, kind))
            result.holdout_rmse.append((it, err))
            if err < best:
                best, result.best_iteration = err, it
                result.sigmas = sigmas_from_logits(w.double(), kind)
        if progress is not None:
            progress({"iteration": it, "iterations": iterations, "train_rmse": result.train_rmse[-1],
                      "holdout_rmse": result.holdout_rmse[-1][1], "best_holdout_rmse": best,
                      "model_calls": counted.calls, "gradient": gradient})
    result.overfit = result.holdout_rmse[-1][1] > 1.05 * best
    result.model_calls, result.gradient_calls = counted.calls, grad_calls
    result.model_samples, result.gradient_samples = counted.samples, grad_samples
    return result
