"""``schedule-lab``: the pack's standalone jobs (no ComfyUI needed).

    schedule-lab compare [--model patches|flow|digits] [--steps 5] [--samplers ...] [--schedulers ...] [--seed 0]
                         [--columns 8] [--n-samples 500] [--no-menu] [--out DIR]
    schedule-lab bench [run options]          (same as python -m schedule_lab.lab.benchmarks.run)
    schedule-lab tpdm train [options]         (same as python -m schedule_lab.lab.tpdm.train)

Also runnable as ``python -m schedule_lab.lab.cli compare``. Every compare cell is one ``solvers.catalogue.run``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="A/B grid, schedule plot and table on a bundled tiny model (natural-image "
                       "patch UNet by default)",
                       description="Every sampler × schedule on a bundled model: a labelled image grid (same seed "
                                   "per column), a log-sigma plot and a table of NFE, time and two distribution "
                                   "distances. Default: the natural-image patch UNet at 5 steps (FD_patch, sliced "
                                   "W2); --model flow: the zoo's rectified-flow model sampled as SD3 (shift 3) at 5 "
                                   "steps, same metrics; --model digits: the EDM MLP digits model at 10 steps "
                                   "(FD_cls, SWD). Beside the pack: the family's stock default and the menu's best "
                                   "pair (ComfyUI's best sampler + scheduler at that step count, from the cached "
                                   "menu benchmark), sampled by ComfyUI's own code when the host is set up "
                                   "(eval \"$(../shared/host/comfyui-host.sh)\").")
    p.add_argument("--model", choices=("patches", "flow", "digits"), default="patches",
                   help="patches: the natural-image 3×16×16 patch UNet (EDM, default); flow: the zoo's rectified-flow "
                        "model on the same crops, sampled as SD3 at shift 3 (stock default euler + simple); digits: "
                        "the 8×8 digits EDM MLP")
    p.add_argument("--steps", type=int, default=None,
                   help="sampler steps for every combination (default 5 on patches and flow, 10 on digits)")
    p.add_argument("--samplers", nargs="+", metavar="NAME",
                   help="samplers to compare (default: euler, dpmpp_2m and every registered sampler)")
    p.add_argument("--schedulers", nargs="+", metavar="NAME",
                   help="schedules to compare (default: karras, ays and every registered scheduler; on flow: simple, "
                        "karras and every registered scheduler)")
    p.add_argument("--preset", metavar="NAME", help="run a preset (solvers/presets.py, e.g. sl_few_steps) beside "
                   "the family's stock default (dpmpp_2m + karras; flow: euler + simple) at the preset's steps, "
                   "instead of every sampler and schedule")
    p.add_argument("--seed", type=int, default=0, help="first noise seed; grid column j uses seed + j")
    p.add_argument("--columns", type=int, default=8, help="grid columns (seeds), 1-64 (default 8)")
    p.add_argument("--n-samples", type=int, default=None,
                   help="samples for the distances (default 500 on patches, 1000 on digits)")
    p.add_argument("--sigma-range", choices=("model", "sd1"), default="model",
                   help="model: the model's EDM range 0.002-80 (default); sd1: 0.0292-14.61")
    p.add_argument("--no-menu", action="store_true", help="leave out the menu's best pair (by default it is sampled "
                   "by ComfyUI's own code when COMFYUI_PATH is set, else the output says it needs the host)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=Path("out/compare"), help="output folder (default ./out/compare)")


def _run_compare(args, parser) -> int:
    import torch

    from schedule_lab.solvers.catalogue import parse_sampler

    from . import compare as C

    comfy_pairs = []
    if args.preset is not None:
        from schedule_lab.solvers.presets import PRESETS

        if args.preset not in PRESETS:
            parser.error(f"unknown preset {args.preset!r}; presets: {', '.join(PRESETS)}")
        preset = PRESETS[args.preset]
        family = "flow" if args.model == "flow" else "edm"
        if family not in preset.families:
            print(f"note: preset {args.preset} was chosen for {', '.join(preset.families)} models, not {family} "
                  f"({preset.source}); it runs here beside the stock default so you can see how it does")
        stock_sampler, stock_schedule = C.STOCKS[args.model]
        pack_samplers, pack_schedules = C.valid_names()
        if preset.sampler in pack_samplers and preset.scheduler in pack_schedules:
            args.samplers = args.samplers or list(dict.fromkeys([preset.sampler, stock_sampler]))
            args.schedulers = args.schedulers or list(dict.fromkeys([preset.scheduler, stock_schedule]))
        else:  # a ComfyUI sampler or scheduler: the preset row is sampled by ComfyUI's own code
            comfy_pairs = [(preset.sampler, preset.scheduler, f"preset {args.preset}")]
            args.samplers = args.samplers or [stock_sampler]
            args.schedulers = args.schedulers or [stock_schedule]
        args.steps = preset.steps if args.steps is None else args.steps
    args.steps = C.default_steps(args.model) if args.steps is None else args.steps
    args.n_samples = (1000 if args.model == "digits" else 500) if args.n_samples is None else args.n_samples
    if args.model == "flow" and args.sigma_range != "model":
        parser.error("--sigma-range sd1 applies to the EDM models; --model flow is sampled as SD3 (shift 3)")
    if args.steps < 1 or args.steps > 1000:
        parser.error(f"--steps {args.steps} is out of range; use 1 to 1000")
    if not 1 <= args.columns <= 64:
        parser.error(f"--columns {args.columns} is out of range; use 1 to 64")
    if args.n_samples < 2 or args.threads < 1:
        parser.error("--n-samples must be >= 2 and --threads >= 1")
    valid_samplers, valid_schedules = C.valid_names()
    samplers = args.samplers or C.default_samplers(args.model)
    schedules = args.schedulers or C.default_schedules(args.model)
    try:
        bases = [parse_sampler(n)[0] for n in samplers]
    except ValueError as e:
        parser.error(str(e))
    for what, names, valid in (("sampler", bases, valid_samplers), ("scheduler", schedules, valid_schedules)):
        bad = [n for n in names if n not in valid]
        if bad:
            parser.error(f"unknown {what} {', '.join(map(repr, bad))}; valid {what}s: {', '.join(valid)}")
    torch.set_num_threads(args.threads)
    print(f"torch threads pinned to {torch.get_num_threads()}")
    C.compare(args.steps, samplers, schedules, args.seed, args.columns, args.n_samples, args.out,
              args.sigma_range, model=args.model, menu=not args.no_menu, comfy_pairs=comfy_pairs)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="schedule-lab", description="Schedule Lab's standalone jobs (no ComfyUI "
                                     "needed): compare (A/B grid on a bundled tiny model) and bench (the harness).")
    sub = parser.add_subparsers(dest="command", metavar="{compare,bench,tpdm}")
    _compare_parser(sub)
    sub.add_parser("bench", help="the benchmark harness (python -m schedule_lab.lab.benchmarks.run --help)",
                   add_help=False)
    sub.add_parser("tpdm", help="tpdm train: train a TPDM time predictor (schedule-lab tpdm train --help)",
                   add_help=False)
    if argv[:2] == ["tpdm", "train"]:
        from ..tpdm.train import main as tpdm_train

        return tpdm_train(argv[2:])
    if argv[:1] == ["tpdm"]:
        parser.error("tpdm: the subcommand is 'train' (schedule-lab tpdm train --help)")
    if argv[:1] == ["bench"]:
        from ..benchmarks.run import main as bench

        return bench(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "compare":
        return _run_compare(args, sub.choices["compare"])
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
