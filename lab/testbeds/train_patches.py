"""Training of the natural-image testbed models (``testbeds.unet``) on crops of the ``train`` strips.

    python -m schedule_lab.lab.testbeds.train --which patches [--iters N] [--seconds S] [--out DIR]

Fixed seeds, 1 thread, fixed iteration counts (``--seconds`` is only a wall-time safety net; the record says how
many iterations were done). The JSON sidecar keeps the hyper-parameters, the command, the loss curve (train
loss every 250 iterations, validation loss on 512 fixed ``tuning``-strip crops at 8 fixed σ every 500) and the
per-σ denoising error on held-out crops.
"""
from __future__ import annotations

import copy
import json
import time

import torch

from .patches import SOURCES, crops
from .train_common import _lr_factor, _provenance, _save, optimise_step, sample_training_sigmas
from .unet import PATCH_CLASSIFIER_FILE, PATCH_UNET_FILE, PatchClassifier, PatchUNet

__all__ = ["PATCH_CLASSIFIER_DEFAULTS", "PATCH_UNET_DEFAULTS", "main_patches", "train_patch_classifier",
           "train_patch_unet"]

PATCH_UNET_DEFAULTS = dict(
    iters=1_600, batch=32, lr=2e-3, warmup=100, lr_final_frac=0.05, ema_decay=0.999, seed=0,
    p_mean=-1.2, p_std=1.2, loguniform_frac=0.5, sigma_min=0.002, sigma_max=80.0,
    channels=16, mult=(1, 2, 2), emb_dim=128, sigma_data=0.5,
)
PATCH_CLASSIFIER_DEFAULTS = dict(iters=800, batch=64, lr=2e-3, weight_decay=1e-4, input_noise=0.05, seed=0,
                                 width=32, features=128, dropout=0.1)
VAL_SIGMAS = (0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0)


