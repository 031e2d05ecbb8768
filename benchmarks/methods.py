"""What a benchmark row runs: a sampler on a schedule, from any of four sources, behind one call shape.

``Method.run(model, x_T, steps, seed) -> x0``: ``x_T`` is unit noise scaled by the caller to the first sigma
(``Method.sigmas(steps)[0]``); ``seed`` reaches the sampler as ``extra_args["seed"]``, as in ComfyUI. Sources:

* ``ours`` — solvers.classic (euler, heun, dpmpp_2m) on baseline schedules (karras, ays, exponential);
* ``registry`` — every entry of nodes.registry.SAMPLERS / SCHEDULERS, so a new method shows up by itself;
* ``diffusers`` — the peers of benchmarks.peers, on the same sigma lists (DDIM on its own timesteps);
* ``comfyui`` — ComfyUI's k-diffusion samplers, run in a worker subprocess (benchmarks.comfy_worker).

A sampler name may carry options, ``sl_tada(detail=2,order=3)``: the registry sampler with those options bound
(``parse_sampler``). Samplers in ``OWN_ODE_SAMPLERS`` draw noise of their own but then solve an ODE, so for a
fixed (x_T, seed) they have a converged endpoint of their own (``Method.own_endpoint``), the yardstick for their
solver error (their distance to the standard ODE's endpoint is not solver error).

Equal cost means equal NFE, not equal steps: ``steps_for_nfe`` counts the model calls of a method on a cheap
Gaussian denoiser and returns the largest step count whose NFE fits the budget (heun: 3 steps for 5 NFE).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..nodes.registry import SAMPLERS, SCHEDULERS
from ..schedules import baseline
from ..schedules.model_kind import ModelKind
from ..solvers import classic
from ..testbeds.gaussian import GaussianTestbed
from ..testbeds.metrics import NFECounter

__all__ = [
    "BASELINE_SAMPLERS", "BASELINE_SCHEDULES", "OWN_ODE_SAMPLERS", "Method", "count_nfe", "diffusers_methods",
    "is_stochastic", "parse_sampler", "sampler_methods", "sampler_table", "schedule_table", "steps_for_nfe",
]

BASELINE_SAMPLERS = ("euler", "heun", "dpmpp_2m")
BASELINE_SCHEDULES = ("karras", "ays", "exponential")
#: Samplers whose endpoint, for a fixed x_T and seed, is that of an ODE of their own (TADA: augmented state drawn
#: from the seed, then a deterministic flow); the benchmark scores them against it ("RMSE→own ODE").
OWN_ODE_SAMPLERS = ("sl_tada",)


@dataclass(frozen=True)
class Method:
    sampler: str
    schedule: str
    source: str  # "ours" | "registry" | "diffusers" | "comfyui"
    run: Callable[..., torch.Tensor]  # run(model, x_T, steps, seed=0) -> x0
    sigmas: Callable[[int], torch.Tensor]
    #: own_endpoint(model, x_T, seed, sigmas) -> the sampler itself run on the dense schedule ``sigmas`` (its own
    #: converged endpoint); None for samplers of the standard ODE and for stochastic ones without an ODE of their own.
    own_endpoint: Callable[..., torch.Tensor] | None = None

    @property
    def label(self) -> str:
        return f"{self.sampler} / {self.schedule}"


def schedule_table(kind: ModelKind) -> dict[str, Callable[[int], torch.Tensor]]:
    """Schedule name → ``fn(steps) -> sigmas`` for ``kind``: the baselines, then every registry scheduler."""
    table = {
        "karras": lambda n: baseline.karras(n, kind.sigma_min, kind.sigma_max),
        "ays": lambda n: baseline.ays(n, "sd1"),
        "exponential": lambda n: baseline.exponential(n, kind.sigma_min, kind.sigma_max),
    }
    for name, entry in SCHEDULERS.items():
        if entry.saved_files:  # depends on the user's saved files (sl_searched), not a fixed method
            continue
        table[name] = (lambda fn: lambda n: fn(kind, n))(entry.fn)
    return table


def sampler_table(kind: ModelKind | None = None) -> dict[str, tuple[str, Callable]]:
    """Sampler name → (source, k-diffusion sampler fn): ours, then every registry sampler with its defaults and
    ``kind=`` (the model's ModelKind, as the host fills it in)."""
    table = {name: ("ours", getattr(classic, f"sample_{name}")) for name in BASELINE_SAMPLERS}
    for name, entry in SAMPLERS.items():
        options = {**entry.defaults, "kind": kind}
        table[name] = ("registry", (lambda f, opts: lambda *a, **k: f(*a, **{**opts, **k}))(entry.fn, options))
    return table


def parse_sampler(spec: str) -> tuple[str, dict]:
    """``"sl_tada(detail=2,order=3)"`` → ``("sl_tada", {"detail": 2.0, "order": 3})``; a bare name has no options.
    Values are ints when written as ints, floats otherwise; anything else is a ValueError naming the option."""
    spec = spec.strip()
    if "(" not in spec:
        return spec, {}
    if not spec.endswith(")"):
        raise ValueError(f"sampler {spec!r}: options are written name(key=value,...), e.g. sl_tada(detail=2)")
    base, body = spec[:-1].split("(", 1)
    options = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"sampler {spec!r}: option {item!r} is not key=value")
        try:
            options[key.strip()] = int(value)
        except ValueError:
            try:
                options[key.strip()] = float(value)
            except ValueError:
                raise ValueError(f"sampler {spec!r}: option {key.strip()}={value!r} is not a number") from None
    return base.strip(), options


