"""The time predictor (TPM) of TPDM, "Schedule On the Fly" (Ye et al., arXiv 2412.01243).

Decisions and the architecture: docs/tpdm.md, "TPM modules and files".

A small network reads three features of the diffusion model's own forward pass at the current noise level and
returns the two parameters (α, β) of a Beta distribution over the ratio r = next level / current level:

- ``h1``: the image tokens right after the input projection (SD3: patch embed + pos embed, before joint block 0;
  UNet: the output of the input convolution);
- ``h2``: the image tokens right before the output projection (SD3: the final adaptive norm's output, the input
  of ``final_layer.linear``; UNet: the output after the last norm + SiLU, the input of the output convolution);
- ``temb``: the conditioning vector that modulates every block (SD3: t_embedder(1000σ) + y_embedder(pooled);
  UNet: the time embedding).

Both ``h1``/``h2`` are given either as maps (B, C, H, W) or as DiT tokens (B, N, C) with the token grid
(gh, gw); tokens are laid out in 2-D with :func:`tokens_to_2d`, which replicates the official
``reshape_hidden_states_to_2d`` bit-exactly (it scrambles the tokens; the released weights depend on it).

:class:`TimePredictor` is the official architecture with configurable sizes: ``TimePredictor()`` is the SD3-Medium
module (12 tensors, 4,097,154 parameters, names conv1, norm1.{linear,norm}, conv2, fc1, fc2); ``tpm_for_features``
builds a small one whose input sizes come from a tapped model. The module runs in fp32 whatever the model's dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...schedules.errors import ScheduleError

__all__ = [
    "HEADS", "HEAD_BOUND", "INITS", "OFFICIAL_CONFIG", "OFFICIAL_PARAMETERS", "INIT_BIAS", "RATIO_CLAMP",
    "AdaGroupNorm", "TPMFeatures",
    "SD3_MEDIUM", "TimePredictor", "beta_mode", "combine_cfg", "cost_report", "official_sd3_tpm",
    "sd3_medium_step_flops", "tokens_to_2d", "tpm_flops", "tpm_for_features",
]

#: fc2 bias (pre-exp) used for training in the official launch script [LS]: α ≈ 13.18, β ≈ 3.72, mode ≈ 0.8176.
INIT_BIAS = (2.5, 1.0)
#: The ratio is clamped to this range before it is used (and before its log-probability is taken) [M].
RATIO_CLAMP = (1e-3, 1.0 - 1e-3)
#: SD3-Medium: h1 and h2 have 1536 channels each, temb 1536, conv width 128, 64×64 token grid at 1024².
OFFICIAL_CONFIG = {"in_channels": 3072, "temb_dim": 1536, "width": 128}
OFFICIAL_PARAMETERS = 4_097_154
#: Output heads: "exp" is the official (α, β) = exp(x) + 1; "bounded" squashes x to c·tanh(x/c) first, so α, β lie
#: in [1 + e^-c, 1 + e^c] (c = HEAD_BOUND = 8: [1.000335, 2982]) and α = 1.0 cannot happen in float32.
HEADS = ("exp", "bounded")
HEAD_BOUND = 8.0
#: Weight inits: "official" ([M] _init_weights) and "torch-norm-linear" (the pack's earlier one, see reset_parameters).
INITS = ("official", "torch-norm-linear")


@dataclass
class TPMFeatures:
    """What the TPM reads from one model call (one row per image).

    h1, h2: (B, C, H, W) maps, or (B, N, C) DiT tokens with ``grid = (gh, gw)`` (gh·gw = N);
    temb: (B, D) conditioning vector. ``detach()`` gives an fp32 copy cut from any graph (for traces and caches).
    """

    h1: torch.Tensor
    h2: torch.Tensor
    temb: torch.Tensor
    grid: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return int(self.temb.shape[0])

    def maps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(h1, h2) as (B, C, H, W) maps (tokens laid out with :func:`tokens_to_2d`)."""
        return _as_map(self.h1, self.grid, "h1"), _as_map(self.h2, self.grid, "h2")

    def channels(self) -> tuple[int, int, int]:
        """(h1 channels, h2 channels, temb size)."""
        c1 = self.h1.shape[1] if self.h1.ndim == 4 else self.h1.shape[-1]
        c2 = self.h2.shape[1] if self.h2.ndim == 4 else self.h2.shape[-1]
        return int(c1), int(c2), int(self.temb.shape[-1])

    def detach(self, device=None, dtype: torch.dtype = torch.float32) -> TPMFeatures:
        """A copy cut from any graph, on ``device`` (default: where it is) in ``dtype`` (default fp32)."""
        def cut(t):
            return t.detach().to(device=device or t.device, dtype=dtype).clone()

        return TPMFeatures(cut(self.h1), cut(self.h2), cut(self.temb), self.grid, dict(self.meta))

    def rows(self, index) -> TPMFeatures:
        """The features of some images (``index``: a boolean mask or index tensor over the batch)."""
        return TPMFeatures(self.h1[index], self.h2[index], self.temb[index], self.grid, dict(self.meta))

    @staticmethod
    def cat(items: list[TPMFeatures]) -> TPMFeatures:
        return TPMFeatures(torch.cat([f.h1 for f in items]), torch.cat([f.h2 for f in items]),
                           torch.cat([f.temb for f in items]), items[0].grid, dict(items[0].meta))


