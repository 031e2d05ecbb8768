"""The N×N float64 algebra of TADA (Chen et al. 2025, arXiv 2506.21757; docs/tada.md, "How a step works").

Everything here acts on the N augmented variables X = (x⁽⁰⁾, …, x⁽ᴺ⁻¹⁾) identically for every pixel, so every
object is an N-vector or an N×N matrix (numpy float64). Flow-matching time t runs from 0 (prior) to 1 (data),
s = 1 − t, and k = ``detail`` is the *variance* of the last prior variable: Σ₀ = diag(1, …, 1, k).

Closed loop (force from the true x1). The deviation u = x⁽⁰⁾ − x1 is spanned by s¹ … sᴺ, and with
D[j, m] = (−1)ʲ m!/(m−j)! s^(m−j) (rows j = 0..N−1, columns m = 1..N) the transition is Φ̂(t, τ) = D(1−t) D(1−τ)⁻¹.
We never invert D(s) itself (it is ill-conditioned near s = 0 and s = 1): D(s) = R(s)⁻¹ M E(s) with
R = diag(sʲ), E = diag(sᵐ) and the constant M = D(1), so

    Φ̂(t, τ) = R(a)⁻¹ M E(a/b) M⁻¹ R(b),          a = 1 − t, b = 1 − τ.

With P = Φ̂(0, t) and v = P e0 − e0 = M (E(1/s) − I) M⁻¹ e0 (computed with expm1, exact as t → 0):

    μ_t = Φ̂(t,0) v = e0 − Φ̂(t,0) e0,   Σ_t = P⁻¹ Σ₀ P⁻ᵀ,   γ_t = μᵀ Σ_t⁻¹ μ = vᵀ Σ₀⁻¹ v,   Σ_t⁻¹ μ_t = Pᵀ Σ₀⁻¹ v.

The sampler reads the unit-noise statistic ŷ = gᵀX (g = Σ⁻¹μ/√γ, so ŷ = √γ·x1 + ε) and rebuilds X from ŷ along
c = μ/√γ = Σ g (gᵀc = 1). At t = 0 (γ = 0) the limits are c = √k e_{N−1}, g = e_{N−1}/√k.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ab_coefficients", "covariance", "d_matrix", "effective_snr", "force_coefficients", "mean_coefficient",
    "phi_a", "phi_hat", "prior_covariance", "projections", "reweighting", "sigma_eff", "t_of_lambda",
]

# Bisection on u = logit(t) over this bracket: t from 9e-27 to 1 − 9e-27, i.e. every finite σ met in practice.
_LOGIT_BRACKET = 60.0
_BISECTION_STEPS = 100  # the bracket shrinks to 120 / 2¹⁰⁰ ≈ 1e-28 in u: t to full float64 precision
_GAUSS_LEGENDRE_NODES = 8  # exact for polynomials up to degree 15; the AB integrands have degree ≤ N + q − 2 ≤ 4


def _m_matrix(n: int) -> np.ndarray:
    """M = D(1): M[j, m−1] = (−1)ʲ m!/(m−j)! for m ≥ j (m = 1..N), else 0."""
    m = np.zeros((n, n))
    for j in range(n):
        for col in range(n):
            mm = col + 1
            if mm >= j:
                m[j, col] = (-1) ** j * math.factorial(mm) / math.factorial(mm - j)
    return m


def d_matrix(s: float, n: int) -> np.ndarray:
    """D(s)[j, m−1] = (−1)ʲ m!/(m−j)! s^(m−j): row j is the j-th t-derivative of the closed-loop basis sᵐ."""
    powers = np.array([[float(s) ** (col + 1 - j) if col + 1 >= j else 0.0 for col in range(n)] for j in range(n)])
    return _m_matrix(n) * powers


def prior_covariance(n: int, detail: float) -> np.ndarray:
    """Σ₀ = diag(1, …, 1, k): unit normals with the last variable's *variance* scaled by k = detail."""
    d = np.ones(n)
    d[-1] = float(detail)
    return np.diag(d)


