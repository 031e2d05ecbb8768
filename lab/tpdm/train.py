"""``schedule-lab tpdm train``: train a TPDM time predictor on a bundled trained testbed model (CPU, or torchrun).

    schedule-lab tpdm train [--testbed edm-digits|patch-unet] [--iterations 300] [--groups 8] [--k 4] [--lr 5e-4]
        [--gamma 0.85] [--reward endpoint|endpoint-features|confidence|MODULE:FUNCTION] [--tau T] [--width 16]
        [--out DIR] [--resume CKPT] [--export FILE.safetensors]
    torchrun --nproc_per_node 2 -m schedule_lab.lab.tpdm.train ...   (data-parallel, gloo on CPU)

The library API is ``lab.tpdm.trainer.train`` (any model, tap and scorer; docs/tpdm.md, trainer section). This
command wires it to a testbed: the model, its feature tap (``testbeds.taps``), a TPM sized from the tap
(``tpm_for_features``), a per-image score (``testbeds.rewards`` or a user function ``scorer(x0, info) -> (B,)``),
and the testbed's sigma range (``TESTBED_SETUPS``). ``--export`` writes the TPM alone (``save_tpm``, loadable by
Load TPM) plus a JSON record next to it (configuration, the command, the training curve, timings).
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

#: testbed → (sigma range the TPM is trained on, default reward, default τ, what the range is).
#: edm-digits: the SD1 range of the digits benchmarks; patch-unet: its own EDM range 0.002–80, the one the defaults
#: suite (testbeds.suite.kind) and ``schedule-lab compare`` sample it over, with the endpoint error measured in the
#: patch classifier's features (FD_patch's space; τ = 1.0 and γ = 0.85 by the rule in docs/tpdm.md).
TESTBED_SETUPS = {
    "edm-digits": ("vp-eps", "endpoint", 0.1, "ModelKind.vp('eps') (SD1 range)"),
    "patch-unet": ("edm", "endpoint-features", 1.0, "ModelKind.edm(0.002, 80) (the model's own range)"),
}
TESTBEDS = tuple(TESTBED_SETUPS)


def build_parser(prog: str = "schedule-lab tpdm train") -> argparse.ArgumentParser:
    from .trainer import TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(prog=prog, description="Train a TPDM time predictor with RLOO-PPO on cached features "
                                "(docs/tpdm.md) on a bundled trained testbed model.")
    p.add_argument("--testbed", choices=TESTBEDS, default="edm-digits",
                   help="the frozen model: edm-digits (the EDM MLP, 64-d) or patch-unet (the natural-image UNet, "
                        "3x16x16) (default edm-digits)")
    p.add_argument("--iterations", type=int, default=300, help="rollout batches (default 300)")
    p.add_argument("--groups", type=int, default=d.groups, help=f"conditions per batch per process ({d.groups})")
    p.add_argument("--k", type=int, default=d.k, help=f"rollouts per condition, >= 2 ({d.k})")
    p.add_argument("--ppo-epochs", type=int, default=d.ppo_epochs, help=f"PPO epochs per batch ({d.ppo_epochs})")
    p.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate (default 5e-4)")
    p.add_argument("--clip", type=float, default=d.clip, help=f"PPO clip range ε ({d.clip})")
    p.add_argument("--gamma", type=float, default=0.85, help="step discount γ of R = s(1-γ^N)/(N(1-γ)) (0.85)")
    p.add_argument("--reward", default=None,
                   help="endpoint (exp(-RMSE to the converged ODE / tau)), endpoint-features (the same error in the "
                        "testbed classifier's features), confidence (classifier top probability) or "
                        "MODULE:FUNCTION, a scorer(x0, info) -> (B,) positive scores (default: endpoint on "
                        "edm-digits, endpoint-features on patch-unet)")
    p.add_argument("--tau", type=float, default=None,
                   help="error scale of the endpoint scores (default 0.1 on edm-digits, 1.0 on patch-unet)")
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


def tensors_sha256(path) -> str:
    """sha256 over a ``.safetensors`` file's tensors (sorted names, dtype, shape, bytes): equal for equal weights,
    whereas the file's own sha256 also depends on the order safetensors writes the metadata in, which varies."""
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for name, t in sorted(load_file(str(path)).items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode() + t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _scorer(name: str, model, tau: float, classifier=None):
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise SystemExit(f"--reward {name!r}: cannot import {attr!r} from {module!r} ({exc}); pass "
                             "MODULE:FUNCTION of an importable module") from exc
    from ..testbeds.rewards import testbed_scorer

    try:
        return testbed_scorer(name, model, tau, classifier=classifier)
    except ValueError as exc:
        raise SystemExit(f"--reward: {exc}") from exc


def testbed_model(testbed: str):
    """(model, kind, sample shape, classifier) of a ``--testbed``: the frozen denoiser, the ModelKind whose range
    the TPM is trained on, one sample's shape and the testbed's feature classifier."""
    from schedule_lab.schedules.model_kind import ModelKind

    if testbed == "patch-unet":
        from ..testbeds.unet import load_patch_classifier, load_patch_unet

        model = load_patch_unet()
        return model, ModelKind.edm(0.002, 80.0, model.sigma_data), (3, 16, 16), load_patch_classifier()
    from ..testbeds.models import load_classifier, load_edm_mlp

    return load_edm_mlp(), ModelKind.vp("eps"), (64,), load_classifier()  # the benchmarks' SD1 range 0.0292-14.61


def _setup(args):
    import torch

    from schedule_lab.solvers.tpdm.tpm import tpm_for_features

    from ..testbeds.taps import tap_for

    model, kind, shape, classifier = testbed_model(args.testbed)
    tap = tap_for(model)
    with torch.no_grad():
        model(torch.zeros(1, *shape), torch.ones(1))
    torch.manual_seed(args.seed)
    tpm = tpm_for_features(tap.read(), width=args.width)
    return model, kind, tap, tpm, shape, classifier


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import torch.distributed as dist

    from schedule_lab.solvers.tpdm.official import save_tpm

    from .trainer import TrainConfig, train

    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    kind_name, reward, tau, kind_note = TESTBED_SETUPS[args.testbed]
    args.reward = reward if args.reward is None else args.reward
    args.tau = tau if args.tau is None else args.tau
    model, kind, tap, tpm, shape, classifier = _setup(args)
    try:
        cfg = TrainConfig(iterations=args.iterations, groups=args.groups, k=args.k, ppo_epochs=args.ppo_epochs,
                          clip=args.clip, lr=args.lr, gamma=args.gamma, sigma_start=kind.sigma_max,
                          min_sigma=args.min_sigma if args.min_sigma is not None else kind.sigma_min,
                          max_steps=args.max_steps, seed=args.seed, save_every=args.save_every)
    except ValueError as exc:
        raise SystemExit(f"schedule-lab tpdm train: {exc}") from exc
    scorer = _scorer(args.reward, model, args.tau, classifier)

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
                        extra={"kind": kind_name, "sigma_start": cfg.sigma_start, "min_sigma": cfg.min_sigma,
                               "max_steps": cfg.max_steps})
        last = history[-10:]
        record = {
            "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size,
            "tensors_sha256": tensors_sha256(path),
            "testbed": args.testbed, "tpm_config": tpm.config,
            "parameters": sum(p.numel() for p in tpm.parameters()),
            "sampler": {"kind": kind_note, "sigma_start": cfg.sigma_start,
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
