"""TADA, Training-free Augmented DynAmics (Chen, Zheng, Berthelot, Gu, Susskind, Zhai 2025, arXiv 2506.21757).

The sampler integrates an augmented "momentum" state X = (x⁽⁰⁾, …, x⁽ᴺ⁻¹⁾) driven by the ordinary denoiser:
the network sees the sufficient statistic ŷ = gᵀX at the noise level σ_eff(t) = σ_i (Prop. 3.1), the chain
dx⁽ʲ⁾/dt = x⁽ʲ⁺¹⁾, dx⁽ᴺ⁻¹⁾/dt = F is stepped with Adams–Bashforth on F in t, and the result is the last data
prediction. One model call per step. Maths in solvers/tada_coefficients.py, tensor work in kernels/augmented.py,
decisions and measurements in docs/tada.md.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch

from ..kernels.augmented import ab_update_, combine, force_into_, lift_, lower_triangular_apply_
from ..schedules.errors import ScheduleError
from ..schedules.model_kind import ModelKind
from ..schedules.validate import validate_sigmas
from . import tada_coefficients as tc
from .classic import step_range

__all__ = [
    "DEFAULT_DETAIL", "DEFAULT_N_AUG", "DETAIL_MAX", "DETAIL_MIN", "DETAIL_STEP", "FLOW_SETTINGS_BY_NFE",
    "FLOW_INTEGRATOR", "INTEGRATORS", "INTEGRATOR_BY_NFE", "N_AUG_CHOICES", "ORDER_CHOICES", "SEED_OFFSET",
    "SETTINGS_2M_BY_NFE", "SETTINGS_BY_NFE", "check_integrator", "check_options", "default_integrator", "default_order",
    "default_settings", "initial_state", "is_karras_spaced", "sample_tada", "tada_noise", "time_grid",
]

#: Added to ComfyUI's seed for the extra noise: ComfyUI draws the initial noise with torch.manual_seed(seed) on the
#: CPU, so the raw seed would give extra channels *equal* to the initial noise (docs/tada.md, "Initial state").
SEED_OFFSET = 0x7ADA

N_AUG_CHOICES = (1, 2, 3)
ORDER_CHOICES = (1, 2, 3)
#: How a step moves the state (docs/tada.md "Integrators"): "ab" = Adams-Bashforth of ``order`` on the force in t
#: (the paper's Algorithm 1); "2m" = the closed loop's exact transition with the data prediction held at
#: DPM-Solver++(2M)'s λ-extrapolated value (``order`` 1: held at the newest prediction; 2: 2M's correction).
INTEGRATORS = ("ab", "2m")
DEFAULT_N_AUG = 2

# Defaults and slider range measured by lab/benchmarks/tada_defaults.py (tables in
# lab/benchmarks/results/tada_defaults.md, reasoning in docs/tada.md "Defaults"). Order: 2 wins on Karras-type
# schedules (EDM and SD1 ranges), 3 on the shifted flow schedules that start at sigma = 1 -- the reverse of the spec's
# suggestion. detail: 0.5-4 is a plateau for both families, 1 (the paper's i.i.d. prior) is within seed noise of the
# best; 0.1 and 16 stay usable.
DEFAULT_DETAIL = 1.0
DETAIL_MIN, DETAIL_MAX, DETAIL_STEP = 0.1, 16.0, 0.05
_DEFAULT_ORDER = {"ve": 2, "flow": 3}


#: Per-NFE defaults (detail, order) for eps/v/EDM kinds on Karras-type schedules, used when ``detail``/``order``
#: are None (sl_tada in KSampler without a Detail Level node). Produced by
#: ``python -m schedule_lab.lab.defaults.bench --stage tune`` (lab/benchmarks/results/defaults_chosen.json; rule
#: in docs/defaults.md §3: the lowest worst ratio to dpmpp_2m + karras over the tuning testbeds, per NFE); other step
#: counts use the grid NFE below (above 20: 20; below 4: 4). Flow kinds: FLOW_SETTINGS_BY_NFE.
SETTINGS_BY_NFE = {4: (2.0, 2), 5: (2.0, 2), 6: (1.0, 2), 8: (4.0, 2), 10: (16.0, 3), 15: (2.0, 2), 20: (2.0, 2)}
#: Per-NFE defaults (detail, order) for flow kinds (SD3, Flux) on ComfyUI's simple list, produced by
#: ``python -m schedule_lab.lab.benchmarks.flow_bench --stage tada`` (lab/benchmarks/results/flow_tada_chosen.json;
#: rule in docs/defaults.md §7a: the lowest worst sliced-W2 ratio to euler + simple over 16 flow tuning cells, per
#: NFE, 4–8; worst ratio 0.961, 0.935, 0.940, 0.949 at 4, 5, 6, 8 against 1.014, 1.038, 0.959, 0.974 for the former
#: (1, 3)); from 10 steps on the former flow default (DEFAULT_DETAIL, 3); between grid points as above.
FLOW_SETTINGS_BY_NFE = {4: (0.5, 2), 5: (2.0, 2), 6: (2.0, 2), 8: (2.0, 2), 10: (DEFAULT_DETAIL, 3)}


#: The integrator used when the caller leaves it None on eps/v/EDM kinds, per step count (grid NFE below; below the
#: grid: its first entry), chosen by the rule of docs/defaults.md §8b (``python -m schedule_lab.lab.benchmarks.
#: tada_stock --stage choose`` → lab/benchmarks/results/tada_stock_chosen.json). Flow kinds: "ab" (§7a).
INTEGRATOR_BY_NFE = {4: "2m", 5: "2m", 6: "2m", 8: "2m", 10: "2m", 15: "2m", 20: "2m", 30: "2m"}
#: Per-NFE (detail, order) of the "2m" integrator on eps/v/EDM kinds (the same rule: the best-scoring 2m detail).
SETTINGS_2M_BY_NFE = {4: (0.5, 2), 5: (0.5, 2), 6: (0.5, 2), 8: (2.0, 2), 10: (2.0, 2), 15: (2.0, 2), 20: (2.0, 2),
                      30: (0.5, 2)}
FLOW_INTEGRATOR = "ab"


def _family(kind) -> str:
    return "flow" if isinstance(kind, ModelKind) and kind.kind == "flow" else "ve"


def _at(table: dict, nfe: int):
    grid = sorted(table)
    below = [n for n in grid if n <= int(nfe)]
    return table[below[-1] if below else grid[0]]


def is_karras_spaced(sigmas, rho: float = 7.0, rtol: float = 1e-4) -> bool:
    """True when the positive sigmas (at least 3) are uniform in σ^(1/ρ): what KSampler's ``karras`` scheduler gives
    (any model, step count or denoise)."""
    s = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)
    s = s[s > 0]
    if s.numel() < 3:
        return False
    u = s ** (1.0 / rho)
    span = float(u[0] - u[-1])
    return span > 0 and float((u[2:] - 2 * u[1:-1] + u[:-2]).abs().max()) <= rtol * span


def default_integrator(kind: ModelKind | None = None, nfe: int = 20, karras: bool = True) -> str:
    """The integrator for ``integrator=None``: on eps/v/EDM kinds INTEGRATOR_BY_NFE at ``nfe`` model calls when the
    list is Karras-spaced (``karras``), else "ab"; flow kinds "ab" (docs/defaults.md §8b)."""
    if _family(kind) == "flow" or not karras:
        return FLOW_INTEGRATOR if _family(kind) == "flow" else "ab"
    return _at(INTEGRATOR_BY_NFE, nfe)


def check_integrator(integrator, kind=None, nfe: int = 20, karras: bool = True) -> str:
    if integrator is None:
        return default_integrator(kind, nfe, karras)
    if integrator not in INTEGRATORS:
        raise ScheduleError(f"integrator={integrator!r} must be one of {', '.join(INTEGRATORS)} or None for the "
                            f"default of the model kind and step count ({default_integrator(kind, nfe)}).")
    return integrator


def default_settings(nfe: int, kind: ModelKind | None = None, integrator: str | None = None,
                     karras: bool = True) -> tuple[float, int]:
    """(detail, order) used when the caller leaves them None, for ``nfe`` model calls and ``integrator`` (None: the
    default for the kind, NFE and list, ``default_integrator``): "ab" SETTINGS_BY_NFE (flow kinds
    FLOW_SETTINGS_BY_NFE), "2m" SETTINGS_2M_BY_NFE."""
    integrator = check_integrator(integrator, kind, nfe, karras)
    if integrator == "2m":
        return _at(SETTINGS_2M_BY_NFE, nfe)
    return _at(FLOW_SETTINGS_BY_NFE if _family(kind) == "flow" else SETTINGS_BY_NFE, nfe)


def default_order(kind: ModelKind | None = None) -> int:
    """Adams–Bashforth order for ``order=None``: 3 for flow models, 2 for the others (docs/tada.md "Defaults")."""
    return _DEFAULT_ORDER["flow" if kind is not None and kind.kind == "flow" else "ve"]


def check_options(detail, n_aug, order=None, kind=None) -> tuple[float, int, int]:
    """(detail, n_aug, order) validated and normalised (order None → the kind's default); ScheduleError otherwise."""
    if isinstance(detail, bool) or not isinstance(detail, Real) or not math.isfinite(detail) or detail <= 0:
        raise ScheduleError(f"detail={detail!r} must be a finite number > 0 (the variance of the last prior "
                            f"variable); use {DEFAULT_DETAIL} for the paper's i.i.d. prior, larger for more detail.")
    if isinstance(n_aug, bool) or not isinstance(n_aug, Integral) or n_aug not in N_AUG_CHOICES:
        raise ScheduleError(f"n_aug={n_aug!r} must be 1, 2 or 3 (the number of augmented variables); "
                            f"use {DEFAULT_N_AUG}, the paper's setting.")
    if kind is not None and not isinstance(kind, ModelKind):
        raise ScheduleError(f"kind={kind!r} must be a schedules.ModelKind or None (None: VE/EDM-like sigmas); "
                            "build one with ModelKind.edm(), .vp() or .flow().")
    if order is None:
        order = default_order(kind)
    if isinstance(order, bool) or not isinstance(order, Integral) or order not in ORDER_CHOICES:
        raise ScheduleError(f"order={order!r} must be 1, 2 or 3 (Adams-Bashforth order) or None for the "
                            f"default of the model kind ({default_order(kind)}).")
    return float(detail), int(n_aug), int(order)


def time_grid(sigmas, n_aug: int = DEFAULT_N_AUG, detail: float = DEFAULT_DETAIL,
              kind: ModelKind | None = None) -> np.ndarray:
    """TADA times t_i (float64) solving ½ log γ(t_i) = λ(σ_i); σ = 0 gives t = 1, a flow σ = 1 gives t = 0."""
    s = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)
    lam = kind.to_lambda(s) if kind is not None else -torch.log(s)
    return tc.t_of_lambda(lam.numpy(), n_aug, detail)


