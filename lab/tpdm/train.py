"""``schedule-lab tpdm train``: train a TPDM time predictor on a bundled trained testbed model (CPU, or torchrun).

    schedule-lab tpdm train [--testbed edm-digits|patch-unet|zoo-flow] [--iterations 300] [--groups 8] [--k 4]
        [--lr 5e-4] [--gamma 0.85] [--reward endpoint|endpoint-features|confidence|MODULE:FUNCTION] [--tau T]
        [--width 16] [--out DIR] [--resume CKPT] [--export FILE.safetensors]
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
    # the zoo's rectified-flow model (lab/testbeds/zoo.py): σ from 1 (pure noise) to the official stop 0.001
    "zoo-flow": ("flow", "endpoint-features", None, "ModelKind.flow(3.0), from sigma 1 to the official stop 0.001"),
}
#: stop level per testbed when --min-sigma is not given (default: the range's sigma_min)
TESTBED_MIN_SIGMA = {"zoo-flow": 1e-3}
TESTBEDS = tuple(TESTBED_SETUPS)


def build_parser(prog: str = "schedule-lab tpdm train") -> argparse.ArgumentParser:
    from .trainer import TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(prog=prog, description="Train a TPDM time predictor with RLOO-PPO on cached features "
                                "(docs/tpdm.md) on a bundled trained testbed model.")
    p.add_argument("--testbed", choices=TESTBEDS, default="edm-digits",
                   help="the frozen model: edm-digits (the EDM MLP, 64-d), zoo-flow (the zoo's rectified-flow "
                        "model, 3x16x16) or patch-unet (the natural-image UNet, "
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
    p.add_argument("--tau-rule", action="store_true",
                   help="print the stock schedule's feature errors and the tau the rule picks, then stop")
    p.add_argument("--width", type=int, default=16, help="TPM conv width (default 16)")
    p.add_argument("--head", choices=("exp", "bounded"), default="exp",
                   help="TPM output head: exp (official, exp(x) + 1) or bounded (exp(8 tanh(x/8)) + 1: alpha and "
                        "beta stay in [1.0003, 2982], so the policy cannot leave the Beta's domain) (default exp)")
    p.add_argument("--tpm-init", choices=("official", "torch-norm-linear"), default="official",
                   help="TPM weight init: official (every weight N(0, 0.02)) or torch-norm-linear (norm1.linear at "
                        "PyTorch's default: how the bundled testbed TPMs were trained) (default official)")
    p.add_argument("--kl-coef", type=float, default=d.kl_coef,
                   help="the official KL term: reward - kl_coef * sum_n KL(Beta(a_n, b_n) || reference prior) "
                        f"({d.kl_coef}: off, as the official launch script)")
    p.add_argument("--cache-dtype", choices=("float32", "float16", "bfloat16"), default=d.cache_dtype,
                   help=f"dtype of the rollout's feature cache, kept on the CPU ({d.cache_dtype})")
    p.add_argument("--micro-batch", type=int, default=d.micro_batch,
                   help="recompute log-probs in TPM calls of at most this many row-steps (exact gradient); 0 = one "
                        f"call over all steps x rows ({d.micro_batch})")
    p.add_argument("--min-sigma", type=float, default=None, help="stop level (default: the range's sigma_min)")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help=f"step cap per image ({d.max_steps})")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPM init, the noise and the policy draws")
    p.add_argument("--save-every", type=int, default=25, help="checkpoint period in iterations (default 25)")
    p.add_argument("--out", type=Path, default=Path("out/tpdm_train"), help="checkpoint folder")
    p.add_argument("--resume", type=Path, default=None, help="continue from this checkpoint (same options)")
    p.add_argument("--export", type=Path, default=None, help="write the trained TPM (.safetensors) + a JSON record")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall-time budget: stop (checkpoint, export) after the first iteration past it; the record "
                        "names the iterations done and the command that retrains them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (a line per 10 iterations instead)")
    return p


def retrain_command(argv: list[str], iterations: int) -> str:
    """The command that trains these weights again: ``--iterations`` set to the iterations that ran, without
    ``--max-minutes`` (every iteration's randomness depends on (seed, iteration, rank) only) or ``--resume``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--iterations", "--max-minutes", "--resume"):
            skip = True
            continue
        if a.startswith(("--iterations=", "--max-minutes=", "--resume=")):
            continue
        out.append(a)
    return "schedule-lab tpdm train " + " ".join(shlex.quote(a) for a in [*out, "--iterations", str(iterations)])


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


def tau_by_rule(model, kind, classifier, sigma_start: float, gamma: float, n: int = 128, seed: int = 12345,
                steps=(6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 20), taus=(0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)):
    """The rule of docs/tpdm.md, fixed before training: τ such that the mean reward of the family's stock schedule
    under Euler (karras; ``simple`` for flow models, ComfyUI's flow default) peaks nearest 10 steps, with the
    endpoint error in the classifier's features (``endpoint-features``) on ``n`` noises of ``seed``."""
    import torch

    from schedule_lab.schedules.catalogue import schedule_sigmas
    from schedule_lab.solvers.classic import sample_euler

    from ..testbeds.rewards import EndpointScore
    from .rl import step_discount

    shape = (3, 16, 16)
    x_T = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed)) * sigma_start
    score = EndpointScore(model, tau=1.0, features=lambda x: classifier.features(x).double())
    ref = classifier.features(score.endpoint(x_T, sigma_start)).double()
    schedule = "simple" if kind.kind == "flow" else "karras"
    errs = {}
    with torch.no_grad():
        for k in steps:
            sig = schedule_sigmas(schedule, kind, k)
            sig = torch.cat([torch.tensor([sigma_start]), sig[sig < sigma_start]]) if float(sig[0]) > sigma_start \
                else sig
            x0 = sample_euler(model, x_T.clone(), sig.to(x_T.dtype), disable=True)
            errs[k] = (classifier.features(x0).double() - ref).square().mean(dim=1).sqrt()
    peaks, rewards = {}, {}
    for tau in taus:
        r = {k: float((torch.exp(-e / tau) * step_discount(k, gamma)).mean()) for k, e in errs.items()}
        rewards[tau] = r
        peaks[tau] = max(r, key=r.get)
    chosen = min(taus, key=lambda t: (abs(peaks[t] - 10), -t))
    table = {"schedule": schedule, "gamma": gamma, "feature_error": {k: float(e.mean()) for k, e in errs.items()},
             "peak_steps": peaks, "chosen_tau": chosen}
    return table, chosen


