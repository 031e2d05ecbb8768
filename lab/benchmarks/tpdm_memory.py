"""Peak trainer memory per row-step at SD3-Medium's feature shape, before -> after (docs/tpdm.md, "Trainer").

    python -m schedule_lab.lab.benchmarks.tpdm_memory [--steps 4] [--rows 2] [--width 128] [--micro-batch 2]
        [--out lab/benchmarks/results]

One PPO update (π_old pass + 1 epoch) of the trainer on a synthetic rollout cache of T steps × B rows with SD3-Medium's
features: h1 and h2 as (B, 4096, 1536) tokens on a 64×64 grid, temb (B, 1536); the TPM is the official SD3-Medium
architecture (width 128). Each setting runs in its own process, which measures the features' cache plus everything
the update allocates:

- host: the rise of the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` after the
  TPM is built) over the resident set before the cache was made;
- accelerator: ``torch.cuda.max_memory_allocated`` when a CUDA device is used, else ``n/a`` (this machine has none:
  the "accelerator" tensors of the earlier trainer are then on the host and counted there).

Settings: ``before`` = the earlier trainer (fp32 cache where the model ran, log-probs in one TPM call over all T·B
rows); ``after`` = the CPU cache in fp16 and TPM calls of at most ``--micro-batch`` row-steps. The official code's
figure is derived, not run (its trainer needs diffusers' SD3 and a GPU): it keeps each step's CFG-combined features on
the CPU in fp16 (2·(3072·64·64 + 1536) bytes = 25.2 MB per row-step, plus the torch.stack copy of the whole cache
when a rollout ends), and its PPO moves a micro-batch's (rows × all steps) features to the GPU and runs the TPM step by
step, holding every step's fp16 input for conv1's backward: at least another 25.2 MB per row-step of the micro-batch
on the accelerator.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["OFFICIAL_HOST_PER_ROW_STEP", "main", "measure"]

GRID, HIDDEN = (64, 64), 1536
#: fp16 bytes of one row-step of the official cache: hidden_states_combined (3072, 64, 64) + temb (1536).
OFFICIAL_HOST_PER_ROW_STEP = 2 * (2 * HIDDEN * GRID[0] * GRID[1] + HIDDEN)
MB = 1e6


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(setting: str, steps: int, rows: int, width: int, micro_batch: int) -> dict:
    """One PPO update in this process; returns the measured peaks (bytes) for ``setting`` (before / after)."""
    import torch

    from schedule_lab.lab.tpdm import rl
    from schedule_lab.lab.tpdm import trainer as T
    from schedule_lab.solvers.tpdm.tpm import TimePredictor, TPMFeatures

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(0)
    tpm = TimePredictor(2 * HIDDEN, HIDDEN, width).to(device)
    cfg = T.TrainConfig(iterations=1, groups=rows // 2, k=2, ppo_epochs=1,
                        cache_dtype="float16" if setting == "after" else "float32",
                        micro_batch=micro_batch if setting == "after" else 0)
    optimizer = T.make_optimizer(tpm, cfg)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    base = _rss_kib("VmRSS") * 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # the rollout's cache as each trainer keeps it: the earlier one fp32 where the model ran, the new one on the CPU
    where = device if setting == "before" else torch.device("cpu")
    dtype = torch.float32 if setting == "before" else torch.float16
    g = torch.Generator().manual_seed(1)
    feats = []
    for _ in range(steps):  # made step by step, as a rollout does, in the cache's dtype
        h = [torch.randn(rows, GRID[0] * GRID[1], HIDDEN, generator=g, dtype=dtype).to(where) for _ in range(2)]
        feats.append(TPMFeatures(h[0], h[1], torch.randn(rows, HIDDEN, generator=g, dtype=dtype).to(where), GRID))
    cache = _rss_kib("VmHWM") * 1024 - base
    mask = torch.ones(steps, rows, dtype=torch.bool)
    ratios = torch.rand(steps, rows, generator=g) * 0.8 + 0.1
    ro = T.Rollout(feats, ratios, torch.zeros(steps, rows), mask, mask.sum(0), torch.zeros(rows, 1),
                   torch.zeros(rows, 1), torch.arange(rows // 2).repeat(2))
    adv = rl.rloo_advantages(torch.linspace(0.2, 1.0, rows, dtype=torch.float64), ro.groups)
    t0 = time.perf_counter()
    upd = T.ppo_update(tpm, list(tpm.parameters()), optimizer, ro, adv, cfg)
    seconds = time.perf_counter() - t0
    peak_host = _rss_kib("VmHWM") * 1024 - base
    peak_acc = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    return {"setting": setting, "steps": steps, "rows": rows, "row_steps": steps * rows, "width": width,
            "micro_batch": cfg.micro_batch, "cache_dtype": cfg.cache_dtype, "device": device.type,
            "cache_bytes": cache, "peak_host_bytes": peak_host, "peak_accelerator_bytes": peak_acc,
            "update_seconds": round(seconds, 2), "loss": upd["epochs"][0]["loss"]}


def _table(runs: list[dict], args) -> str:
    n = runs[0]["row_steps"]
    lines = [
        "# TPDM trainer memory at SD3-Medium's feature shape (synthetic features)",
        "",
        f"`python -m schedule_lab.lab.benchmarks.tpdm_memory --steps {args.steps} --rows {args.rows} --width "
        f"{args.width} --micro-batch {args.micro_batch}`: one PPO update (π_old pass + 1 epoch) on a cache of "
        f"{args.steps} steps × {args.rows} rows = {n} row-steps; h1, h2 (B, 4096, 1536) tokens, temb (B, 1536); "
        f"TPM width {args.width}. Peaks are the rise over the process before the cache was made, per row-step.",
        "",
        "| setting | cache | log-prob calls | peak host per row-step | peak accelerator per row-step | cache alone |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        acc = r["peak_accelerator_bytes"]
        acc = "n/a (no GPU)" if acc is None else f"{acc / n / MB:.1f} MB"
        calls = "one over all T·B rows" if r["micro_batch"] == 0 else f"≤ {r['micro_batch']} row-steps each"
        where = "where the model ran" if r["setting"] == "before" else "CPU"
        lines.append(f"| {r['setting']} | {r['cache_dtype']}, {where} | {calls} | "
                     f"{r['peak_host_bytes'] / n / MB:.1f} MB | {acc} | {r['cache_bytes'] / n / MB:.1f} MB |")
    off = OFFICIAL_HOST_PER_ROW_STEP / MB
    lines.append(f"| official (derived) | float16, CPU | per step, a micro-batch's rows × all steps held | "
                 f"≥ {off:.1f} MB (+ the stack copy at the rollout's end) | ≥ {off:.1f} MB per row-step of the "
                 f"micro-batch | {off:.1f} MB |")
    before, after = runs[0], runs[-1]
    lines += ["", f"before → after: {before['peak_host_bytes'] / n / MB:.1f} → {after['peak_host_bytes'] / n / MB:.1f}"
              f" MB per row-step on the host (this machine has no accelerator, so the earlier trainer's "
              "'accelerator' tensors are on the host here); the official trainer holds ≥ "
              f"{2 * off:.1f} MB per row-step of a micro-batch between its CPU cache and the GPU."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.tpdm_memory", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--steps", type=int, default=4, help="steps T of the synthetic rollout (default 4)")
    p.add_argument("--rows", type=int, default=2, help="rows B (trajectories), even (default 2)")
    p.add_argument("--width", type=int, default=128, help="TPM width (default 128, the official SD3 TPM)")
    p.add_argument("--micro-batch", type=int, default=2, help="row-steps per TPM call after (default 2)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--one", choices=("before", "after"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("@@" + json.dumps(measure(args.one, args.steps, args.rows, args.width, args.micro_batch)))
        return 0
    runs = []
    for setting in ("before", "after"):
        cmd = [sys.executable, "-m", "schedule_lab.lab.benchmarks.tpdm_memory", "--one", setting, "--steps",
               str(args.steps), "--rows", str(args.rows), "--width", str(args.width), "--micro-batch",
               str(args.micro_batch)]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0 or "@@" not in done.stdout:
            raise SystemExit(f"tpdm_memory: the {setting} run failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.split("@@", 1)[1]))
        print(json.dumps(runs[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    text = _table(runs, args)
    (args.out / "tpdm_memory.md").write_text(text)
    (args.out / "tpdm_memory.json").write_text(json.dumps({"runs": runs, "official_host_per_row_step":
                                                           OFFICIAL_HOST_PER_ROW_STEP}, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
