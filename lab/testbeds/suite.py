"""The defaults testbed suite (docs/defaults.md §1): ten testbeds, each with a tuning and a held-out part.

A ``Part`` bundles a k-diffusion denoiser, the starting noise (x_T = σ_max · noise), the reference data its
distribution distance is measured against, and its converged-ODE endpoints (Heun on many Karras steps, cached on
disk by ``testbeds.reference``). Everything is seeded; the seeds are the ones fixed in docs/defaults.md.

* ``LowRankMixture`` — Gaussian mixture with components N(μ_k, U_k diag(a_k) U_kᵀ + s_k² I) (U_k orthonormal, rank
  r ≥ 0): its exact denoiser, the posterior mean E[y | y + σ n = x], is closed form (below), so the mixtures and the
  manifold have exact denoisers in any dimension.
* ``mixture_family`` — the named families (``gmm-2`` … ``manifold-512``) and their tuning/held-out instances.
* ``load_part(name, part)`` — any testbed's part; ``TESTBEDS`` lists them in the order of docs/defaults.md.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from schedule_lab.schedules.model_kind import ModelKind

__all__ = ["PARTS", "TESTBEDS", "TUNING_TESTBEDS", "LowRankMixture", "Part", "kind", "load_part", "mixture_family"]

PARTS = ("tuning", "held_out")
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
NOISE_SEEDS = {"tuning": 101, "held_out": 201}
INSTANCE_SEEDS = {"tuning": 1, "held_out": 2}

#: name → (dim, components, spread range, weight law, rank) for the mixture families.
MIXTURES = {
    "gmm-2": (2, 6, (0.05, 0.3), "even", 0),
    "gmm-16": (16, 8, (0.1, 0.35), "even", 0),
    "gmm-64-skew": (64, 32, (0.05, 0.5), "skew", 0),
    "gmm-256": (256, 16, (0.2, 0.4), "equal", 0),
    "gmm-1024": (1024, 8, (0.05, 0.15), "even", 0),
    "gmm-512-wide": (512, 64, (0.3, 0.6), "even", 0),
    "manifold-512": (512, 48, (0.01, 0.01), "equal", 2),
}
TESTBEDS = (*MIXTURES, "digits-exact", "edm-mlp", "patches-unet")
#: Testbeds with a tuning part (the natural-image model is held-out only: docs/defaults.md §1).
TUNING_TESTBEDS = TESTBEDS[:-1]


def kind() -> ModelKind:
    """Every testbed is sampled over the EDM range 0.002–80."""
    return ModelKind.edm(SIGMA_MIN, SIGMA_MAX)


class LowRankMixture:
    """Σ_k w_k N(μ_k, U_k diag(a_k) U_kᵀ + s_k² I) with its exact posterior-mean denoiser.

    For one component, with b = s² + σ² and v = x − μ, p = Uᵀv, v⊥ = v − U p:
        log N(x; μ, C + σ²I) = −½ [Σ log(a + b) + (d − r) log b + Σ p²/(a + b) + |v⊥|²/b] + const
        E[y | x, k] = μ + U ((a + s²)/(a + b) ⊙ p) + (s²/b) v⊥
    and E[y | x] = Σ_k softmax_k(log w_k + log N_k) E[y | x, k]. Computed in float64, one component at a time.
    """

    def __init__(self, means, spreads, weights, bases=None, extra=None, name="mixture"):
        self.means = means.to(torch.float64)                 # (K, d)
        self.spreads = spreads.to(torch.float64)             # (K,)
        self.weights = (weights / weights.sum()).to(torch.float64)
        k, d = self.means.shape
        self.dim = d
        self.bases = bases.to(torch.float64) if bases is not None else torch.zeros(k, d, 0, dtype=torch.float64)
        self.extra = extra.to(torch.float64) if extra is not None else torch.zeros(k, 0, dtype=torch.float64)
        self.name = name
        self._mu_u = torch.einsum("kd,kdr->kr", self.means, self.bases)  # U_kᵀ μ_k
        h = hashlib.sha256(name.encode())
        for t in (self.means, self.spreads, self.weights, self.bases, self.extra):
            h.update(t.contiguous().numpy().tobytes())
        self.cache_key = f"lowrank-mixture:{h.hexdigest()[:24]}"

    def __call__(self, x: torch.Tensor, sigma, **_: object) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        bsz, d = flat.shape
        sig2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(bsz).square()
        k, r = self.extra.shape
        s2 = self.spreads.square()                                       # (K,)
        b = s2[None, :] + sig2[:, None]                                  # (B, K)
        # |x − μ_k|² by one matmul (float64, so the expansion keeps its precision at σ = 80 in 1024 dims)
        v2 = (flat.square().sum(1, keepdim=True) - 2 * flat @ self.means.T
              + self.means.square().sum(1)[None, :]).clamp_min(0)       # (B, K)
        logits = self.weights.log()[None, :] - 0.5 * (d - r) * b.log() - 0.5 * v2 / b
        shrink = s2[None, :] / b                                         # (B, K)
        if r:
            u_all = self.bases.permute(1, 0, 2).reshape(d, k * r)       # (d, K·r)
            p = (flat @ u_all).reshape(bsz, k, r) - self._mu_u[None]     # (B, K, r) = U_kᵀ(x − μ_k)
            ab = self.extra[None] + b[:, :, None]                        # (B, K, r)
            logits = logits - 0.5 * (ab.log().sum(2) + (p.square() / ab).sum(2) - (p.square().sum(2) / b))
        resp = torch.softmax(logits, dim=1)                              # (B, K)
        # Σ_k r_k [μ_k + shrink_k (x − μ_k) + U_k ((a + s²)/(a + b) − shrink_k) ⊙ p_k]
        out = flat * (resp * shrink).sum(1, keepdim=True) + (resp * (1 - shrink)) @ self.means
        if r:
            coef = resp[:, :, None] * ((self.extra[None] + s2[None, :, None]) / ab - shrink[:, :, None]) * p
            out = out + coef.reshape(bsz, k * r) @ u_all.T
        return out.reshape(x.shape).to(x.dtype)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n exact draws (float32)."""
        gen = torch.Generator().manual_seed(seed)
        comp = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        z = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        y = self.means[comp] + self.spreads[comp, None] * z
        if self.extra.shape[1]:
            zr = torch.randn(n, self.extra.shape[1], generator=gen, dtype=torch.float64)
            y = y + torch.einsum("ndr,nr->nd", self.bases[comp], self.extra[comp].sqrt() * zr)
        return y.float()