def phi_a(h: float, n: int) -> np.ndarray:
    """Open-loop transition of the integrator chain, exp(A h): Φ_A[a, b] = h^(b−a)/(b−a)! for b ≥ a."""
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(a, n):
            out[a, b] = float(h) ** (b - a) / math.factorial(b - a)
    return out


def phi_hat(t: float, tau: float, n: int) -> np.ndarray:
    """Closed-loop transition Φ̂(t, τ) = D(1−t) D(1−τ)⁻¹ (t, τ < 1), in the factored, well-conditioned form."""
    a, b = 1.0 - float(t), 1.0 - float(tau)
    m = _m_matrix(n)
    j = np.arange(n)
    mm = np.arange(1, n + 1)
    ratio = np.exp(mm * (math.log(a) - math.log(b)))
    return (a ** -j)[:, None] * (m * ratio) @ np.linalg.solve(m, np.diag(b ** j))


def _v_batch(t: np.ndarray, n: int) -> np.ndarray:
    """v(t) = Φ̂(0, t) e0 − e0 = M diag(expm1(−m log s)) M⁻¹ e0 for an array of t in [0, 1); shape (len(t), n)."""
    m = _m_matrix(n)
    w = np.linalg.solve(m, np.eye(n)[0])
    log_s = np.log1p(-t)[:, None]
    e = np.expm1(-np.arange(1, n + 1)[None, :] * log_s)
    return (e * w[None, :]) @ m.T


def _p_matrix(t: float, n: int) -> np.ndarray:
    """P = Φ̂(0, t) = M E(1/s) M⁻¹ R(s)."""
    return phi_hat(0.0, t, n)


def mean_coefficient(t: float, n: int) -> np.ndarray:
    """μ_t with E[X_t | x1] = μ_t x1; μ = (t², 2t) for N = 2."""
    t = float(t)
    if t == 0.0:
        return np.zeros(n)
    return np.linalg.solve(_p_matrix(t, n), _v_batch(np.array([t]), n)[0])


def covariance(t: float, n: int, detail: float) -> np.ndarray:
    """Σ_t = Φ̂(t,0) Σ₀ Φ̂(t,0)ᵀ (no diffusion term: the homogeneous Lyapunov solution)."""
    phi = phi_hat(float(t), 0.0, n)
    cov = phi @ prior_covariance(n, detail) @ phi.T
    return 0.5 * (cov + cov.T)


def effective_snr(t, n: int, detail: float) -> np.ndarray:
    """γ_t = μᵀ Σ_t⁻¹ μ = vᵀ Σ₀⁻¹ v (vectorised over t; 0 at t = 0, +inf at t = 1)."""
    t = np.asarray(t, dtype=np.float64)
    flat = t.reshape(-1)
    inner = flat < 1.0
    out = np.full(flat.shape, np.inf)
    if inner.any():
        v = _v_batch(flat[inner], n)
        inv = np.ones(n)
        inv[-1] = 1.0 / float(detail)
        out[inner] = (v * v * inv).sum(1)
    return out.reshape(t.shape)


def sigma_eff(t, n: int, detail: float) -> np.ndarray:
    """Effective VE noise level σ_eff(t) = γ_t^(−1/2) of the sufficient statistic r_tᵀX = x1 + σ_eff ε."""
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(effective_snr(t, n, detail))


def projections(t: float, n: int, detail: float) -> tuple[np.ndarray, np.ndarray]:
    """(g, c): the unit-noise read-out ŷ = gᵀX = √γ x1 + ε (g = Σ⁻¹μ/√γ) and its lift c = μ/√γ = Σ g.

    gᵀc = 1, and X − c ŷ is independent of ŷ and x1 (Prop. 3.1). t = 0 uses the limits c = √k e_{N−1},
    g = e_{N−1}/√k (the network sees the last variable alone).
    """
    t, k = float(t), float(detail)
    if not 0.0 <= t < 1.0:
        raise ValueError(f"projections: t={t} must lie in [0, 1)")
    if t == 0.0:
        e = np.eye(n)[-1]
        return e / math.sqrt(k), e * math.sqrt(k)
    v = _v_batch(np.array([t]), n)[0]
    inv = np.ones(n)
    inv[-1] = 1.0 / k
    root_gamma = math.sqrt(float((v * v * inv).sum()))
    p = _p_matrix(t, n)
    g = p.T @ (inv * v) / root_gamma
    c = np.linalg.solve(p, v) / root_gamma
    return g, c