def tada_noise(shape, n_aug: int, seed: int | None, seed_offset: int = SEED_OFFSET) -> torch.Tensor:
    """The extra noise, (n_aug,) + shape float32 normals from a CPU generator seeded with seed + seed_offset.

    Drawn on the CPU so a seed gives the same image on every device; seed None means seed_offset alone.
    """
    gen = torch.Generator("cpu").manual_seed(((0 if seed is None else int(seed)) + int(seed_offset)) % 2**64)
    return torch.randn((n_aug, *shape), generator=gen, dtype=torch.float32)


def initial_state(x: torch.Tensor, sigma0: float, t0: float, n_aug: int, detail: float, noise: torch.Tensor | None,
                  out: torch.Tensor) -> torch.Tensor:
    """Write X_{t0} ~ N(0, Σ_{t0}) conditioned exactly on gᵀX = ŷ0 = x/σ0 into ``out`` (n_aug, numel).

    X = w + c (ŷ0 − gᵀw) with w = L z, L Lᵀ = Σ_{t0}: the residual X − c ŷ0 = (I − c gᵀ) w is independent of
    ŷ0, so any incoming latent (pure noise, img2img, denoise < 1) gets the right joint law (docs/tada.md,
    "Initial state").
    N = 1 has no extra variables and uses no noise.
    """
    yhat = x.reshape(-1).to(out.dtype) / sigma0
    g, c = tc.projections(t0, n_aug, detail)
    as_row = {"device": out.device, "dtype": out.dtype}
    if n_aug == 1:
        return torch.mul(yhat, float(c[0]), out=out[0])
    chol = np.linalg.cholesky(tc.covariance(t0, n_aug, detail))
    out.copy_(noise.reshape(n_aug, -1))
    lower_triangular_apply_(out, torch.as_tensor(chol, **as_row))
    residual = yhat.sub_(combine(out, torch.as_tensor(g, **as_row)))
    return lift_(out, torch.as_tensor(c, **as_row), residual)


