"""TPDM's RLOO-PPO, the pure pieces (docs/tpdm.md, "Trainer"; official ``rloo_trainer.py``).

Everything here is a small function of tensors, no model and no loop, so each claim of the spec is testable alone:

* ``step_discount`` / ``discounted_reward`` — R = s · (1 − γ^N) / (N (1 − γ)), the trajectory-averaged discount;
* ``rloo_advantages`` — Â_i = R_i − mean_{j≠i in i's group} R_j (each group sums to 0, no whitening);
* ``beta_log_prob`` / ``clamp_ratio`` — the policy's log-density of the clamped ratio r ∈ [1e-3, 1 − 1e-3];
* ``sequence_log_prob`` — Σ over the valid steps of a trajectory (masked steps contribute exactly 0);
* ``ppo_loss`` — mean(max(−Â ρ, −Â clip(ρ, 1 − ε, 1 + ε))) with the sequence-level ratio ρ = exp(Σ Δ log π);
* ``recompute_log_probs`` — the per-step log-probs of the stored ratios under the current TPM, read from the
  rollout's feature cache only (the diffusion model is never re-run during PPO epochs).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = [
    "RATIO_CLAMP", "kl_to_reference", "reference_beta",
    "beta_log_prob", "clamp_ratio", "discounted_reward", "ppo_loss", "recompute_log_probs",
    "rloo_advantages", "sequence_log_prob", "step_discount",
]

#: The official clamp of the sampled ratio before σ_n = r σ_{n−1} and before its log-prob ([M] forward).
RATIO_CLAMP = (1e-3, 1.0 - 1e-3)


def step_discount(steps: torch.Tensor | int, gamma: float) -> torch.Tensor:
    """(1/N) Σ_{i<N} γ^i = (1 − γ^N) / (N (1 − γ)); 1 for γ = 1. Strictly decreasing in N for 0 < γ < 1."""
    n = torch.as_tensor(steps, dtype=torch.float64)
    if (n < 1).any():
        raise ValueError(f"step_discount: step counts must be >= 1, got {n.min().item():g}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"step_discount: gamma must be in (0, 1], got {gamma}")
    if gamma == 1.0:
        return torch.ones_like(n)
    return -torch.expm1(n * torch.log(torch.tensor(gamma, dtype=torch.float64))) / (n * (1.0 - gamma))


def discounted_reward(score: torch.Tensor, steps: torch.Tensor, gamma: float) -> torch.Tensor:
    """R = s · step_discount(N, γ) per trajectory (float64). A positive s makes fewer steps strictly better."""
    return torch.as_tensor(score, dtype=torch.float64) * step_discount(steps, gamma)


def rloo_advantages(rewards: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages Â_i = R_i − mean_{j ≠ i, groups[j] = groups[i]} R_j.

    ``groups`` gives each trajectory's group (the condition its k rollouts share); every group needs k ≥ 2.
    Algebraically Â_i = k/(k − 1) (R_i − mean_group R), so each group's advantages sum to 0.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    groups = torch.as_tensor(groups)
    if rewards.shape != groups.shape or rewards.ndim != 1:
        raise ValueError(f"rloo_advantages: rewards {tuple(rewards.shape)} and groups {tuple(groups.shape)} must "
                         "be 1-D of the same length")
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    if (counts < 2).any():
        raise ValueError("rloo_advantages: every group needs k >= 2 rollouts (leave-one-out needs another one)")
    sums = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, inverse, rewards)
    k = counts[inverse].to(torch.float64)
    return rewards - (sums[inverse] - rewards) / (k - 1)


def clamp_ratio(r: torch.Tensor) -> torch.Tensor:
    """r clamped to [1e-3, 1 − 1e-3], the official range (keeps σ positive and log π finite)."""
    return r.clamp(*RATIO_CLAMP)


def beta_log_prob(alpha: torch.Tensor, beta: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """log Beta(r; α, β) elementwise (r already clamped), by ``torch.distributions.Beta`` as the sampler computes it,
    so the cache's log-probs and the rollout's agree to round-off."""
    return torch.distributions.Beta(alpha, beta, validate_args=False).log_prob(r)


def sequence_log_prob(step_log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_n log π over the valid steps of each trajectory: (T, B) log-probs and (T, B) bool mask → (B,).

    Masked entries are replaced by 0 (not multiplied by 0), so a non-finite value in a masked slot cannot leak.
    """
    return torch.where(mask, step_log_probs, torch.zeros_like(step_log_probs)).sum(dim=0)


