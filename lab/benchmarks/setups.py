"""The benchmark testbeds (docs/testbeds.md): a model, the sigma range it is sampled over and what it is scored against.

* ``exact-digits`` — the exact (memorising) denoiser of the digits train split. Scored against the *train* split
  (its converged ODE reproduces training images); mode agreement with the converged ODE is meaningful here.
* ``edm-digits`` — the bundled EDM-preconditioned MLP (testbeds.models.load_edm_mlp). Scored against the *test*
  split (the model learnt from train); no mode agreement.
* ``patch-unet`` (``load_testbed("patch-unet", "edm")``, not in ``TESTBEDS``: the digits benchmarks' default list)
  — the bundled natural-image UNet on 3×16×16 patches (``testbeds.unet``), 768-d, scored against held-out-strip
  crops (the defaults suite's reference, ``testbeds.suite``) with FD in the patch classifier's features (FD_patch).

The digits testbeds are sampled over the same sigma range so schedules are compared on equal terms
(docs/testbeds.md, "Metrics"): by default the SD1 range 0.0292–14.61 of ``ModelKind.vp()`` — the range the
published AYS SD1 table covers.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from schedule_lab.schedules.model_kind import ModelKind

from ..testbeds.digits import load_digits_split

__all__ = ["PATCH_TESTBED", "SIGMA_RANGES", "TESTBEDS", "Testbed", "common_args", "load_model", "load_testbed",
           "noise", "pin_threads"]

TESTBEDS = ("exact-digits", "edm-digits")
PATCH_TESTBED = "patch-unet"

#: Sigma-range presets → the ModelKind handed to every scheduler (its sigma_min/sigma_max bound karras & co.).
SIGMA_RANGES = {
    "sd1": ("SD1 VP range (ModelKind.vp(), scaled_linear betas 0.00085-0.012)", lambda: ModelKind.vp("eps")),
    "edm": ("EDM range (ModelKind.edm(0.002, 80))", lambda: ModelKind.edm(0.002, 80.0)),
    "flow3": ("SD3 flow range (ModelKind.flow(3.0): shift 3, sigma 0.003-1)", lambda: ModelKind.flow(3.0)),
}
#: Natural-image models scored like the patch UNet (3×16×16 crops, FD_patch): the patch UNet and the zoo's flow model.
PATCH_MODELS = ("patch-unet", "zoo-flow-768")


@dataclass
class Testbed:
    name: str
    description: str
    model: object              # k-diffusion denoiser model(x, sigma_vec) -> D
    kind: ModelKind            # what the schedulers see
    range_note: str
    train: torch.Tensor        # (M, 64)
    test: torch.Tensor         # (360, 64)
    against: str               # "train" | "test": the split distribution metrics are computed against
    mode_agreement: bool       # report the fraction of samples landing on the converged ODE's training image
    classifier: object = None  # the feature classifier of FD (None: the bundled digits classifier)
    dim: int = 64              # values per sample (the noise is (n, dim))

    @property
    def target(self) -> torch.Tensor:
        return self.train if self.against == "train" else self.test


def load_model(name: str, train: torch.Tensor | None = None):
    """The denoiser of testbed ``name`` (also used by the ComfyUI worker subprocess)."""
    if name == "exact-digits":
        from ..testbeds.exact import ExactDenoiser

        return ExactDenoiser(load_digits_split().train if train is None else train)
    if name == "edm-digits":
        from ..testbeds.models import load_edm_mlp

        return load_edm_mlp()
    if name == PATCH_TESTBED:
        from ..testbeds.unet import load_patch_unet

        return load_patch_unet()
    if name.startswith("zoo-"):  # zoo-<parameterisation>-<dim>, e.g. zoo-flow-768 (testbeds.zoo)
        from ..testbeds.zoo import load_zoo

        _, param, dim = name.split("-")
        return load_zoo(param, int(round((int(dim) / 3) ** 0.5)))
    raise ValueError(f"unknown testbed {name!r}; choose one of {', '.join(TESTBEDS)}")


def load_testbed(name: str, sigma_range: str = "sd1") -> Testbed:
    if sigma_range not in SIGMA_RANGES:
        raise ValueError(f"unknown sigma range {sigma_range!r}; choose one of {', '.join(SIGMA_RANGES)}")
    note, make_kind = SIGMA_RANGES[sigma_range]
    if name in PATCH_MODELS:
        return _patch_testbed(make_kind(), note, name)
    split = load_digits_split()
    model = load_model(name, split.train)
    if name == "exact-digits":
        desc = (f"exact denoiser of the sklearn digits train split ({split.train.shape[0]}x64, memorises: the "
                "converged ODE lands on training images)")
        return Testbed(name, desc, model, make_kind(), note, split.train, split.test, "train", True)
    desc = "bundled EDM MLP denoiser (lab/testbeds/weights/edm_mlp_digits), trained on the digits train split"
    return Testbed(name, desc, model, make_kind(), note, split.train, split.test, "test", False)


def _patch_testbed(kind: ModelKind, note: str, name: str = PATCH_TESTBED) -> Testbed:
    """The natural-image UNet (or the zoo's flow model on the same crops): reference = the defaults suite's 1000
    held-out-strip crops (seed 201), other split = 1000 train-strip crops (seed 0), FD in the patch classifier's
    features."""
    from ..testbeds.patches import crops
    from ..testbeds.suite import NOISE_SEEDS
    from ..testbeds.unet import load_patch_classifier

    held_out = crops("held_out", 1000, seed=NOISE_SEEDS["held_out"]).x.reshape(1000, -1)
    train = crops("train", 1000, seed=0).x.reshape(1000, -1)
    which = ("bundled natural-image patch UNet (lab/testbeds/weights/patch_unet)" if name == PATCH_TESTBED else
             "the zoo's rectified-flow natural-image model (lab/testbeds/weights/zoo_flow_768)")
    desc = (f"{which}, 3x16x16, trained on the train strips; FD_patch in the patch classifier's features against "
            "held-out-strip crops")
    return Testbed(name, desc, load_model(name), kind, note, train, held_out, "test", False,
                   classifier=load_patch_classifier(), dim=768)


def noise(n: int, seed: int, dim: int = 64) -> torch.Tensor:
    """Unit Gaussian noise (n, dim) from a seeded CPU generator; x_T = σ_max · noise."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)


def common_args(p: argparse.ArgumentParser, *, nfe, seeds=(0, 1, 2), testbeds=TESTBEDS, out: Path | None = None,
                n_samples: int | None = None) -> argparse.ArgumentParser:
    """The options every benchmark shares: --testbed, --nfe, --seeds, --threads, and --out / --n-samples when given
    a default."""
    p.add_argument("--testbed", nargs="+", default=list(testbeds), choices=list(testbeds))
    p.add_argument("--nfe", nargs="+", type=int, default=list(nfe), help="NFE budgets (model calls)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(seeds))
    p.add_argument("--threads", type=int, default=1, help="torch threads (pinned; default 1)")
    if out is not None:
        p.add_argument("--out", type=Path, default=out)
    if n_samples is not None:
        p.add_argument("--n-samples", type=int, default=n_samples, help="samples per seed (FD is biased in N)")
    return p


def pin_threads(threads: int) -> None:
    """Pin torch threads (oversubscription costs 20x on a shared CPU) and keep diffusers off the network."""
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(threads)
