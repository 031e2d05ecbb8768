"""Reproducible training of the bundled testbed models (fixed seeds, fixed iteration counts, 1 thread).

    python -m schedule_lab.lab.testbeds.train [--which edm|classifier|all] [--iters N] [--seconds S] [--out DIR]
    python -m schedule_lab.lab.testbeds.train --which patches          # natural-image classifier, then UNet
    python -m schedule_lab.lab.testbeds.train --which patch-unet | patch-classifier
    python -m schedule_lab.lab.testbeds.train --which zoo --param flow|eps|v|edm [--size 16|32]   # testbeds.zoo

Writes ``<name>.safetensors`` (fp32 weights) and ``<name>.json`` (config, command, seed, time, torch version,
losses, evaluation) into DIR (default: the package's ``lab/testbeds/weights``). The classifier trains first when
both are asked for, because the EDM model's evaluation (FD_cls) uses it. ``--seconds`` only caps the wall
time as a safety net; the run is reproducible only if it finishes its ``--iters``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch

from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats
from schedule_lab.solvers.classic import sample_dpmpp_2m

from .digits import DigitsSplit, load_digits_split
from .metrics import classifier_features, nearest_distance, swd
from .models import (
    CLASSIFIER_FILE,
    EDM_MLP_FILE,
    WEIGHTS_DIR,
    DigitsClassifier,
    EDMDenoiserMLP,
    load_classifier,
)
from .reference import karras_sigmas
from .train_common import _lr_factor, _provenance, _save, optimise_step, sample_training_sigmas  # noqa: F401

__all__ = ["EDM_DEFAULTS", "CLASSIFIER_DEFAULTS", "evaluate_classifier", "evaluate_edm", "main",
           "sample_training_sigmas", "train_classifier", "train_edm"]

EDM_DEFAULTS = dict(
    iters=15_000, batch=256, lr=1e-3, warmup=500, lr_final_frac=0.05, ema_decay=0.999, seed=0,
    p_mean=-1.2, p_std=1.2, loguniform_frac=0.5, sigma_min=0.002, sigma_max=80.0,
    width=256, blocks=3, emb_dim=64,
)
CLASSIFIER_DEFAULTS = dict(
    iters=3_000, batch=128, lr=1e-3, weight_decay=1e-4, input_noise=0.3, seed=0,
    hidden=256, features=128, dropout=0.2,
)
EVAL_SIGMAS = (0.002, 0.02, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0)


def train_edm(split: DigitsSplit, max_seconds: float | None = None, log=print, **overrides):
    """Train the EDM MLP denoiser on ``split.train``; returns (EMA model in eval mode, training record)."""
    hp = {**EDM_DEFAULTS, **overrides}
    torch.manual_seed(hp["seed"])
    gen = torch.Generator().manual_seed(hp["seed"] + 1)
    data = split.train.float()
    sigma_data = round(float(data.std()), 4)
    model = EDMDenoiserMLP(dim=data.shape[1], width=hp["width"], blocks=hp["blocks"], emb_dim=hp["emb_dim"],
                           sigma_data=sigma_data, fourier_seed=hp["seed"])
    ema = copy.deepcopy(model).requires_grad_(False)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    opt = torch.optim.Adam(params, lr=hp["lr"])
    recent, curve, start, done = [], [], time.perf_counter(), 0
    for it in range(hp["iters"]):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            log(f"edm: stopped by --seconds at iteration {it}")
            break
        for group in opt.param_groups:
            group["lr"] = hp["lr"] * _lr_factor(it, hp["iters"], hp["warmup"], hp["lr_final_frac"])
        y = data[torch.randint(0, data.shape[0], (hp["batch"],), generator=gen)]
        sigma = sample_training_sigmas(hp["batch"], gen, hp["p_mean"], hp["p_std"], hp["loguniform_frac"],
                                       hp["sigma_min"], hp["sigma_max"])
        x = y + sigma[:, None] * torch.randn(y.shape, generator=gen)
        c_skip, c_out, c_in, c_noise = model.preconditioning(sigma)
        # EDM loss λ(σ)|D − y|² with λ = 1/c_out², written as the unit-weighted loss on the network output F.
        target = (y - c_skip[:, None] * x) / c_out[:, None]
        loss = (model.raw(c_in[:, None] * x, c_noise) - target).square().mean()
        optimise_step(opt, loss, params, ema_params, it, hp["ema_decay"])
        done = it + 1
        recent.append(loss.item())
        if (it + 1) % 1000 == 0:
            curve.append([it + 1, sum(recent) / len(recent)])
            log(f"edm: iter {it + 1}  loss {curve[-1][1]:.4f}  {time.perf_counter() - start:.0f}s")
            recent = []
    record = dict(
        hyper_parameters=hp, sigma_data=sigma_data, iterations_done=done,
        train_seconds=round(time.perf_counter() - start, 1), loss_curve=curve,
        final_train_loss=curve[-1][1] if curve else None,
    )
    return ema.eval(), record


def train_classifier(split: DigitsSplit, max_seconds: float | None = None, log=print, **overrides):
    """Train the digits MLP classifier (cross-entropy, Adam, light input noise); returns (model, record)."""
    hp = {**CLASSIFIER_DEFAULTS, **overrides}
    torch.manual_seed(hp["seed"])
    gen = torch.Generator().manual_seed(hp["seed"] + 1)
    data, labels = split.train.float(), split.train_labels
    model = DigitsClassifier(dim=data.shape[1], hidden=hp["hidden"], features=hp["features"],
                             dropout=hp["dropout"])
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    model.train()
    recent, curve, start, done = [], [], time.perf_counter(), 0
    for it in range(hp["iters"]):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            log(f"classifier: stopped by --seconds at iteration {it}")
            break
        for group in opt.param_groups:
            group["lr"] = hp["lr"] * _lr_factor(it, hp["iters"], 100, 0.05)
        idx = torch.randint(0, data.shape[0], (hp["batch"],), generator=gen)
        x = data[idx] + hp["input_noise"] * torch.randn(hp["batch"], data.shape[1], generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = it + 1
        recent.append(loss.item())
        if (it + 1) % 500 == 0:
            curve.append([it + 1, sum(recent) / len(recent)])
            log(f"classifier: iter {it + 1}  loss {curve[-1][1]:.4f}")
            recent = []
    record = dict(
        hyper_parameters=hp, iterations_done=done, train_seconds=round(time.perf_counter() - start, 1),
        loss_curve=curve, final_train_loss=curve[-1][1] if curve else None,
    )
    return model.eval().requires_grad_(False), record


@torch.no_grad()
def evaluate_classifier(model: DigitsClassifier, split: DigitsSplit) -> dict:
    """Accuracies and the FD_cls floors of the data itself (train vs test, half vs half of train)."""
    def accuracy(x, y):
        return float((model(x).argmax(1) == y).double().mean())

    f_train = classifier_features(split.train, model)
    f_test = classifier_features(split.test, model)
    half = f_train.shape[0] // 2
    return dict(
        train_accuracy=round(accuracy(split.train, split.train_labels), 4),
        test_accuracy=round(accuracy(split.test, split.test_labels), 4),
        fd_cls_train_vs_test=round(frechet_distance(*gaussian_stats(f_train), *gaussian_stats(f_test)), 4),
        fd_cls_train_vs_train=round(frechet_distance(*gaussian_stats(f_train), *gaussian_stats(f_train)), 6),
        fd_cls_half_train_vs_half_train=round(
            frechet_distance(*gaussian_stats(f_train[:half]), *gaussian_stats(f_train[half:])), 4),
    )


@torch.no_grad()
def evaluate_edm(model: EDMDenoiserMLP, split: DigitsSplit, classifier: DigitsClassifier, n: int = 2000,
                 steps: int = 32, seed: int = 1234) -> dict:
    """Denoising MSE on the test split per σ; sample quality (DPM++2M, ``steps`` Karras steps 0.002–80)."""
    gen = torch.Generator().manual_seed(seed)
    test = split.test.float()
    per_sigma = {}
    for s in EVAL_SIGMAS:
        x = test + s * torch.randn(test.shape, generator=gen)
        per_sigma[str(s)] = dict(
            mse_model=round(float((model(x, torch.full((len(x),), s)) - test).square().mean()), 5),
            mse_identity=round(float((x - test).square().mean()), 5),
            mse_mean=round(float((split.train.mean(0) - test).square().mean()), 5),
        )
    x_T = 80.0 * torch.randn(n, test.shape[1], generator=gen)
    start = time.perf_counter()
    samples = sample_dpmpp_2m(model, x_T, karras_sigmas(steps, 0.002, 80.0))
    seconds = time.perf_counter() - start
    stats = {name: gaussian_stats(classifier_features(v, classifier))
             for name, v in (("samples", samples), ("train", split.train), ("test", split.test))}
    return dict(
        denoise_mse_test=per_sigma,
        sampling=dict(sampler="dpmpp_2m", schedule=f"karras 0.002-80 rho=7, {steps} steps", n=n,
                      seed=seed, seconds=round(seconds, 2)),
        fd_cls_samples_vs_test=round(frechet_distance(*stats["samples"], *stats["test"]), 4),
        fd_cls_samples_vs_train=round(frechet_distance(*stats["samples"], *stats["train"]), 4),
        fd_cls_floor_train_vs_test=round(frechet_distance(*stats["train"], *stats["test"]), 4),
        swd_samples_vs_test=round(swd(samples, split.test), 4),
        swd_floor_train_vs_test=round(swd(split.train, split.test), 4),
        mean_nn_distance_samples_to_train=round(nearest_distance(samples, split.train), 4),
        mean_nn_distance_samples_to_test=round(nearest_distance(samples, split.test), 4),
        mean_nn_distance_test_to_train=round(nearest_distance(split.test, split.train), 4),
        sample_range=[round(float(samples.min()), 3), round(float(samples.max()), 3)],
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.testbeds.train",
                                description=__doc__.split("\n")[0])
    p.add_argument("--which", choices=["edm", "classifier", "all", "patches", "patch-unet", "patch-classifier",
                                        "zoo"], default="all")
    p.add_argument("--param", choices=["flow", "eps", "v", "edm"], default="flow",
                   help="zoo only: the parameterisation (testbeds.zoo; flow = rectified flow, eps/v = SD1 table)")
    p.add_argument("--size", type=int, default=16, help="zoo only: crop side (16 = 768-d, 32 = 3072-d)")
    p.add_argument("--iters", type=int, default=None, help="iterations (default: 15000 edm, 3000 classifier)")
    p.add_argument("--seconds", type=float, default=None, help="wall-time cap (breaks reproducibility)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    p.add_argument("--eval-samples", type=int, default=2000, help="samples for the EDM model's evaluation")
    p.add_argument("--eval-steps", type=int, default=32, help="DPM++2M Karras steps for that evaluation")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    if args.which == "zoo":
        from .zoo import main_zoo

        provenance = _provenance(argv)
        provenance["data"] = (f"testbeds.patches: 3x{args.size}x{args.size} crops of 14 photographs from scikit-learn "
                              "load_sample_images and skimage.data, train strip = columns [0, 70%) of each image")
        return main_zoo(args, argv, provenance)
    if args.which.startswith("patch"):
        from .train_patches import main_patches

        return main_patches(args, argv)
    split = load_digits_split(seed=0)
    common = {"seed": args.seed, **({"iters": args.iters} if args.iters else {})}

    if args.which in ("classifier", "all"):
        clf, record = train_classifier(split, max_seconds=args.seconds, **common)
        record["evaluation"] = evaluate_classifier(clf, split)
        print(json.dumps(record["evaluation"]))
        _save(clf, CLASSIFIER_FILE, args.out, dict(config=clf.config, **_provenance(argv), **record))
    if args.which in ("edm", "all"):
        model, record = train_edm(split, max_seconds=args.seconds, **common)
        has_own = (args.out / f"{CLASSIFIER_FILE}.json").exists()
        clf = load_classifier.__wrapped__(args.out if has_own else None)
        record["evaluation"] = evaluate_edm(model, split, clf, n=args.eval_samples, steps=args.eval_steps)
        print(json.dumps(record["evaluation"]))
        _save(model, EDM_MLP_FILE, args.out, dict(config=model.config, **_provenance(argv), **record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
