"""Defaults study for the TADA sampler (docs/tada.md, "Decisions"): order per model family, detail default and slider
range.

    python -m schedule_lab.lab.benchmarks.tada_defaults [--testbed gmm digits] [--schedule karras flow]
        [--samples-gmm 4000] [--samples-digits 1000] [--out lab/benchmarks/results/tada_defaults.md]

Two testbeds with exact denoisers (no training, no model error): (a) a 16-d, 8-component Gaussian mixture with its
closed-form posterior mean, scored by SWD against fresh draws of the mixture; (b) the exact empirical denoiser of
the digits train split (testbeds.exact), scored by SWD against the train split (the ideal sampler reproduces it).
Two schedules: ``karras`` (EDM kind, ρ=7, σ 0.002–80) and ``flow`` (rectified flow, SD3 shift 3, the "simple"
schedule uniform in flow time from σ=1, i.e. TADA's t=0 limit). TADA is invariant to the model parameterisation
(it reads the model through ŷ and σ_eff only), so Karras sigmas mapped to a flow model give the *same* samples as on
the EDM kind; the script checks that once and uses the flow family's own schedule for the flow decision.

Grid: NFE 5/8/10/15/20 × order 1/2/3 × detail 0.25/0.5/1/2/4/8 × n_aug 2/3, plus Euler (= TADA n_aug=1 order 1)
and DPM++(2M) on Karras. Decisions are taken on the *selection* seeds and confirmed on the *held-out* seeds (both
disjoint from the unit tests' seeds 0–99). Score of a configuration = mean over NFE of log(SWD / best SWD of that
NFE column), i.e. its average log-regret; 0 means best at every NFE.
"""
import argparse
import itertools
import math
import time
from pathlib import Path

import torch

from schedule_lab.kernels.sliced_wasserstein import random_directions
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import catalogue

from ..testbeds.digits import load_digits_split
from ..testbeds.exact import ExactDenoiser
from ..testbeds.reference import karras_sigmas
from .report import write_results
from .setups import pin_threads

NFES = (5, 8, 10, 15, 20)
ORDERS = (1, 2, 3)
DETAILS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
N_AUGS = (2, 3)
RANGE_PROBE = (0.1, 16.0)  # slider ends, n_aug 2, orders 2 and 3 only
SELECTION_SEEDS = (1000,)
HELD_OUT_SEEDS = (2000,)
N_PROJECTIONS = 128  # paired comparisons (same directions, same noise) need few; sorting dominates the cost
FLOW_SHIFT = 3.0
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tada_defaults.md"