def reweighting(t: float, n: int, detail: float) -> np.ndarray:
    """r_t = Σ_t⁻¹ μ_t / γ_t (so r_tᵀ μ_t = 1 and r_tᵀX = x1 + σ_eff ε); t must be > 0."""
    g, _ = projections(t, n, detail)
    return g * float(sigma_eff(t, n, detail))


def t_of_lambda(lam, n: int, detail: float) -> np.ndarray:
    """Solve ½ log γ(t) = λ for t by bisection in logit(t), float64, vectorised; λ = ±inf gives t = 1 / 0.

    λ is the half-log-SNR of the model's sigma (−log σ for VE-like kinds, log((1−σ)/σ) for flow). ½ log γ is
    strictly increasing in t, so the root is unique; λ beyond the bracket is moved onto its end.
    """
    lam = np.asarray(lam, dtype=np.float64)
    flat = lam.reshape(-1)
    if np.isnan(flat).any():
        raise ValueError("t_of_lambda: lambda contains NaN")
    out = np.where(flat == np.inf, 1.0, 0.0)
    finite = np.isfinite(flat)
    if finite.any():
        target = flat[finite]
        lo = np.full(target.shape, -_LOGIT_BRACKET)
        hi = np.full(target.shape, _LOGIT_BRACKET)
        inv = np.ones(n)
        inv[-1] = 1.0 / float(detail)
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            t = 1.0 / (1.0 + np.exp(-mid))
            v = _v_batch(t, n)
            half_log_gamma = 0.5 * np.log((v * v * inv).sum(1))
            above = half_log_gamma > target
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid)
        out[finite] = 1.0 / (1.0 + np.exp(-0.5 * (lo + hi)))
    return out.reshape(lam.shape)


def force_coefficients(t: float, n: int) -> tuple[float, np.ndarray]:
    """(a, p) with F = a·x̂ − Σ_j p[j] X[j]: F = N!/sᴺ (x̂ − Σ_j X[j] sʲ/j!) (App. F.2, s = 1 − t)."""
    s = 1.0 - float(t)
    a = math.factorial(n) / s**n
    return a, np.array([a * s**j / math.factorial(j) for j in range(n)])


def ab_coefficients(t_hist, t_next: float, n: int) -> np.ndarray:
    """Adams–Bashforth weights C (q × N) on the force history: X_{i+1} = Φ_A(h) X_i + Σ_j C[j] F_{i−j}.

    ``t_hist`` = (t_i, t_{i−1}, …) are the times of the stored forces, newest first (q = len). Row j is
    C_j[a] = ∫_{t_i}^{t_next} (t_next − τ)^(N−1−a)/(N−1−a)! ℓ_j(τ) dτ with ℓ_j the Lagrange basis on t_hist,
    evaluated exactly by Gauss–Legendre quadrature (polynomial integrand). q = 1 gives C_0[a] = h^(N−a)/(N−a)!.
    """
    nodes = np.asarray(t_hist, dtype=np.float64)
    q = len(nodes)
    t0, t1 = float(nodes[0]), float(t_next)
    x, w = np.polynomial.legendre.leggauss(_GAUSS_LEGENDRE_NODES)
    tau = 0.5 * (t1 - t0) * x + 0.5 * (t1 + t0)
    w = 0.5 * (t1 - t0) * w
    basis = np.ones((q, len(tau)))
    for j in range(q):
        for m in range(q):
            if m != j:
                basis[j] *= (tau - nodes[m]) / (nodes[j] - nodes[m])
    kernel = np.stack([(t1 - tau) ** (n - 1 - a) / math.factorial(n - 1 - a) for a in range(n)])  # (N, nodes)
    return (basis * w) @ kernel.T
