"""Latents as the search and the constant-rate calibration see them: one feature map, one first-call shape check.

``latent_features`` is the Fréchet feature map of both the Timestep Search (fitness ``frechet_pooled``) and the
Constant-Rate Scheduler (measure ``frechet``); ``shape_checked`` turns the error a network raises on a latent it
cannot take into a ScheduleError naming the latent input, for both.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import ScheduleError

__all__ = ["POOL", "latent_features", "shape_checked"]

#: Pooled grid per channel: a (B, C, H, W) latent gives C·4·4 features.
POOL = 4


def latent_features(x: torch.Tensor) -> torch.Tensor:
    """Fréchet features of latents as float64 rows (B, d) on the CPU: images (B, C, H, W) have each channel
    average-pooled to at most a 4×4 grid; video (B, C, T, H, W) first averages time away; sequences (B, C, L) are
    pooled to at most 16 points per channel; rows (B, d) are used as they are."""
    x = x.detach().float()
    if x.ndim == 5:
        x = x.mean(2)
    if x.ndim == 4:
        x = torch.nn.functional.adaptive_avg_pool2d(x, (min(POOL, x.shape[2]), min(POOL, x.shape[3])))
    elif x.ndim == 3:
        x = torch.nn.functional.adaptive_avg_pool1d(x, min(POOL * POOL, x.shape[2]))
    elif x.ndim > 5:
        raise ScheduleError(f"latent: {x.ndim}-D latents of shape {tuple(x.shape)} are not supported; use an image "
                            "(4-D) or video (5-D) latent.")
    return x.reshape(x.shape[0], -1).cpu().double()


class shape_checked:  # noqa: N801 - used like a function
    """``model`` whose first call turns a RuntimeError (a latent the network cannot take, e.g. a video latent on an
    image model) into a ScheduleError naming the latent input; later calls are passed through untouched. Other
    attributes (``inner_model``, which ComfyUI's SDE samplers read) are the model's. ``should_stop()`` (if given)
    is asked before every call and may raise to cancel within one model call."""

    def __init__(self, model: Callable, shape: tuple, should_stop: Callable[[], None] | None = None):
        self.model, self.shape, self.first, self.should_stop = model, tuple(shape), True, should_stop

    def __getattr__(self, name):
        if name in ("model", "shape", "first", "should_stop"):  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, x, sigma, **kwargs):
        if self.should_stop is not None:
            self.should_stop()
        if not self.first:
            return self.model(x, sigma, **kwargs)
        self.first = False
        try:
            return self.model(x, sigma, **kwargs)
        except RuntimeError as e:
            raise ScheduleError(f"latent: shape {self.shape} does not fit this model ({str(e)[:200]}); use a latent "
                                "made for this model (Empty Latent Image, or VAE Encode with its VAE).") from e