def testbed_model(testbed: str):
    """(model, kind, sample shape, classifier) of a ``--testbed``: the frozen denoiser, the ModelKind whose range
    the TPM is trained on, one sample's shape and the testbed's feature classifier."""
    from schedule_lab.schedules.model_kind import ModelKind

    if testbed == "zoo-flow":
        from ..testbeds.unet import load_patch_classifier
        from ..testbeds.zoo import load_zoo

        return load_zoo("flow"), ModelKind.flow(3.0), (3, 16, 16), load_patch_classifier()
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
    tpm = tpm_for_features(tap.read(), width=args.width, head=args.head, init=args.tpm_init)
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
    if args.tau_rule or args.tau is None:
        model, kind, _, classifier = testbed_model(args.testbed)
        start = 1.0 if kind.kind == "flow" else kind.sigma_max
        table, chosen = tau_by_rule(model, kind, classifier, start, args.gamma)
        print(json.dumps(table), flush=True)
        if args.tau_rule:
            return 0
        args.tau = chosen
        print(f"--tau {chosen} by the rule (the stock schedule's reward peaks nearest 10 steps)", flush=True)
    model, kind, tap, tpm, shape, classifier = _setup(args)
    try:
        cfg = TrainConfig(iterations=args.iterations, groups=args.groups, k=args.k, ppo_epochs=args.ppo_epochs,
                          clip=args.clip, lr=args.lr, gamma=args.gamma, sigma_start=kind.sigma_max,
                          min_sigma=args.min_sigma if args.min_sigma is not None else
                          TESTBED_MIN_SIGMA.get(args.testbed, kind.sigma_min),
                          max_steps=args.max_steps, seed=args.seed, save_every=args.save_every,
                          kl_coef=args.kl_coef, cache_dtype=args.cache_dtype, micro_batch=args.micro_batch)
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
    budget = args.max_minutes * 60 if args.max_minutes else None
    history = train(model, tap.read, tpm, scorer, cfg, shape, kind=kind, out=args.out, resume=args.resume,
                    progress=not args.no_progress, log=log, max_seconds=budget)
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
            "command": command, "seconds_this_call": round(seconds, 1), "iterations_done": len(history),
            # the same weights from scratch: this many iterations, without a wall-time budget
            "retrain_command": retrain_command(argv, len(history)),
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
