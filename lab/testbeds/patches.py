"""Natural-image patches: 3×16×16 crops of the photographs bundled in scikit-learn and scikit-image.

Sources (all load offline from the installed wheels):

* scikit-learn ``load_sample_images``: ``china.jpg``, ``flower.jpg`` (CC BY 2.0, Flickr; see scikit-learn's
  ``sklearn/datasets/images/README.txt``).
* scikit-image ``skimage.data`` (0.26), colour: astronaut, coffee, chelsea, rocket, immunohistochemistry,
  hubble_deep_field, retina; grey (repeated on the 3 channels): camera, coins, grass, gravel, brick
  (public domain / CC0 or "no copyright restrictions" per ``skimage/data/README.txt``).

Each image is resized (box filter) so that its shorter side is ``SHORT_SIDE`` = 128 pixels, scaled to [-1, 1], and
cut into three vertical strips **fixed before any default was chosen** (docs/defaults.md §Splits):

    columns [0, 70 %)   train     the UNet and the feature classifier are trained on crops from here only
    columns [70, 85 %)  tuning    reference crops for tuning defaults
    columns [85, 100 %) held-out  reference crops for confirming them (never used to choose anything)

A crop lies entirely inside its strip. Every sampler draws the source image uniformly (each image has the same
weight), then a uniform position inside the strip. The class label of a crop is its source index (the feature
classifier's target).
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["CONFIRM_SOURCES", "PATCH", "SHORT_SIDE", "SOURCES", "SPLITS", "PatchSet", "crops", "load_images", "region"]

PATCH = 16
SHORT_SIDE = 128
SOURCES = (
    ("sklearn", "china.jpg"), ("sklearn", "flower.jpg"),
    ("skimage", "astronaut"), ("skimage", "coffee"), ("skimage", "chelsea"), ("skimage", "rocket"),
    ("skimage", "immunohistochemistry"), ("skimage", "hubble_deep_field"), ("skimage", "retina"),
    ("skimage", "camera"), ("skimage", "coins"), ("skimage", "grass"), ("skimage", "gravel"),
    ("skimage", "brick"),
)
#: Confirmation only: photographs that no model, classifier or default choice uses (``crops("confirm", ...)``).
CONFIRM_SOURCES = (("skimage", "moon"),)
SPLITS = {"train": (0.0, 0.70), "tuning": (0.70, 0.85), "held_out": (0.85, 1.0)}


class PatchSet(NamedTuple):
    x: torch.Tensor       # (N, 3, 16, 16) float32 in [-1, 1]
    labels: torch.Tensor  # (N,) int64 source index into SOURCES


def _raw(kind: str, name: str) -> np.ndarray:
    if kind == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    try:
        import skimage.data as data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the natural-image patches need scikit-image (pip install 'schedule-lab[lab]' or "
                          "pip install scikit-image)") from e
    return getattr(data, name)()


def _resize(img: np.ndarray, short_side: int = SHORT_SIDE) -> np.ndarray:
    from PIL import Image

    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    h, w = img.shape[:2]
    scale = short_side / min(h, w)
    size = (max(PATCH, round(w * scale)), max(PATCH, round(h * scale)))
    return np.asarray(Image.fromarray(img.astype(np.uint8)).resize(size, Image.Resampling.BOX))


@lru_cache(maxsize=4)
def load_images(short_side: int = SHORT_SIDE, sources: tuple = SOURCES) -> tuple[torch.Tensor, ...]:
    """The source images (default the 14 ``SOURCES``) as (3, H, W) float32 tensors in [-1, 1], shorter side
    ``short_side`` (128)."""
    out = []
    for kind, name in sources:
        a = _resize(_raw(kind, name), short_side).astype(np.float32) / 127.5 - 1.0
        out.append(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))))
    return tuple(out)


def region(width: int, split: str) -> tuple[int, int]:
    """First and last+1 column of ``split``'s strip in an image ``width`` pixels wide."""
    lo, hi = SPLITS[split]
    return int(round(lo * width)), int(round(hi * width))


def crops(split: str, n: int, seed: int, generator: torch.Generator | None = None, size: int = PATCH) -> PatchSet:
    """``n`` crops from ``split``'s strips: source uniform over the 14 images, position uniform in the strip.

    ``split="confirm"`` draws from the whole of ``CONFIRM_SOURCES`` instead (photographs no model, classifier or
    default has seen; labels are -1). ``size`` > 16 (e.g. 32 for the 3072-d zoo models) scales the images' shorter
    side with it (``SHORT_SIDE · size / 16``) so that crops keep the same field of view and fit in the strips.
    Deterministic in ``seed`` (or drawn from ``generator`` when given, for training streams)."""
    if split not in SPLITS and split != "confirm":
        raise ValueError(f"crops: split must be one of {sorted(SPLITS) + ['confirm']}, got {split!r}")
    if size < 4 or size % PATCH and PATCH % size:
        raise ValueError(f"crops: size must divide or be a multiple of {PATCH}, got {size!r}")
    short_side = max(SHORT_SIDE, SHORT_SIDE * size // PATCH)
    images = load_images(short_side, CONFIRM_SOURCES if split == "confirm" else SOURCES)
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    src = torch.randint(0, len(images), (n,), generator=gen)
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = images[int(src[i])]
        c0, c1 = (0, img.shape[2]) if split == "confirm" else region(img.shape[2], split)
        top = int(u[i, 0] * (img.shape[1] - size + 1))
        left = c0 + int(u[i, 1] * (c1 - c0 - size + 1))
        out[i] = img[:, top:top + size, left:left + size]
    return PatchSet(out, torch.full_like(src, -1) if split == "confirm" else src)
