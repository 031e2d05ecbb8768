"""``schedule-lab tpdm train``: train a TPDM time predictor on a bundled trained testbed model (CPU, or torchrun).

    schedule-lab tpdm train [--testbed edm-digits] [--iterations 300] [--groups 8] [--k 4] [--lr 5e-4]
        [--gamma 0.85] [--reward endpoint|confidence|MODULE:FUNCTION] [--width 16] [--out DIR] [--resume CKPT]
        [--export FILE.safetensors]
    torchrun --nproc_per_node 2 -m schedule_lab.benchmarks.tpdm_train ...   (data-parallel, gloo on CPU)

The library API is ``solvers.tpdm.train.train`` (any model, tap and scorer; docs/tpdm.md, trainer section). This
command wires it to a testbed: the model, its feature tap (``testbeds.taps``), a TPM sized from the tap
(``tpm_for_features``), a per-image score (``testbeds.rewards`` or a user function ``scorer(x0, info) -> (B,)``),
the SD1 sigma range of the benchmarks. ``--export`` writes the TPM alone (``save_tpm``, loadable by Load TPM) plus a
JSON record next to it (configuration, the command, the training curve, timings).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

__all__ = ["build_parser", "main"]

TESTBEDS = ("edm-digits",)


def build_parser(prog: str = "schedule-lab tpdm train") -> argparse.ArgumentParser:
    from ..solvers.tpdm.train import TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(prog=prog, description="Train a TPDM time predictor with RLOO-PPO on cached features "
                                "(docs/tpdm.md) on a bundled trained testbed model.")
    p.add_argument("--testbed", choices=TESTBEDS, default="edm-digits", help="the frozen model (default edm-digits)")
    p.add_argument("--iterations", type=int, default=300, help="rollout batches (default 300)")
    p.add_argument("--groups", type=int, default=d.groups, help=f"conditions per batch per process ({d.groups})")
    p.add_argument("--k", type=int, default=d.k, help=f"rollouts per condition, >= 2 ({d.k})")
    p.add_argument("--ppo-epochs", type=int, default=d.ppo_epochs, help=f"PPO epochs per batch ({d.ppo_epochs})")
    p.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate (default 5e-4)")
    p.add_argument("--clip", type=float, default=d.clip, help=f"PPO clip range ε ({d.clip})")
    p.add_argument("--gamma", type=float, default=0.85, help="step discount γ of R = s(1-γ^N)/(N(1-γ)) (0.85)")
    p.add_argument("--reward", default="endpoint",
                   help="endpoint (exp(-RMSE to the converged ODE / tau)), confidence (classifier top probability) "
                        "or MODULE:FUNCTION, a scorer(x0, info) -> (B,) positive scores (default endpoint)")
    p.add_argument("--tau", type=float, default=0.1, help="RMSE scale of the endpoint score (default 0.1)")
    p.add_argument("--width", type=int, default=16, help="TPM conv width (default 16)")
    p.add_argument("--min-sigma", type=float, default=None, help="stop level (default: the range's sigma_min)")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help=f"step cap per image ({d.max_steps})")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPM init, the noise and the policy draws")
    p.add_argument("--save-every", type=int, default=25, help="checkpoint period in iterations (default 25)")
    p.add_argument("--out", type=Path, default=Path("out/tpdm_train"), help="checkpoint folder")
    p.add_argument("--resume", type=Path, default=None, help="continue from this checkpoint (same options)")
    p.add_argument("--export", type=Path, default=None, help="write the trained TPM (.safetensors) + a JSON record")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (a line per 10 iterations instead)")
    return p


def _scorer(name: str, model, tau: float):
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise SystemExit(f"--reward {name!r}: cannot import {attr!r} from {module!r} ({exc}); pass "
                             "MODULE:FUNCTION of an importable module") from exc
    from ..testbeds.rewards import testbed_scorer

    try:
        return testbed_scorer(name, model, tau)
    except ValueError as exc:
        raise SystemExit(f"--reward: {exc}") from exc


def _setup(args):
    import torch

    from ..schedules.model_kind import ModelKind
    from ..solvers.tpdm.tpm import tpm_for_features
    from ..testbeds.models import load_edm_mlp
    from ..testbeds.taps import tap_for

    model = load_edm_mlp()
    kind = ModelKind.vp("eps")  # the benchmarks' SD1 range 0.0292-14.61 (benchmarks.setups)
    tap = tap_for(model)
    with torch.no_grad():
        model(torch.zeros(1, 64), torch.ones(1))
    torch.manual_seed(args.seed)
    tpm = tpm_for_features(tap.read(), width=args.width)
    return model, kind, tap, tpm, (64,)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import torch.distributed as dist

    from ..solvers.tpdm.official import save_tpm
    from ..solvers.tpdm.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    model, kind, tap, tpm, shape = _setup(args)
    try:
        cfg = TrainConfig(iterations=args.iterations, groups=args.groups, k=args.k, ppo_epochs=args.ppo_epochs,
                          clip=args.clip, lr=args.lr, gamma=args.gamma, sigma_start=kind.sigma_max,
                          min_sigma=args.min_sigma if args.min_sigma is not None else kind.sigma_min,
                          max_steps=args.max_steps, seed=args.seed, save_every=args.save_every)
    except ValueError as exc:
        raise SystemExit(f"schedule-lab tpdm train: {exc}") from exc
    scorer = _scorer(args.reward, model, args.tau)

    def log(entry):
        if args.no_progress and entry["iteration"] % 10 == 0:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}), flush=True)

    if rank == 0:
        print(f"torch threads {torch.get_num_threads()}, world {world}, batch {cfg.groups * cfg.k} per process, "
              f"TPM {sum(p.numel() for p in tpm.parameters())} parameters", flush=True)
    t0 = time.perf_counter()
    history = train(model, tap.read, tpm, scorer, cfg, shape, kind=kind, out=args.out, resume=args.resume,
                    progress=not args.no_progress, log=log)
    seconds = time.perf_counter() - t0
    if args.export is not None and rank == 0:
        command = "schedule-lab tpdm train " + " ".join(shlex.quote(a) for a in argv)
        path = save_tpm(args.export, tpm, family=f"testbed:{args.testbed}",
                        extra={"kind": "vp-eps", "sigma_start": cfg.sigma_start, "min_sigma": cfg.min_sigma,
                               "max_steps": cfg.max_steps})
        last = history[-10:]
        record = {
            "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size,
            "testbed": args.testbed, "tpm_config": tpm.config,
            "parameters": sum(p.numel() for p in tpm.parameters()),
            "sampler": {"kind": "ModelKind.vp('eps') (SD1 range)", "sigma_start": cfg.sigma_start,
                        "min_sigma": cfg.min_sigma, "max_steps": cfg.max_steps, "final_step": cfg.final_step},
            "train_config": {k: v for k, v in vars(cfg).items()}, "reward": args.reward, "tau": args.tau,
            "world_size": world, "threads_per_process": args.threads,
            "command": command, "seconds_this_call": round(seconds, 1),
            "seconds_total": round(sum(e["seconds"] for e in history), 1),
            "cpu_seconds_total": round(sum(e.get("cpu_seconds", 0.0) for e in history), 1),
            "torch": torch.__version__, "python": platform.python_version(),
            "summary": {"first10_steps_mean": sum(e["steps_mean"] for e in history[:10]) / min(10, len(history)),
                        "last10_steps_mean": sum(e["steps_mean"] for e in last) / len(last),
                        "first10_score_mean": sum(e["score_mean"] for e in history[:10]) / min(10, len(history)),
                        "last10_score_mean": sum(e["score_mean"] for e in last) / len(last),
                        "skipped_batches": sum(e["skipped"] for e in history)},
            "history": history,
        }
        path.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {path} ({record['bytes']} bytes) and {path.with_suffix('.json').name}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
