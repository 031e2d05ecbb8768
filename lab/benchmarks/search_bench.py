"""Timestep-search benchmark (docs/search.md, "Benchmark"): evolution, LD3 refinement and both chained, against
uniform, Karras and AYS.

    python -m schedule_lab.lab.benchmarks.search_bench [--testbed exact-digits edm-digits] [--nfe 4 6]
        [--sampler euler dpmpp_2m] [--seeds 0 1 2] [--out lab/benchmarks/results/search_bench.md]
        [--from-json lab/benchmarks/results/search_bench.json]   # re-render the table only
        [--methods "refine (finite differences)" ... --merge]  # run only these optimisers, merge into the JSON

Per testbed (benchmarks.setups, SD1 sigma range), sampler, NFE and seed s:
* the search sees only *training* noise: a ReferenceSet of 256 search + 128 held-out samples from seed s with a
  Heun-100 reference (199 model calls per sample, paid once and shared by the three optimisers);
* every list is scored on *evaluation* noise never seen by any optimiser (512 samples, seed 10000 + s) by RMSE to the
  converged ODE (Heun-250 on Karras over the same range, testbeds.reference, cached on disk), and by FD_cls against
  the testbed's target split (testbeds.metrics.fd_cls, 512 samples: compare only within this table);
* refinement twice: with autograd (backward through sampler and model) and with finite differences (forward calls
  only, what the ComfyUI node uses: nodes run under inference mode), from uniform and chained after evolution;
* cost = per-sample model evaluations of the optimiser (batch size × calls; ``cost ×3`` also charges each autograd
  gradient evaluation its backward pass, taken as twice a forward) plus the shared reference, and wall time.
Lists searched on one testbed are also scored on the other (transfer rows).
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from schedule_lab.schedules import baseline
from schedule_lab.schedules.search.evolution import EvolutionConfig, EvolutionSearch
from schedule_lab.schedules.search.fitness import EndpointFitness, ReferenceSet
from schedule_lab.schedules.search.genes import GeneSpace, uniform_genes
from schedule_lab.schedules.search.refine import refine
from schedule_lab.solvers import catalogue
from schedule_lab.solvers.classic import sample_heun

from .evaluate import ScheduleScore
from .report import write_results
from .setups import common_args, load_testbed, pin_threads

#: The optimisers take the sampler function itself (refinement differentiates through it); scoring runs it by name.
SAMPLERS = {name: catalogue.bind_sampler(name) for name in ("euler", "dpmpp_2m")}
EVAL_SAMPLES = 512
EVAL_SEED_OFFSET = 10_000
REFERENCE_STEPS = 100
CONVERGED_STEPS = 250
EVOLUTION = EvolutionConfig(population=16, top_k=4, mutations=8, crossovers=4, m_prob=0.25, generations=20)
SEARCH_BATCH = 256
REFINE = {"iterations": 60, "lr": 0.2, "batch": 64, "eval_every": 5}
CHAIN_REFINE = {"iterations": 20, "lr": 0.1, "batch": 64, "eval_every": 5}
# finite differences: 2·nfe sampler runs per step instead of one run + backward, so half the batch (measured to
# reach the same held-out error as batch 64: docs/search.md)
FD_REFINE = {"iterations": 60, "lr": 0.2, "batch": 32, "eval_every": 5, "gradient": "finite_difference"}
FD_CHAIN_REFINE = {"iterations": 20, "lr": 0.1, "batch": 32, "eval_every": 5, "gradient": "finite_difference"}
METHODS = ("evolution", "refine (from uniform)", "evolution + refine", "refine (finite differences)",
           "evolution + refine (finite differences)")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "search_bench.md"


def _optimise(tb, sampler, nfe, seed, methods=METHODS):
    """The optimisers on training noise of ``seed``; returns {method: (sigmas, model_calls, seconds)} for
    ``methods`` (evolution is run, not reported, when only a chained method needs it)."""
    space = GeneSpace(tb.kind)
    t0 = time.perf_counter()
    ref = ReferenceSet(tb.model, tb.kind, (64,), n_search=256, n_holdout=128, seed=seed,
                       reference_steps=REFERENCE_STEPS, nfe=nfe, reference_sampler=sample_heun)
    t_ref = time.perf_counter() - t0
    out = {"reference": (None, (ref.model_samples, ref.model_samples), t_ref)}
    uniform = space.sigmas(uniform_genes(space, nfe))
    if any(m.startswith("evolution") for m in methods):
        fit = EndpointFitness(tb.model, sampler, ref, batch=SEARCH_BATCH)
        t0 = time.perf_counter()
        evo = EvolutionSearch(GeneSpace(tb.kind), nfe, fit, EVOLUTION, seed=seed, label="endpoint-rmse").run()
        evo_cost = (fit.model_samples, fit.model_samples)
        out["evolution"] = (evo.sigmas, evo_cost, time.perf_counter() - t0)
    for method, start, settings in (("refine (from uniform)", "uniform", REFINE),
                                    ("evolution + refine", "evolution", CHAIN_REFINE),
                                    ("refine (finite differences)", "uniform", FD_REFINE),
                                    ("evolution + refine (finite differences)", "evolution", FD_CHAIN_REFINE)):
        if method not in methods:
            continue
        t0 = time.perf_counter()
        r = refine(tb.model, sampler, ref, uniform if start == "uniform" else evo.sigmas, seed=seed, **settings)
        cost, secs = _refine_cost(r), time.perf_counter() - t0
        if start == "evolution":
            cost = tuple(a + b for a, b in zip(out["evolution"][1], cost, strict=True))
            secs += out["evolution"][2]
        out[method] = (r.sigmas, cost, secs)
    if "evolution" not in methods:
        out.pop("evolution", None)
    return out


def _refine_cost(r):
    """(forward evaluations, forward + 2 × backward evaluations) of a refinement (no backward: finite differences)."""
    return r.model_samples, r.model_samples + 2 * r.backward_samples


def _baselines(tb, nfe):
    space = GeneSpace(tb.kind)
    return {
        "uniform": space.sigmas(uniform_genes(space, nfe)),
        "karras": baseline.karras(nfe, tb.kind.sigma_min, tb.kind.sigma_max, dtype=torch.float64),
        "ays": baseline.ays(nfe, "sd1", dtype=torch.float64),
    }


def run(testbeds, nfes, samplers, seeds, log=print, methods=METHODS):
    beds = {name: load_testbed(name, "sd1") for name in testbeds}
    rows = []
    for seed in seeds:
        evaluators = {name: ScheduleScore(tb, seed, EVAL_SAMPLES, EVAL_SEED_OFFSET, CONVERGED_STEPS)
                      for name, tb in beds.items()}
        for name, tb in beds.items():
            for sname in samplers:
                sampler = SAMPLERS[sname]
                for nfe in nfes:
                    lists = {k: (v, (0, 0), 0.0) for k, v in _baselines(tb, nfe).items()}
                    if tuple(methods) != METHODS:
                        lists = {}  # a partial run (--methods): only the optimisers asked for
                    opt = _optimise(tb, sampler, nfe, seed, methods)
                    ref_calls, ref_time = opt.pop("reference")[1:]
                    lists.update(opt)
                    for method, (sigmas, calls, secs) in lists.items():
                        err, fd = evaluators[name](sname, sigmas)
                        rows.append({"testbed": name, "searched_on": name if method in opt else "-",
                                     "sampler": sname, "nfe": nfe, "seed": seed, "method": method,
                                     "rmse": err, "fd_cls": fd, "evaluations": calls[0], "cost_x3": calls[1],
                                     "reference_evaluations": ref_calls[0] if method in opt else 0,
                                     "seconds": secs + (ref_time if method in opt else 0.0),
                                     "sigmas": [round(float(v), 5) for v in sigmas]})
                        log(f"seed {seed} {name} {sname} nfe {nfe} {method:22s} rmse {err:.4f} fd_cls {fd:.3f} "
                            f"evaluations {calls[0]} ({rows[-1]['seconds']:.1f} s)")
                    for other in beds:  # transfer: the searched lists on the other testbed
                        if other == name:
                            continue
                        for method in ("evolution", "evolution + refine"):
                            if method not in lists:
                                continue
                            err, fd = evaluators[other](sname, lists[method][0])
                            rows.append({"testbed": other, "searched_on": name, "sampler": sname, "nfe": nfe,
                                         "seed": seed, "method": f"{method} (from {name})", "rmse": err,
                                         "fd_cls": fd, "evaluations": 0, "cost_x3": 0, "reference_evaluations": 0,
                                         "seconds": 0.0,
                                         "sigmas": [round(float(v), 5) for v in lists[method][0]]})
    return rows


def _ms(values, fmt="{:.4f}"):
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(m)} ± {fmt.format(s)}"


def report(rows, seeds) -> str:
    lines = [
        "# Timestep search benchmark",
        "",
        f"Generated by `python -m schedule_lab.lab.benchmarks.search_bench` (seeds {', '.join(map(str, seeds))}; "
        f"evaluation on {EVAL_SAMPLES} held-out noise samples per seed; mean ± std over seeds).",
        "RMSE: to the converged ODE (Heun-250). FD_cls: against the testbed's target split, "
        f"{EVAL_SAMPLES} samples. Evaluations: per-sample model evaluations of the optimiser; cost ×3 also charges "
        f"autograd refinement's backward passes (2 forwards each; finite differences have none); reference: the "
        f"shared Heun-{REFERENCE_STEPS} reference (256 search + 128 held-out samples), paid once for all optimisers. "
        "Refinement: 60 Adam steps from uniform (lr 0.2) or 20 after evolution (lr 0.1); batch 64 with autograd, 32 "
        "with finite differences (2·NFE sampler runs per step).",
        "",
        "| testbed | sampler | NFE | list | RMSE | FD_cls | ÷ uniform | ÷ karras | evaluations | cost ×3 | reference "
        "| s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = []
    for r in rows:
        k = (r["testbed"], r["sampler"], r["nfe"], r["method"])
        if k not in keys:
            keys.append(k)
    order = {m: i for i, m in enumerate(("uniform", "karras", "ays", *METHODS))}
    keys.sort(key=lambda k: (k[0], k[1], k[2], order.get(k[3], len(order)), k[3]))
    for k in keys:
        sel = [r for r in rows if (r["testbed"], r["sampler"], r["nfe"], r["method"]) == k]
        base = {m: {r["seed"]: r["rmse"] for r in rows
                    if (r["testbed"], r["sampler"], r["nfe"], r["method"]) == (*k[:3], m)}
                for m in ("uniform", "karras")}  # each seed's list is divided by the same seed's baseline
        err = [r["rmse"] for r in sel]
        ratio_u = statistics.fmean(r["rmse"] / base["uniform"][r["seed"]] for r in sel)
        ratio_k = statistics.fmean(r["rmse"] / base["karras"][r["seed"]] for r in sel)
        calls = statistics.fmean(r["evaluations"] for r in sel)
        cost3 = statistics.fmean(r["cost_x3"] for r in sel)
        refc = statistics.fmean(r["reference_evaluations"] for r in sel)
        secs = statistics.fmean(r["seconds"] for r in sel)
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {_ms(err)} | {_ms([r['fd_cls'] for r in sel], '{:.2f}')}"
                     f" | {ratio_u:.2f} | {ratio_k:.2f} | {calls:.0f} | {cost3:.0f} | {refc:.0f} | {secs:.1f} |")
    return "\n".join(lines) + "\n"


SUMMARY_METHODS = ("uniform", "karras", "ays", "evolution", "refine (from uniform)", "refine (finite differences)",
                   "evolution + refine")


def summary(rows, nfe: int = 4) -> str:
    """The README's compact table: mean RMSE of each list at ``nfe`` per testbed and sampler, and the searched
    lists' error ÷ uniform's and ÷ Karras's (mean of per-seed ratios) against the issue's 0.3× target."""
    lines = ["<!-- generated by `python -m schedule_lab.lab.benchmarks.search_bench` (or `--from-json "
             "lab/benchmarks/results/search_bench.json`); do not edit -->", "",
             "| testbed | sampler | NFE | " + " | ".join(SUMMARY_METHODS)
             + " | evolution ÷ uniform / ÷ karras | refined ÷ uniform / ÷ karras | refined (FD) ÷ uniform / ÷ karras "
             "| search s |",
             "|" + "---|" * (len(SUMMARY_METHODS) + 7)]
    cells = sorted({(r["testbed"], r["sampler"]) for r in rows if r["nfe"] == nfe})
    for testbed, sampler in cells:
        def of(method, key="rmse", testbed=testbed, sampler=sampler):
            return [r[key] for r in rows if (r["testbed"], r["sampler"], r["nfe"], r["method"])
                    == (testbed, sampler, nfe, method)]

        def ratio(method, base):
            return statistics.fmean(e / b for e, b in zip(of(method), of(base), strict=True))

        means = [f"{statistics.fmean(of(m)):.4f}" if of(m) else "–" for m in SUMMARY_METHODS]
        fd = "refine (finite differences)"
        fd_ratio = f"{ratio(fd, 'uniform'):.2f} / {ratio(fd, 'karras'):.2f}" if of(fd) else "–"
        lines.append(f"| {testbed} | {sampler} | {nfe} | " + " | ".join(means)
                     + f" | {ratio('evolution', 'uniform'):.2f} / {ratio('evolution', 'karras'):.2f}"
                     f" | {ratio('refine (from uniform)', 'uniform'):.2f} / "
                     f"{ratio('refine (from uniform)', 'karras'):.2f} | {fd_ratio}"
                     f" | {statistics.fmean(of('evolution', 'seconds')):.1f} |")
    return "\n".join(lines) + "\n"


def merge_rows(old: list, new: list) -> list:
    """``old`` with the rows of ``new`` added; a new row replaces an old one with the same testbed, sampler, NFE,
    seed and method."""
    def key(r):
        return r["testbed"], r["sampler"], r["nfe"], r["seed"], r["method"]

    fresh = {key(r) for r in new}
    return [r for r in old if key(r) not in fresh] + list(new)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.search_bench",
                                description=__doc__.split("\n\n")[0])
    common_args(p, nfe=[4, 6], out=DEFAULT_OUT)
    p.add_argument("--sampler", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    p.add_argument("--from-json", type=Path, help="re-render the table from a saved JSON instead of running")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                   help="optimisers to run (baselines are scored only when all are run)")
    p.add_argument("--merge", action="store_true", help="merge the new rows into the existing JSON next to --out "
                   "(rows of the same testbed, sampler, NFE, seed and method are replaced) and re-render from it")
    args = p.parse_args(argv)
    if tuple(args.methods) != METHODS and not args.merge:
        p.error("--methods without --merge would write a table without the baselines; add --merge")
    pin_threads(args.threads)
    old = args.out.read_text().split("\nTotal wall time")[-1] if args.out.exists() else " not recorded.\n"
    if args.from_json is not None:
        rows = json.loads(args.from_json.read_text())
        text = report(rows, sorted({r["seed"] for r in rows})) + "\nTotal wall time" + old
        print(text)
        write_results(args.out.parent, args.out.stem, text, summary=summary(rows))
        return
    t0 = time.perf_counter()
    rows = run(args.testbed, args.nfe, args.sampler, args.seeds, methods=tuple(args.methods))
    wall = time.perf_counter() - t0
    note = f"\nTotal wall time {wall:.0f} s on {args.threads} thread(s).\n"
    if args.merge:
        rows = merge_rows(json.loads(args.out.with_suffix(".json").read_text()), rows)
        note = (f"\nTotal wall time{old.rstrip()}\nMerged rows of {', '.join(args.methods)}: {wall:.0f} s on "
                f"{args.threads} thread(s) (`--methods ... --merge`).\n")
        args.seeds = sorted({r["seed"] for r in rows})
    text = report(rows, args.seeds) + note
    print(text)
    write_results(args.out.parent, args.out.stem, text, rows, summary(rows))

if __name__ == "__main__":
    main()
