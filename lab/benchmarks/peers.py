"""diffusers schedulers as benchmark peers, driven by any k-diffusion denoiser D(x, σ) on *our* sigma lists.

A k-diffusion denoiser works in variance-exploding (VE) space, x = x0 + σ·n. diffusers schedulers keep their
sample in another scaling x_s = a(σ)·x and want the model's x0 prediction (``prediction_type="sample"``), so for
every step the driver reads the scheduler's current noise level σ, calls ``x0 = D(x_s / a(σ), σ)`` and hands x0 to
``scheduler.step``. The sample starts at ``a(σ_max)·x_T`` and at σ = 0 every scaling is 1, so the result is
directly comparable with our samplers' output from the same x_T. How each peer gets our sigma list (``route``):

* ``"vp"`` — DPMSolverMultistepScheduler (diffusers 0.42 accepts only integer ``timesteps``, which would round
  the sigmas onto the 1000-entry table): ``set_timesteps(n)`` on the SD "scaled_linear" betas, then the driver
  replaces ``scheduler.sigmas`` — the table its ``step`` reads σ_s, σ_t from — with our list (VE sigma, ending
  in 0). a(σ) = 1/√(1 + σ²) (docs/testbeds.md, "Peers": x0 = D(x_t/√ᾱ, √((1−ᾱ)/ᾱ))).
* ``"flow"`` — UniPCMultistepScheduler takes custom sigmas only as rectified-flow sigmas, so the driver uses
  its public ``set_timesteps(sigmas=s)`` with ``use_flow_sigmas=True, flow_shift=1`` and s = σ/(1 + σ), the flow
  noise level with the same half-log-SNR λ = −log σ. a(σ) = 1/(1 + σ). UniPC is written in λ, so this is the
  same algorithm as on the VP table.
* ``"ve"`` — EulerDiscreteScheduler takes VE sigmas directly: public ``set_timesteps(sigmas=...)``; a(σ) = 1.
* ``"native"`` — DDIMScheduler has no custom schedule at all; it runs on its own ``trailing`` timesteps (so it
  starts at t = 999, σ_max = 14.61) with σ = √((1−ᾱ_t)/ᾱ_t) and a = √ᾱ_t; its schedule is labelled
  ``ddim-trailing``. DDIM with an x0 model is the same update as Euler in σ, so it cross-checks ``euler``.

Every model call goes through the caller's ``model`` (wrap it in ``schedules.model_calls.CountedModel``): one NFE per
diffusers step for all four. The schedulers are built on the SD1 betas (0.00085–0.012, scaled_linear); only DDIM
(native) and DPMSolverMultistep's ``set_timesteps`` bookkeeping read them. Unit-tested against our dpmpp_2m.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["PEERS", "Peer", "available", "sample_diffusers"]

SD_BETAS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


@dataclass(frozen=True)
class Peer:
    """One diffusers scheduler configuration: class name, constructor options and how sigmas reach it."""

    cls: str
    route: str  # "vp" | "flow" | "ve" | "native"
    options: dict = field(default_factory=dict)
    native_schedule: str | None = None  # the schedule label when route == "native"


#: Peer name (as printed in tables) → configuration. Multistep peers use their defaults (order 2, bh2 for UniPC).
PEERS: dict[str, Peer] = {
    "diffusers.DPMSolverMultistep": Peer(
        "DPMSolverMultistepScheduler", "vp",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero"},
    ),
    "diffusers.UniPCMultistep": Peer(
        "UniPCMultistepScheduler", "flow",
        {"solver_order": 2, "solver_type": "bh2", "predict_x0": True, "final_sigmas_type": "zero",
         "use_flow_sigmas": True, "flow_shift": 1.0},
    ),
    "diffusers.EulerDiscrete": Peer("EulerDiscreteScheduler", "ve", {"final_sigmas_type": "zero"}),
    "diffusers.DDIM": Peer(
        "DDIMScheduler", "native",
        {"clip_sample": False, "set_alpha_to_one": True, "timestep_spacing": "trailing"},
        native_schedule="ddim-trailing",
    ),
}


def available() -> str | None:
    """None if diffusers imports, else the reason it does not (for a printed note)."""
    try:
        import diffusers  # noqa: F401
    except Exception as e:  # noqa: BLE001  (any import failure means: skip the peers)
        return f"{type(e).__name__}: {e}"
    return None


def _make(peer: Peer):
    import diffusers

    return getattr(diffusers, peer.cls)(**SD_BETAS, prediction_type="sample", **peer.options)


def _scale(route: str, sigma: torch.Tensor) -> torch.Tensor:
    """a(σ): the diffusers sample is a(σ)·x_VE."""
    if route in ("vp", "native"):  # √ᾱ = 1/√(1 + σ²)
        return 1.0 / (1.0 + sigma.square()).sqrt()
    if route == "flow":
        return 1.0 / (1.0 + sigma)
    return torch.ones_like(sigma)


def _prepare(peer: Peer, scheduler, sigmas: torch.Tensor | None, steps: int):
    """Give the scheduler our sigma list; return the VE sigma (float64) at each of its steps."""
    if peer.route == "native":
        scheduler.set_timesteps(steps)
        abar = scheduler.alphas_cumprod.to(torch.float64)[scheduler.timesteps.long()]
        return ((1 - abar) / abar).sqrt()
    s = sigmas.detach().to(device="cpu", dtype=torch.float64)
    if peer.route == "vp":
        scheduler.set_timesteps(len(s) - 1)
        scheduler.sigmas = s.clone()
    elif peer.route == "flow":
        scheduler.set_timesteps(sigmas=(s[:-1] / (1 + s[:-1])).numpy())
    else:
        scheduler.set_timesteps(sigmas=s.numpy())
    used = scheduler.sigmas.to(torch.float64)
    if peer.route == "flow":
        used = used / (1 - used)
    if len(used) != len(s) or not torch.allclose(used, s, rtol=1e-5, atol=0):
        raise RuntimeError(f"{peer.cls} did not take the sigma list: asked {s.tolist()}, got {used.tolist()}")
    return s[:-1]


@torch.no_grad()
def sample_diffusers(name: str, model, x_T: torch.Tensor, sigmas: torch.Tensor | None = None,
                     steps: int | None = None, extra_args: dict | None = None) -> torch.Tensor:
    """Run the diffusers peer ``name`` (a key of PEERS) with the k-diffusion denoiser ``model`` from x_T.

    ``x_T`` is VE noise at the schedule's first sigma (σ_max·z). ``sigmas``: descending VE sigmas ending in 0 (for
    the custom-sigma routes); the native DDIM peer takes ``steps`` instead. Returns the VE endpoint at σ = 0.
    """
    peer = PEERS[name]
    extra_args = extra_args or {}
    if peer.route == "native":
        if steps is None:
            raise ValueError(f"{name} runs on its own timesteps: pass steps=, not sigmas=")
    elif sigmas is None:
        raise ValueError(f"{name} needs a sigma list (descending, ending in 0)")
    scheduler = _make(peer)
    ve_sigmas = _prepare(peer, scheduler, sigmas, steps if steps is not None else len(sigmas) - 1)
    s_in = x_T.new_ones([x_T.shape[0]])
    x = x_T * _scale(peer.route, ve_sigmas[0]).to(x_T.dtype)
    for i, t in enumerate(scheduler.timesteps):
        sigma = ve_sigmas[i]
        a = _scale(peer.route, sigma).to(x_T.dtype)
        if peer.route == "ve":
            scheduler.scale_model_input(x, t)  # bookkeeping only: our D takes the VE sample itself
        x0 = model(x / a, sigma.to(x_T.dtype) * s_in, **extra_args)
        x = scheduler.step(x0, t, x).prev_sample
    return x


def ddim_sigmas(steps: int) -> torch.Tensor:
    """The VE sigma list DDIM (trailing, set_alpha_to_one) walks for ``steps`` steps, ending in 0 (for plots)."""
    peer = PEERS["diffusers.DDIM"]
    s = _prepare(peer, _make(peer), None, steps)
    return torch.cat([s, s.new_zeros(1)])
