"""The sampler table: every sampler the pack knows, declared once; one binder; and one ``run`` for any pair.

``SAMPLERS`` maps a name to a :class:`Sampler`: the core function (the k-diffusion contract), a one-line description,
its default options, capability flags and what it ``needs`` (``schedules.catalogue.NEEDS``: the model's kind, a
setting carried by the MODEL such as ``detail``). The stock baselines (euler, heun, dpmpp_2m) sit next to ours
(``sl_`` names). The schedules' table is its sibling, ``schedules/catalogue.py``. :func:`bind_sampler` is the one
place where defaults, what the caller provides and options written in the name are merged: KSampler registration,
the nodes, ``schedule-lab`` and the lab all bind through it; :func:`run` makes every cell of ``schedule-lab
compare``, the benchmarks and the A/B node. ``nodes/registry.py`` says which names appear in ComfyUI's dropdowns.

Flags of a sampler: ``adaptive`` (decides its own steps: NFE ≠ len(sigmas) − 1, per-image step counts; it reports
the schedule each image took as ``info["schedules"]``, a list of 1-D sigma tensors, in its last ``callback``),
``stochastic`` (draws noise of its own from ``extra_args["seed"]``, so its endpoint depends on the seed) and
``own_ode`` (after that draw it solves an ODE of its own, so as steps grow it converges to its own endpoint, not
the probability-flow ODE's). ``calls(n)`` is the number of model calls for ``n`` steps ending at σ = 0.

Adding a sampler: write its function in its own module under ``solvers/`` and add one entry here
(docs/architecture.md, "Adding a sampler or a schedule").
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..schedules.catalogue import entry, schedule_sigmas, supplied
from ..schedules.model_calls import CountedModel
from ..schedules.model_kind import ModelKind
from . import classic, tada
from .tpdm import sampler as tpdm_sampler

__all__ = ["SAMPLERS", "Result", "Sampler", "bind_sampler", "parse_sampler", "parse_spec", "run"]


@dataclass(frozen=True)
class Sampler:
    """``fn(model, x, sigmas, extra_args=None, callback=None, disable=None, **options) -> x0`` (k-diffusion)."""

    fn: Callable[..., torch.Tensor]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    ours: bool = False  # the pack's own method (an ``sl_`` name), else a stock baseline
    adaptive: bool = False
    stochastic: bool = False
    own_ode: bool = False
    calls: Callable[[int], int] | None = None  # model calls for n steps to σ = 0; None when adaptive

    @property
    def self_contained(self) -> bool:
        """True when a model alone runs it (no trained module such as TPDM's ``tpdm``), so a sweep over names can."""
        return "tpdm" not in self.needs


def _per_step(n: int) -> int:
    return n


SAMPLERS: dict[str, Sampler] = {
    "euler": Sampler(classic.sample_euler, "Euler's method on the probability-flow ODE (Karras et al. 2022).",
                     calls=_per_step),
    "heun": Sampler(classic.sample_heun, "Heun's 2nd-order method (Karras et al. 2022, Alg. 1); Euler on the last "
                    "step to σ = 0.", calls=lambda n: 2 * n - 1),
    "dpmpp_2m": Sampler(classic.sample_dpmpp_2m, "DPM-Solver++(2M) (Lu et al. 2022): multistep 2nd order in "
                        "log σ.", calls=_per_step),
    "sl_tada": Sampler(
        tada.sample_tada,
        "TADA (Chen et al. 2025): an ODE sampler on a momentum-augmented state; more detail and diversity at low "
        "step counts for the same model calls. Detail level from the Detail Level node; without one, detail and "
        "order follow the step count and the model family (solvers/tada.py SETTINGS_BY_NFE, FLOW_SETTINGS_BY_NFE for "
        "SD3/Flux; docs/defaults.md); on a karras list for eps/v/EDM models it steps with the 2m integrator "
        "(SETTINGS_2M_BY_NFE, docs/defaults.md §8).",
        # None: the per-NFE defaults of tada.default_settings (the TADA Sampler node's widgets stay explicit)
        defaults={"detail": None, "n_aug": tada.DEFAULT_N_AUG, "order": None},
        needs=("kind", "detail"), ours=True, stochastic=True, own_ode=True, calls=_per_step),
    "sl_tpdm": Sampler(
        tpdm_sampler.sample_sl_tpdm,
        "TPDM adaptive steps (Ye et al. 2024): a time predictor picks each image's next noise level from the "
        "model's features and stops when clean; steps is the cap. Needs a model from the Apply TPM node.",
        defaults={"min_sigma": tpdm_sampler.DEFAULT_MIN_SIGMA, "max_steps": None, "stochastic": False,
                  "final_step": "zero"},
        needs=("kind", "tpdm"), ours=True, adaptive=True),
}


def parse_spec(spec: str, numbers_only: bool = False, string_keys: tuple[str, ...] = ()) -> tuple[str, dict]:
    """The one parser of method specs: ``"name(key=value,...)"`` → ``("name", {key: value})``; a bare name has no
    options. Values are ints when written as ints, floats when numbers, else strings (``crs(measure=vx+cos)``);
    with ``numbers_only`` anything else is a ValueError naming the option."""
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
                if numbers_only and key.strip() not in string_keys:
                    raise ValueError(f"sampler {spec!r}: option {key.strip()}={value!r} is not a number") from None
                options[key.strip()] = value.strip()
    return base.strip(), options


def parse_sampler(spec: str) -> tuple[str, dict]:
    """``"sl_tada(detail=2,order=3)"`` → ``("sl_tada", {"detail": 2, "order": 3})`` (:func:`parse_spec`, numbers
    only: sampler options are numbers, except sl_tada's ``integrator`` name)."""
    return parse_spec(spec, numbers_only=True, string_keys=("integrator",))


def bind_sampler(spec: str, kind: ModelKind | None = None, provided: dict | None = None) -> Callable:
    """The k-diffusion sampler of ``spec`` (a name, with options if any) with its defaults, ``kind`` and whatever
    of ``provided`` it needs bound; options written in ``spec`` win over model settings, which win over defaults."""
    name, options = parse_sampler(spec)
    item = entry(SAMPLERS, name, "sampler")
    bound = {**item.defaults, **supplied(item.needs, provided), **options}
    if "kind" in item.needs:
        bound["kind"] = kind

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **more):
        return item.fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                       **{**bound, **more})

    sample.__name__, sample.__doc__ = f"sample_{name}", item.description
    return sample