def _orthonormal(m: torch.Tensor) -> torch.Tensor:
    q, _ = torch.linalg.qr(m)
    return q


def mixture_family(name: str, part: str) -> LowRankMixture:
    """The tuning or held-out instance of mixture family ``name`` (docs/defaults.md §1)."""
    dim, k, (lo, hi), law, rank = MIXTURES[name]
    gen = torch.Generator().manual_seed(1000 * INSTANCE_SEEDS[part] + sum(map(ord, name)))
    f64 = dict(generator=gen, dtype=torch.float64)
    if law == "skew":
        import numpy as np

        rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen)))
        weights = torch.from_numpy(rng.dirichlet(np.full(k, 0.3))) + 1e-3
    elif law == "equal":
        weights = torch.ones(k, dtype=torch.float64)
    else:
        weights = 0.5 + torch.rand(k, **f64)
    spreads = lo + (hi - lo) * torch.rand(k, **f64)
    if rank == 0:
        means = 0.5 * torch.randn(k, dim, **f64)
        return LowRankMixture(means, spreads, weights, name=f"{name}/{part}")
    # manifold: centres on a random smooth closed curve γ(t) = Σ_j (A_j cos 2πjt + B_j sin 2πjt)/j, j = 1..4;
    # each component is a flat rank-2 piece spanned by γ'(t_k) and γ''(t_k), long enough to tile the curve.
    harmonics = 4
    amp_a = 0.42 * torch.randn(harmonics, dim, **f64)
    amp_b = 0.42 * torch.randn(harmonics, dim, **f64)
    t = torch.arange(k, dtype=torch.float64) / k
    j = torch.arange(1, harmonics + 1, dtype=torch.float64)
    ang = 2 * math.pi * t[:, None] * j[None, :]                       # (K, J)
    means = (torch.cos(ang) / j) @ amp_a + (torch.sin(ang) / j) @ amp_b
    d1 = (-torch.sin(ang) * 2 * math.pi) @ amp_a + (torch.cos(ang) * 2 * math.pi) @ amp_b
    d2 = (-torch.cos(ang) * (2 * math.pi) ** 2 * j) @ amp_a + (-torch.sin(ang) * (2 * math.pi) ** 2 * j) @ amp_b
    bases = torch.stack([_orthonormal(torch.stack([d1[i], d2[i]], 1)) for i in range(k)])   # (K, d, 2)
    seg = (means - means.roll(-1, 0)).norm(dim=1)
    extra = torch.stack([(0.5 * seg) ** 2, torch.full_like(seg, 0.05 ** 2)], 1)
    return LowRankMixture(means, spreads, weights, bases, extra, name=f"{name}/{part}")


