"""Helpers shared by the testbed training scripts (train.py, train_patches.py): σ sampling, learning-rate schedule,
safetensors + JSON sidecar writer, provenance record."""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

__all__ = ["_lr_factor", "_provenance", "_save", "sample_training_sigmas"]


def sample_training_sigmas(n: int, gen: torch.Generator, p_mean: float, p_std: float, loguniform_frac: float,
                           sigma_min: float, sigma_max: float) -> torch.Tensor:
    """σ for training: ln σ ~ N(p_mean, p_std²) (EDM), except a fraction drawn log-uniform on [σ_min, σ_max]
    so that σ_max is in distribution (docs/testbeds.md, sigma-range pitfall)."""
    log_normal = p_mean + p_std * torch.randn(n, generator=gen)
    log_uniform = math.log(sigma_min) + torch.rand(n, generator=gen) * math.log(sigma_max / sigma_min)
    pick_uniform = torch.rand(n, generator=gen) < loguniform_frac
    return torch.where(pick_uniform, log_uniform, log_normal).exp()


def _lr_factor(it: int, iters: int, warmup: int, final_frac: float) -> float:
    """Linear warm-up, then cosine decay to ``final_frac`` of the peak."""
    if it < warmup:
        return (it + 1) / warmup
    progress = (it - warmup) / max(1, iters - warmup)
    return final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * progress))


def optimise_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list, ema_params: list, it: int,
                  ema_decay: float) -> None:
    """One optimiser step on ``loss``, then the EMA copy follows with the warm-up decay min(d, (1+it)/(10+it))."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        decay = min(ema_decay, (1 + it) / (10 + it))
        torch._foreach_lerp_(ema_params, params, 1 - decay)


def _save(model: torch.nn.Module, name: str, out: Path, sidecar: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"), metadata={"sidecar": f"{name}.json"})
    (out / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")


def _provenance(argv: list[str]) -> dict:
    return dict(
        command="python -m schedule_lab.lab.testbeds.train " + " ".join(argv),
        torch_version=torch.__version__, python_version=platform.python_version(),
        threads=torch.get_num_threads(), date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        data="scikit-learn load_digits (UCI, CC BY 4.0), testbeds.digits.load_digits_split(seed=0): "
             "stratified 1437 train / 360 test, pixels x/8 - 1",
    )
