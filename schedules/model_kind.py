"""Model kinds: what a sigma means for each family of models, and the maps between them.

A schedule is a list of *sampling-space* sigmas, the number ComfyUI and k-diffusion pass to the model wrapper.
Its meaning depends on the model:

- ``eps`` / ``v``: discrete VP models (SD1, SD2, SDXL). ``sigma = sqrt((1 - alpha_bar) / alpha_bar)`` on a
  table of ``timesteps`` entries built from "scaled_linear" betas (ComfyUI calls it "linear"):
  ``betas = linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2``, ``alpha_bar = cumprod(1 - betas)``.
- ``edm``: continuous variance-exploding sigma in ``[sigma_min, sigma_max]`` (Karras et al. 2022),
  ``x = x0 + sigma n``.
- ``flow``: rectified flow (ComfyUI's CONST), ``x = (1 - s) x0 + s n`` with ``s`` in ``[0, 1]``; the model's
  time ``t`` is shifted as in SD3, ``s = shift t / (1 + (shift - 1) t)``.

Every kind is mapped onto the half-log-SNR ``lambda = log(alpha / sigma)``: ``-log sigma`` for eps, v and edm
(their sigma is the VE sigma, whatever the prediction type), ``log((1 - s) / s)`` for flow. Two kinds agree on
a noise level exactly when they agree on lambda, so ``convert_sigmas`` goes through lambda.

All conversions take tensors (or numbers), compute in float64 and return the input's floating dtype (float64
for integer or Python input).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from .errors import ScheduleError

KINDS = ("eps", "v", "edm", "flow")

# Relative tolerance of the range check in ``convert_sigmas``: values at most this far outside the
# destination's ``[sigma_min, sigma_max]`` are round-off (float32 tables, JSON) and are moved onto the bound.
RANGE_RTOL = 1e-4

# Two discrete tables are the same when they agree to this relative tolerance (float32 copies included).
TABLE_RTOL = 1e-6

# ComfyUI builds 1000-entry tables for continuous EDM and discrete flow models ("simple" reads them).
COMFY_TABLE_SIZE = 1000
# ModelSamplingFlux keeps 10000 entries, shift(k / 10000); the table size of a flow kind is 1 / t(sigma_min).
FLUX_TABLE_SIZE = 10000
MAX_FLOW_TABLE = 100000


def _f64(x, what: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.is_complex():
        raise ScheduleError(f"{what} must be real numbers, got a complex tensor; pass real sigmas or times.")
    t = t.to(torch.float64)
    if torch.isnan(t).any():
        raise ScheduleError(f"{what} contains NaN; remove the NaN entries (a division by zero upstream?).")
    return t


def _out_dtype(x) -> torch.dtype:
    return x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float64


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of ``fp`` over ascending ``xp`` at ``x``, clamped at the ends."""
    x = x.clamp(xp[0], xp[-1])
    i = torch.searchsorted(xp, x.contiguous(), right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    return f0 + (x - x0) / (x1 - x0) * (f1 - f0)


def scaled_linear_sigmas(beta_start: float = 0.00085, beta_end: float = 0.012,
                         timesteps: int = 1000) -> torch.Tensor:
    """Ascending float64 sigma table of the SD "scaled_linear" beta schedule (index 0 = least noise)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, timesteps, dtype=torch.float64) ** 2
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)
    return ((1.0 - alpha_bar) / alpha_bar).sqrt()


def _same_table(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=TABLE_RTOL, atol=0.0))


def _recognise_scaled_linear(table: torch.Tensor) -> tuple[float, float, int] | None:
    """``(beta_start, beta_end, T)`` if ``table`` is a scaled_linear table, else None.

    The betas are read off the first and last entries and rounded to the fewest significant digits that
    rebuild the table within TABLE_RTOL (so ComfyUI's float32 SD table gives exactly 0.00085 and 0.012).
    """
    alpha_bar = 1.0 / (1.0 + table**2)
    start, end = float(1.0 - alpha_bar[0]), float(1.0 - alpha_bar[-1] / alpha_bar[-2])
    for digits in range(2, 13):
        b0, b1 = float(f"{start:.{digits}g}"), float(f"{end:.{digits}g}")
        if 0 < b0 < b1 < 1 and _same_table(scaled_linear_sigmas(b0, b1, len(table)), table):
            return (b0, b1, len(table))
    return None


def flow_shift(t, shift: float):
    """SD3 time shift ``s = shift t / (1 + (shift - 1) t)`` (Esser et al. 2024, "Scaling Rectified Flow
    Transformers", eq. 23)."""
    return shift * t / (1.0 + (shift - 1.0) * t)


@dataclass(frozen=True, eq=False)
class ModelKind:
    """What the sigmas of one model mean. Build it with ``vp``, ``edm`` or ``flow``; see the module docstring.

    ``sigmas_table`` is the ascending discrete table of eps/v models (index = ComfyUI timestep), stored as
    float64. ``beta_params = (beta_start, beta_end, timesteps)`` says that table is a scaled_linear one, so
    ``to_dict`` can store three numbers instead of the table; ``vp`` sets it, and it is recognised
    automatically when a table such as ComfyUI's ``model_sampling.sigmas`` is passed in (to float32
    precision). Passing ``beta_params`` without a table builds the table.
    """

    kind: str
    sigma_min: float
    sigma_max: float
    sigma_data: float = 1.0
    shift: float = 1.0
    multiplier: float = 1000.0
    sigmas_table: torch.Tensor | None = None
    beta_params: tuple[float, float, int] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ScheduleError(
                f"model kind {self.kind!r} is unknown; use one of {', '.join(KINDS)} "
                "(eps/v: SD-style discrete models, edm: continuous EDM, flow: rectified flow such as SD3)."
            )
        for name in ("sigma_min", "sigma_max", "sigma_data", "shift", "multiplier"):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number) or number <= 0:
                raise ScheduleError(f"model kind {name}={value!r} must be a finite number > 0; "
                                    "pass a positive float.")
            object.__setattr__(self, name, number)
        if self.sigma_min >= self.sigma_max:
            raise ScheduleError(
                f"model kind sigma_min={self.sigma_min} is not below sigma_max={self.sigma_max}; "
                "pass sigma_min < sigma_max."
            )
        if self.kind == "flow" and self.sigma_max > 1.0 + RANGE_RTOL:
            raise ScheduleError(
                f"flow model sigma_max={self.sigma_max} is above 1, but rectified-flow sigmas lie in [0, 1]; "
                "use ModelKind.flow(shift=...) or sigma_max=1."
            )
        if self.sigmas_table is not None:
            self._check_table()
        if self.beta_params is not None:
            self._check_beta_params()
        elif self.sigmas_table is not None:
            object.__setattr__(self, "beta_params", _recognise_scaled_linear(self.sigmas_table))

    def _check_table(self):
        if not self.is_discrete:
            raise ScheduleError(
                f"sigmas_table is only used by discrete eps/v models, not by kind {self.kind!r}; "
                "drop the sigmas_table argument."
            )
        table = torch.as_tensor(self.sigmas_table).detach().to("cpu", torch.float64).clone()
        if table.ndim != 1 or len(table) < 2 or not torch.isfinite(table).all() or (table <= 0).any():
            raise ScheduleError(
                "sigmas_table must be a 1-D tensor of at least 2 finite positive sigmas; "
                "pass model_sampling.sigmas or build the kind with ModelKind.vp(...)."
            )
        if (table[1:] <= table[:-1]).any():
            raise ScheduleError(
                "sigmas_table must be strictly ascending (index 0 = least noise, as ComfyUI stores it); "
                "pass it in ComfyUI's order, e.g. model_sampling.sigmas."
            )
        lo, hi = float(table[0]), float(table[-1])
        if not (math.isclose(lo, self.sigma_min, rel_tol=TABLE_RTOL)
                and math.isclose(hi, self.sigma_max, rel_tol=TABLE_RTOL)):
            raise ScheduleError(
                f"sigma_min/sigma_max ({self.sigma_min}, {self.sigma_max}) do not match the ends of "
                f"sigmas_table ({lo}, {hi}); pass sigma_min=table[0] and sigma_max=table[-1]."
            )
        object.__setattr__(self, "sigmas_table", table)

    def _check_beta_params(self):
        if not self.is_discrete:
            raise ScheduleError(f"beta_params only describe discrete eps/v models, not kind {self.kind!r}; "
                                "drop the beta_params argument.")
        try:
            start, end, steps = self.beta_params
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise ScheduleError(f"beta_params={self.beta_params!r} must be (beta_start, beta_end, "
                                "timesteps); build the kind with ModelKind.vp(...).") from None
        if isinstance(steps, bool) or int(steps) != steps or steps < 2 or not (0 < start < end < 1):
            raise ScheduleError(f"beta_params={self.beta_params!r} need 0 < beta_start < beta_end < 1 and "
                                "timesteps >= 2 (SD: 0.00085, 0.012, 1000).")
        object.__setattr__(self, "beta_params", (start, end, int(steps)))
        built = scaled_linear_sigmas(start, end, int(steps))
        if self.sigmas_table is None:
            object.__setattr__(self, "sigmas_table", built)
            self._check_table()
        elif not _same_table(self.sigmas_table, built):
            raise ScheduleError(f"sigmas_table does not match beta_params={self.beta_params!r}; "
                                "pass only one of them.")

    # -- constructors --

    @classmethod
    def vp(cls, prediction: str = "eps", beta_start: float = 0.00085, beta_end: float = 0.012,
           timesteps: int = 1000) -> ModelKind:
        """SD1/SD2/SDXL-style discrete VP model on a scaled_linear beta table (ModelSamplingDiscrete)."""
        if prediction not in ("eps", "v"):
            raise ScheduleError(f"prediction={prediction!r} is not a VP prediction type; use 'eps' or 'v'.")
        if isinstance(timesteps, bool) or int(timesteps) != timesteps or timesteps < 2:
            raise ScheduleError(f"timesteps={timesteps!r} must be an integer >= 2 (SD models use 1000).")
        if not (0 < beta_start < beta_end < 1):
            raise ScheduleError(
                f"beta_start={beta_start!r}, beta_end={beta_end!r} must satisfy "
                "0 < beta_start < beta_end < 1 (SD uses 0.00085 and 0.012)."
            )
        table = scaled_linear_sigmas(beta_start, beta_end, int(timesteps))
        return cls(prediction, float(table[0]), float(table[-1]), sigmas_table=table,
                   beta_params=(beta_start, beta_end, int(timesteps)))

    @classmethod
    def edm(cls, sigma_min: float = 0.002, sigma_max: float = 80.0, sigma_data: float = 0.5) -> ModelKind:
        """Continuous EDM model (Karras et al. 2022; ComfyUI's ModelSamplingContinuousEDM)."""
        return cls("edm", sigma_min, sigma_max, sigma_data=sigma_data)

    @classmethod
    def flow(cls, shift: float = 1.0, multiplier: float = 1000.0, timesteps: int = COMFY_TABLE_SIZE) -> ModelKind:
        """Rectified-flow model with SD3 shift (ModelSamplingDiscreteFlow; sigma_min = shift(1/timesteps))."""
        try:
            number = float(shift)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise ScheduleError(f"shift={shift!r} must be a finite number > 0 (SD3 uses 3.0, 1 is no shift).")
        if isinstance(timesteps, bool) or int(timesteps) != timesteps or not 2 <= timesteps <= MAX_FLOW_TABLE:
            raise ScheduleError(f"timesteps={timesteps!r} must be a whole number from 2 to {MAX_FLOW_TABLE} "
                                "(ComfyUI: 1000 for SD3, 10000 for Flux).")
        sigma_min = flow_shift(1.0 / int(timesteps), number)
        return cls("flow", sigma_min, 1.0, shift=number, multiplier=multiplier)

    @classmethod
    def flux(cls, mu: float = 1.15) -> ModelKind:
        """Flux (ModelSamplingFlux): sigma = e^mu / (e^mu + 1/t − 1), SD3's shift with shift = e^mu; the model's
        timestep is sigma itself (multiplier 1) and its table has 10000 entries. ComfyUI's ModelSamplingFlux node
        sets mu from the image size: mu = base_shift + (max_shift − base_shift)(w·h/256 − 256)/(4096 − 256)."""
        try:
            number = float(mu)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ScheduleError(f"mu={mu!r} must be a finite number (Flux at 1024x1024: 1.15).")
        return cls.flow(shift=math.exp(number), multiplier=1.0, timesteps=FLUX_TABLE_SIZE)

    # -- identity --

    def _key(self):
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "sigmas_table")

    def __eq__(self, other):
        if not isinstance(other, ModelKind):
            return NotImplemented
        if self._key() != other._key():
            return False
        a, b = self.sigmas_table, other.sigmas_table
        return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        table = "None" if self.sigmas_table is None else f"<{len(self.sigmas_table)} sigmas>"
        return (f"ModelKind(kind={self.kind!r}, sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r}, "
                f"sigma_data={self.sigma_data!r}, shift={self.shift!r}, multiplier={self.multiplier!r}, "
                f"sigmas_table={table}, beta_params={self.beta_params!r})")

    @property
    def is_discrete(self) -> bool:
        return self.kind in ("eps", "v")

    # -- lambda --

    def _check_sigma(self, s: torch.Tensor) -> torch.Tensor:
        if (s < 0).any():
            raise ScheduleError(f"sigma {s.min().item()} is negative; sigmas of every model kind are >= 0.")
        if self.kind == "flow" and (s > 1.0).any():
            raise ScheduleError(
                f"flow sigma {s.max().item()} is above 1; rectified-flow sigmas lie in [0, 1] "
                "(carry a schedule made for another model over with convert_sigmas)."
            )
        return s

    def to_lambda(self, sigma) -> torch.Tensor:
        """Half-log-SNR ``log(alpha / sigma)``; +inf at sigma = 0."""
        s = self._check_sigma(_f64(sigma, "sigma"))
        lam = torch.log1p(-s) - torch.log(s) if self.kind == "flow" else -torch.log(s)
        return lam.to(_out_dtype(sigma))

    def from_lambda(self, lam) -> torch.Tensor:
        """Inverse of ``to_lambda``."""
        x = _f64(lam, "lambda")
        s = torch.sigmoid(-x) if self.kind == "flow" else torch.exp(-x)
        return s.to(_out_dtype(lam))

    def to_alpha_bar(self, sigma) -> torch.Tensor:
        """Variance-preserving signal fraction ``alpha_bar = SNR / (1 + SNR)``, SNR = exp(2 lambda)."""
        lam = self.to_lambda(_f64(sigma, "sigma"))
        return torch.sigmoid(2.0 * lam).to(_out_dtype(sigma))

    # -- flow time --

    def to_flow_time(self, sigma) -> torch.Tensor:
        """Un-shifted rectified-flow time ``t`` in [0, 1].

        flow: the ``t`` with ``sigma = shift t / (1 + (shift - 1) t)`` (ComfyUI's timestep / multiplier before
        the shift); eps/v/edm: ``t = sigma / (1 + sigma)``, the noise level of an un-shifted rectified flow
        with the same lambda.
        """
        s = self._check_sigma(_f64(sigma, "sigma"))
        if self.kind == "flow":
            t = s / (self.shift - (self.shift - 1.0) * s)
        else:
            t = torch.where(torch.isinf(s), torch.ones_like(s), s / (1.0 + s))
        return t.to(_out_dtype(sigma))

    def from_flow_time(self, t) -> torch.Tensor:
        """Inverse of ``to_flow_time``."""
        x = _f64(t, "flow time")
        if (x < 0).any() or (x > 1).any():
            raise ScheduleError("flow time must lie in [0, 1]; clamp or rescale the times you pass.")
        s = flow_shift(x, self.shift) if self.kind == "flow" else x / (1.0 - x)
        return s.to(_out_dtype(t))

    # -- model timestep --

    def _log_table(self) -> torch.Tensor:
        if self.sigmas_table is None:
            raise ScheduleError(
                f"this {self.kind} model kind has no sigmas_table, so it has no discrete timesteps; "
                "build it with ModelKind.vp(...) or pass sigmas_table=model_sampling.sigmas."
            )
        return self.sigmas_table.log()

    def to_timestep(self, sigma) -> torch.Tensor:
        """The model's timestep input for ``sigma``, as ComfyUI's ``model_sampling.timestep``.

        eps/v: the *continuous* table index (log-linear between entries, clamped to [0, T-1]); ComfyUI rounds
        it to the nearest index. edm: ``0.25 log sigma``. flow: ``sigma * multiplier``.
        """
        s = _f64(sigma, "sigma")
        if self.is_discrete:
            logs = self._log_table()
            index = torch.arange(len(logs), dtype=torch.float64)
            t = _interp(torch.log(s.clamp_min(torch.finfo(torch.float64).tiny)), logs, index)
        elif self.kind == "edm":
            t = 0.25 * torch.log(s)
        else:
            t = self._check_sigma(s) * self.multiplier
        return t.to(_out_dtype(sigma))

    def from_timestep(self, t) -> torch.Tensor:
        """Inverse of ``to_timestep``.

        eps/v: log-linear interpolation in the table, as ComfyUI's ``model_sampling.sigma``.
        edm: ``exp(4 t)``. flow: ``t / multiplier`` (ComfyUI's flow ``sigma(t)`` applies the shift to
        ``t / multiplier`` instead, so it is not the inverse of its own ``timestep``; use
        ``from_flow_time(t / multiplier)`` for that).
        """
        x = _f64(t, "timestep")
        if self.is_discrete:
            logs = self._log_table()
            s = torch.exp(_interp(x, torch.arange(len(logs), dtype=torch.float64), logs))
        elif self.kind == "edm":
            s = torch.exp(4.0 * x)
        else:
            s = x / self.multiplier
        return s.to(_out_dtype(t))

    @property
    def flow_timesteps(self) -> int:
        """Entries of a flow model's table, ``T = 1 / t(sigma_min)`` (its smallest time is 1/T): 1000 for SD3's
        ModelSamplingDiscreteFlow, 10000 for ModelSamplingFlux."""
        if self.kind != "flow":
            raise ScheduleError(f"flow_timesteps is a property of flow models, not of kind {self.kind!r}.")
        t_min = float(self.to_flow_time(torch.tensor(self.sigma_min, dtype=torch.float64)))
        return int(min(MAX_FLOW_TABLE, max(2, round(1.0 / t_min))))

    def comfy_table(self) -> torch.Tensor:
        """Ascending float64 table ComfyUI keeps as ``model_sampling.sigmas`` for this kind.

        eps/v: ``sigmas_table``; edm: 1000 sigmas uniform in log sigma (= uniform in ComfyUI's EDM timestep);
        flow: ``shift(k / T)`` for k = 1..T, T = ``flow_timesteps`` (1000 for ModelSamplingDiscreteFlow, 10000 for
        ModelSamplingFlux).
        """
        if self.is_discrete:
            self._log_table()
            return self.sigmas_table
        if self.kind == "edm":
            lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
            return torch.linspace(lo, hi, COMFY_TABLE_SIZE, dtype=torch.float64).exp()
        n = self.flow_timesteps
        return flow_shift(torch.arange(1, n + 1, dtype=torch.float64) / n, self.shift)

    def unshifted(self) -> ModelKind:
        """A flow kind without its time shift (shift 1, sigma = t over the same times); other kinds as they are.
        ComfyUI's schedulers act in the model's timestep space, so a shift-s list is the shift-1 list mapped
        through ``from_flow_time``."""
        if self.kind != "flow":
            return self
        t_min = float(self.to_flow_time(torch.tensor(self.sigma_min, dtype=torch.float64)))
        return ModelKind("flow", t_min, 1.0, shift=1.0, multiplier=self.multiplier)

    # -- serialisation --

    def to_dict(self) -> dict:
        """JSON-safe description; a scaled_linear table is stored as its betas, any other table in full."""
        d = {"kind": self.kind, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
             "sigma_data": self.sigma_data, "shift": self.shift, "multiplier": self.multiplier, "table": None}
        if self.beta_params is not None:
            start, end, steps = self.beta_params
            d["table"] = {"type": "scaled_linear", "beta_start": start, "beta_end": end, "timesteps": steps}
        elif self.sigmas_table is not None:
            d["table"] = {"type": "explicit", "sigmas": self.sigmas_table.tolist()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelKind:
        """Inverse of ``to_dict``; raises ScheduleError on anything malformed.

        A scaled_linear table is rebuilt in float64, so a kind made from ComfyUI's float32 table comes back
        equal to ``ModelKind.vp(...)`` rather than to itself.
        """
        if not isinstance(d, dict):
            raise ScheduleError(f"model description must be a JSON object, got {type(d).__name__}; "
                                "write it with ModelKind.to_dict().")
        if d.get("kind") not in KINDS:
            raise ScheduleError(f"model description has kind {d.get('kind')!r}; "
                                f"use one of {', '.join(KINDS)}.")
        missing = [k for k in ("sigma_min", "sigma_max") if k not in d]
        if missing:
            raise ScheduleError(f"model description lacks {', '.join(missing)}; "
                                "write it with ModelKind.to_dict().")
        table = d.get("table")
        extra = {k: d[k] for k in ("sigma_data", "shift", "multiplier") if k in d}
        if table is None:
            return cls(d["kind"], d["sigma_min"], d["sigma_max"], **extra)
        table_type = table.get("type") if isinstance(table, dict) else None
        if table_type == "scaled_linear":
            try:
                built = cls.vp(d["kind"], table["beta_start"], table["beta_end"], table["timesteps"])
            except (KeyError, TypeError) as e:
                raise ScheduleError(f"model description's scaled_linear table lacks or mistypes {e}; "
                                    "it needs beta_start, beta_end and timesteps.") from None
            if not (math.isclose(built.sigma_min, float(d["sigma_min"]), rel_tol=TABLE_RTOL)
                    and math.isclose(built.sigma_max, float(d["sigma_max"]), rel_tol=TABLE_RTOL)):
                raise ScheduleError(
                    f"model description says sigma range ({d['sigma_min']}, {d['sigma_max']}) but its "
                    f"betas give ({built.sigma_min}, {built.sigma_max}); "
                    "re-create it with ModelKind.to_dict()."
                )
            return built
        if table_type == "explicit" and isinstance(table.get("sigmas"), list):
            try:
                values = torch.tensor(table["sigmas"], dtype=torch.float64)
            except (TypeError, ValueError):
                values = None
            if values is not None:
                return cls(d["kind"], d["sigma_min"], d["sigma_max"], **extra, sigmas_table=values)
        raise ScheduleError(f"model description has an unreadable table {str(table)[:80]!r}; "
                            "use null, a 'scaled_linear' or an 'explicit' table (ModelKind.to_dict()).")

    def describe(self) -> str:
        """One line for people: family, parameters and sigma range."""
        rng = f"sigma {self.sigma_min:.4g} to {self.sigma_max:.4g}"
        if self.is_discrete:
            pred = "eps-prediction" if self.kind == "eps" else "v-prediction"
            if self.beta_params is not None:
                start, end, steps = self.beta_params
                table = f"scaled_linear betas {start:g} to {end:g}, {steps} timesteps"
            elif self.sigmas_table is not None:
                table = f"custom table of {len(self.sigmas_table)} timesteps"
            else:
                table = "no timestep table"
            return f"discrete VP model, {pred} ({table}); {rng}"
        if self.kind == "edm":
            return f"continuous EDM model (sigma_data {self.sigma_data:g}); {rng}"
        return f"rectified-flow model (shift {self.shift:g}, timestep multiplier {self.multiplier:g}); {rng}"


def convert_sigmas(sigmas, src_kind: ModelKind, dst_kind: ModelKind, clamp: bool = False,
                   clamp_hint: str = "pass clamp=True") -> torch.Tensor:
    """Map sigmas of ``src_kind`` to the sigmas of ``dst_kind`` with the same lambda (same SNR); 0 stays 0.

    Results outside ``dst_kind``'s ``[sigma_min, sigma_max]`` by more than ``RANGE_RTOL`` (relative) raise
    ScheduleError (whose fix says ``clamp_hint``), unless ``clamp=True``, which moves them onto the nearest bound;
    values within the
    tolerance are always moved onto the bound.
    """
    s = _f64(sigmas, "sigmas")
    shape, s = s.shape, s.reshape(-1)
    zero = s == 0
    out = dst_kind.from_lambda(src_kind.to_lambda(s))
    out = torch.where(zero, torch.zeros_like(out), out)
    lo, hi = dst_kind.sigma_min, dst_kind.sigma_max
    bad = ~zero & ((out < lo * (1 - RANGE_RTOL)) | (out > hi * (1 + RANGE_RTOL)))
    if bad.any() and not clamp:
        i = int(bad.nonzero()[0])
        raise ScheduleError(
            f"sigma {s[i].item():.6g} of the {src_kind.kind} model maps to {out[i].item():.6g} on the "
            f"{dst_kind.kind} model, outside its range [{lo:.6g}, {hi:.6g}] "
            f"({int(bad.sum())} of {len(bad)} values); {clamp_hint} to move such values onto the range, "
            "or use a schedule made for this model."
        )
    out = torch.where(zero, out, out.clamp(lo, hi))
    return out.reshape(shape).to(_out_dtype(sigmas))
