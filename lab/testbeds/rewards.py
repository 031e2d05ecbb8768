"""Per-image quality scores on the trained testbeds, for TPDM's RL trainer (``lab.tpdm.trainer``).

A scorer is ``scorer(x0, info) -> (B,) float`` with ``info["x_T"]`` the starting noise (already scaled to the first
sigma) and ``info["sigma_start"]``. The trainer multiplies it by the step discount, so it must be positive for fewer
steps to pay (the official reward is shifted to be mostly positive: docs/tpdm.md, "Trainer").

* ``EndpointScore`` — exp(−RMSE(x0, x̂0) / τ) with x̂0 the converged ODE endpoint from the same x_T (Heun on a dense
  Karras schedule, computed in the batch: the bundled MLP makes this cheap). In (0, 1], 1 for an exact solve; it
  rewards exactly what the benchmark's "error to the converged endpoint" measures, and FD_cls follows. With
  ``features`` (a feature map, e.g. the patch classifier's that defines FD_patch) the error is the RMS difference of
  the two images' features instead of their pixels: exp(−RMS(φ(x0) − φ(x̂0)) / τ), a perceptual endpoint error in the
  space the Fréchet distance is measured in (``testbed_scorer("endpoint-features")``, the patch UNet's reward).
* ``ConfidenceScore`` — the bundled digits classifier's top softmax probability, in (0, 1]: a prompt-free stand-in
  for a human-preference model (rewards legible digits, blind to the solver error).
"""
from __future__ import annotations

import torch

from schedule_lab.schedules.baseline import karras
from schedule_lab.solvers.classic import sample_heun

__all__ = ["SCORES", "ConfidenceScore", "EndpointScore", "testbed_scorer"]


class EndpointScore:
    """exp(−RMSE(x0, endpoint) / tau) per image; the endpoint is Heun on ``steps`` Karras sigmas from sigma_start."""

    #: Heun-60 is within 9e-4 RMSE (max over 32 images) of Heun-200 from σ 14.6 on the EDM MLP, against per-image
    #: solver errors of 0.02-0.15 for 30-5 Euler steps: enough for a reward, at 0.37 s per 32 images.
    #: On the patch UNet from σ 80 Heun-60 is within 1.0e-3 pixel RMSE (mean; 3.0e-3 max over 128 patches) and
    #: 7.4e-3 feature RMS of Heun-200, against 0.09 and 0.70 for Euler on 10 Karras steps.
    def __init__(self, model, tau: float = 0.1, steps: int = 60, sigma_min: float = 0.002, features=None):
        if tau <= 0:
            raise ValueError(f"EndpointScore: tau must be > 0, got {tau}")
        self.model, self.tau, self.steps, self.sigma_min = model, float(tau), int(steps), float(sigma_min)
        self.features = features

    @torch.no_grad()
    def endpoint(self, x_T: torch.Tensor, sigma_start: float) -> torch.Tensor:
        """The converged endpoint of every row; rows with the same x_T (a group's k rollouts) are solved once."""
        sigmas = karras(self.steps, min(self.sigma_min, sigma_start / 2), float(sigma_start), dtype=x_T.dtype)
        unique, inverse = torch.unique(x_T.reshape(x_T.shape[0], -1), dim=0, return_inverse=True)
        ends = sample_heun(self.model, unique.reshape(-1, *x_T.shape[1:]), sigmas, disable=True)
        return ends[inverse]

    @torch.no_grad()
    def __call__(self, x0: torch.Tensor, info: dict) -> torch.Tensor:
        ref = self.endpoint(info["x_T"], info["sigma_start"])
        if self.features is not None:
            x0, ref = self.features(x0), self.features(ref)
        err = (x0 - ref).reshape(x0.shape[0], -1).double().square().mean(dim=1).sqrt()
        return torch.exp(-err / self.tau)


class ConfidenceScore:
    """The classifier's top softmax probability of each image (rows or (B, 1, 8, 8))."""

    def __init__(self, classifier):
        self.classifier = classifier

    @torch.no_grad()
    def __call__(self, x0: torch.Tensor, info: dict) -> torch.Tensor:
        logits = self.classifier(x0.reshape(x0.shape[0], -1).float())
        return torch.softmax(logits.double(), dim=1).max(dim=1).values


SCORES = ("endpoint", "endpoint-features", "confidence")


def testbed_scorer(name: str, model=None, tau: float = 0.1, classifier=None):
    """``endpoint`` (needs ``model``), ``endpoint-features`` (needs ``model``; the error in ``classifier``'s
    penultimate features) or ``confidence`` (``classifier``'s top probability). ``classifier`` defaults to the
    bundled digits classifier; pass ``testbeds.unet.load_patch_classifier()`` for the patch UNet."""
    if name not in SCORES:
        raise ValueError(f"unknown testbed score {name!r}; choose {', '.join(SCORES)}")
    if classifier is None and name != "endpoint":
        from .models import load_classifier

        classifier = load_classifier()
    if name in ("endpoint", "endpoint-features"):
        if model is None:
            raise ValueError(f"testbed_scorer({name!r}) needs the denoiser model")
        feats = (lambda x: classifier.features(x).double()) if name == "endpoint-features" else None
        return EndpointScore(model, tau=tau, features=feats)
    return ConfidenceScore(classifier)
