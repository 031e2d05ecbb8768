"""The learned model zoo: the patch UNet's architecture in each parameterisation ComfyUI ships, on natural-image crops.

One network (``testbeds.unet.PatchUNet``'s conv UNet) behind the preconditioning of each ComfyUI model type, written
in the k-diffusion frame the samplers see (``model(x, sigma) -> denoised``):

=============  ===========================================  ==============================  ====================
parameter.     noisy input x (k-diffusion frame)            network output F / denoised     time input (c_noise)
=============  ===========================================  ==============================  ====================
``flow``       x = (1 − σ) x0 + σ ε, σ ∈ (0, 1]  (CONST)     F = v = ε − x0;  D = x − σ F     σ (ComfyUI: 1000 σ)
``eps``        x = x0 + σ ε on the SD1 table 0.0292–14.61    F = ε;  D = x − σ F, in c_in x   t/1000 (SD1 index)
``v``          same table (V_PREDICTION)                     F = v;  D = x/(σ²+1) − σ F/√(σ²+1)  t/1000
``edm``        x = x0 + σ ε, σ ∈ [0.002, 80]                 EDM Table 1 (as PatchUNet)      ln σ / 4
=============  ===========================================  ==============================  ====================

``c_in`` is 1 for flow (ComfyUI's CONST passes x as is) and 1/√(σ² + σ_d²) otherwise (σ_d = 1 for eps/v as in
ComfyUI, 0.5 for EDM). The flow model is conditioned on σ itself, so the SD3 shift and Flux's time shift are
sampling choices (``ModelKind.flow(shift)``), not properties of the weights: the same file is sampled at shift 1,
3 and with Flux's shift. Training targets are the standard ones (unit weight on F; flow: σ from a 50/50 mix of
uniform and logit-normal(0, 1), SD3; eps/v: the discrete index uniform over 0..999; EDM: as ``train_patches``).

Names: ``zoo_<parameterisation>_<dim>`` (``zoo_flow_768`` = 3×16×16). Retrain one with
``python -m schedule_lab.lab.testbeds.train --which zoo --param flow [--size 16] [--iters N]``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from functools import lru_cache

import torch

from schedule_lab.schedules.model_kind import ModelKind, scaled_linear_sigmas

from .models import WEIGHTS_DIR, load_bundled
from .patches import crops
from .train_common import _lr_factor, optimise_step, sample_training_sigmas
from .unet import PatchUNet

__all__ = ["PARAMETERISATIONS", "ZOO_DEFAULTS", "ZooUNet", "load_zoo", "train_zoo", "zoo_name"]

PARAMETERISATIONS = ("flow", "eps", "v", "edm")
#: Hyper-parameters per parameterisation (the same network as the bundled patch UNet: 16 channels, mult 1,2,2).
ZOO_DEFAULTS = dict(
    iters=12_000, batch=32, lr=2e-3, warmup=200, lr_final_frac=0.05, ema_decay=0.999, seed=0,
    channels=16, mult=(1, 2, 2), emb_dim=128, size=16, val_every=500,
    # flow: fraction of uniform σ (the rest logit-normal(0, 1)); edm: as train_patches
    uniform_frac=0.5, p_mean=-1.2, p_std=1.2, loguniform_frac=0.5, sigma_min=0.002, sigma_max=80.0,
)
_SD1_TABLE = scaled_linear_sigmas(0.00085, 0.012, 1000).to(torch.float32)
_SD1_LOG = _SD1_TABLE.log()
VAL_SIGMAS = {
    "flow": (0.02, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 1.0),
    "eps": (0.03, 0.1, 0.3, 0.6, 1.0, 2.0, 4.0, 8.0, 14.6),
    "v": (0.03, 0.1, 0.3, 0.6, 1.0, 2.0, 4.0, 8.0, 14.6),
    "edm": (0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0),
}


def zoo_name(parameterisation: str, size: int = 16, channels: int = 3) -> str:
    return f"zoo_{parameterisation}_{channels * size * size}"


def sd1_sigma_to_t(sigma: torch.Tensor) -> torch.Tensor:
    """ComfyUI's ModelSamplingDiscrete.timestep: the fractional index of σ on the SD1 table (log-σ interpolation)."""
    log_sigma = sigma.to(torch.float32).clamp_min(1e-10).log()
    dists = log_sigma[:, None] - _SD1_LOG[None, :]
    low = dists.ge(0).cumsum(dim=1).argmax(dim=1).clamp(max=len(_SD1_LOG) - 2)
    high = low + 1
    lo, hi = _SD1_LOG[low], _SD1_LOG[high]
    w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
    return (1 - w) * low + w * high


