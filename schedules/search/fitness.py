"""Fitness functions of the timestep search (lower is better), built on a reference set computed once per search.

* ``ReferenceSet`` — seeded unit noise and the many-step endpoints the model reaches from it (the caller's
  reference sampler, Heun in the node and the lab, on Karras sigmas over the model's range; ``2·reference_steps − 1``
  model calls per sample with Heun, paid once). Its noise is split
  into a *search* part and a *held-out* part (for refinement's over-fitting check and for honest reporting).
* ``EndpointFitness`` — (b) of the issue: RMSE between the candidate's endpoints and the reference endpoints from
  the same noise (paired, so low variance; measures solver error directly).
* ``FrechetFitness`` — (a): Fréchet distance between features of the candidate's samples and a reference set
  (the reference endpoints by default, or user data / precomputed statistics), e.g. FD_cls on the testbeds.

Both take ``(sigmas, draw)``: ``draw`` picks which ``batch`` samples of the search part are used (a seeded subset,
the same for every candidate of a generation: common random numbers). ``batch=None`` uses every search sample, so
the fitness is deterministic. Samples start at ``x = noise · sigmas[0]`` (k-diffusion / ComfyUI convention).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ...kernels.frechet import frechet_distance, gaussian_stats
from ..baseline import karras
from ..errors import ScheduleError
from ..model_calls import CountedModel
from ..model_kind import ModelKind

__all__ = ["EndpointFitness", "FrechetFitness", "ReferenceSet", "check_reference_steps",
           "endpoint_rmse", "run_sampler"]


def check_reference_steps(reference_steps, nfe: int) -> int:
    if isinstance(reference_steps, bool) or not isinstance(reference_steps, (int, np.integer)) \
            or reference_steps < nfe:
        raise ScheduleError(f"reference_steps={reference_steps!r} is below the NFE budget {nfe}; the reference "
                            "must be far more accurate than the candidates: use 10x the budget or more "
                            "(e.g. 100).")
    return int(reference_steps)


def endpoint_rmse(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """Root mean squared difference over all elements (float64); ``inf`` if the samples are not finite."""
    d = samples.detach().to(torch.float64) - reference.detach().to(torch.float64)
    value = float(d.square().mean().sqrt())
    return value if np.isfinite(value) else float("inf")


def run_sampler(sampler, model, noise: torch.Tensor, sigmas: torch.Tensor, extra_args=None) -> torch.Tensor:
    """``sampler`` from ``noise · sigmas[0]`` along ``sigmas`` (cast to the noise's dtype)."""
    s = sigmas.to(dtype=noise.dtype, device=noise.device)
    return sampler(model, noise * s[0], s, extra_args=extra_args, disable=True)


class ReferenceSet:
    """Noise (``n_search + n_holdout`` samples of ``shape``) and its converged endpoints, computed once.

    Args:
        model: k-diffusion denoiser; kind: its ModelKind (the reference runs over [sigma_min, sigma_max]).
        shape: one sample's shape (e.g. (64,) or a latent's (4, 64, 64)).
        reference_steps: Karras steps of the Heun reference (2·steps − 1 model calls per sample).
        nfe: the search budget; the reference must use at least as many steps.
        endpoints: precomputed endpoints for all samples (e.g. from a disk cache); skips the model calls.
        reference_sampler: the many-step sampler (k-diffusion contract; the node and the lab pass Heun,
            ``solvers.classic.sample_heun``); needed unless ``endpoints`` are given. Passed in, not imported:
            schedules/ never imports solvers/.
        should_stop: called before every model call (reference and candidates); raises to cancel (e.g. ComfyUI's
            interrupt check through the host adapter), so Cancel takes effect within one model call.
        noise: the unit noise itself (``n_search + n_holdout`` samples of ``shape``, search part first), e.g. a
            benchmark's fixed noise parts; ``seed`` then only seeds the batch draws.
    """

    def __init__(self, model, kind: ModelKind, shape, n_search: int = 64, n_holdout: int = 64, seed: int = 0,
                 reference_steps: int = 100, nfe: int = 2, extra_args=None, dtype=torch.float32,
                 endpoints: torch.Tensor | None = None, device=None, reference_sampler=None,
                 should_stop=None, noise: torch.Tensor | None = None):
        for name, v, lo in (("n_search", n_search, 2), ("n_holdout", n_holdout, 0)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ScheduleError(f"{name}={v!r} must be a whole number >= {lo}; 32-256 samples are typical.")
        self.reference_steps = check_reference_steps(reference_steps, nfe)
        self.kind, self.shape, self.seed = kind, tuple(shape), int(seed)
        self.n_search, self.n_holdout = int(n_search), int(n_holdout)
        n = self.n_search + self.n_holdout
        if noise is None:
            gen = torch.Generator().manual_seed(self.seed)
            self.noise = torch.randn((n, *self.shape), generator=gen, dtype=torch.float32).to(dtype)
        elif tuple(noise.shape) != (n, *self.shape):
            raise ScheduleError(f"noise of shape {tuple(noise.shape)} does not match n_search + n_holdout = {n} "
                                f"samples of shape {self.shape}; pass exactly that many unit-noise samples.")
        else:
            self.noise = noise.to(dtype)
        if device is not None:
            self.noise = self.noise.to(device)
        self.extra_args = extra_args
        self.model_calls = self.model_samples = 0
        if endpoints is None:
            if reference_sampler is None:
                raise ScheduleError("ReferenceSet: pass reference_sampler= (the many-step sampler, e.g. "
                                    "solvers.classic.sample_heun) or precomputed endpoints=")
            counted = CountedModel(model, should_stop)
            sig = karras(self.reference_steps, kind.sigma_min, kind.sigma_max, dtype=torch.float64)
            self.endpoints = run_sampler(reference_sampler, counted, self.noise, sig, extra_args)
            self.model_calls, self.model_samples = counted.calls, counted.samples
        else:
            if tuple(endpoints.shape) != tuple(self.noise.shape):
                raise ScheduleError(f"endpoints of shape {tuple(endpoints.shape)} do not match the noise "
                                    f"{tuple(self.noise.shape)}; recompute them for these settings.")
            self.endpoints = endpoints.to(self.noise)

    def search_indices(self, draw: int, batch: int | None) -> torch.Tensor:
        """Which search samples draw ``draw`` uses: all of them, or a seeded subset of ``batch``."""
        if batch is None or batch >= self.n_search:
            return torch.arange(self.n_search)
        rng = np.random.Generator(np.random.PCG64([self.seed, int(draw)]))
        return torch.as_tensor(np.sort(rng.choice(self.n_search, size=batch, replace=False)))

    @property
    def holdout(self) -> slice:
        return slice(self.n_search, self.n_search + self.n_holdout)


class _SamplingFitness:
    def __init__(self, model, sampler, reference: ReferenceSet, batch: int | None = None, should_stop=None):
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 2):
            raise ScheduleError(f"batch={batch!r} must be None (all search samples) or a whole number >= 2.")
        self.model = CountedModel(model, should_stop)
        self.sampler, self.reference, self.batch = sampler, reference, batch

    @property
    def model_calls(self) -> int:
        return self.model.calls

    @property
    def model_samples(self) -> int:
        """Per-sample model evaluations (calls × batch size)."""
        return self.model.samples

    @torch.no_grad()
    def samples(self, sigmas: torch.Tensor, idx) -> torch.Tensor:
        return run_sampler(self.sampler, self.model, self.reference.noise[idx], sigmas, self.reference.extra_args)


class EndpointFitness(_SamplingFitness):
    """RMSE to the reference endpoints from the same noise (fitness (b))."""

    def __call__(self, sigmas: torch.Tensor, draw: int = 0) -> float:
        idx = self.reference.search_indices(draw, self.batch)
        return endpoint_rmse(self.samples(sigmas, idx), self.reference.endpoints[idx])

    def holdout(self, sigmas: torch.Tensor) -> float:
        """The same distance on the held-out noise (never seen by the search)."""
        idx = self.reference.holdout
        return endpoint_rmse(self.samples(sigmas, idx), self.reference.endpoints[idx])


class FrechetFitness(_SamplingFitness):
    """Fréchet distance between ``features(samples)`` and a target (fitness (a)).

    ``target`` is ``None`` (features of the reference endpoints of the search part), a tensor of target samples
    (e.g. user images or a dataset split) or precomputed ``(mu, cov)`` feature statistics.
    """

    def __init__(self, model, sampler, reference: ReferenceSet, features: Callable[[torch.Tensor], torch.Tensor],
                 target=None, batch: int | None = None, should_stop=None):
        super().__init__(model, sampler, reference, batch, should_stop)
        self.features = features
        if target is None:
            target = reference.endpoints[: reference.n_search]
        self.target = gaussian_stats(features(target)) if isinstance(target, torch.Tensor) else target

    def distance(self, samples: torch.Tensor) -> float:
        if not torch.isfinite(samples).all():
            return float("inf")
        mu, cov = gaussian_stats(self.features(samples))
        return frechet_distance(mu, cov, *self.target)

    def __call__(self, sigmas: torch.Tensor, draw: int = 0) -> float:
        return self.distance(self.samples(sigmas, self.reference.search_indices(draw, self.batch)))

    def holdout(self, sigmas: torch.Tensor) -> float:
        return self.distance(self.samples(sigmas, self.reference.holdout))
