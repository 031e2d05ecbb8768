"""What a benchmark row runs: a sampler on a schedule, run through ``solvers.catalogue.run``.

``Method.run(model, noise, steps, seed, sigma_start=None) -> catalogue.Result`` starts from ``noise · sigma_start``
(default: the schedule's first sigma). Sources, the ``source`` column of the tables:

* ``ours`` / ``registry`` — the catalogue's stock baselines (euler, heun, dpmpp_2m) / the pack's own samplers, on
  every self-contained catalogue schedule (a new catalogue entry shows up here by itself);
* ``diffusers`` — the peers of benchmarks.peers, on the same sigma lists (DDIM on its own timesteps);
* ``comfyui`` — ComfyUI's k-diffusion samplers, run in a worker subprocess (benchmarks.comfy_worker).

A sampler name may carry options, ``sl_tada(detail=2,order=3)`` (catalogue.parse_sampler). Catalogue samplers
flagged ``own_ode`` have a converged endpoint of their own for a fixed (x_T, seed) (``Method.own_endpoint``), the
yardstick for their solver error.

Equal cost means equal NFE, not equal steps: ``steps_for_nfe`` counts the model calls of a method on a cheap
Gaussian denoiser and returns the largest step count whose NFE fits the budget (heun: 3 steps for 5 NFE).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from schedule_lab.schedules import catalogue as schedule_catalogue
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import catalogue
from schedule_lab.solvers.catalogue import parse_sampler

from ..testbeds.gaussian import GaussianTestbed

__all__ = [
    "BASELINE_SAMPLERS", "BASELINE_SCHEDULES", "Method", "count_nfe", "diffusers_methods", "is_stochastic",
    "parse_sampler", "sampler_methods", "sampler_names", "schedule_names", "schedule_table", "steps_for_nfe",
]

BASELINE_SAMPLERS = tuple(n for n, e in catalogue.SAMPLERS.items() if not e.ours)
BASELINE_SCHEDULES = ("karras", "ays", "exponential")


@dataclass(frozen=True)
class Method:
    sampler: str  # a catalogue name with options, or the label of ``fn``
    schedule: str
    source: str  # "ours" | "registry" | "diffusers" | "comfyui" | ...
    sigmas: Callable[[int], torch.Tensor]  # steps -> the schedule
    kind: ModelKind | None = None  # what the sampler is told (TADA's ``kind``)
    fn: Callable | None = None  # a k-diffusion-contract sampler outside the catalogue (a peer, ComfyUI's)

    @property
    def label(self) -> str:
        return f"{self.sampler} / {self.schedule}"

    def run(self, model, noise: torch.Tensor, steps: int, seed: int = 0,
            sigma_start: float | None = None) -> catalogue.Result:
        return catalogue.run(self.fn or self.sampler, self.sigmas(steps), model, noise, kind=self.kind, seed=seed,
                             sigma_start=sigma_start)

    @property
    def own_endpoint(self) -> Callable[..., torch.Tensor] | None:
        """``(model, x_T, seed, sigmas) -> x0``: the sampler on the dense schedule ``sigmas`` (its own converged
        endpoint); None for samplers of the standard ODE and for stochastic ones without an ODE of their own."""
        if self.fn is not None or not catalogue.SAMPLERS[parse_sampler(self.sampler)[0]].own_ode:
            return None

        def endpoint(model, x_T, seed, sigmas):
            return catalogue.run(self.sampler, sigmas, model, x_T, kind=self.kind, seed=seed, sigma_start=1.0).x0
        return endpoint


def schedule_names() -> list[str]:
    """The catalogue schedules a sweep can run: the self-contained ones (not sl_searched's saved files)."""
    return [n for n, e in schedule_catalogue.SCHEDULES.items() if e.self_contained]


def sampler_names() -> list[str]:
    return list(catalogue.SAMPLERS)


def schedule_table(kind: ModelKind) -> dict[str, Callable[[int], torch.Tensor]]:
    """Schedule name → ``fn(steps) -> sigmas`` for ``kind``, for every name of ``schedule_names()``."""
    return {name: (lambda n, name=name: schedule_catalogue.schedule_sigmas(name, kind, n)) for name in schedule_names()}


def sampler_methods(kind: ModelKind, samplers, schedules) -> list[Method]:
    """Every (sampler, schedule) pair of catalogue samplers (names with options) on catalogue schedules."""
    table = schedule_table(kind)
    out = []
    for s in samplers:
        entry = catalogue.SAMPLERS[parse_sampler(s)[0]]
        source = "registry" if entry.ours else "ours"
        out += [Method(s, sc, source, table[sc], kind) for sc in schedules]
    return out


def diffusers_methods(kind: ModelKind, peers, schedules) -> list[Method]:
    """diffusers peers on our schedules; peers with a native schedule (DDIM) get that one only."""
    from .peers import PEERS, ddim_sigmas, sample_diffusers

    table = schedule_table(kind)
    out = []
    for p in peers:
        if PEERS[p].route == "native":
            def native(model, x, sigmas, p=p, **_):
                return sample_diffusers(p, model, x, steps=len(sigmas) - 1)
            out.append(Method(p, PEERS[p].native_schedule, "diffusers", ddim_sigmas, kind, native))
            continue

        def on_sigmas(model, x, sigmas, p=p, **_):
            return sample_diffusers(p, model, x, sigmas=sigmas)
        out += [Method(p, sc, "diffusers", table[sc], kind, on_sigmas) for sc in schedules]
    return out


def count_nfe(method: Method, steps: int, dim: int = 64) -> int:
    """Model calls of ``method`` at ``steps`` steps, counted on a 1-sample Gaussian denoiser (cheap)."""
    g = GaussianTestbed(dim)
    return method.run(g.denoiser, g.sample_prior(1, 1.0, seed=0, dtype=torch.float32), steps).nfe


def is_stochastic(method: Method, steps: int = 4, dim: int = 64) -> bool:
    """True if the endpoint from a fixed x_T changes with the seed (the sampler draws noise of its own): such a
    sampler does not solve the probability-flow ODE, so its distance to the ODE endpoint is not solver error."""
    g = GaussianTestbed(dim)
    z = g.sample_prior(2, 1.0, seed=0, dtype=torch.float32)
    a, b = (method.run(g.denoiser, z, steps, seed).x0 for seed in (0, 1))
    return not torch.equal(a, b)


def steps_for_nfe(method: Method, nfe: int, dim: int = 64) -> int:
    """The largest step count whose counted NFE is at most ``nfe`` (at least 1 step)."""
    best = 1
    for steps in range(1, nfe + 1):
        if count_nfe(method, steps, dim) > nfe:
            break
        best = steps
    return best