class GaussianMixture:
    """Isotropic Gaussian mixture with its exact posterior-mean denoiser D(x, σ) (k-diffusion contract)."""

    def __init__(self, dim=16, components=8, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.means = torch.randn(components, dim, generator=gen, dtype=torch.float64)
        self.stds = 0.1 + 0.25 * torch.rand(components, generator=gen, dtype=torch.float64)
        w = torch.rand(components, generator=gen, dtype=torch.float64) + 0.5
        self.weights = w / w.sum()
        self.dim = dim

    def __call__(self, x, sigma, **_):
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        sig2 = sigma.reshape(-1, 1).to(torch.float64) ** 2
        var = self.stds**2 + sig2  # (B, K)
        dist2 = torch.cdist(flat, self.means).square()
        logits = self.weights.log() - 0.5 * self.dim * var.log() - dist2 / (2 * var)
        resp = torch.softmax(logits, dim=1)  # (B, K)
        shrink = self.stds**2 / var  # (B, K)
        # Σ_k r_k (μ_k + (x − μ_k) s_k²/var_k) = x Σ r shrink + Σ_k r_k (1 − shrink_k) μ_k
        out = flat * (resp * shrink).sum(1, keepdim=True) + (resp * (1 - shrink)) @ self.means
        return out.to(x.dtype).reshape(x.shape)

    def sample(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        comp = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        z = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
        return self.means[comp] + self.stds[comp, None] * z

    @property
    def mean(self):
        return self.weights @ self.means


class SlicedW2:
    """SW2 to a fixed target, as testbeds.metrics.swd (seeded directions, float64, exact 1-D W2 between the
    empirical quantile functions, also for unequal counts), with the target's sorted projections cached and the
    sorts along contiguous rows (5x faster than kernels.sliced_wasserstein's column sorts)."""

    def __init__(self, target, n_projections=N_PROJECTIONS, seed=0):
        target = target.reshape(target.shape[0], -1).to(torch.float64)
        self.dirs = random_directions(target.shape[1], n_projections, seed)
        self.target = torch.sort((self.dirs @ target.T).contiguous(), dim=1).values
        self._grid = {}

    def _breakpoints(self, n, m):
        if (n, m) not in self._grid:  # merged breakpoints {i/n} ∪ {j/m} on the integer grid 1/(n·m)
            ticks = torch.unique(torch.cat([torch.arange(n + 1) * m, torch.arange(m + 1) * n]))
            widths = (ticks[1:] - ticks[:-1]).to(torch.float64) / (n * m)
            self._grid[(n, m)] = (ticks[:-1] // m, ticks[:-1] // n, widths)
        return self._grid[(n, m)]

    def __call__(self, x):
        proj = torch.sort((self.dirs @ x.reshape(x.shape[0], -1).to(torch.float64).T).contiguous(), dim=1).values
        ia, ib, widths = self._breakpoints(proj.shape[1], self.target.shape[1])
        return float(((proj[:, ia] - self.target[:, ib]).square() @ widths).mean().sqrt())


def as_flow_model(ve_model, data_mean):
    """The same denoiser seen as a rectified-flow model: x_f = (1−s)x0 + s n ↔ y = x_f/(1−s), σ = s/(1−s)."""
    def model(x, sigma, **kw):
        s = float(sigma.reshape(-1)[0])
        if s >= 1.0:  # σ_ve = ∞: the posterior mean is the data mean
            return data_mean.to(x).reshape(1, *x.shape[1:]).expand_as(x).clone()
        return ve_model(x / (1.0 - s), sigma / (1.0 - sigma), **kw)
    return model


def flow_simple_sigmas(nfe, shift=FLOW_SHIFT):
    """ComfyUI "simple" on an SD3-style flow model: uniform flow time from 1 to 0, shifted; σ_0 = 1."""
    t = torch.linspace(1.0, 0.0, nfe + 1, dtype=torch.float64)
    return shift * t / (1.0 + (shift - 1.0) * t)


def setups(names, schedules, samples_gmm, samples_digits):
    """(testbed, schedule) → dict(model, kind, sigmas_fn, x_fn, target, floor)."""
    out = {}
    if "gmm" in names:
        gmm = GaussianMixture()
        target = SlicedW2(gmm.sample(5 * samples_gmm, seed=77))
        floor = _floor([target(gmm.sample(samples_gmm, seed=s)) for s in (78, 79, 80, 81)])
        data = ("gmm", gmm, gmm.mean, (gmm.dim,), target, floor, samples_gmm)
        out.update(_schedules(data, schedules))
    if "digits" in names:
        train = load_digits_split().train.to(torch.float64)
        model = ExactDenoiser(train.float())
        target = SlicedW2(train)
        # i.i.d. draws of the data itself: what a perfect sampler of the (memorised) train set scores
        floor = _floor([target(train[torch.randint(len(train), (samples_digits,), generator=torch.Generator()
                                                    .manual_seed(s))]) for s in (78, 79, 80, 81)])

        def f32(m):
            return lambda x, s, **kw: m(x.float(), s.float(), **kw).to(x.dtype)
        data = ("digits", f32(model), train.mean(0), (1, 8, 8), target, floor, samples_digits)
        out.update(_schedules(data, schedules))
    return out


def _floor(values):
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def _schedules(data, schedules):
    name, model, mean, shape, target, floor, n = data
    out = {}
    if "karras" in schedules:
        out[(name, "karras")] = dict(model=model, kind=ModelKind.edm(), shape=shape, target=target, floor=floor, n=n,
                                     sigmas=lambda nfe: karras_sigmas(nfe, 0.002, 80.0, dtype=torch.float64),
                                     scale=80.0)
    if "flow" in schedules:
        out[(name, "flow")] = dict(model=as_flow_model(model, mean), kind=ModelKind.flow(shift=FLOW_SHIFT),
                                   shape=shape, target=target, floor=floor, n=n, sigmas=flow_simple_sigmas, scale=1.0)
    return out


def configs(schedule):
    """(label, sampler fn(model, x, sigmas, seed, kind)) for every row of the grid."""
    rows = [("euler (tada n1 o1)", dict(n_aug=1, order=1, detail=1.0))]
    rows += [(f"tada n1 o{o}", dict(n_aug=1, order=o, detail=1.0)) for o in (2, 3)]
    rows += [(f"tada n{n} o{o} k{k:g}", dict(n_aug=n, order=o, detail=k))
             for n, o, k in itertools.product(N_AUGS, ORDERS, DETAILS)]
    rows += [(f"tada n2 o{o} k{k:g}", dict(n_aug=2, order=o, detail=k))
             for o, k in itertools.product((2, 3), RANGE_PROBE)]
    out = [(label, _runner("sl_tada(" + ",".join(f"{k}={v!r}" for k, v in opts.items()) + ")"))
           for label, opts in rows]
    if schedule == "karras":
        out.append(("dpmpp_2m", _runner("dpmpp_2m")))
    return out


def _runner(spec):
    def run(model, x, sigmas, seed, kind):
        return catalogue.run(spec, sigmas, model, x, kind=kind, seed=seed, sigma_start=1.0).x0
    return run


def measure(setup, seeds, label_filter=None):
    """{label: {nfe: mean SWD over seeds}} for one (testbed, schedule)."""
    results = {}
    schedule = "flow" if setup["kind"].kind == "flow" else "karras"
    for label, run in configs(schedule):
        if label_filter and not label_filter(label):
            continue
        results[label] = {}
        for nfe in NFES:
            sigmas = setup["sigmas"](nfe)
            vals = []
            for seed in seeds:
                gen = torch.Generator().manual_seed(seed)
                x = setup["scale"] * torch.randn((setup["n"], *setup["shape"]), generator=gen, dtype=torch.float64)
                out = run(setup["model"], x, sigmas, seed, setup["kind"])
                vals.append(setup["target"](out))
            results[label][nfe] = sum(vals) / len(vals)
    return results


def scores(results, floor):
    """Average log-regret per configuration: mean over NFE of log(SW2 / column best), with every value first
    raised to the noise band of the floor (mean + 2 std of i.i.d. data draws): differences that i.i.d. samples of
    the data itself would show are not counted (near convergence every configuration sits in that band)."""
    band = floor[0] + 2 * floor[1]
    best = {nfe: max(band, min(r[nfe] for r in results.values())) for nfe in NFES}
    return {label: sum(math.log(max(band, r[nfe]) / best[nfe]) for nfe in NFES) / len(NFES)
            for label, r in results.items()}


def check_parameterisation_invariance(setup_edm, n=64):
    """Max |Δ| between TADA on Karras sigmas (EDM kind) and on the same sigmas mapped to a flow model."""
    sig = karras_sigmas(8, 0.002, 80.0, dtype=torch.float64)
    x = 80.0 * torch.randn((n, *setup_edm["shape"]), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    tada = _runner("sl_tada(order=3)")
    ve = tada(setup_edm["model"], x, sig, 5, None)
    mean = torch.zeros(setup_edm["shape"], dtype=torch.float64)
    flow = tada(as_flow_model(setup_edm["model"], mean), x / 81.0, sig / (1 + sig), 5, ModelKind.flow())
    return float((ve - flow).abs().max())


def table(results, floor, title):
    lines = [f"### {title}", "", f"SW2 (lower is better; floor = i.i.d. draws of the data: {floor[0]:.4f} ± "
             f"{floor[1]:.4f}); "
             "score = mean log-regret over NFE, values below floor + 2 std counted as equal (0 = best everywhere)", "",
             "| config | " + " | ".join(f"NFE {n}" for n in NFES) + " | score |",
             "|---|" + "---|" * (len(NFES) + 1)]
    sc = scores(results, floor)
    for label, r in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{r[n]:.4f}" for n in NFES) + f" | {sc[label]:.3f} |")
    return lines + [""]


def summarise(all_sel, all_held, floors):
    """Decision tables per family: (order, detail) jointly, then order alone, n_aug, and the baselines."""
    lines = ["## Decisions", "", "Score = mean log-regret over NFE 5–20 against the best configuration of each NFE "
             "column (0 = best everywhere; 0.1 ≈ 10% worse SW2 on average), values inside the floor's noise band "
             "(mean + 2 std of i.i.d. data draws) counted as equal. Chosen on the selection seed, confirmed on the "
             "held-out seed.", ""]
    for family in ("karras", "flow"):
        keys = [k for k in all_sel if k[1] == family]
        if not keys:
            continue
        sel = {k: scores(all_sel[k], floors[k]) for k in keys}
        held = {k: scores(all_held[k], floors[k]) for k in keys}

        def mean_score(label, table, keys=keys):
            return _mean([table[k][label] for k in keys])

        cols = " | ".join(f"{k[0]} sel" for k in keys)
        lines += [f"### {family}: order × detail (n_aug 2)", "",
                  f"| order | detail | {cols} | mean sel | mean held-out |",
                  "|---|---|" + "---|" * (len(keys) + 2)]
        grid = [(o, d) for o in ORDERS for d in DETAILS]
        best = min(grid, key=lambda od: mean_score(f"tada n2 o{od[0]} k{od[1]:g}", sel))
        for o, d in grid:
            label = f"tada n2 o{o} k{d:g}"
            mark = " **(best)**" if (o, d) == best else ""
            lines.append(f"| {o} | {d:g}{mark} | " + " | ".join(f"{sel[k][label]:.3f}" for k in keys)
                         + f" | {mean_score(label, sel):.3f} | {mean_score(label, held):.3f} |")
        lines += ["", f"### {family}: order alone (n_aug 2; mean over details, and wins over NFE × detail × "
                  "testbed cells)", "", "| order | mean sel | mean held-out | wins sel | wins held-out |",
                  "|---|---|---|---|---|"]
        cells = len(keys) * len(DETAILS) * len(NFES)
        for o in ORDERS:
            wins = [sum(1 for k in keys for d in DETAILS for nfe in NFES
                        if min(ORDERS, key=lambda q, k=k, d=d, nfe=nfe, r=r: r[k][f"tada n2 o{q} k{d:g}"][nfe]) == o)
                    for r in (all_sel, all_held)]
            lines.append(f"| {o} | {_mean([mean_score(f'tada n2 o{o} k{d:g}', sel) for d in DETAILS]):.3f} | "
                         f"{_mean([mean_score(f'tada n2 o{o} k{d:g}', held) for d in DETAILS]):.3f} | "
                         f"{wins[0]} / {cells} | {wins[1]} / {cells} |")
        lines += ["", f"### {family}: slider ends (n_aug 2)", "", "| order | " + " | ".join(
            f"k {d:g} sel / held" for d in sorted(RANGE_PROBE + (0.25, 1.0, 8.0))) + " |", "|---|" + "---|" * 5]
        for o in (2, 3):
            lines.append(f"| {o} | " + " | ".join(
                f"{mean_score(f'tada n2 o{o} k{d:g}', sel):.3f} / {mean_score(f'tada n2 o{o} k{d:g}', held):.3f}"
                for d in sorted(RANGE_PROBE + (0.25, 1.0, 8.0))) + " |")
        lines += ["", f"### {family}: n_aug 3 against 2, and the baselines", "",
                  "| config | mean sel | mean held-out |", "|---|---|---|"]
        rows = [f"tada n{n} o{o} k{d:g}" for n in N_AUGS for o in ORDERS for d in DETAILS]
        best3 = min((r for r in rows if r.startswith("tada n3")), key=lambda r: mean_score(r, sel))
        chosen = f"tada n2 o{best[0]} k{best[1]:g}"
        for label in [chosen, f"tada n3 o{best[0]} k{best[1]:g}", best3, "euler (tada n1 o1)", "tada n1 o2",
                      "tada n1 o3"] + (["dpmpp_2m"] if family == "karras" else []):
            lines.append(f"| {label} | {mean_score(label, sel):.3f} | {mean_score(label, held):.3f} |")
        lines += [""]
    return lines


def _mean(vals):
    return sum(vals) / len(vals)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.tada_defaults",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--testbed", nargs="+", default=["gmm", "digits"], choices=["gmm", "digits"])
    p.add_argument("--schedule", nargs="+", default=["karras", "flow"], choices=["karras", "flow"])
    p.add_argument("--samples-gmm", type=int, default=4000)
    p.add_argument("--samples-digits", type=int, default=1000)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    pin_threads(args.threads)
    start = time.time()
    runs = setups(args.testbed, args.schedule, args.samples_gmm, args.samples_digits)
    lines = ["# TADA defaults study", "",
             f"Generated by `python -m schedule_lab.lab.benchmarks.tada_defaults --testbed "
             f"{' '.join(args.testbed)} --schedule {' '.join(args.schedule)}` (torch {torch.__version__}, "
             f"{args.threads} thread). Selection seeds {SELECTION_SEEDS}, held-out seeds {HELD_OUT_SEEDS}; "
             f"samples: GMM {args.samples_gmm}, digits {args.samples_digits}. The decisions drawn from these tables "
             "(default order per family, detail default and slider range) are argued in docs/tada.md.", ""]
    for key, setup in runs.items():
        if key[1] == "karras":
            diff = check_parameterisation_invariance(setup)
            lines.append(f"Parameterisation check ({key[0]}): TADA on Karras sigmas, EDM kind vs the same λ on a "
                         f"flow model: max |Δ| = {diff:.1e}.")
    lines.append("")
    all_sel, all_held, body = {}, {}, []
    for key, setup in runs.items():
        t0 = time.time()
        all_sel[key] = measure(setup, SELECTION_SEEDS)
        all_held[key] = measure(setup, HELD_OUT_SEEDS)
        body += table(all_sel[key], setup["floor"], f"{key[0]} / {key[1]} — selection seeds")
        body += table(all_held[key], setup["floor"], f"{key[0]} / {key[1]} — held-out seeds")
        print(f"{key[0]}/{key[1]}: {time.time() - t0:.0f} s", flush=True)
    lines += summarise(all_sel, all_held, {k: s["floor"] for k, s in runs.items()}) + ["## Full tables", ""] + body
    lines.append(f"Total time {time.time() - start:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(args.out.parent, args.out.stem, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