def _step_tables(ts: np.ndarray, sigmas64: np.ndarray, n: int, k: float, order: int):
    """All per-step coefficients at once (float64): model-input weights σ_i g_i, force (a_i, p_i), update W_i."""
    steps = len(ts) - 1
    xin = np.zeros((steps, n))
    force_a = np.zeros(steps)
    force_p = np.zeros((steps, n))
    update = np.zeros((steps, n, n + order))
    for i in range(steps):
        g, _ = tc.projections(ts[i], n, k)
        xin[i] = sigmas64[i] * g
        force_a[i], force_p[i] = tc.force_coefficients(ts[i], n)
        if i == steps - 1 and sigmas64[-1] == 0:
            continue  # the last call is the read-out: no update
        q = min(order, i + 1)
        h = ts[i + 1] - ts[i]
        update[i, :, :n] = tc.phi_a(h, n)
        coeffs = tc.ab_coefficients(ts[i - q + 1:i + 1][::-1], ts[i + 1], n)  # (q, n), newest force first
        for j in range(q):
            update[i, :, n + (i - j) % order] = coeffs[j]
    return xin, force_a, force_p, update


def _step_tables_2m(ts: np.ndarray, sigmas64: np.ndarray, n: int, order: int, kind):
    """Per-step (transition Φ̂(t_{i+1}, t_i), data weight e0 − Φ̂ e0, 2M correction r_i) of the "2m" integrator.

    With the data prediction x̂ held constant over a step the state's exact solution is
    X(t) − x̂ e0 = Φ̂(t, τ)(X(τ) − x̂ e0) (X = x̂ e0 is the closed loop's fixed point); "2m" holds
    x̂ = D_i + r_i (D_i − D_{i−1}), r_i = h_i / (2 h_{i−1}) with h the step in λ (DPM-Solver++(2M)'s value; for
    N = 1 the step is exactly DPM-Solver++(2M)).
    """
    steps = len(ts) - 1
    s = torch.as_tensor(sigmas64)
    lam = (kind.to_lambda(s) if kind is not None else -torch.log(s)).numpy()
    trans = np.zeros((steps, n, n))
    weight = np.zeros((steps, n))
    ratio = np.zeros(steps)
    e0 = np.eye(n)[0]
    for i in range(steps):
        if sigmas64[i + 1] == 0:
            continue  # the read-out
        trans[i] = tc.phi_hat(ts[i + 1], ts[i], n)
        weight[i] = e0 - trans[i] @ e0
        if order >= 2 and i > 0 and np.isfinite(lam[i - 1]) and lam[i] > lam[i - 1]:
            ratio[i] = (lam[i + 1] - lam[i]) / (2.0 * (lam[i] - lam[i - 1]))
    return trans, weight, ratio


