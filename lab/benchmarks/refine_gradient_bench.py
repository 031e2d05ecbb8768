"""Which forward-only gradient for LD3 refinement inside ComfyUI: finite differences or SPSA (docs/search.md).

    python -m schedule_lab.lab.benchmarks.refine_gradient_bench [--out lab/benchmarks/results/refine_gradient.md]

1. Agreement: the finite-difference gradient of the refinement loss (64 search samples, 4 NFE, float32 sampler) against
   autograd's, by step size h, at the uniform list and at a perturbed one, on both testbeds; on the trained MLP also
   with the model's output rounded to float16 (what a half-precision checkpoint adds to every difference).
2. Quality per model call, 4 NFE, seeds 0 and 1, both samplers (RMSE to the converged ODE on 512 evaluation samples,
   as in search_bench): autograd refinement, finite differences with 60/30/20 steps and batch 64/32, and SPSA
   (simultaneous perturbation: one random ± direction per step, 2 sampler runs) at the same number of sampler runs
   as finite differences with batch 64 and at a quarter of it. Every optimiser uses Adam, lr 0.2, from uniform.
"""
import argparse
import statistics
import time
from pathlib import Path

import torch

from schedule_lab.schedules.search.fitness import ReferenceSet, endpoint_rmse, run_sampler
from schedule_lab.schedules.search.genes import GeneSpace, uniform_genes
from schedule_lab.schedules.search.refine import (
    differentiable,
    finite_difference_basis,
    logits_from_sigmas,
    loss_gradient,
    refine,
    sigmas_from_logits,
)
from schedule_lab.solvers.classic import sample_heun

from .evaluate import ScheduleScore
from .report import write_results
from .search_bench import SAMPLERS
from .setups import load_testbed, pin_threads

STEPS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "refine_gradient.md"


def _half_output(model):
    def wrapped(x, sigma, **kw):
        return model(x, sigma, **kw).to(torch.float16).to(x.dtype)
    return wrapped