def _edm_loss(model: PatchUNet, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """EDM loss λ(σ)|D − y|², λ = 1/c_out², written as the unit-weighted loss on the network output F."""
    x = y + sigma[:, None, None, None] * noise
    c_skip, c_out, c_in, c_noise = model.preconditioning(sigma)
    target = (y - c_skip[:, None, None, None] * x) / c_out[:, None, None, None]
    return (model.raw(c_in[:, None, None, None] * x, c_noise) - target).square().mean()


def train_patch_unet(max_seconds: float | None = None, log=print, **overrides):
    """Train the UNet on a seeded stream of train-strip crops; returns (EMA model, record)."""
    hp = {**PATCH_UNET_DEFAULTS, **overrides}
    torch.manual_seed(hp["seed"])
    gen = torch.Generator().manual_seed(hp["seed"] + 1)
    model = PatchUNet(channels=hp["channels"], mult=tuple(hp["mult"]), emb_dim=hp["emb_dim"],
                      sigma_data=hp["sigma_data"], fourier_seed=hp["seed"])
    ema = copy.deepcopy(model).requires_grad_(False)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    opt = torch.optim.Adam(params, lr=hp["lr"])
    val = crops("tuning", 512, seed=777).x
    val_gen = torch.Generator().manual_seed(778)
    val_noise = torch.randn(len(VAL_SIGMAS), *val.shape, generator=val_gen)
    pool_size = 8192
    pool = None
    recent, curve, val_curve, start, done = [], [], [], time.perf_counter(), 0
    cpu_start = time.process_time()
    for it in range(hp["iters"]):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            log(f"patch-unet: stopped by --seconds at iteration {it}")
            break
        if it % (pool_size // hp["batch"]) == 0:  # a fresh seeded pool of crops every 8192 samples
            pool = crops("train", pool_size, seed=0, generator=gen).x
        lo = (it * hp["batch"]) % pool_size
        y = pool[lo:lo + hp["batch"]]
        for group in opt.param_groups:
            group["lr"] = hp["lr"] * _lr_factor(it, hp["iters"], hp["warmup"], hp["lr_final_frac"])
        sigma = sample_training_sigmas(hp["batch"], gen, hp["p_mean"], hp["p_std"], hp["loguniform_frac"],
                                       hp["sigma_min"], hp["sigma_max"])
        loss = _edm_loss(model, y, sigma, torch.randn(y.shape, generator=gen))
        optimise_step(opt, loss, params, ema_params, it, hp["ema_decay"])
        done = it + 1
        recent.append(loss.item())
        if done % 250 == 0:
            curve.append([done, round(sum(recent) / len(recent), 5), round(time.perf_counter() - start, 1)])
            recent = []
        if done % 250 == 0 or done == hp["iters"]:
            with torch.no_grad():
                v = [float(_edm_loss(ema, val, torch.full((len(val),), s), val_noise[k]))
                     for k, s in enumerate(VAL_SIGMAS)]
            val_curve.append([done, round(sum(v) / len(v), 5)])
            log(f"patch-unet: iter {done}  train {curve[-1][1] if curve else float('nan'):.4f}  "
                f"val(ema) {val_curve[-1][1]:.4f}  {time.perf_counter() - start:.0f}s", flush=True)
    record = dict(hyper_parameters={**hp, "mult": list(hp["mult"])}, iterations_done=done,
                  train_seconds=round(time.perf_counter() - start, 1),
                  train_cpu_seconds=round(time.process_time() - cpu_start, 1), loss_curve=curve,
                  validation_curve=val_curve, validation="EDM-weighted loss of the EMA model on 512 fixed "
                  f"tuning-strip crops (seed 777) at sigma {list(VAL_SIGMAS)}, mean over sigma")
    return ema.eval(), record


def train_patch_classifier(max_seconds: float | None = None, log=print, **overrides):
    """Train the source classifier on train-strip crops (light input noise); returns (model, record)."""
    hp = {**PATCH_CLASSIFIER_DEFAULTS, **overrides}
    torch.manual_seed(hp["seed"])
    gen = torch.Generator().manual_seed(hp["seed"] + 1)
    model = PatchClassifier(classes=len(SOURCES), width=hp["width"], features=hp["features"],
                            dropout=hp["dropout"])
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    model.train()
    recent, curve, start, done = [], [], time.perf_counter(), 0
    pool_size = 8192
    for it in range(hp["iters"]):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            log(f"patch-classifier: stopped by --seconds at iteration {it}")
            break
        if it % (pool_size // hp["batch"]) == 0:
            pool = crops("train", pool_size, seed=0, generator=gen)
        lo = (it * hp["batch"]) % pool_size
        x, y = pool.x[lo:lo + hp["batch"]], pool.labels[lo:lo + hp["batch"]]
        for group in opt.param_groups:
            group["lr"] = hp["lr"] * _lr_factor(it, hp["iters"], 100, 0.05)
        x = x + hp["input_noise"] * torch.randn(x.shape, generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = it + 1
        recent.append(loss.item())
        if done % 250 == 0:
            curve.append([done, round(sum(recent) / len(recent), 5)])
            log(f"patch-classifier: iter {done}  loss {curve[-1][1]:.4f}", flush=True)
            recent = []
    model.eval().requires_grad_(False)
    with torch.no_grad():
        acc = {}
        for split in ("train", "tuning", "held_out"):
            c = crops(split, 2000, seed=4242)
            acc[split] = round(float((model(c.x).argmax(1) == c.labels).double().mean()), 4)
    record = dict(hyper_parameters=hp, iterations_done=done, train_seconds=round(time.perf_counter() - start, 1),
                  loss_curve=curve, accuracy_2000_crops_seed_4242=acc)
    return model, record


@torch.no_grad()
def denoise_table(model: PatchUNet, n: int = 1000, seed: int = 99) -> dict:
    """Per-σ MSE of the model on held-out crops, next to the identity and the data-mean baselines."""
    test = crops("held_out", n, seed=seed).x
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for s in (0.002, 0.02, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0):
        x = test + s * torch.randn(test.shape, generator=gen)
        out[str(s)] = dict(mse_model=round(float((model(x, torch.full((n,), s)) - test).square().mean()), 5),
                           mse_identity=round(float((x - test).square().mean()), 5),
                           mse_mean=round(float((test.mean(0) - test).square().mean()), 5))
    return out


def main_patches(args, argv) -> int:
    provenance = _provenance(argv)
    provenance["data"] = ("testbeds.patches: 3x16x16 crops of 14 photographs from scikit-learn "
                          "load_sample_images and skimage.data, shorter side 128 px, train strip = columns "
                          "[0, 70%) of each image")
    common = {"seed": args.seed, **({"iters": args.iters} if args.iters else {})}
    if args.which in ("patches", "patch-classifier"):
        clf, record = train_patch_classifier(max_seconds=args.seconds, **common)
        print(json.dumps(record["accuracy_2000_crops_seed_4242"]), flush=True)
        _save(clf, PATCH_CLASSIFIER_FILE, args.out, dict(config=clf.config, **provenance, **record))
    if args.which in ("patches", "patch-unet"):
        model, record = train_patch_unet(max_seconds=args.seconds, **common)
        record["denoise_mse_held_out"] = denoise_table(model)
        print(json.dumps(record["denoise_mse_held_out"]), flush=True)
        _save(model, PATCH_UNET_FILE, args.out, dict(config=model.config, **provenance, **record))
    return 0


