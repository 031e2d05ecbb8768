"""Constant-rate schedules (Okada et al., arXiv 2411.12188, "Constant Rate Scheduling"): place the noise levels so
the diffused distribution changes at a constant rate, measured by a chosen discrepancy.

Everything is expressed on the half-log-SNR λ = log(α/σ) of :mod:`.model_kind`, so one velocity serves every model
kind (eps / v / edm through λ = −log σ, flow through λ = log((1 − s)/s), i.e. at equal SNR). A :class:`Velocity`
holds the speed of change per unit λ, ``v_λ``, tabulated on ascending λ nodes. The speed in another coordinate c is
``v_c = v_λ / |dc/dλ|``; coordinates: ``"alpha_bar"`` (VP signal power ᾱ = sigmoid(2λ), the paper's α),
``"sigma"`` (VE sigma e^−λ) and ``"lambda"``.

Schedule (docs/constant_rate.md, "How a schedule is built"): with t(c) = ∫ v_c^ξ dc / Z, the N noise levels sit
at equal shares t_i = i/(N − 1). In λ the
integrand is w(λ) = v_λ^ξ · |dc/dλ|^(1 − ξ), so ξ = 1 is coordinate-free and ξ ≠ 1 depends on ``coord``
(default ``"alpha_bar"``, the paper's). log w is interpolated linearly between nodes and integrated exactly, so
power laws in σ (Karras) and constants in λ (log-SNR uniform) come out exactly.

Analytic velocities here; measured ones (Fréchet, v_x, v_ε) in :mod:`.measure`. Decisions and
measurements: docs/constant_rate.md.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..errors import ScheduleError
from ..model_kind import ModelKind
from ..validate import validate_steps

__all__ = [
    "COORDS", "DEFAULT_SMOOTH", "DEFAULT_XI", "ENDS", "FLOW_MEASURED_SETTINGS", "FLOW_SETTINGS", "LAMBDA_CLIP",
    "FLOW_MEASURED_SETTINGS_BY_NFE", "FLOW_SETTINGS_BY_NFE",
    "FAMILY_MEASURED_SETTINGS_BY_NFE", "FAMILY_SETTINGS_BY_NFE", "SETTINGS_BY_NFE", "Velocity",
    "DATA_FREE", "check_xi", "combine", "constant_rate_sigmas", "data_free_velocity", "simple_velocity",
    "default_schedule_settings", "MEASURED_SETTINGS_BY_NFE", "with_cos_tails", "cos_velocity", "default_velocity",
    "gaussian_frechet_velocity", "lambda_range", "power_velocity", "sample_training_sigmas", "training_density"
]

COORDS = ("alpha_bar", "sigma", "lambda")
#: Default ξ (in the ᾱ coordinate): the best of 1-3 on both testbeds, selection seed (docs/constant_rate.md).
DEFAULT_XI = 1.5
#: Last-interval handling (docs/defaults.md §5): "hold" places the last positive level at σ_min exactly (the
#: measured velocity is ~0 at low noise, so the inversion leaves one long final interval and one model call at
#: σ_min, where the model is ~identity); "land" places steps + 1 levels and drops σ_min, so every model call is
#: at a placed level and the last step goes from there straight to 0.
ENDS = ("hold", "land")
#: Per-NFE defaults, eps/v/EDM kinds, produced by ``python -m schedule_lab.lab.defaults.bench --stage tune``
#: (lab/benchmarks/results/defaults_chosen.json; rule: docs/defaults.md §3, the lowest worst ratio to dpmpp_2m + karras
#: over the tuning testbeds). SETTINGS_BY_NFE: `sl_constant_rate` without a calibration (data-free velocities:
#: "data-free" = cos, "cos+karras"); MEASURED_SETTINGS_BY_NFE: a measured (vx+cos) calibration. Step counts between
#: grid points use the grid NFE below (above the last: the last; below 4: 4). The families of
#: FAMILY_SETTINGS_BY_NFE / FAMILY_MEASURED_SETTINGS_BY_NFE use those instead.
SETTINGS_BY_NFE = {
    4: {"measure": "cos+karras", "xi": 1.25, "end": "land"},
    5: {"measure": "cos+karras", "xi": 1.25, "end": "land"},
    6: {"measure": "data-free", "xi": 1.5, "end": "land"},
    8: {"measure": "cos+karras", "xi": 1.25, "end": "land"},
    10: {"measure": "cos+karras", "xi": 1.25, "end": "land"},
    15: {"measure": "cos+karras", "xi": 1.25, "end": "land"},
    20: {"measure": "data-free", "xi": 1.5, "end": "land"},
}
MEASURED_SETTINGS_BY_NFE = {
    4: {"xi": 1.5, "end": "land"},
    5: {"xi": 1.5, "end": "land"},
    6: {"xi": 1.25, "end": "land"},
    8: {"xi": 1.25, "end": "hold"},
    10: {"xi": 1.25, "end": "land"},
    15: {"xi": 1.5, "end": "land"},
    20: {"xi": 1.5, "end": "land"},
}
#: Per family (ModelKind.kind), the tables re-chosen on that family's learned zoo model (``python -m
#: schedule_lab.lab.benchmarks.list_ends`` → lab/benchmarks/results/list_ends.json "families"; rule:
#: docs/defaults.md §10 and §10b, minus the parts §10a's held-out guard vetoed, ``list_ends.VETOED``; ε's table
#: re-chosen on both ε sizes by §12, per NFE by §13 (``list_ends.EPS_BOTH_VETOED_NFES`` keep §10's entry) and
#: Karras's own list where an entry lost on held-out or fresh noise, §16 (``list_ends.EPS_STOCK_NFES``); EDM's
#: measured table re-chosen on both EDM sizes by §14, ``list_ends --edm-both``). A family or
#: part not here uses §3's tables above. Measures: "karras" is Karras ρ = 7's spacing (with "hold", its exact
#: list; with "land", N + 1 levels and σ_min dropped). A measured entry {"use": "data-free"} means the calibrated
#: MODEL's list is the data-free default at that step count (the calibration measured worse there; logged).
FAMILY_SETTINGS_BY_NFE: dict[str, dict[int, dict]] = {
    "eps": {
        4: {"measure": "cos+karras", "xi": 1.5, "end": "land"},
        5: {"measure": "karras", "xi": 1.0, "end": "hold"},
        6: {"measure": "karras", "xi": 1.0, "end": "hold"},
        8: {"measure": "karras", "xi": 1.0, "end": "hold"},
        10: {"measure": "karras", "xi": 1.0, "end": "hold"},
        15: {"measure": "karras", "xi": 1.0, "end": "hold"},
        20: {"measure": "karras", "xi": 1.0, "end": "hold"},
        30: {"measure": "karras", "xi": 1.0, "end": "hold"},
    },
    "v": {
        4: {"measure": "karras", "xi": 1.0, "end": "land"},
        5: {"measure": "karras", "xi": 1.0, "end": "land"},
        6: {"measure": "karras", "xi": 1.0, "end": "land"},
        8: {"measure": "karras", "xi": 1.0, "end": "land"},
        10: {"measure": "karras", "xi": 1.0, "end": "hold"},
        15: {"measure": "karras", "xi": 1.0, "end": "hold"},
        20: {"measure": "karras", "xi": 1.0, "end": "hold"},
        30: {"measure": "cos+karras", "xi": 1.5, "end": "hold"},
    },
    "edm": {
        4: {"measure": "karras", "xi": 1.0, "end": "land"},
        5: {"measure": "karras", "xi": 1.0, "end": "land"},
        6: {"measure": "karras", "xi": 1.0, "end": "land"},
        8: {"measure": "karras", "xi": 1.0, "end": "land"},
        10: {"measure": "karras", "xi": 1.0, "end": "land"},
        15: {"measure": "karras", "xi": 1.0, "end": "land"},
        20: {"measure": "karras", "xi": 1.0, "end": "land"},
        30: {"measure": "karras", "xi": 1.0, "end": "land"},
    },
}
FAMILY_MEASURED_SETTINGS_BY_NFE: dict[str, dict[int, dict]] = {
    "eps": {
        4: {"use": "data-free"},
        5: {"use": "data-free"},
        6: {"use": "data-free"},
        8: {"use": "data-free"},
        10: {"use": "data-free"},
        15: {"use": "data-free"},
        20: {"use": "data-free"},
        30: {"use": "data-free"},
    },
    "v": {
        4: {"use": "data-free"},
        5: {"use": "data-free"},
        6: {"use": "data-free"},
        8: {"use": "data-free"},
        10: {"use": "data-free"},
        15: {"use": "data-free"},
        20: {"use": "data-free"},
        30: {"use": "data-free"},
    },
    "edm": {
        4: {"xi": 1.25, "end": "land"},
        5: {"use": "data-free"},
        6: {"xi": 1.25, "end": "land"},
        8: {"use": "data-free"},
        10: {"use": "data-free"},
        15: {"use": "data-free"},
        20: {"use": "data-free"},
        30: {"use": "data-free"},
    },
}


#: Flow kinds (SD3, Flux) before docs/defaults.md §11: data-free velocity, ξ = DEFAULT_XI and "land" at every step
#: count. "hold" spent one of the steps at σ_min, where a flow model's x̂₀ is the input itself, and made
#: DPM-Solver++(2M)'s last step extrapolate (weights 3.7/−2.7 at 5 steps); the flow rows are in §7. A measured (vx+cos)
#: calibration: ξ = 1 (was 1.5), by §7b (``python -m schedule_lab.lab.benchmarks.flow_bench --stage calibration``).
#: Since §11 the per-NFE tables ``FLOW_SETTINGS_BY_NFE`` / ``FLOW_MEASURED_SETTINGS_BY_NFE`` decide; these two remain
#: §11's "current setting" (its tie-break) and the settings of an explicit ξ / end on a flow kind.
FLOW_SETTINGS = {"measure": "data-free", "xi": DEFAULT_XI, "end": "land"}
FLOW_MEASURED_SETTINGS = {"xi": 1.0, "end": "land"}
#: Per-NFE tables of flow kinds, chosen with Euler and DPM-Solver++(2M) on the zoo's flow models (``python -m
#: schedule_lab.lab.benchmarks.flow_ends`` → lab/benchmarks/results/flow_ends.json; rule: docs/defaults.md §11).
#: Measure "simple" is the velocity whose ξ = 1 *land* list is ComfyUI's simple list; {"use": "data-free"}: the
#: calibrated MODEL's list is the data-free default at that step count (logged).
FLOW_SETTINGS_BY_NFE: dict[int, dict] = {
    4: {"measure": "simple", "xi": 1.0, "end": "land"},
    5: {"measure": "simple", "xi": 1.0, "end": "land"},
    6: {"measure": "simple", "xi": 1.0, "end": "land"},
    8: {"measure": "simple", "xi": 1.0, "end": "land"},
    10: {"measure": "simple", "xi": 1.0, "end": "land"},
    15: {"measure": "data-free", "xi": 1.25, "end": "land"},
    20: {"measure": "cos+simple", "xi": 1.25, "end": "land"},
    30: {"measure": "cos+simple", "xi": 1.25, "end": "land"},
}
FLOW_MEASURED_SETTINGS_BY_NFE: dict[int, dict] = {
    4: {"use": "data-free"},
    5: {"use": "data-free"},
    6: {"use": "data-free"},
    8: {"use": "data-free"},
    10: {"use": "data-free"},
    15: {"use": "data-free"},
    20: {"use": "data-free"},
    30: {"use": "data-free"},
}


def default_schedule_settings(steps: int, kind: ModelKind | None = None, measured: bool = False) -> dict:
    """The default settings at ``steps`` model calls: {"measure", "xi", "end"} for the data-free default, {"xi",
    "end"} (or {"use": "data-free"}) for a measured velocity; per family (flow kinds: ``FLOW_SETTINGS_BY_NFE`` /
    ``FLOW_MEASURED_SETTINGS_BY_NFE``; ε / v / EDM: ``FAMILY_*``, else §3's tables). Step counts between grid points
    use the grid NFE below (above the last: the last; below the first: the first)."""
    if kind is not None and kind.kind == "flow":
        table = FLOW_MEASURED_SETTINGS_BY_NFE if measured else FLOW_SETTINGS_BY_NFE
    else:
        family = (FAMILY_MEASURED_SETTINGS_BY_NFE if measured else FAMILY_SETTINGS_BY_NFE).get(
            kind.kind if kind is not None else None)
        table = family or (MEASURED_SETTINGS_BY_NFE if measured else SETTINGS_BY_NFE)
    grid = sorted(table)
    below = [n for n in grid if n <= int(steps)]
    return dict(table[below[-1] if below else grid[0]])


#: The data-free measures ``data_free_velocity`` builds.
DATA_FREE = ("data-free", "cos+karras", "karras", "simple", "cos+simple")


def data_free_velocity(measure: str, kind: ModelKind | None = None) -> Velocity:
    """The data-free velocities the defaults choose from: "data-free" (= cos, ``default_velocity``),
    "cos+karras" (cos mixed half and half with the power law whose ξ = 1 schedule is Karras ρ = 7), "karras"
    (that power law alone: ξ = 1 with end "hold" is Karras ρ = 7's list; docs/defaults.md §10b), "simple"
    (``simple_velocity``: on a flow kind, ξ = 1 with end "land" is ComfyUI's simple list; §11) and "cos+simple"
    (cos and simple half and half)."""
    if measure == "data-free":
        return default_velocity(kind)
    base = str(measure).removeprefix("cos+")
    if base not in _SHAPES:
        raise ScheduleError(f"measure={measure!r} is not a data-free velocity; use one of {', '.join(DATA_FREE)}.")
    part, shape = _SHAPES[base]
    vel = shape() if base == measure else combine([(default_velocity(kind), 1.0), (shape(), 1.0)])
    parts = [part] if base == measure else ["cos", part]
    return Velocity(vel.lam, vel.values, measure, {"model_calls": 0, "parts": parts})


#: Default smoothing bandwidth of log v over λ for measured velocities.
DEFAULT_SMOOTH = 0.5
#: λ is clipped to this interval: a flow model's σ = 1 (pure noise) is λ = −∞; ᾱ(−10) = 2e-9.
LAMBDA_CLIP = (-10.0, 12.0)
#: Velocities below FLOOR_REL · max(v_λ) are raised to it; a velocity that is 0 everywhere becomes constant in λ
#: (the log-SNR-uniform schedule), so nothing divides by zero.
FLOOR_REL = 1e-9
#: Nodes of the tabulated analytic velocities (spacing ≈ 0.03 in λ over the clip interval).
ANALYTIC_NODES = 1025


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().to("cpu", torch.float64)


def check_xi(xi) -> float:
    """ξ as a float, or ScheduleError: it must be a finite number > 0."""
    try:
        value = float(xi)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(xi, bool) or not math.isfinite(value) or value <= 0:
        raise ScheduleError(f"xi={xi!r} must be a finite number > 0 (1 = equal change per step, the paper's "
                            "default; larger puts more steps where the distribution changes fast).")
    return value


def _check_coord(coord: str) -> str:
    if coord not in COORDS:
        raise ScheduleError(f"coord={coord!r} is unknown; use one of {', '.join(COORDS)} "
                            "(alpha_bar is the paper's α).")
    return coord


def log_jacobian(lam: torch.Tensor, coord: str) -> torch.Tensor:
    """log |dc/dλ| for coordinate ``coord`` at λ."""
    _check_coord(coord)
    if coord == "lambda":
        return torch.zeros_like(lam)
    if coord == "sigma":
        return -lam
    # alpha_bar = sigmoid(2λ): dᾱ/dλ = 2 ᾱ (1 − ᾱ)
    return math.log(2.0) + torch.nn.functional.logsigmoid(2 * lam) + torch.nn.functional.logsigmoid(-2 * lam)


def coordinate(lam: torch.Tensor, coord: str) -> torch.Tensor:
    """The value of coordinate ``coord`` at λ."""
    _check_coord(coord)
    return {"lambda": lambda: lam, "sigma": lambda: torch.exp(-lam), "alpha_bar": lambda: torch.sigmoid(2 * lam)}[
        coord]()


def lambda_range(kind: ModelKind) -> tuple[float, float]:
    """(λ at sigma_max, λ at sigma_min) of ``kind``, clipped to LAMBDA_CLIP."""
    lo = float(kind.to_lambda(torch.tensor(kind.sigma_max, dtype=torch.float64)))
    hi = float(kind.to_lambda(torch.tensor(kind.sigma_min, dtype=torch.float64)))
    return max(lo, LAMBDA_CLIP[0]), min(hi, LAMBDA_CLIP[1])


@dataclass(frozen=True)
class Velocity:
    """Speed of distributional change per unit λ, ``v_λ``, at ascending nodes ``lam`` (float64, finite).

    ``values`` are the raw estimates (≥ 0); the floor and smoothing are applied by :meth:`log_v`.
    ``info`` carries JSON-safe provenance (measure, model calls, samples, seconds...).
    """

    lam: torch.Tensor
    values: torch.Tensor
    measure: str = "custom"
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        lam, v = _f64(self.lam).reshape(-1), _f64(self.values).reshape(-1)
        if lam.shape != v.shape or len(lam) < 2:
            raise ScheduleError(f"velocity of measure {self.measure!r}: needs at least 2 nodes with one value "
                                f"each, got {len(lam)} nodes and {len(v)} values; use a grid of >= 2 noise levels.")
        if not (torch.isfinite(lam).all() and torch.isfinite(v).all()):
            raise ScheduleError(f"velocity of measure {self.measure!r} has NaN or inf values (a model returning "
                                "NaN, or a zero-noise level in the grid?); check the model and the sigma range.")
        if (lam[1:] <= lam[:-1]).any():
            raise ScheduleError(f"velocity of measure {self.measure!r}: nodes must be strictly ascending in λ; "
                                "sort them.")
        if (v < 0).any():
            raise ScheduleError(f"velocity of measure {self.measure!r} has negative values; a speed is >= 0.")
        object.__setattr__(self, "lam", lam)
        object.__setattr__(self, "values", v)

    # -- construction from a function in any coordinate --

    @classmethod
    def from_function(cls, fn: Callable[[torch.Tensor], torch.Tensor], coord: str = "lambda",
                      measure: str = "custom", nodes: int = ANALYTIC_NODES,
                      lam_range: tuple[float, float] = LAMBDA_CLIP) -> Velocity:
        """Tabulate ``v_c = fn(c)`` given in coordinate ``coord`` as a velocity per unit λ."""
        lam = torch.linspace(lam_range[0], lam_range[1], nodes, dtype=torch.float64)
        v = _f64(fn(coordinate(lam, coord))) * torch.exp(log_jacobian(lam, coord))
        return cls(lam, v, measure)

    def in_coord(self, coord: str) -> torch.Tensor:
        """Raw ``v_c`` at the nodes (per unit of coordinate ``coord``)."""
        return self.values * torch.exp(-log_jacobian(self.lam, coord))

    # -- floor and smoothing --

    def log_v(self, smooth: float = 0.0) -> torch.Tensor:
        """log v_λ at the nodes after the floor and a local-linear Gaussian smoothing of bandwidth ``smooth``
        (in λ; 0 = none). Local-linear smoothing keeps straight lines in log v (power laws in σ) unchanged."""
        v = self.values
        top = float(v.max())
        floored = torch.full_like(v, 1.0) if top <= 0 else v.clamp_min(FLOOR_REL * top)
        logv = floored.log()
        if smooth and smooth > 0:
            logv = _local_linear(self.lam, logv, float(smooth))
        return logv

    # -- serialisation (for the calibration cache) --

    def to_dict(self) -> dict:
        return {"measure": self.measure, "lambda": self.lam.tolist(), "v": self.values.tolist(),
                "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: dict) -> Velocity:
        try:
            return cls(torch.tensor(d["lambda"], dtype=torch.float64), torch.tensor(d["v"], dtype=torch.float64),
                       str(d.get("measure", "custom")), dict(d.get("info", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ScheduleError(f"velocity record is malformed ({e}); measure it again.") from None


def _local_linear(x: torch.Tensor, y: torch.Tensor, h: float) -> torch.Tensor:
    """Local-linear regression of y on x with a Gaussian kernel of bandwidth h (exact on straight lines)."""
    d = x[None, :] - x[:, None]  # (target, source)
    w = torch.exp(-0.5 * (d / h) ** 2)
    s0, s1, s2 = w.sum(1), (w * d).sum(1), (w * d * d).sum(1)
    t0, t1 = (w * y[None, :]).sum(1), (w * d * y[None, :]).sum(1)
    det = s0 * s2 - s1 * s1
    safe = det > 1e-12 * s0 * s2.clamp_min(1e-300)
    return torch.where(safe, (s2 * t0 - s1 * t1) / torch.where(safe, det, torch.ones_like(det)), t0 / s0)


# ---------------------------------------------------------------------------------------------------------------
# Analytic velocities
# ---------------------------------------------------------------------------------------------------------------
def cos_velocity() -> Velocity:
    """v_cos(ᾱ) = 1/√(ᾱ(1 − ᾱ)): with ξ = 1 its schedule is the cosine one, ᾱ = cos²(θ), θ linear in t."""
    # per unit λ: v_λ = v_ᾱ · 2ᾱ(1 − ᾱ) = 2 √(ᾱ(1 − ᾱ)), written with sigmoids so 1 − ᾱ does not round to 0
    return Velocity.from_function(lambda lam: 2 * (torch.sigmoid(2 * lam) * torch.sigmoid(-2 * lam)).sqrt(),
                                  "lambda", "cos")


def simple_velocity() -> Velocity:
    """v_λ = σ(λ)·σ(−λ) = |dt/dλ| for a flow model's time t = σ(−λ) (un-shifted, σ_VE = t/(1 − t) = e^−λ): uniform
    in the model's time, so with ξ = 1 and end "land" its list on a flow kind is ComfyUI's ``simple`` list (up to
    the table's rounding); docs/defaults.md §11."""
    return Velocity.from_function(lambda lam: torch.sigmoid(lam) * torch.sigmoid(-lam), "lambda", "simple")


def power_velocity(exponent: float, coord: str = "sigma") -> Velocity:
    """v_c ∝ c^exponent. In σ, exponent 1/ρ − 1 gives Karras' ρ schedule and −1 log-SNR-uniform steps (ξ = 1)."""
    return Velocity.from_function(lambda c: c ** float(exponent), coord, f"power({exponent:g},{coord})")


#: The shapes a data-free measure is built from, alone ("karras", "simple") or half and half with cos ("cos+karras",
#: "cos+simple"): name in the velocity's provenance, and the function that builds it.
_SHAPES = {"karras": ("karras rho=7", lambda: power_velocity(1 / 7 - 1, "sigma")),
           "simple": ("simple", simple_velocity)}


def gaussian_frechet_velocity(variances, mean_sq: float = 0.0, per_dim: bool = True,
                              nodes: int = ANALYTIC_NODES) -> Velocity:
    """Closed-form speed of √FD between diffused Gaussian data N(μ, Σ), Σ with eigenvalues ``variances``
    (docs/constant_rate.md, "Fréchet measure"):
    v(ᾱ)² = |μ|²/(4ᾱ) + Σ_i (λ_i − 1)² / (4(ᾱ λ_i + 1 − ᾱ)),  ``mean_sq`` = |μ|².
    ``per_dim`` divides v² by the dimension (the scale does not change the schedule)."""
    lam_i = _f64(variances).reshape(-1)
    if len(lam_i) == 0 or (lam_i < 0).any() or not torch.isfinite(lam_i).all():
        raise ScheduleError("variances must be a non-empty list of finite numbers >= 0 (the data covariance's "
                            "eigenvalues).")
    scale = 1.0 / len(lam_i) if per_dim else 1.0

    def v_alpha(a):
        a = a[:, None]
        terms = (lam_i - 1) ** 2 / (4 * (a * lam_i + 1 - a))
        return ((float(mean_sq) / (4 * a[:, 0]) + terms.sum(1)) * scale).sqrt()

    vel = Velocity.from_function(v_alpha, "alpha_bar", "gaussian-frechet", nodes)
    return vel


#: Second moment per latent element of the data-free default (latents are scaled to unit variance: SD's 0.18215,
#: SD3/Flux's shift and scale). docs/constant_rate.md: σ_data² = 0.25 (EDM pixels) and a 1/r spectrum measured worse.
LATENT_SECOND_MOMENT = 1.0


def default_velocity(kind: ModelKind | None = None) -> Velocity:
    """Data-free default: the closed-form Gaussian Fréchet velocity of the family's latent statistics, taken as a
    point mass of unit second moment per element (|μ|²/d = 1, Σ = 0): v(ᾱ)² ∝ 1/(4ᾱ) + 1/(4(1 − ᾱ)), which is
    exactly v_cos (docs/constant_rate.md, "Data-free default"). Every kind shares it (``kind`` is accepted for
    symmetry); ξ and the kind's sigma range shape the schedule."""
    dim = 4
    vel = gaussian_frechet_velocity(torch.zeros(dim, dtype=torch.float64), LATENT_SECOND_MOMENT * dim)
    return Velocity(vel.lam, vel.values, "default",
                    {"model_calls": 0, "stats": "point mass, unit second moment per element (= cos)"})


def with_cos_tails(velocity: Velocity, lam_range: tuple[float, float], spacing: float = 0.05) -> Velocity:
    """``velocity`` extended to ``lam_range`` with the cosine velocity's shape beyond its end nodes, matched there:
    v(λ) = v(λ₀) cosh λ₀ / cosh λ (v_cos = 2√(ᾱ(1 − ᾱ)) = 1/cosh λ). At both ends x̂₀ moves as cos does (∝ e^λ near
    pure noise, ∝ e^−λ near the data), whereas holding the end value constant put a flow model's first step at
    σ = 0.97: with ξ > 1 in ᾱ the weight of a constant velocity grows as e^−λ towards σ = 1."""
    lam, values = velocity.lam, velocity.values
    parts_lam, parts_v = [lam], [values]
    lo, hi = float(lam_range[0]), float(lam_range[1])
    if lo < float(lam[0]):
        low = torch.linspace(lo, float(lam[0]), max(2, int((float(lam[0]) - lo) / spacing) + 1),
                             dtype=torch.float64)[:-1]
        parts_lam.insert(0, low)
        parts_v.insert(0, values[0] * torch.cosh(lam[0]) / torch.cosh(low))
    if hi > float(lam[-1]):
        high = torch.linspace(float(lam[-1]), hi, max(2, int((hi - float(lam[-1])) / spacing) + 1),
                              dtype=torch.float64)[1:]
        parts_lam.append(high)
        parts_v.append(values[-1] * torch.cosh(lam[-1]) / torch.cosh(high))
    info = {**velocity.info, "tails": "cos"}
    return Velocity(torch.cat(parts_lam), torch.cat(parts_v), velocity.measure, info)


def combine(parts: Sequence[tuple[Velocity, float]], lam_range: tuple[float, float] | None = None) -> Velocity:
    """Σ_k w_k v_k / ∫v_k dλ with weights normalised to sum 1 ("vx + vcos", docs/constant_rate.md, "Combination"):
    each velocity is scaled to unit integral over ``lam_range`` (default: the overlap of their nodes) so the
    weights mean shares of steps."""
    if not parts:
        raise ScheduleError("combine needs at least one (velocity, weight) pair.")
    weights = []
    for vel, w in parts:
        if not isinstance(vel, Velocity):
            raise ScheduleError(f"combine: {vel!r} is not a Velocity.")
        try:
            w = float(w)
        except (TypeError, ValueError):
            w = math.nan
        if not math.isfinite(w) or w < 0:
            raise ScheduleError(f"combine: weight {w!r} must be a finite number >= 0.")
        weights.append(w)
    total = sum(weights)
    if total <= 0:
        raise ScheduleError("combine: the weights sum to 0; give at least one positive weight.")
    lo = max(float(v.lam[0]) for v, _ in parts) if lam_range is None else lam_range[0]
    hi = min(float(v.lam[-1]) for v, _ in parts) if lam_range is None else lam_range[1]
    if not lo < hi:
        raise ScheduleError("combine: the velocities share no λ range; measure them over the same sigma range.")
    lam = torch.linspace(lo, hi, ANALYTIC_NODES, dtype=torch.float64)
    out = torch.zeros_like(lam)
    for (vel, _), w in zip(parts, weights, strict=True):
        v = torch.exp(_interp(lam, vel.lam, vel.log_v()))
        out += (w / total) * v / torch.trapezoid(v, lam)
    name = " + ".join(f"{w / total:.3g}·{v.measure}" for (v, _), w in zip(parts, weights, strict=True))
    return Velocity(lam, out, name, {"parts": [v.measure for v, _ in parts], "weights": [w / total for w in weights]})


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Linear interpolation, held constant beyond the ends (endpoint decision: no extrapolation)."""
    x = x.clamp(xp[0], xp[-1])
    i = torch.searchsorted(xp, x.contiguous(), right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    return f0 + (x - x0) / (x1 - x0) * (f1 - f0)


# ---------------------------------------------------------------------------------------------------------------
# Schedule construction
# ---------------------------------------------------------------------------------------------------------------
def _log_weight(velocity: Velocity, lam: torch.Tensor, xi: float, coord: str, smooth: float) -> torch.Tensor:
    """log w(λ) = ξ log v_λ + (1 − ξ) log |dc/dλ| at ``lam``."""
    logv = _interp(lam, velocity.lam, velocity.log_v(smooth))
    return xi * logv + (1.0 - xi) * log_jacobian(lam, coord)


def _nodes(velocity: Velocity, lo: float, hi: float) -> torch.Tensor:
    inner = velocity.lam[(velocity.lam > lo) & (velocity.lam < hi)]
    # the Jacobian of alpha_bar is not log-linear: keep at least ~0.05 spacing for its curvature
    fine = torch.linspace(lo, hi, max(2, int((hi - lo) / 0.05) + 1), dtype=torch.float64)
    return torch.unique(torch.cat([torch.tensor([lo, hi], dtype=torch.float64), inner, fine]))


def _cumulative(lam: torch.Tensor, logw: torch.Tensor):
    """Exact integrals of exp(log-linear log w) per segment, scaled by exp(−max log w)."""
    p, q = logw[:-1] - logw.max(), logw[1:] - logw.max()
    h = lam[1:] - lam[:-1]
    slope = (q - p) / h
    small = slope.abs() * h < 1e-8
    seg = torch.where(small, h * torch.exp(0.5 * (p + q)),
                      torch.exp(p) * torch.expm1(slope * h) / torch.where(small, torch.ones_like(slope), slope))
    return torch.cat([seg.new_zeros(1), torch.cumsum(seg, 0)]), p, slope


def _invert(lam, cum, p, slope, targets):
    """The λ where the cumulative integral reaches ``targets``: exact inside each log-linear segment."""
    j = torch.searchsorted(cum, targets, right=True).clamp(1, len(lam) - 1) - 1
    r = (targets - cum[j]) * torch.exp(-p[j])  # remaining integral / w at the segment start
    s = slope[j]
    flat = s.abs() < 1e-10
    step = torch.where(flat, r, torch.log1p(r * torch.where(flat, torch.zeros_like(s), s)) /
                       torch.where(flat, torch.ones_like(s), s))
    return (lam[j] + step).clamp(lam[j], lam[j + 1])


def constant_rate_lambdas(velocity: Velocity, lo: float, hi: float, n: int, xi: float = DEFAULT_XI,
                          coord: str = "alpha_bar", smooth: float = 0.0) -> torch.Tensor:
    """n ascending λ from ``lo`` to ``hi`` (exact ends) at equal shares of ∫ w dλ."""
    xi, coord = check_xi(xi), _check_coord(coord)
    if n == 1:
        return torch.tensor([lo], dtype=torch.float64)
    lam = _nodes(velocity, lo, hi)
    cum, p, slope = _cumulative(lam, _log_weight(velocity, lam, xi, coord, smooth))
    inner = _invert(lam, cum, p, slope, torch.linspace(0, 1, n, dtype=torch.float64)[1:-1] * cum[-1])
    inner = torch.cummax(inner, 0).values  # monotone against round-off
    return torch.cat([torch.tensor([lo], dtype=torch.float64), inner, torch.tensor([hi], dtype=torch.float64)])


def constant_rate_sigmas(velocity: Velocity, kind: ModelKind, steps: int, xi: float = DEFAULT_XI,
                         coord: str = "alpha_bar", smooth: float = 0.0, *,
                         dtype: torch.dtype = torch.float32, end: str = "hold") -> torch.Tensor:
    """The constant-rate schedule of ``kind``: ``steps`` sigmas from sigma_max to sigma_min (exactly), then 0
    (``end="hold"``); ``end="land"``: steps + 1 levels are placed and σ_min is dropped (see ``ENDS``)."""
    if end not in ENDS:
        raise ScheduleError(f"end={end!r} must be one of {', '.join(ENDS)} (how the last interval to sigma_min is "
                            "handled).")
    if end == "land":
        full = constant_rate_sigmas(velocity, kind, validate_steps(steps) + 1, xi, coord, smooth, dtype=dtype)
        return torch.cat([full[:-2], full[-1:]])
    if not isinstance(velocity, Velocity):
        raise ScheduleError(f"velocity must be a Velocity, got {type(velocity).__name__}; build one with "
                            "default_velocity(kind) or a measure of schedules.constant_rate.measure.")
    if not isinstance(kind, ModelKind):
        raise ScheduleError(f"kind must be a ModelKind, got {type(kind).__name__}.")
    n = validate_steps(steps)
    lo, hi = lambda_range(kind)
    lam = constant_rate_lambdas(velocity, lo, hi, n, xi, coord, smooth)
    sigmas = kind.from_lambda(lam)
    sigmas[0] = kind.sigma_max
    if n > 1:
        sigmas[-1] = kind.sigma_min
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(dtype)


def training_density(velocity: Velocity, kind: ModelKind, sigma, xi: float = DEFAULT_XI,
                     coord: str = "alpha_bar", smooth: float = 0.0) -> torch.Tensor:
    """Normalised training density of noise levels, p(σ) ∝ w(λ(σ)) |dλ/dσ| (t ~ U(0,1) through the
    schedule; docs/constant_rate.md, "Training schedules"). Integrates to 1 over the model's [sigma_min, sigma_max];
    0 outside (and, for flow models, above
    σ(LAMBDA_CLIP[0]) = 0.99995). ``sigma`` in the kind's units."""
    xi, coord = check_xi(xi), _check_coord(coord)
    s = _f64(sigma)
    lo, hi = lambda_range(kind)
    lam_nodes = _nodes(velocity, lo, hi)
    cum, _, _ = _cumulative(lam_nodes, _log_weight(velocity, lam_nodes, xi, coord, smooth))
    logw_max = float(_log_weight(velocity, lam_nodes, xi, coord, smooth).max())
    sc = s.clamp(kind.sigma_min, kind.sigma_max)
    lam = kind.to_lambda(sc)
    # a flow model's σ near 1 lies below LAMBDA_CLIP: no mass there (the schedule starts its share at the clip too)
    inside = (s >= kind.sigma_min) & (s <= kind.sigma_max) & (lam >= lo) & (lam <= hi)
    # |dλ/dσ| by the kind's map: -log σ → 1/σ; flow log((1−s)/s) → 1/(s(1−s))
    dlam = 1.0 / sc if kind.kind != "flow" else 1.0 / (sc * (1 - sc))
    dens = torch.exp(_log_weight(velocity, lam.clamp(lo, hi), xi, coord, smooth) - logw_max) * dlam / cum[-1]
    return torch.where(inside, dens, torch.zeros_like(dens))


def sample_training_sigmas(velocity: Velocity, kind: ModelKind, n: int, generator=None, xi: float = DEFAULT_XI,
                           coord: str = "alpha_bar", smooth: float = 0.0) -> torch.Tensor:
    """n noise levels drawn from :func:`training_density` (inverse-CDF on the exact cumulative)."""
    xi, coord = check_xi(xi), _check_coord(coord)
    lo, hi = lambda_range(kind)
    u = torch.rand(int(n), generator=generator, dtype=torch.float64)
    lam_nodes = _nodes(velocity, lo, hi)
    cum, p, slope = _cumulative(lam_nodes, _log_weight(velocity, lam_nodes, xi, coord, smooth))
    return kind.from_lambda(_invert(lam_nodes, cum, p, slope, u * cum[-1]))