def tokens_to_2d(h: torch.Tensor, grid: tuple[int, int], patch: int = 2) -> torch.Tensor:
    """(B, N, C) tokens → (B, C, gh, gw), exactly as the official ``reshape_hidden_states_to_2d``.

    The official code reshapes to (B, gh/p, gw/p, p, p, C), permutes ``nhwpqc -> nchpwq`` and reshapes to
    (B, C, gh, gw); on a row-major token grid this scrambles the tokens: token (r, c) of a 64×64 grid lands at
    pixel (2⌊r/2⌋ + ⌊c/2⌋ mod 2, 2(16 (r mod 2) + ⌊c/4⌋) + c mod 2). The released weights were trained on
    that layout, so it is kept.
    """
    b, n, c = h.shape
    gh, gw = int(grid[0]), int(grid[1])
    if gh * gw != n or gh % patch or gw % patch:
        raise ScheduleError(f"features: {n} tokens do not form a {gh}×{gw} grid divisible by {patch}; the TPM "
                            "needs a token grid whose sides are even (e.g. 1024×1024 for SD3: 64×64 tokens).")
    x = h.reshape(b, gh // patch, gw // patch, patch, patch, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(b, c, gh, gw)


def _as_map(h: torch.Tensor, grid, name: str) -> torch.Tensor:
    if h.ndim == 4:
        return h
    if h.ndim == 3:
        if grid is None:
            side = math.isqrt(h.shape[1])
            if side * side != h.shape[1]:
                raise ScheduleError(f"features: {name} has {h.shape[1]} tokens and no grid; pass grid=(rows, cols).")
            grid = (side, side)
        return tokens_to_2d(h, grid)
    raise ScheduleError(f"features: {name} has shape {tuple(h.shape)}; expected (B, C, H, W) or (B, N, C).")


def combine_cfg(uncond: torch.Tensor, cond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free-guidance combination of a feature, f_u + w (f_c − f_u), as the official code does."""
    return uncond + w * (cond - uncond)


class AdaGroupNorm(nn.Module):
    """GroupNorm(1 group, eps 1e-6, affine) modulated by Linear(SiLU(temb)) → [shift, scale] (shift first)."""

    def __init__(self, temb_dim: int, channels: int):
        super().__init__()
        self.linear = nn.Linear(temb_dim, 2 * channels)
        self.norm = nn.GroupNorm(1, channels, eps=1e-6, affine=True)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        shift, scale = self.linear(F.silu(temb)).chunk(2, dim=1)
        return self.norm(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class TimePredictor(nn.Module):
    """The official TPM, sizes configurable: conv1 (3×3) → AdaGroupNorm(temb) → SiLU → conv2 (3×3,
    stride 2) → avg-pool to 16×16 → max-pool to 1×1 → fc1 → SiLU → fc2; (α, β) = exp(fc2) + 1, both > 1.

    ``in_channels`` = h1 channels + h2 channels (concatenated). ``TimePredictor()`` is the SD3-Medium module.
    """

    def __init__(self, in_channels: int = 3072, temb_dim: int = 1536, width: int = 128,
                 init_bias: tuple[float, float] = INIT_BIAS, h1_channels: int | None = None, head: str = "exp",
                 init: str = "official"):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("temb_dim", temb_dim), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ScheduleError(f"TPM {name}={v!r} must be a positive integer.")
        if head not in HEADS:
            raise ScheduleError(f"TPM head={head!r} must be one of {', '.join(HEADS)} (exp: the official "
                                "exp(x) + 1; bounded: exp(c·tanh(x/c)) + 1, α and β in [1 + e^-c, 1 + e^c]).")
        if init not in INITS:
            raise ScheduleError(f"TPM init={init!r} must be one of {', '.join(INITS)}.")
        self.config = {"in_channels": int(in_channels), "temb_dim": int(temb_dim), "width": int(width),
                       "h1_channels": int(h1_channels if h1_channels is not None else in_channels // 2)}
        if head != "exp":  # the official head leaves the config (and files) as they were
            self.config["head"] = head
        self.head = head
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm1 = AdaGroupNorm(temb_dim, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, stride=2)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, 2)
        self.reset_parameters(init_bias, init)

    def reset_parameters(self, init_bias: tuple[float, float] = INIT_BIAS, init: str = "official") -> None:
        """Official init ([M] ``_init_weights``): every conv and linear weight ~ N(0, 0.02), norm1.linear's too;
        conv and fc1 biases 0, fc2 bias = init_bias; norm1.linear's bias and the GroupNorm keep PyTorch's init.

        ``init="torch-norm-linear"`` leaves norm1.linear's weight at PyTorch's default (Kaiming-uniform), as the
        pack did before: the bundled testbed TPMs were trained from it, and their recorded commands reproduce
        their weights only with it (docs/tpdm.md, "TPM modules and files"). The other draws are the same in both."""
        with torch.no_grad():
            for m in (self.conv1, self.conv2, self.fc1, self.fc2):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            self.fc2.bias.copy_(torch.tensor([float(init_bias[0]), float(init_bias[1])]))
            if init == "official":
                nn.init.normal_(self.norm1.linear.weight, std=0.02)

    def check_features(self, features: TPMFeatures) -> None:
        """A :class:`ScheduleError` naming the sizes when ``features`` are not the ones this TPM was built for."""
        c1, c2, d = features.channels()
        cfg = self.config
        if c1 + c2 != cfg["in_channels"] or d != cfg["temb_dim"]:
            raise ScheduleError(
                f"tpm: built for features with {cfg['in_channels']} channels (h1 + h2) and a {cfg['temb_dim']}-d "
                f"time embedding, but this model gives {c1} + {c2} channels and {d}; load a TPM trained for this "
                "model family (the official SD3-Medium TPM needs SD3-Medium).")

    def forward(self, features: TPMFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """(α, β), each (B,) fp32 and > 1."""
        self.check_features(features)
        h1, h2 = features.maps()
        like = {"device": self.conv1.weight.device, "dtype": self.conv1.weight.dtype}
        x = torch.cat([h1.to(**like), h2.to(**like)], dim=1)
        temb = features.temb.to(**like)
        x = self.conv1(x)
        x = F.silu(self.norm1(x, temb))
        x = self.conv2(x)
        x = F.adaptive_avg_pool2d(x, 16)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        x = self.fc2(F.silu(self.fc1(x))).float()
        if self.head == "bounded":
            x = HEAD_BOUND * torch.tanh(x / HEAD_BOUND)
        ab = torch.exp(x) + 1.0
        return ab[:, 0], ab[:, 1]


def tpm_flops(config: dict | None = None, grid: tuple[int, int] = (64, 64)) -> int:
    """Multiply-adds × 2 of one TPM call on one image with a ``grid`` token/feature map (convs, linears; the norm,
    activations and pools are elementwise and left out, < 0.1 % of the total)."""
    cfg = {**OFFICIAL_CONFIG, **(config or {})}
    gh, gw = grid
    c, w, d = cfg["in_channels"], cfg["width"], cfg["temb_dim"]
    conv1 = 2 * c * 9 * w * gh * gw
    conv2 = 2 * w * 9 * w * ((gh + 1) // 2) * ((gw + 1) // 2)
    linears = 2 * d * 2 * w + 2 * w * w + 2 * w * 2
    return conv1 + conv2 + linears


#: SD3-Medium per step at 1024² (an estimate, not a measurement; the counted figure is below): ~2.0e9 MMDiT
#: parameters × 2 FLOPs × 4429 tokens (4096 image + 333 text), plus attention 4·N²·d over 24 joint blocks of width
#: 1536, × 2 passes for CFG.
SD3_MEDIUM = {"params": 2.0e9, "tokens": 4096 + 333, "blocks": 24, "hidden": 1536, "passes": 2}


def sd3_medium_step_flops() -> float:
    """The estimate of one SD3-Medium CFG step at 1024² from :data:`SD3_MEDIUM` (dense layers + attention)."""
    m = SD3_MEDIUM
    dense = 2 * m["params"] * m["tokens"]
    attention = m["blocks"] * 4 * m["tokens"] ** 2 * m["hidden"]
    return m["passes"] * (dense + attention)


#: SD3-Medium FLOPs for one CFG step (batch 2) at 1024² with 333 text tokens, **counted** with
#: ``torch.utils.flop_counter.FlopCounterMode`` on a meta-device diffusers ``SD3Transformer2DModel``
#: (``benchmarks.tpdm_bench.sd3_medium_step_flops`` recounts it when diffusers is installed). Less than half the
#: estimate above: image tokens only pass the image stream's weights, text tokens the context stream's, and the
#: adaLN weights act once per image, not once per token.
SD3_MEDIUM_CFG_STEP_FLOPS = 17_808_675_078_144


def cost_report() -> str:
    """The TPM's per-step FLOPs next to an SD3-Medium step, counted and estimated (docs/tpdm.md "Per-step cost")."""
    tpm, estimate = tpm_flops(), sd3_medium_step_flops()
    counted = SD3_MEDIUM_CFG_STEP_FLOPS
    share = tpm / counted
    return (f"TPM (official, 64x64 grid): {tpm / 1e9:.2f} GFLOP per image per step; SD3-Medium CFG step at 1024^2: "
            f"{counted / 1e12:.1f} TFLOP counted (FlopCounterMode) -> TPM share {100 * share:.3f} % "
            f"(target <= 0.1 %: {'met' if share <= 1e-3 else 'missed'}); {estimate / 1e12:.1f} TFLOP by the "
            f"parameters x tokens estimate -> {100 * tpm / estimate:.3f} %")


def official_sd3_tpm(init_bias: tuple[float, float] = INIT_BIAS) -> TimePredictor:
    """The SD3-Medium TPM (random official init; load weights with ``official.load_official_tpm``)."""
    return TimePredictor(**OFFICIAL_CONFIG, init_bias=init_bias)


def tpm_for_features(features: TPMFeatures, width: int = 32, init_bias: tuple[float, float] = INIT_BIAS,
                     head: str = "exp", init: str = "official") -> TimePredictor:
    """A TPM sized for the features a tapped model gives (the official architecture, narrower)."""
    c1, c2, d = features.channels()
    return TimePredictor(c1 + c2, d, width, init_bias=init_bias, h1_channels=c1, head=head, init=init)


def beta_mode(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Mode (α − 1)/(α + β − 2) of Beta(α, β), in (0, 1) for α, β > 1."""
    return (alpha - 1) / (alpha + beta - 2)