def ppo_loss(new_log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
             clip: float = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped PPO loss with the sequence-level ratio ρ = exp(new − old) (both (B,) sums over steps).

    L = mean_i max(−Â_i ρ_i, −Â_i clip(ρ_i, 1 − ε, 1 + ε)). Returns the loss and detached statistics: mean ρ,
    clip fraction (share of trajectories where the clipped branch is the larger one, strictly) and approx-KL
    mean((ρ − 1) − log ρ) (0 on the first epoch, where ρ ≡ 1).
    """
    if not 0.0 < clip < 1.0:
        raise ValueError(f"ppo_loss: clip must be in (0, 1), got {clip}")
    adv = advantages.to(new_log_prob.dtype)
    log_ratio = new_log_prob - old_log_prob.to(new_log_prob.dtype)
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        stats = {
            "ratio": float(ratio.mean()),
            "clipfrac": float((clipped > unclipped).double().mean()),
            "approx_kl": float(((ratio - 1) - log_ratio).mean()),
        }
    return loss, stats


def recompute_log_probs(tpm: Callable, features: Sequence, ratios: torch.Tensor, mask: torch.Tensor,
                        read: Callable | None = None) -> torch.Tensor:
    """Per-step log π_θ(r_n) of the stored (clamped) ratios, from the cached features only.

    Args:
        tpm: ``tpm(step_features) -> (alpha, beta)``, each (B,).
        features: one entry per step, each what the rollout handed the TPM at that step (a tensor or a tuple
            of tensors with the batch first), or ``read(features, n)`` gives it.
        ratios, mask: (T, B) stored ratios and valid-step mask.

    Returns:
        (T, B) log-probs; masked entries are 0.
    """
    out = []
    for n in range(ratios.shape[0]):
        feats = read(features, n) if read is not None else features[n]
        alpha, beta = tpm(feats)
        lp = beta_log_prob(alpha.float().reshape(-1), beta.float().reshape(-1), ratios[n].float())
        out.append(torch.where(mask[n], lp, torch.zeros_like(lp)))
    return torch.stack(out)


#: The official reference prior ([RD] reference_distributions.py): the next level of a 28-step schedule shifted
#: by e, as the mode of a Beta of concentration 20.
REFERENCE_STEPS, REFERENCE_SHIFT, REFERENCE_CONCENTRATION = 28, math.e, 20.0


def reference_beta(level: torch.Tensor, steps: int = REFERENCE_STEPS, shift: float = REFERENCE_SHIFT,
                   concentration: float = REFERENCE_CONCENTRATION) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_ref, β_ref) at the current level ℓ (the flow σ, or ℓ = σ/(1+σ) for other kinds, as in the sampler).

    ℓ is read as a time t = ℓ / (shift + (1 − shift) ℓ) of a shift-``shift`` flow schedule; one step of
    ``steps`` later, t' = max(t − 1/steps, 1e-3), is ℓ' = shift t' / (1 + (shift − 1) t'); the prior's mode is
    m = ℓ'/ℓ, and α = m (c − 2) + 1, β = (1 − m)(c − 2) + 1. The official code has no clamp of m; below
    ℓ ≈ 0.0027 (t' pinned at 1e-3) m would exceed 1, so m is clamped to the ratio's range [1e-3, 1 − 1e-3]."""
    level = torch.as_tensor(level, dtype=torch.float64)
    t = level / (shift + (1 - shift) * level)
    t_next = (t - 1.0 / steps).clamp_min(1e-3)
    nxt = shift * t_next / (1 + (shift - 1) * t_next)
    mode = (nxt / level).clamp(*RATIO_CLAMP)
    return mode * (concentration - 2) + 1, (1 - mode) * (concentration - 2) + 1


def kl_to_reference(alpha: torch.Tensor, beta: torch.Tensor, level: torch.Tensor, mask: torch.Tensor
                    ) -> torch.Tensor:
    """Σ over the valid steps of KL(Beta(α_n, β_n) ‖ Beta(reference_beta(ℓ_n))): (T, B) inputs → (B,) float64.

    The official trainer's KL term ([RT]: non_score_reward = −kl_coef · this, added to the reward; kl_coef 0 in its
    launch script). Masked steps contribute exactly 0."""
    a_ref, b_ref = reference_beta(level)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Beta(alpha.double(), beta.double(), validate_args=False),
        torch.distributions.Beta(a_ref, b_ref, validate_args=False))
    return torch.where(mask, kl, torch.zeros_like(kl)).sum(dim=0)
