"""TADA's own per-step work against one forward of an SD1.5-architecture UNet (docs/tada.md, "Memory and per-step
overhead").

    python -m schedule_lab.lab.benchmarks.tada_overhead [--threads 1] [--repeats 3] [--out lab/benchmarks/results]

The UNet is diffusers' ``UNet2DConditionModel`` built from the SD1.5 configuration (block widths 320/640/1280/1280,
2 layers per block, cross-attention 768-d with 8 heads; random weights, no download), run in float32 on a 1×4×64×64
latent with a 77×768 text context — the cost of one model call at 512 px. TADA's own work is everything
``sample_tada`` does except the model call: it is measured by running the sampler with a *free* model (returns a
fixed, preallocated prediction), so the time is the float64 set-up (time grid, statistics, coefficient tables), the
initial-state draw and projection, and per step the model-input combination, the force and the Adams–Bashforth
update. Reported: the whole run divided by its steps at 10 and 30 steps (set-up included: the conservative figure
the target is judged on) and the marginal cost per step (T(30) − T(10)) / 20. Euler (solvers.classic) is timed the
same way for scale. Target: TADA's work per step ≤ 1 % of one UNet forward, both measured in the same process with
the same threads.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from schedule_lab.schedules.baseline import karras
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import catalogue

from .report import write_results
from .setups import pin_threads

__all__ = ["SD15_UNET", "main", "sampler_overhead", "unet_forward_seconds"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
TARGET = 0.01

#: The SD1.5 UNet configuration (diffusers' UNet2DConditionModel arguments), written out so nothing is downloaded.
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, lazy init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def unet_forward_seconds(repeats: int = 3, latent=(1, 4, 64, 64), seed: int = 0) -> tuple[float, int]:
    """Median seconds of one no-grad forward of the SD1.5-architecture UNet, and its parameter count."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    params = sum(p.numel() for p in unet.parameters())
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(latent, generator=gen)
    ctx = torch.randn(latent[0], 77, SD15_UNET["cross_attention_dim"], generator=gen)
    t = torch.tensor([500.0])

    @torch.no_grad()
    def forward():
        unet(x, t, encoder_hidden_states=ctx)

    return _median_seconds(forward, repeats), params


def sampler_overhead(sampler, steps: int, latent=(1, 4, 64, 64), repeats: int = 20, **options) -> float:
    """Median seconds of a whole ``sampler`` run of ``steps`` steps with a free model (a fixed prediction)."""
    gen = torch.Generator().manual_seed(0)
    sigmas = karras(steps, 0.0292, 14.61)
    x = torch.randn(latent, generator=gen) * float(sigmas[0])
    prediction = torch.randn(latent, generator=gen)

    def free_model(x_in, sigma, **_):
        return prediction

    return _median_seconds(lambda: sampler(free_model, x, sigmas, extra_args={"seed": 0}, disable=True, **options),
                           repeats)


def measure(threads: int = 1, repeats: int = 3, latent=(1, 4, 64, 64), log=print) -> dict:
    pin_threads(threads)
    steps_a, steps_b = 10, 30
    rows = {}
    # the bare catalogue functions, not catalogue.run: its call counter and callback would be part of the time
    sample_tada, sample_euler = catalogue.SAMPLERS["sl_tada"].fn, catalogue.SAMPLERS["euler"].fn
    for name, fn, opts in (("sl_tada (n_aug 2, order 2)", sample_tada, {"kind": ModelKind.vp()}),
                           ("sl_tada (n_aug 3, order 3)", sample_tada, {"kind": ModelKind.vp(), "n_aug": 3,
                                                                        "order": 3}),
                           ("euler (solvers.classic)", sample_euler, {})):
        ta = sampler_overhead(fn, steps_a, latent, **opts)
        tb = sampler_overhead(fn, steps_b, latent, **opts)
        marginal = (tb - ta) / (steps_b - steps_a)
        rows[name] = {"per_step_10_s": ta / steps_a, "per_step_30_s": tb / steps_b, "marginal_s": marginal}
        log(f"  {name}: {ta / steps_a * 1e6:.0f} µs/step at {steps_a} steps, {tb / steps_b * 1e6:.0f} at {steps_b}, "
            f"marginal {marginal * 1e6:.0f}")
    log("  building the SD1.5-architecture UNet (random weights) ...")
    unet_s, params = unet_forward_seconds(repeats, latent)
    log(f"  UNet forward: {unet_s:.2f} s ({params / 1e6:.0f} M parameters)")
    for r in rows.values():
        r["ratio_10"], r["ratio_30"] = r["per_step_10_s"] / unet_s, r["per_step_30_s"] / unet_s
        r["ratio_marginal"] = r["marginal_s"] / unet_s
    return {"threads": torch.get_num_threads(), "latent": list(latent), "unet_forward_s": unet_s,
            "unet_parameters": params, "samplers": rows, "torch": torch.__version__,
            "machine": platform.machine()}


def markdown(result: dict, command: str) -> str:
    unet = result["unet_forward_s"]
    lines = [f"<!-- generated by `{command}`; do not edit -->", "",
             "### TADA overhead per step vs one SD1.5-UNet forward", "",
             "UNet: diffusers UNet2DConditionModel with the SD1.5 configuration, "
             f"{result['unet_parameters'] / 1e6:.0f} M parameters, random weights, float32, latent "
             f"{'×'.join(map(str, result['latent']))} with a 77×768 context: **{unet:.2f} s** per forward "
             f"(median). torch {result['torch']}, {result['machine']}, "
             f"{result['threads']} thread(s). Sampler work is measured with a free model (a fixed prediction): "
             "whole run ÷ steps (set-up included) at 10 and 30 steps, and the marginal cost per step.", "",
             "| sampler | per step at 10 steps | ÷ UNet forward | per step at 30 steps | ÷ UNet forward | "
             f"marginal per step | target ≤ {TARGET:.0%} (at 10 steps) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in result["samplers"].items():
        ok = "–" if name.startswith("euler") else "met" if r["ratio_10"] <= TARGET else "missed"
        lines.append(f"| {name} | {r['per_step_10_s'] * 1e6:.0f} µs | {r['ratio_10']:.1e} | "
                     f"{r['per_step_30_s'] * 1e6:.0f} µs | {r['ratio_30']:.1e} | {r['marginal_s'] * 1e6:.0f} µs | "
                     f"{ok} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import sys

    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.tada_overhead",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="UNet forwards timed (median)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    command = "python -m schedule_lab.lab.benchmarks.tada_overhead " + " ".join(sys.argv[1:] if argv is None else argv)
    result = measure(args.threads, args.repeats)
    print(markdown(result, command.strip()))
    write_results(args.out, "tada_overhead", markdown(result, command.strip()), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