@torch.no_grad()
def sample_tada(model, x, sigmas, extra_args=None, callback=None, disable=None, detail=None,
                n_aug=DEFAULT_N_AUG, order=None, kind=None, seed_offset=SEED_OFFSET, integrator=None):
    """TADA (arXiv 2506.21757, Alg. 1): Adams–Bashforth on the force of an N-variable momentum state, read
    through the pretrained denoiser. ``detail`` = k, the variance of the last prior variable; ``kind`` a
    ModelKind (None: VE sigma); ``detail``/``order`` None → ``default_settings(len(sigmas) − 1, kind)`` (the
    per-NFE defaults of docs/defaults.md). NFE = len(sigmas) − 1.
    """
    integrator = check_integrator(integrator, kind, max(1, len(sigmas) - 1), is_karras_spaced(sigmas))
    if detail is None or order is None:
        auto_detail, auto_order = default_settings(max(1, len(sigmas) - 1), kind, integrator)
        detail = auto_detail if detail is None else detail
        # an explicit detail keeps the kind's order (the per-NFE order was chosen together with its detail)
        order = order if order is not None else (auto_order if detail == auto_detail else None)
    k, n, order = check_options(detail, n_aug, order, kind)
    validate_sigmas(sigmas, split=True)
    extra_args = {} if extra_args is None else extra_args
    sig64 = sigmas.detach().to("cpu", torch.float64).numpy()
    ts = time_grid(sig64, n, k, kind)
    if integrator == "2m":
        return _sample_2m(model, x, sigmas, sig64, ts, extra_args, callback, disable, k, n, order, kind, seed_offset)
    xin_w, force_a, force_p, update = _step_tables(ts, sig64, n, k, order)

    state_dtype = torch.promote_types(x.dtype, torch.float32)
    as_state = {"device": x.device, "dtype": state_dtype}
    xin_w, force_p, update = (torch.as_tensor(a, **as_state) for a in (xin_w, force_p, update))
    z = torch.zeros((n + order, x.numel()), **as_state)  # rows 0..n-1: X; rows n..: ring of forces
    noise = None if n == 1 else tada_noise(x.shape, n, extra_args.get("seed"), seed_offset)
    initial_state(x, float(sig64[0]), float(ts[0]), n, k, noise, z[:n])

    s_in = x.new_ones([x.shape[0]])
    for i in step_range(len(sigmas) - 1, disable):
        x_in = combine(z[:n], xin_w[i]).reshape(x.shape).to(x.dtype)  # = σ_i ŷ: the model-native latent
        denoised = model(x_in, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x_in, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if sig64[i + 1] == 0:
            return denoised.to(x.dtype)  # Algorithm 1 read-out: the data prediction
        force_into_(z[n + i % order], denoised.reshape(-1).to(state_dtype), z[:n], float(force_a[i]), force_p[i])
        ab_update_(z, n, update[i])
    # split schedule (sigmas end above 0): hand over a conventional latent σ_last·ŷ; the extra state is lost
    g_last, _ = tc.projections(ts[-1], n, k)
    return combine(z[:n], torch.as_tensor(float(sig64[-1]) * g_last, **as_state)).reshape(x.shape).to(x.dtype)


def _sample_2m(model, x, sigmas, sig64, ts, extra_args, callback, disable, k, n, order, kind, seed_offset):
    """The "2m" integrator's loop (``sample_tada`` with integrator="2m"): same state, start and read-out as "ab"."""
    xin_w = np.stack([sig64[i] * tc.projections(ts[i], n, k)[0] for i in range(len(ts) - 1)])
    trans, weight, ratio = _step_tables_2m(ts, sig64, n, order, kind)
    state_dtype = torch.promote_types(x.dtype, torch.float32)
    as_state = {"device": x.device, "dtype": state_dtype}
    xin_w, trans, weight = (torch.as_tensor(a, **as_state) for a in (xin_w, trans, weight))
    z = torch.zeros((n, x.numel()), **as_state)
    noise = None if n == 1 else tada_noise(x.shape, n, extra_args.get("seed"), seed_offset)
    initial_state(x, float(sig64[0]), float(ts[0]), n, k, noise, z)
    old = None
    s_in = x.new_ones([x.shape[0]])
    for i in step_range(len(sigmas) - 1, disable):
        x_in = combine(z, xin_w[i]).reshape(x.shape).to(x.dtype)
        denoised = model(x_in, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x_in, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if sig64[i + 1] == 0:
            return denoised.to(x.dtype)
        d = denoised.reshape(-1).to(state_dtype)
        held = d if old is None or ratio[i] == 0 else d + float(ratio[i]) * (d - old)
        z = torch.addr(torch.mm(trans[i], z), weight[i], held)
        old = d
    g_last, _ = tc.projections(ts[-1], n, k)
    return combine(z, torch.as_tensor(float(sig64[-1]) * g_last, **as_state)).reshape(x.shape).to(x.dtype)
