"""The one public method catalogue: every sampler and schedule the pack knows, and one ``run`` for any pair.

``SAMPLERS`` and ``SCHEDULES`` map a name to an entry: the core function, a one-line description, its default
options, capability flags and what it ``needs`` from whoever runs it (ComfyUI's host, a benchmark, the CLI). The
stock baselines (euler, heun, dpmpp_2m; karras, exponential, simple, ays) sit next to ours (``sl_`` names).
``schedule-lab compare``, every benchmark and (next) the A/B node make every cell with :func:`run`;
``nodes/registry.py`` says which of these names appear in ComfyUI's dropdowns.

Flags of a sampler: ``adaptive`` (decides its own steps: NFE ≠ len(sigmas) − 1, per-image step counts; it reports
the schedule each image took as ``info["schedules"]``, a list of 1-D sigma tensors, in its last ``callback``),
``stochastic`` (draws noise of its own from ``extra_args["seed"]``, so its endpoint depends on the seed) and
``own_ode`` (after that draw it solves an ODE of its own, so as steps grow it converges to its own endpoint, not
the probability-flow ODE's). ``calls(n)`` is the number of model calls for ``n`` steps ending at σ = 0.

Needs (keyword arguments supplied when the caller has them; see ``NEEDS``): a sampler gets ``kind`` and model
settings such as ``detail``; a schedule ``fn(kind, steps, **options)`` gets ``velocity`` or ``schedule_paths``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..schedules import baseline
from ..schedules.constant_rate.calibrate import dropdown_sigmas
from ..schedules.for_model import ays_for_model
from ..schedules.model_kind import ModelKind
from ..schedules.search.results import searched_sigmas
from . import classic, tada
from .tpdm import sampler as tpdm_sampler

__all__ = ["NEEDS", "SAMPLERS", "SCHEDULES", "Result", "Sampler", "Schedule", "bind_sampler", "parse_sampler",
           "run", "schedule_sigmas"]

#: What an entry may need, and who supplies it in ComfyUI (the host) and outside it (run's ``provided``).
NEEDS = {
    "kind": "the model's ModelKind (sampler option; run passes its kind)",
    "detail": "a model setting: the Detail Level node's value on the MODEL (TADA)",
    "velocity": "a model setting: the Constant-Rate Scheduler's calibration carried by the MODEL",
    "tpdm": "a model setting: Apply TPM's time predictor and feature taps on the MODEL (TPDM), or (tpm, read_features)",
    "schedule_paths": "the user's saved schedule files, (name, path) pairs (models/schedules in ComfyUI)",
}


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


@dataclass(frozen=True)
class Schedule:
    """``fn(kind, steps, **options) -> sigmas``: 1-D, descending, ending in 0."""

    fn: Callable[..., torch.Tensor]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    ours: bool = False

    @property
    def self_contained(self) -> bool:
        """True when (kind, steps) alone make the schedule (no saved files), so a sweep over names can run it."""
        return "schedule_paths" not in self.needs


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
        "order follow the step count (solvers/tada.py SETTINGS_BY_NFE, docs/defaults.md).",
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


def _karras(kind: ModelKind, steps: int, rho: float = 7.0) -> torch.Tensor:
    return baseline.karras(steps, kind.sigma_min, kind.sigma_max, rho)


def _exponential(kind: ModelKind, steps: int) -> torch.Tensor:
    return baseline.exponential(steps, kind.sigma_min, kind.sigma_max)


def _simple(kind: ModelKind, steps: int) -> torch.Tensor:
    return baseline.simple(kind, steps)


def _ays(kind: ModelKind, steps: int, table: str = "sd1") -> torch.Tensor:
    return baseline.ays(steps, table)


SCHEDULES: dict[str, Schedule] = {
    "karras": Schedule(_karras, "Karras et al. (2022), eq. 5: uniform in σ^(1/ρ) over the model's σ range.",
                       defaults={"rho": 7.0}),
    "exponential": Schedule(_exponential, "Uniform in log σ over the model's σ range."),
    "simple": Schedule(_simple, "ComfyUI's simple: evenly spaced entries of the model's own σ table."),
    "ays": Schedule(_ays, "Align Your Steps, the published SD1.5 noise levels as they are (ComfyUI semantics), "
                    "whatever the model.", defaults={"table": "sd1"}),
    "sl_ays_sd1": Schedule(
        ays_for_model,
        "Align Your Steps (SD1.5 table, Sabour et al. 2024) resampled log-linearly to any step count; on EDM models "
        "the noise levels are carried over at equal signal-to-noise ratio, on flow models (SD3, Flux) as the same "
        "timesteps in the model's time, so the list starts at σ = 1 and follows the shift.",
        defaults={"table": "sd1"}, ours=True),
    "sl_ays_sdxl": Schedule(
        ays_for_model,
        "Align Your Steps (SDXL table, Sabour et al. 2024) resampled log-linearly to any step count; on EDM models "
        "the noise levels are carried over at equal signal-to-noise ratio, on flow models (SD3, Flux) as the same "
        "timesteps in the model's time, so the list starts at σ = 1 and follows the shift.",
        defaults={"table": "sdxl"}, ours=True),
    "sl_searched": Schedule(
        searched_sigmas,
        "The best saved Timestep Search result (models/schedules) for this model and step count; an error naming "
        "the Timestep Search node if there is none (no silent fallback).",
        needs=("schedule_paths",), ours=True),
    "sl_constant_rate": Schedule(
        dropdown_sigmas,
        "Constant-rate schedule (Okada et al. 2024): steps placed so the noisy image changes at an even pace. Uses "
        "the calibration the Constant-Rate Scheduler node measured on this model, else a data-free default.",
        needs=("velocity",), ours=True),
}


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


def _entry(table: dict, name: str, what: str):
    if name not in table:
        raise KeyError(f"unknown {what} {name!r}; the catalogue has {', '.join(table)}")
    return table[name]


def _supplied(needs: tuple[str, ...], provided: dict | None) -> dict:
    return {k: v for k, v in (provided or {}).items() if k in needs}


def bind_sampler(spec: str, kind: ModelKind | None = None, provided: dict | None = None) -> Callable:
    """The k-diffusion sampler of ``spec`` (a name, with options if any) with its defaults, ``kind`` and whatever
    of ``provided`` it needs bound; options written in ``spec`` win over model settings, which win over defaults."""
    name, options = parse_sampler(spec)
    entry = _entry(SAMPLERS, name, "sampler")
    bound = {**entry.defaults, **_supplied(entry.needs, provided), **options}
    if "kind" in entry.needs:
        bound["kind"] = kind

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **more):
        return entry.fn(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                        **{**bound, **more})

    sample.__name__, sample.__doc__ = f"sample_{name}", entry.description
    return sample


def schedule_sigmas(name: str, kind: ModelKind, steps: int, provided: dict | None = None) -> torch.Tensor:
    """Sigmas of catalogue schedule ``name`` for ``kind`` and ``steps``, given whatever of ``provided`` it needs."""
    entry = _entry(SCHEDULES, name, "schedule")
    return entry.fn(kind, int(steps), **{**entry.defaults, **_supplied(entry.needs, provided)})


@dataclass(frozen=True)
class Result:
    x0: torch.Tensor
    sigmas: torch.Tensor  # the schedule handed to the sampler
    nfe: int  # model calls counted (a batch of images in one call counts once)
    wall_s: float  # the sampler call alone
    schedules: list[torch.Tensor] | None = None  # adaptive samplers: the σ list each image took


class _Counted:
    def __init__(self, model):
        self.model, self.nfe = model, 0

    def __call__(self, x, sigma, **kwargs):
        self.nfe += 1
        return self.model(x, sigma, **kwargs)


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

    counted = _Counted(model)
    torch.manual_seed(seed)  # for samplers that draw noise of their own from the global generator
    t0 = time.perf_counter()
    x0 = fn(counted, x_T, sigmas.to(x_T.dtype), extra_args={"seed": seed}, callback=watch, disable=True)
    wall = time.perf_counter() - t0
    return Result(x0, sigmas, counted.nfe, wall, list(realised[0]) if realised else None)
