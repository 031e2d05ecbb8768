"""Testbed 3: the bundled small models, read from ``lab/testbeds/weights/*.safetensors`` plus a JSON sidecar.

* ``EDMDenoiserMLP`` — a residual MLP denoiser for the 8×8 digits with EDM preconditioning (Karras et al.
  2022, Table 1): D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ)), c_noise = ln(σ)/4, with a Fourier
  embedding of c_noise. It is trained over the whole σ range [0.002, 80] (docs/testbeds.md, sigma-range pitfall)
  and follows the k-diffusion model contract ``model(x, sigma_vec) -> denoised``.
* ``DigitsClassifier`` — a small MLP digit classifier; its penultimate features define FD_cls.
* ``BUNDLED_TPMS`` / ``bundled_tpm_path(model)`` — the TPDM time predictor trained for each bundled trained model
  (``schedule-lab tpdm train --testbed …``), so a caller (``schedule-lab compare``) picks the one made for its model.

Weights are never unpickled: the loaders read safetensors and build the module from the sidecar's ``config``.
Training lives in ``lab/testbeds/train.py``.
"""
from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

__all__ = [
    "BUNDLED_TPMS", "CLASSIFIER_FILE", "EDM_MLP_FILE", "WEIGHTS_DIR", "DigitsClassifier", "EDMDenoiserMLP",
    "bundled_tpm_path", "load_bundled", "load_classifier", "load_edm_mlp", "read_sidecar",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
EDM_MLP_FILE = "edm_mlp_digits"
CLASSIFIER_FILE = "digits_classifier"
#: model class → the bundled TPM trained for it (``lab/testbeds/weights/<name>.safetensors`` + ``.json`` record):
#: the EDM MLP's on the SD1 range 0.0292–14.61, the patch UNet's on its own EDM range 0.002–80.
BUNDLED_TPMS = {"EDMDenoiserMLP": "tpm_edm_digits", "PatchUNet": "tpm_patch_unet"}


def content_key(module: nn.Module, prefix: str) -> str:
    """``prefix:<sha256 of the module's config and weights>``, the key of testbeds.reference's endpoint cache."""
    h = hashlib.sha256(json.dumps(module.config, sort_keys=True).encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode() + t.detach().cpu().contiguous().numpy().tobytes())
    return f"{prefix}:{h.hexdigest()[:24]}"


class FourierEmbedding(nn.Module):
    """[cos 2πf·c, sin 2πf·c] with fixed random frequencies f ~ N(0, scale²) (saved with the weights)."""

    def __init__(self, channels: int, scale: float = 4.0, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(channels // 2, generator=gen) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        phase = 2 * math.pi * c[:, None] * self.freqs[None, :]
        return torch.cat([phase.cos(), phase.sin()], dim=1)


class ResidualBlock(nn.Module):
    """h + W2 · SiLU(W1 · LayerNorm(h) + E · emb): a pre-norm MLP block conditioned on the noise embedding."""

    def __init__(self, width: int, emb_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(emb_dim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(torch.nn.functional.silu(self.fc1(self.norm(h)) + self.emb(emb)))


class EDMDenoiserMLP(nn.Module):
    """EDM-preconditioned residual MLP; ``forward(x, sigma)`` returns D(x, σ) in x's shape and dtype."""

    def __init__(self, dim: int = 64, width: int = 256, blocks: int = 4, emb_dim: int = 64,
                 sigma_data: float = 0.75, fourier_scale: float = 4.0, fourier_seed: int = 0):
        super().__init__()
        self.config = dict(dim=dim, width=width, blocks=blocks, emb_dim=emb_dim, sigma_data=sigma_data,
                           fourier_scale=fourier_scale, fourier_seed=fourier_seed)
        self.sigma_data = float(sigma_data)
        self.fourier = FourierEmbedding(emb_dim, fourier_scale, fourier_seed)
        self.emb_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU()
        )
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, emb_dim) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)
        self._cache_key = None

    def raw(self, x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """The network F(c_in x, c_noise) on flat (B, dim) inputs."""
        emb = self.emb_mlp(self.fourier(c_noise))
        h = self.inp(x_in)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(torch.nn.functional.silu(self.out_norm(h)))

    def preconditioning(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in, c_noise) for a (B,) σ, EDM Table 1."""
        sd2 = self.sigma_data ** 2
        s2 = sigma.square()
        c_skip = sd2 / (s2 + sd2)
        c_out = sigma * self.sigma_data / (s2 + sd2).sqrt()
        c_in = 1 / (s2 + sd2).sqrt()
        return c_skip, c_out, c_in, sigma.log() / 4

    def forward(self, x: torch.Tensor, sigma, **_: object) -> torch.Tensor:
        dtype = self.inp.weight.dtype
        flat = x.reshape(x.shape[0], -1).to(dtype)
        sigma = torch.as_tensor(sigma, device=x.device).to(dtype).reshape(-1).expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma)
        f = self.raw(c_in[:, None] * flat, c_noise)
        return (c_skip[:, None] * flat + c_out[:, None] * f).reshape(x.shape).to(x.dtype)

    @property
    def cache_key(self) -> str:
        """A content hash of config and weights, for testbeds.reference's endpoint cache."""
        if self._cache_key is None:
            self._cache_key = content_key(self, "edm-mlp")
        return self._cache_key


class DigitsClassifier(nn.Module):
    """MLP 64 → hidden → features → 10 classes; ``features(x)`` is the penultimate layer used by FD_cls."""

    def __init__(self, dim: int = 64, hidden: int = 256, features: int = 128, classes: int = 10,
                 dropout: float = 0.1):
        super().__init__()
        self.config = dict(dim=dim, hidden=hidden, features=features, classes=classes, dropout=dropout)
        self.body = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, features), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(x.shape[0], -1).to(self.head[1].weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def read_sidecar(name: str, weights_dir=None) -> dict:
    """The JSON sidecar ``<name>.json`` next to the weights (config, training command, losses, evaluation)."""
    return json.loads((Path(weights_dir or WEIGHTS_DIR) / f"{name}.json").read_text())


def load_bundled(cls, name: str, weights_dir=None, retrain: str = "") -> nn.Module:
    """A bundled model: ``cls(**config)`` from the sidecar (JSON lists become the tuples constructors take), weights
    from ``<name>.safetensors`` in float32, eval mode, no grad. ``retrain``: the train options named when missing."""
    folder = Path(weights_dir or WEIGHTS_DIR)
    path = folder / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; train it with `python -m schedule_lab.lab.testbeds.train "
                                f"{retrain + ' ' if retrain else ''}--out {folder}`")
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in read_sidecar(name, folder)["config"].items()}
    model = cls(**config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in load_file(str(path)).items()})
    return model.eval().requires_grad_(False)


def bundled_tpm_path(model, weights_dir=None) -> Path:
    """The ``.safetensors`` TPM trained for the bundled ``model`` (by its class, ``BUNDLED_TPMS``); a KeyError naming
    the models that have one otherwise."""
    name = BUNDLED_TPMS.get(type(model).__name__)
    if name is None:
        raise KeyError(f"no bundled TPM for {type(model).__name__}; bundled TPMs exist for "
                       f"{', '.join(BUNDLED_TPMS)} (train one with `schedule-lab tpdm train`)")
    return Path(weights_dir or WEIGHTS_DIR) / f"{name}.safetensors"


@lru_cache(maxsize=4)
def load_edm_mlp(weights_dir=None) -> EDMDenoiserMLP:
    """The bundled EDM MLP digits denoiser (eval mode, float32, no grad). Cached: never modify it in place."""
    return load_bundled(EDMDenoiserMLP, EDM_MLP_FILE, weights_dir)


@lru_cache(maxsize=4)
def load_classifier(weights_dir=None) -> DigitsClassifier:
    """The bundled digits classifier (eval mode, float32, no grad). Cached: do not modify it in place."""
    return load_bundled(DigitsClassifier, CLASSIFIER_FILE, weights_dir)
