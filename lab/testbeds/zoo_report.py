"""Markdown of a zoo model's training record (docs/zoo.md), from its bundled ``.json`` sidecar.

    python -m schedule_lab.lab.testbeds.zoo_report zoo_eps_768 [zoo_v_768 ...]

Prints the retrain command, the cost, the plateau check (the validation loss's relative drop over the last 2,000
iterations), the curve (every ``--every``-th row) and the per-σ denoising table, so the docs' numbers are the
record's, not hand copies.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"

__all__ = ["plateau", "report"]


def plateau(record: dict, window: int = 2000) -> tuple[float, float, float]:
    """(validation loss ``window`` iterations before the end, at the end, relative drop over that window)."""
    curve = record["validation_curve"]
    last_it, last = curve[-1]
    before = [v for it, v in curve if it <= last_it - window]
    if not before:
        raise ValueError(f"the record has fewer than {window} iterations of validation curve")
    return before[-1], last, (before[-1] - last) / before[-1]


def report(name: str, every: int = 2, weights=WEIGHTS) -> str:
    rec = json.loads((Path(weights) / f"{name}.json").read_text())
    cfg, hp = rec["config"], rec["hyper_parameters"]
    loss = {row[0]: row for row in rec["loss_curve"]}
    a, b, drop = plateau(rec)
    c, n = cfg.get("image_channels", 3), cfg.get("size", 16)
    lines = [f"### `{name}` — {cfg['parameterisation']}, {c}×{n}×{n} ({c * n * n}-d)", "",
             f"`{rec['command']}`: {rec['iterations_done']} iterations of batch {hp.get('batch')}, "
             f"{rec['train_cpu_seconds']:.0f} CPU-seconds ({rec['train_seconds'] / 60:.0f} min of wall time), "
             f"{rec['threads']} thread(s), sha256 `{rec['sha256'][:16]}…`. Validation: {rec['validation']}. "
             f"**Plateau check**: the last 2,000 iterations lowered it by {100 * drop:.1f} % ({a:.4f} → {b:.4f}).",
             "", "| iteration | train loss (mean since last row) | validation loss (EMA) | CPU s |",
             "|---|---|---|---|"]
    for i, (it, val) in enumerate(rec["validation_curve"]):
        if i % every and i != len(rec["validation_curve"]) - 1:
            continue
        row = loss.get(it)
        lines.append(f"| {it} | {row[1]:.4f} | {val:.4f} | {row[3]:.0f} |" if row else f"| {it} | – | {val:.4f} | – |")
    table = rec.get("denoise_mse_held_out", {})
    if table:
        sig = list(table)
        lines += ["", "Denoising MSE of D on 1000 held-out-strip crops (seed 99), beside the data mean:", "",
                  "| σ | " + " | ".join(sig) + " |", "|---" * (len(sig) + 1) + "|",
                  "| model | " + " | ".join(f"{table[s]['mse_model']:.5f}" for s in sig) + " |",
                  "| data mean | " + " | ".join(f"{table[s]['mse_mean']:.4f}" for s in sig) + " |"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.testbeds.zoo_report",
                                description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="+", help="bundled zoo model names, e.g. zoo_flow_768")
    p.add_argument("--every", type=int, default=2, help="print every N-th validation row (default 2)")
    args = p.parse_args(argv)
    for name in args.names:
        if not (WEIGHTS / f"{name}.json").exists():
            p.error(f"no record {name}.json in {WEIGHTS}; train it first (docs/zoo.md)")
        print(report(name, args.every))
    return 0


if __name__ == "__main__":
    sys.exit(main())
