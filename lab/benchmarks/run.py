"""Benchmark harness: sampler × schedule × NFE × seeds on the CPU testbeds, written as JSON plus markdown.

    python -m schedule_lab.lab.benchmarks.run [--testbed exact-digits|edm-digits|all] [--nfe 5 10 20]
        [--seeds 0 1 2] [--n-samples N] [--out lab/benchmarks/results] [--preset readme]

Rows: our reference samplers (solvers.classic) and every registry sampler, each on the baseline schedules and every
registry scheduler; the diffusers peers (benchmarks.peers) on the same sigma lists; ComfyUI's samplers when
COMFYUI_PATH is set (benchmarks.comfy_worker). Metrics per row, mean ± std over seeds: NFE counted by a wrapper,
wall time, RMSE to the converged ODE (testbeds.reference, Heun-500 on Karras from the same x_T), mode agreement
(exact testbed), FD_cls and SWD against the data. Every table carries its floors. ``--preset readme`` makes the
README's first table: exact digits, NFE 5/10/20, diffusers DPMSolverMultistep and UniPC on karras and AYS.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
import time
from pathlib import Path

import torch

from . import methods as M
from .evaluate import evaluate
from .peers import PEERS
from .peers import available as diffusers_available
from .report import testbed_markdown, write_results
from .setups import SIGMA_RANGES, TESTBEDS, Testbed, common_args, load_testbed, pin_threads
from .tada_targets import summary_markdown, tada_targets, targets_markdown

__all__ = ["PRESETS", "main"]

SCHEMA = "schedule-lab/benchmark/v1"
DEFAULT_OUT = Path(__file__).resolve().parent / "results"

#: Detail values of the TADA preset: the default 1 (the paper's i.i.d. prior) and a factor 2 either side, plus 4
#: (the defaults study's plateau reaches it); chosen before this table was made, on other seeds (tada_defaults.py).
TADA_DETAILS = (0.5, 1, 2, 4)

#: Presets fix every choice that shapes a committed table.
PRESETS = {
    "readme": dict(testbed=["exact-digits"], nfe=[5, 10, 20], seeds=[0, 1, 2], n_samples=1000, samplers=[],
                   schedules=["karras", "ays"], peers=["diffusers.DPMSolverMultistep", "diffusers.UniPCMultistep"],
                   comfy_samplers=[], name="readme_table"),
    # docs/tada.md, "Benchmark against the peers": TADA at several detail values (order and n_aug at their defaults)
    # against the diffusers peers, both testbeds, plus the ablation n_aug=1 (no momentum variables: TADA's integrator
    # on the standard ODE).
    # NFE 6 and 7 are there for the "≤ 7 NFE" target.
    "tada": dict(testbed=["exact-digits", "edm-digits"], nfe=[5, 6, 7, 8, 10, 15, 20], seeds=[0, 1, 2],
                 n_samples=1000, samplers=[f"sl_tada(detail={d})" for d in TADA_DETAILS] + ["sl_tada(n_aug=1)"],
                 schedules=["karras", "ays"],
                 peers=["diffusers.DPMSolverMultistep", "diffusers.UniPCMultistep", "diffusers.EulerDiscrete"],
                 comfy_samplers=[], name="tada_table"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), help="a fixed configuration (readme: the README's table)")
    common_args(p, nfe=[5, 10, 20], testbeds=[*TESTBEDS, "all"], out=DEFAULT_OUT, n_samples=2000)
    p.set_defaults(testbed=["all"])
    p.add_argument("--samplers", nargs="*", help="k-diffusion-contract samplers (ours + registry); default all")
    p.add_argument("--schedules", nargs="*", help="schedules (baselines + registry); default all")
    p.add_argument("--peers", nargs="*", help=f"diffusers peers; default all of {', '.join(PEERS)}")
    p.add_argument("--comfy-samplers", nargs="*", help="ComfyUI samplers (needs COMFYUI_PATH); default "
                   "euler heun dpm_2 lms dpmpp_2m ipndm deis")
    p.add_argument("--sigma-range", choices=sorted(SIGMA_RANGES), default="sd1",
                   help="the ModelKind (sigma range) every scheduler gets; default sd1 = 0.0292-14.61")
    p.add_argument("--ref-steps", type=int, default=500, help="Heun steps of the converged reference")
    p.add_argument("--name", default="benchmark", help="output file stem (<out>/<name>.json and .md)")
    args = p.parse_args(argv)
    if args.preset:
        for key, value in PRESETS[args.preset].items():
            setattr(args, key, value)
    if "all" in args.testbed:
        args.testbed = list(TESTBEDS)
    from .comfy_worker import COMFY_SAMPLERS

    defaults = {"samplers": M.sampler_names(), "schedules": M.schedule_names(), "peers": list(PEERS),
                "comfy_samplers": list(COMFY_SAMPLERS)}
    valid = {**defaults, "testbed": list(TESTBEDS)}
    for key, default in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    for key, names in valid.items():
        if key == "comfy_samplers":
            continue  # checked by the worker against the ComfyUI checkout
        given = getattr(args, key)
        if key == "samplers":
            try:
                given = [M.parse_sampler(n)[0] for n in given]
            except ValueError as e:
                p.error(str(e))
        bad = [n for n in given if n not in names]
        if bad:
            p.error(f"unknown {key.replace('_', '-')} {', '.join(bad)}; valid: {', '.join(names)}")
    if any(n < 1 for n in args.nfe) or args.n_samples < 2 or args.threads < 1:
        p.error("--nfe values, --threads must be >= 1 and --n-samples >= 2")
    return args


def build_methods(bed: Testbed, args, log=print) -> list:
    methods = M.sampler_methods(bed.kind, args.samplers, args.schedules)
    if args.peers:
        reason = diffusers_available()
        if reason:
            log(f"  note: diffusers peers skipped ({reason})")
        else:
            methods += M.diffusers_methods(bed.kind, args.peers, args.schedules)
    return methods


def main(argv=None) -> int:
    args = parse_args(argv)
    pin_threads(args.threads)
    print(f"schedule-lab benchmark: torch {torch.__version__}, threads pinned to {torch.get_num_threads()}, "
          f"testbeds {' '.join(args.testbed)}, NFE {args.nfe}, seeds {args.seeds}, N = {args.n_samples}")
    started = time.perf_counter()
    results = []
    for name in args.testbed:
        t0 = time.perf_counter()
        print(f"[{name}] loading")
        bed = load_testbed(name, args.sigma_range)
        tb = evaluate(build_methods(bed, args), bed, args.nfe, args.seeds, n_samples=args.n_samples,
                      ref_steps=args.ref_steps, peers=args.peers, comfy_samplers=args.comfy_samplers,
                      schedules=args.schedules, sigma_range=args.sigma_range)
        tb["seconds"] = round(time.perf_counter() - t0, 1)
        targets = tada_targets(tb)
        if targets:
            tb["tada_targets"] = targets
        print(f"[{name}] done in {tb['seconds']} s")
        results.append(tb)
    total = round(time.perf_counter() - started, 1)
    command = "python -m schedule_lab.lab.benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "command": command.strip(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "python": platform.python_version(), "machine": platform.machine(), "seconds": total,
           "testbeds": results}
    refs = sum(tb["reference_seconds"] for tb in results)
    md = [f"<!-- generated by `{doc['command']}` in {total} s ({refs:.1f} s of it for the converged references, "
          f"~0 when they come from the disk cache) on {doc['machine']}, torch {doc['torch']}, {doc['threads']} "
          "thread(s); do not edit -->", ""]
    for tb in results:
        md.append(testbed_markdown(tb, _title(tb, args)))
        if tb.get("tada_targets"):
            md.append(targets_markdown(tb, tb["tada_targets"]))
    summary = summary_markdown(results, doc["command"]) if any(tb.get("tada_targets") for tb in results) else None
    write_results(args.out, args.name, "\n".join(md), doc, summary)
    return 0


def _title(tb: dict, args) -> str:
    if args.name == "readme_table":
        return (f"Exact digits denoiser: diffusers DPM-Solver++(2M) and UniPC on karras vs AYS "
                f"(σ {tb['sigma_min']:.3g}–{tb['sigma_max']:.3g}, N = {tb['n_samples']} × {len(tb['seeds'])} seeds)")
    if args.name == "tada_table":
        return (f"TADA vs diffusers DPM-Solver++(2M), UniPC, Euler on karras and AYS: {tb['name']} "
                f"(σ {tb['sigma_min']:.3g}–{tb['sigma_max']:.3g}, N = {tb['n_samples']} × {len(tb['seeds'])} seeds)")
    return f"{tb['name']} (σ {tb['sigma_min']:.3g}–{tb['sigma_max']:.3g}, N = {tb['n_samples']})"


if __name__ == "__main__":
    raise SystemExit(main())