@dataclass(frozen=True)
class Result:
    x0: torch.Tensor
    sigmas: torch.Tensor  # the schedule handed to the sampler
    nfe: int  # model calls counted (a batch of images in one call counts once)
    wall_s: float  # the sampler call alone
    schedules: list[torch.Tensor] | None = None  # adaptive samplers: the σ list each image took


def run(sampler: str | Callable, schedule: str | torch.Tensor, model, noise: torch.Tensor, *,
        kind: ModelKind | None = None, steps: int | None = None, seed: int = 0, sigma_start: float | None = None,
        provided: dict | None = None, callback: Callable | None = None) -> Result:
    """Run ``sampler`` on ``schedule`` with ``model`` from ``x_T = noise · sigma_start`` (default: the schedule's
    first sigma) and ``seed``.

    ``sampler``: a catalogue name, with options if any (``"sl_tada(detail=2)"``), or any k-diffusion-contract
    function (a peer). ``schedule``: a catalogue name (then ``kind`` and ``steps`` are needed) or explicit SIGMAS.
    The seed reaches the sampler as ``extra_args["seed"]`` (as in ComfyUI) and seeds torch's global generator
    first. ``provided``: what entries may need (``NEEDS``), e.g. ``{"velocity": ...}``.
    """
    if isinstance(schedule, str):
        if kind is None or steps is None:
            raise ValueError(f"schedule {schedule!r} by name needs kind= and steps=")
        sigmas = schedule_sigmas(schedule, kind, steps, provided)
    else:
        sigmas = schedule
    fn = sampler if callable(sampler) else bind_sampler(sampler, kind, provided)
    x_T = noise * float(sigmas[0] if sigma_start is None else sigma_start)
    realised = []

    def watch(info):
        if "schedules" in info:
            realised[:] = [info["schedules"]]
        if callback is not None:
            callback(info)

    counted = CountedModel(model)
    torch.manual_seed(seed)  # for samplers that draw noise of their own from the global generator
    t0 = time.perf_counter()
    x0 = fn(counted, x_T, sigmas.to(x_T.dtype), extra_args={"seed": seed}, callback=watch, disable=True)
    wall = time.perf_counter() - t0
    return Result(x0, sigmas, counted.calls, wall, list(realised[0]) if realised else None)