class ZooUNet(PatchUNet):
    """``PatchUNet`` behind ComfyUI's preconditioning for ``parameterisation`` (module docstring table)."""

    def __init__(self, parameterisation: str = "flow", **kwargs):
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(f"ZooUNet: parameterisation must be one of {PARAMETERISATIONS}, got {parameterisation!r}")
        if parameterisation in ("eps", "v", "flow"):
            kwargs["sigma_data"] = 1.0
        super().__init__(**kwargs)
        self.parameterisation = parameterisation
        self.config = dict(parameterisation=parameterisation, **self.config)
        if parameterisation == "flow":
            self.sigma_min, self.sigma_max = 1e-3, 1.0
        elif parameterisation == "edm":
            self.sigma_min, self.sigma_max = 0.002, 80.0
        else:
            self.sigma_min, self.sigma_max = float(_SD1_TABLE[0]), float(_SD1_TABLE[-1])

    def model_kind(self, shift: float = 1.0) -> ModelKind:
        """The pack's ModelKind for this model (``shift`` only for flow: 1, SD3's 3, ...)."""
        if self.parameterisation == "flow":
            return ModelKind.flow(shift)
        if self.parameterisation == "edm":
            return ModelKind.edm(0.002, 80.0, 0.5)
        return ModelKind.vp(self.parameterisation)

    def preconditioning(self, sigma: torch.Tensor):
        p = self.parameterisation
        if p == "edm":
            return super().preconditioning(sigma)
        one = torch.ones_like(sigma)
        if p == "flow":
            return one, -sigma, one, sigma
        c_in = 1 / (sigma.square() + 1).sqrt()
        c_noise = sd1_sigma_to_t(sigma).to(sigma.dtype) / 1000
        if p == "eps":
            return one, -sigma, c_in, c_noise
        return 1 / (sigma.square() + 1), -sigma * c_in, c_in, c_noise

    def noisy(self, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x at σ in this model's k-diffusion frame."""
        s = sigma[:, None, None, None]
        return (1 - s) * x0 + s * noise if self.parameterisation == "flow" else x0 + s * noise

    def loss(self, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Unit-weighted MSE on the network output F against its target (v, ε, v, EDM's F)."""
        x = self.noisy(x0, sigma, noise)
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma)
        b = (slice(None), None, None, None)
        if self.parameterisation == "flow":
            target = noise - x0
        elif self.parameterisation == "eps":
            target = noise
        else:
            target = (x0 - c_skip[b] * x) / c_out[b]
        return (self.raw(c_in[b] * x, c_noise) - target).square().mean()

    def training_sigmas(self, n: int, gen: torch.Generator, hp: dict) -> torch.Tensor:
        p = self.parameterisation
        if p == "flow":
            u = torch.rand(n, generator=gen)
            ln = torch.sigmoid(torch.randn(n, generator=gen))
            pick = torch.rand(n, generator=gen) < hp["uniform_frac"]
            return torch.where(pick, u, ln).clamp(1e-3, 1.0)
        if p == "edm":
            return sample_training_sigmas(n, gen, hp["p_mean"], hp["p_std"], hp["loguniform_frac"],
                                          hp["sigma_min"], hp["sigma_max"])
        return _SD1_TABLE[torch.randint(0, len(_SD1_TABLE), (n,), generator=gen)]

    @property
    def cache_key(self) -> str:
        if self._cache_key is None:
            from .models import content_key

            self._cache_key = content_key(self, f"zoo-{self.parameterisation}")
        return self._cache_key


def train_zoo(parameterisation: str, max_seconds: float | None = None, log=print, **overrides):
    """Train one zoo model on a seeded stream of train-strip crops; returns (EMA model, record).

    The validation curve (every ``val_every`` iterations) is the same unit loss of the EMA model on 512 fixed
    tuning-strip crops (seed 777) at the fixed σ of ``VAL_SIGMAS[parameterisation]``, fixed noise (seed 778)."""
    hp = {**ZOO_DEFAULTS, **overrides}
    torch.manual_seed(hp["seed"])
    gen = torch.Generator().manual_seed(hp["seed"] + 1)
    model = ZooUNet(parameterisation, channels=hp["channels"], mult=tuple(hp["mult"]), emb_dim=hp["emb_dim"],
                    fourier_seed=hp["seed"], size=hp["size"],
                    **({"sigma_data": 0.5} if parameterisation == "edm" else {}))
    ema = copy.deepcopy(model).requires_grad_(False)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    opt = torch.optim.Adam(params, lr=hp["lr"])
    val = crops("tuning", 512, seed=777, size=hp["size"]).x
    sig = VAL_SIGMAS[parameterisation]
    val_noise = torch.randn(len(sig), *val.shape, generator=torch.Generator().manual_seed(778))
    pool_size, pool = 8192, None
    recent, curve, val_curve, start, done = [], [], [], time.perf_counter(), 0
    cpu_start = time.process_time()
    for it in range(hp["iters"]):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            log(f"zoo {parameterisation}: stopped by --seconds at iteration {it}")
            break
        if it % (pool_size // hp["batch"]) == 0:
            pool = crops("train", pool_size, seed=0, generator=gen, size=hp["size"]).x
        lo = (it * hp["batch"]) % pool_size
        y = pool[lo:lo + hp["batch"]]
        for group in opt.param_groups:
            group["lr"] = hp["lr"] * _lr_factor(it, hp["iters"], hp["warmup"], hp["lr_final_frac"])
        sigma = model.training_sigmas(len(y), gen, hp)
        loss = model.loss(y, sigma, torch.randn(y.shape, generator=gen))
        optimise_step(opt, loss, params, ema_params, it, hp["ema_decay"])
        done = it + 1
        recent.append(loss.item())
        if done % hp["val_every"] == 0 or done == hp["iters"]:
            with torch.no_grad():
                v = [float(ema.loss(val, torch.full((len(val),), s), val_noise[k])) for k, s in enumerate(sig)]
            curve.append([done, round(sum(recent) / len(recent), 5), round(time.perf_counter() - start, 1),
                          round(time.process_time() - cpu_start, 1)])
            recent = []
            val_curve.append([done, round(sum(v) / len(v), 5)])
            log(f"zoo {parameterisation}: iter {done}  train {curve[-1][1]:.4f}  val(ema) {val_curve[-1][1]:.4f}  "
                f"{curve[-1][2]:.0f}s wall {curve[-1][3]:.0f}s cpu", flush=True)
    record = dict(hyper_parameters={**hp, "mult": list(hp["mult"])}, iterations_done=done,
                  train_seconds=round(time.perf_counter() - start, 1),
                  train_cpu_seconds=round(time.process_time() - cpu_start, 1),
                  loss_curve=curve, loss_curve_columns=["iteration", "mean train loss", "wall s", "cpu s"],
                  validation_curve=val_curve,
                  validation=f"unit loss on F of the EMA model on 512 fixed tuning-strip crops (seed 777) at sigma "
                             f"{list(sig)} (noise seed 778), mean over sigma")
    return ema.eval(), record


@torch.no_grad()
def zoo_denoise_table(model: ZooUNet, n: int = 1000, seed: int = 99) -> dict:
    """Per-σ MSE of D on held-out crops, beside the identity (x itself) and the data-mean baselines."""
    test = crops("held_out", n, seed=seed, size=model.shape[-1]).x
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for s in VAL_SIGMAS[model.parameterisation]:
        sigma = torch.full((n,), float(s))
        x = model.noisy(test, sigma, torch.randn(test.shape, generator=gen))
        out[str(s)] = dict(mse_model=round(float((model(x, sigma) - test).square().mean()), 5),
                           mse_mean=round(float((test.mean(0) - test).square().mean()), 5))
    return out


def main_zoo(args, argv, provenance: dict) -> int:
    from .train_common import _save

    overrides = {"seed": args.seed, "size": args.size, **({"iters": args.iters} if args.iters else {})}
    model, record = train_zoo(args.param, max_seconds=args.seconds, **overrides)
    record["denoise_mse_held_out"] = zoo_denoise_table(model)
    print(json.dumps(record["denoise_mse_held_out"]), flush=True)
    name = zoo_name(args.param, args.size)
    _save(model, name, args.out, dict(config=model.config, **provenance, **record))
    sidecar = json.loads((args.out / f"{name}.json").read_text())
    sidecar["sha256"] = hashlib.sha256((args.out / f"{name}.safetensors").read_bytes()).hexdigest()
    (args.out / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return 0


@lru_cache(maxsize=8)
def load_zoo(parameterisation: str = "flow", size: int = 16, weights_dir=None) -> ZooUNet:
    """A bundled zoo model (eval, float32, no grad), e.g. ``load_zoo("flow")`` = ``zoo_flow_768``. Cached."""
    name = zoo_name(parameterisation, size)
    return load_bundled(ZooUNet, name, weights_dir or WEIGHTS_DIR,
                        retrain=f"--which zoo --param {parameterisation} --size {size}")