def agreement(log=print):
    lines = ["| testbed | model output | sampler | point | " + " | ".join(f"h={h:g}" for h in STEPS) + " |",
             "|" + "---|" * (4 + len(STEPS))]
    for name in ("exact-digits", "edm-digits"):
        tb = load_testbed(name, "sd1")
        ref = ReferenceSet(tb.model, tb.kind, (64,), n_search=64, n_holdout=2, seed=0, reference_steps=60, nfe=4,
                           reference_sampler=sample_heun)
        space = GeneSpace(tb.kind)
        idx = torch.arange(64)
        outputs = [("float32", tb.model)] + ([("float16-rounded", _half_output(tb.model))]
                                             if name == "edm-digits" else [])
        for sname, sampler in SAMPLERS.items():
            for point, shift in (("uniform", 0.0), ("perturbed", 0.5)):
                w = logits_from_sigmas(space.sigmas(uniform_genes(space, 4)), tb.kind)
                w = w + shift * torch.randn(len(w), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
                truth, _ = loss_gradient(tb.model, differentiable(sampler), ref, w, idx, "autograd")
                for label, model in outputs:
                    cells = []
                    for h in STEPS:
                        g, _ = loss_gradient(model, sampler, ref, w, idx, "finite_difference", fd_step=h)
                        rel = float((g - truth).norm() / truth.norm())
                        cos = float(g @ truth / (g.norm() * truth.norm()))
                        cells.append(f"{rel:.1e} ({cos:.5f})")
                    lines.append(f"| {name} | {label} | {sname} | {point} | " + " | ".join(cells) + " |")
                    log(lines[-1])
    return lines


def spsa(model, sampler, ref, init, iterations, lr=0.2, batch=64, seed=0, c=1e-2, eval_every=20):
    """SPSA with Adam: per step one Rademacher direction in the list-changing subspace, 2 sampler runs."""
    kind = ref.kind
    gen = torch.Generator().manual_seed(seed)
    w = logits_from_sigmas(init, kind)
    opt = torch.optim.Adam([w], lr=lr)
    basis = finite_difference_basis(len(w))
    samples = [0]

    def counted(x, s, **kw):
        samples[0] += x.shape[0]
        return model(x, s, **kw)

    def error(v, idx):
        with torch.no_grad():
            x = run_sampler(sampler, counted, ref.noise[idx], sigmas_from_logits(v, kind))
        return endpoint_rmse(x, ref.endpoints[idx])

    hold = torch.arange(ref.n_search, ref.n_search + ref.n_holdout)
    best, best_sigmas = error(w, hold), sigmas_from_logits(w, kind)
    for it in range(1, iterations + 1):
        idx = torch.randperm(ref.n_search, generator=gen)[:batch]
        v = basis @ (torch.randint(0, 2, (basis.shape[1],), generator=gen) * 2 - 1).double()
        w.grad = (error(w + c * v, idx) ** 2 - error(w - c * v, idx) ** 2) / (2 * c) * v
        opt.step()
        if it % eval_every == 0 or it == iterations:
            e = error(w, hold)
            if e < best:
                best, best_sigmas = e, sigmas_from_logits(w, kind)
    return best_sigmas, samples[0]


def quality(log=print):
    runs = {  # label: (how, settings)
        "autograd, 60 steps, batch 64": ("refine", {"gradient": "autograd", "iterations": 60, "batch": 64}),
        "finite differences, 60 steps, batch 64": ("refine", {"gradient": "finite_difference", "iterations": 60,
                                                              "batch": 64}),
        "finite differences, 60 steps, batch 32": ("refine", {"gradient": "finite_difference", "iterations": 60,
                                                              "batch": 32}),
        "finite differences, 30 steps, batch 64": ("refine", {"gradient": "finite_difference", "iterations": 30,
                                                              "batch": 64}),
        "finite differences, 20 steps, batch 32": ("refine", {"gradient": "finite_difference", "iterations": 20,
                                                              "batch": 32}),
        "SPSA, 240 steps, batch 64 (= FD 60 × 64 in runs)": ("spsa", {"iterations": 240}),
        "SPSA, 60 steps, batch 64": ("spsa", {"iterations": 60}),
    }
    rows = {}
    for name in ("exact-digits", "edm-digits"):
        tb = load_testbed(name, "sd1")
        for seed in (0, 1):
            score = ScheduleScore(tb, seed)
            ref = ReferenceSet(tb.model, tb.kind, (64,), n_search=256, n_holdout=128, seed=seed,
                               reference_steps=100, nfe=4, reference_sampler=sample_heun)
            space = GeneSpace(tb.kind)
            uniform = space.sigmas(uniform_genes(space, 4))
            for sname, sampler in SAMPLERS.items():
                rows.setdefault((name, "uniform"), []).append((score(sname, uniform)[0], 0, 0))
                for label, (how, kw) in runs.items():
                    t0 = time.perf_counter()
                    if how == "refine":
                        r = refine(tb.model, sampler, ref, uniform, lr=0.2, seed=seed, eval_every=5, **kw)
                        sigmas, cost = r.sigmas, (r.model_samples, r.model_samples + 2 * r.backward_samples)
                    else:
                        sigmas, n = spsa(tb.model, sampler, ref, uniform, seed=seed, **kw)
                        cost = (n, n)
                    err = score(sname, sigmas)[0]
                    rows.setdefault((name, label), []).append((err, *cost))
                    log(f"{name} seed {seed} {sname} {label}: rmse {err:.4f}, evaluations {cost[0]} "
                        f"({time.perf_counter() - t0:.1f} s)")
    lines = ["| testbed | optimiser (Adam, lr 0.2, from uniform) | RMSE (mean of 2 seeds × 2 samplers) | "
             "evaluations | cost ×3 |", "|---|---|---|---|---|"]
    for (name, label), v in rows.items():
        lines.append(f"| {name} | {label} | {statistics.fmean(e for e, _, _ in v):.4f} | "
                     f"{statistics.fmean(c for _, c, _ in v):.0f} | {statistics.fmean(c for _, _, c in v):.0f} |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.refine_gradient_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    pin_threads(1)
    t0 = time.perf_counter()
    text = "\n".join([
        "# Forward-only gradients for LD3 refinement", "",
        "Generated by `python -m schedule_lab.lab.benchmarks.refine_gradient_bench` (1 thread).", "",
        "## 1. Finite-difference gradient against autograd", "",
        "Relative error ‖g_FD − g_autograd‖ / ‖g_autograd‖ (cosine similarity in brackets), 64 search samples, "
        "4 NFE, SD1 σ range; h is the central-difference step in logit space (default 1e-2). Autograd is the "
        "float32 model's in both rows of the MLP.", "",
        *agreement(), "",
        "## 2. Quality per model call (4 NFE)", "",
        "RMSE to the converged ODE on 512 evaluation samples (search_bench's protocol); evaluations: per-sample "
        "model evaluations of the optimiser (cost ×3 also charges autograd's backward passes as 2 forwards each).",
        "",
        *quality(), "",
        f"Total wall time {time.perf_counter() - t0:.0f} s.", ""])
    print(text)
    write_results(args.out.parent, args.out.stem, text)


if __name__ == "__main__":
    main()
