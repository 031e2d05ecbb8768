"""The natural-image testbed models (3×16×16 patches, ``testbeds.patches``), read from safetensors + JSON sidecar.

* ``PatchUNet`` — a small convolutional UNet (16 → 8 → 4 pixels, residual blocks with GroupNorm, the noise
  embedding added in every block) with EDM preconditioning (Karras et al. 2022, Table 1):
  D(x, σ) = c_skip x + c_out F(c_in x, ln σ / 4). Trained over σ ∈ [0.002, 80] (half the batch log-uniform,
  docs/testbeds.md, sigma-range pitfall) so that σ_max is in distribution. k-diffusion contract
  ``model(x, sigma_vec) -> denoised``.
* ``PatchClassifier`` — a small CNN that tells which of the 14 source photographs a crop comes from; its
  128-d penultimate features define FD_patch (a Fréchet distance on patches).

Training: ``python -m schedule_lab.lab.testbeds.train --which patches`` (docs/defaults.md §4).
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F

from .models import FourierEmbedding, content_key, load_bundled

__all__ = ["PATCH_CLASSIFIER_FILE", "PATCH_UNET_FILE", "PatchClassifier", "PatchUNet", "load_patch_classifier",
           "load_patch_unet"]

PATCH_UNET_FILE = "patch_unet"
PATCH_CLASSIFIER_FILE = "patch_classifier"


class ResBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x))) + E·emb))), with a 1×1 skip when the width changes."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.n1 = nn.GroupNorm(groups, c_in)
        self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.e = nn.Linear(emb_dim, c_out)
        self.n2 = nn.GroupNorm(groups, c_out)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x))) + self.e(emb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class PatchUNet(nn.Module):
    """EDM-preconditioned UNet on (B, 3, 16, 16); ``forward(x, sigma)`` returns D(x, σ) in x's shape/dtype.

    Flat (B, 768) inputs are accepted and returned flat, so the generic benchmark code can treat every testbed
    as rows."""

    def __init__(self, channels: int = 32, mult: tuple = (1, 2, 2), emb_dim: int = 128, sigma_data: float = 0.5,
                 fourier_scale: float = 4.0, fourier_seed: int = 0, image_channels: int = 3, size: int = 16):
        super().__init__()
        self.config = dict(channels=channels, mult=list(mult), emb_dim=emb_dim, sigma_data=sigma_data,
                           fourier_scale=fourier_scale, fourier_seed=fourier_seed,
                           image_channels=image_channels, size=size)
        self.sigma_data = float(sigma_data)
        self.shape = (image_channels, size, size)
        self.fourier = FourierEmbedding(64, fourier_scale, fourier_seed)
        self.emb_mlp = nn.Sequential(nn.Linear(64, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        widths = [channels * m for m in mult]
        self.inp = nn.Conv2d(image_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = widths[0]
        for i, w in enumerate(widths):
            self.down.append(ResBlock(prev, w, emb_dim))
            prev = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        self.mid = ResBlock(prev, prev, emb_dim)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(ResBlock(prev + w, w, emb_dim))
            prev = w
        self.out_norm = nn.GroupNorm(8, prev)
        self.out = nn.Conv2d(prev, image_channels, 3, padding=1)
        self._cache_key = None

    def raw(self, x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """The network F(c_in x, c_noise) on (B, 3, 16, 16)."""
        emb = self.emb_mlp(self.fourier(c_noise))
        h = self.inp(x_in)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))

    def preconditioning(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in, c_noise) for a (B,) σ, EDM Table 1."""
        sd2 = self.sigma_data ** 2
        s2 = sigma.square()
        return sd2 / (s2 + sd2), sigma * self.sigma_data / (s2 + sd2).sqrt(), 1 / (s2 + sd2).sqrt(), sigma.log() / 4

    def forward(self, x: torch.Tensor, sigma, **_: object) -> torch.Tensor:
        dtype = self.inp.weight.dtype
        img = x.reshape(x.shape[0], *self.shape).to(dtype)
        sigma = torch.as_tensor(sigma, device=x.device).to(dtype).reshape(-1).expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma)
        f = self.raw(c_in[:, None, None, None] * img, c_noise)
        d = c_skip[:, None, None, None] * img + c_out[:, None, None, None] * f
        return d.reshape(x.shape).to(x.dtype)

    @property
    def cache_key(self) -> str:
        """A content hash of config and weights, for testbeds.reference's endpoint cache."""
        if self._cache_key is None:
            self._cache_key = content_key(self, "patch-unet")
        return self._cache_key


class PatchClassifier(nn.Module):
    """CNN 3×16×16 → 128 features → 14 source photographs; ``features(x)`` defines FD_patch."""

    def __init__(self, classes: int = 14, width: int = 32, features: int = 128, dropout: float = 0.1):
        super().__init__()
        self.config = dict(classes=classes, width=width, features=features, dropout=dropout)
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * w, features), nn.SiLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(x.shape[0], 3, 16, 16).to(self.head[1].weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@lru_cache(maxsize=4)
def load_patch_unet(weights_dir=None) -> PatchUNet:
    """The bundled natural-image UNet (eval, float32, no grad). Cached: never modify it in place."""
    return load_bundled(PatchUNet, PATCH_UNET_FILE, weights_dir, retrain="--which patches")


@lru_cache(maxsize=4)
def load_patch_classifier(weights_dir=None) -> PatchClassifier:
    """The bundled patch-source classifier (eval, float32, no grad). Cached: do not modify it in place."""
    return load_bundled(PatchClassifier, PATCH_CLASSIFIER_FILE, weights_dir, retrain="--which patches")

