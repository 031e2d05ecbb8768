"""The scikit-learn digits (1797 8×8 images, 17 grey levels; UCI data, CC BY 4.0), split 80/20 and scaled to
[-1, 1]. Bundled in the scikit-learn wheel, so it loads offline.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["DigitsSplit", "from_images", "load_digits_split", "to_images"]


class DigitsSplit(NamedTuple):
    train: torch.Tensor         # (1437, 64) in [-1, 1]
    test: torch.Tensor          # (360, 64)
    train_labels: torch.Tensor  # (1437,) int64
    test_labels: torch.Tensor   # (360,)


def load_digits_split(seed: int = 0, dtype=torch.float32) -> DigitsSplit:
    """Stratified 80/20 split (1437 train / 360 test) of sklearn's digits, pixels x/8 − 1 ∈ [-1, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=seed, stratify=digits.target
    )
    def pixels(a):
        return torch.as_tensor(a, dtype=torch.float64).div(8.0).sub(1.0).to(dtype)

    def labels(a):
        return torch.as_tensor(a, dtype=torch.int64)

    return DigitsSplit(pixels(x_tr), pixels(x_te), labels(y_tr), labels(y_te))


def to_images(x: torch.Tensor) -> torch.Tensor:
    """(N, 64) rows → (N, 1, 8, 8) images."""
    return x.reshape(x.shape[0], 1, 8, 8)


def from_images(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 8, 8) images (or any (N, ...)) → (N, 64) rows."""
    return x.reshape(x.shape[0], -1)