@dataclass
class Part:
    testbed: str
    part: str
    model: object
    dim: int
    noise: torch.Tensor          # (n, dim) unit noise; x_T = σ_max · noise
    reference: torch.Tensor      # (m, dim) data the distribution distance is measured against
    reference_steps: int         # Heun steps of the converged ODE
    features: object = None      # optional feature map for FD (patches)
    notes: dict = field(default_factory=dict)

    @property
    def x_T(self) -> torch.Tensor:
        return SIGMA_MAX * self.noise


def _noise(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


@lru_cache(maxsize=32)
def load_part(name: str, part: str, n: int | None = None) -> Part:
    """Testbed ``name``'s ``part`` ("tuning" | "held_out") with ``n`` samples (default: docs/defaults.md §1)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    seed = NOISE_SEEDS[part]
    if name in MIXTURES:
        mix = mixture_family(name, part)
        n = n or 1000
        return Part(name, part, mix, mix.dim, _noise(n, mix.dim, seed), mix.sample(max(n, 1000), seed + 1), 200)
    if name == "digits-exact":
        from .digits import load_digits_split
        from .exact import ExactDenoiser

        train = load_digits_split().train
        perm = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))
        half = train[perm[: len(perm) // 2]] if part == "tuning" else train[perm[len(perm) // 2:]]
        n = n or 1000
        return Part(name, part, ExactDenoiser(half), 64, _noise(n, 64, seed), half, 200)
    if name == "edm-mlp":
        from .digits import load_digits_split
        from .models import load_edm_mlp

        test = load_digits_split().test
        ref = test[:180] if part == "tuning" else test[180:]
        n = n or 1000
        return Part(name, part, load_edm_mlp(), 64, _noise(n, 64, seed), ref, 200)
    if name == "patches-unet":
        from .patches import crops
        from .unet import load_patch_classifier, load_patch_unet

        if part == "tuning":
            raise ValueError("patches-unet has no tuning part: it is held-out only (docs/defaults.md §1)")
        n = n or 500
        strip = "held_out"
        ref = crops(strip, 1000, seed=seed).x.reshape(1000, -1)
        clf = load_patch_classifier()
        return Part(name, part, load_patch_unet(), 768, _noise(n, 768, seed + 1), ref, 64,
                    features=lambda x: clf.features(x).double())
    raise ValueError(f"unknown testbed {name!r}; choose one of {', '.join(TESTBEDS)}")