def _k_run(sampler_fn, sigmas_fn):
    def run(model, x_T, steps, seed=0):
        # ComfyUI's KSampler passes the seed in extra_args too; samplers with noise of their own (TADA) use it.
        return sampler_fn(model, x_T, sigmas_fn(steps).to(x_T.dtype), extra_args={"seed": seed}, disable=True)
    return run


def sampler_methods(kind: ModelKind, samplers, schedules) -> list[Method]:
    """Every (sampler, schedule) pair of k-diffusion-contract samplers (ours and the registry's)."""
    samplers_all, schedules_all = sampler_table(kind), schedule_table(kind)
    out = []
    for s in samplers:
        base, options = parse_sampler(s)
        source, fn = samplers_all[base]
        if options:
            fn = functools.partial(fn, **options)
        own = _own_endpoint(fn) if base in OWN_ODE_SAMPLERS else None
        for sc in schedules:
            out.append(Method(s, sc, source, _k_run(fn, schedules_all[sc]), schedules_all[sc], own))
    return out


def _own_endpoint(sampler_fn):
    def endpoint(model, x_T, seed, sigmas):
        return sampler_fn(model, x_T, sigmas.to(x_T.dtype), extra_args={"seed": seed}, disable=True)
    return endpoint


def diffusers_methods(kind: ModelKind, peers, schedules) -> list[Method]:
    """diffusers peers on our schedules; peers with a native schedule (DDIM) get that one only."""
    from .peers import PEERS, ddim_sigmas, sample_diffusers

    schedules_all = schedule_table(kind)
    out = []
    for p in peers:
        if PEERS[p].route == "native":
            def run(model, x_T, steps, seed=0, p=p):
                return sample_diffusers(p, model, x_T, steps=steps)
            out.append(Method(p, PEERS[p].native_schedule, "diffusers", run, ddim_sigmas))
            continue
        for sc in schedules:
            def run(model, x_T, steps, seed=0, p=p, fn=schedules_all[sc]):
                return sample_diffusers(p, model, x_T, sigmas=fn(steps).to(x_T.dtype))
            out.append(Method(p, sc, "diffusers", run, schedules_all[sc]))
    return out


def count_nfe(method: Method, steps: int, dim: int = 64) -> int:
    """Model calls of ``method`` at ``steps`` steps, counted on a 1-sample Gaussian denoiser (cheap)."""
    g = GaussianTestbed(dim)
    counter = NFECounter(g.denoiser)
    sigmas = method.sigmas(steps)
    method.run(counter, g.sample_prior(1, float(sigmas[0]), seed=0, dtype=torch.float32), steps)
    return counter.nfe


def is_stochastic(method: Method, steps: int = 4, dim: int = 64) -> bool:
    """True if the endpoint from a fixed x_T changes with the seed (the sampler draws noise of its own): such a
    sampler does not solve the probability-flow ODE, so its distance to the ODE endpoint is not solver error."""
    g = GaussianTestbed(dim)
    x_T = g.sample_prior(2, float(method.sigmas(steps)[0]), seed=0, dtype=torch.float32)
    outs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        outs.append(method.run(g.denoiser, x_T, steps, seed))
    return not torch.equal(outs[0], outs[1])


def steps_for_nfe(method: Method, nfe: int, dim: int = 64) -> int:
    """The largest step count whose counted NFE is at most ``nfe`` (at least 1 step)."""
    best = 1
    for steps in range(1, nfe + 1):
        if count_nfe(method, steps, dim) > nfe:
            break
        best = steps
    return best
