"""Defaults by a rule stated before looking (rule and splits in docs/defaults.md §1–§3).

    python -m schedule_lab.lab.defaults.bench --stage tune      # candidates on the tuning parts → chosen
    python -m schedule_lab.lab.defaults.bench --stage choose    # re-apply the rule to the cached rows
    python -m schedule_lab.lab.defaults.guard                   # shipped defaults on the held-out parts
    options: --testbeds NAME ... (default: all ten)  --nfes 4 5 6 8 10 15 20

Every row is one (testbed, part, method, NFE): sliced W2 to the part's reference data (512 projections), RMSE to the
converged ODE (Heun, cached), and for the natural-image model FD_patch. Rows are cached in
``lab/benchmarks/results/defaults_rows.json`` (a row is recomputed only if missing), so stages can be re-run and
extended.
The tune stage applies the rule — per NFE, the candidate with the lowest worst ratio to the stock default over all
tuning parts and the metrics that apply — and writes ``defaults_chosen.json`` and ``defaults_tuning.md``; the
confirm stage writes ``defaults_held_out.md``. The shipped defaults (``solvers/tada.py``, ``schedules/
constant_rate/construct.py``) are copied from ``defaults_chosen.json`` and name this command.

Method specs (strings, so rows are readable and cacheable):
    dpmpp_2m/karras, euler/karras                       stock defaults
    tada(detail=D,order=O)/karras                        TADA (n_aug 2)
    dpmpp_2m/crs(measure=M,xi=X,end=E)                   constant-rate: M ∈ data-free | vx+cos | cos+karras | karras,
                                                         E ∈ hold | land (docs/defaults.md §3)
    tada(...)/crs(...)                                   combinations
"""
from __future__ import annotations

import argparse
import json
import math
import time
from functools import lru_cache
from pathlib import Path

import torch

from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats
from schedule_lab.kernels.sliced_wasserstein import sliced_wasserstein
from schedule_lab.schedules.baseline import karras
from schedule_lab.solvers import catalogue

from ..benchmarks import row_cache
from ..testbeds.reference import converged_endpoint
from ..testbeds.suite import TUNING_TESTBEDS, Part, kind, load_part
from .searched import catalogue_sampler, searched_sigmas, split_spec

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
ROWS_DIR = RESULTS / "defaults_rows"  # one JSON per testbed, so testbeds can run in parallel processes
CHOSEN_FILE = RESULTS / "defaults_chosen.json"
NFES = (4, 5, 6, 8, 10, 15, 20)
STOCK = {"dpmpp_2m": "dpmpp_2m/karras", "euler": "euler/karras", "tada": "dpmpp_2m/karras"}
COMMAND = "python -m schedule_lab.lab.defaults.bench --stage tune"
TADA_SEED = 7  # extra_args["seed"] of every row (TADA's extra noise)

TADA_CANDIDATES = tuple([f"tada(detail={d},order=2)/karras" for d in (1, 2, 4, 8, 16)]
                        + [f"tada(detail={d},order=3)/karras" for d in (4, 16)])
CRS_CANDIDATES = tuple(f"dpmpp_2m/crs(measure={m},xi={x},end={e})"
                       for m in ("data-free", "vx+cos", "cos+karras") for x in (1, 1.25, 1.5) for e in ("hold", "land"))
#: The dropdown without a calibration can only use a data-free velocity; a calibrated model uses its vx+cos one.
DATA_FREE_CANDIDATES = tuple(c for c in CRS_CANDIDATES if "vx+cos" not in c)
MEASURED_CANDIDATES = tuple(c for c in CRS_CANDIDATES if "vx+cos" in c)
CURRENT = {"tada": "tada(detail=1,order=2)/karras", "crs": "dpmpp_2m/crs(measure=data-free,xi=1.5,end=hold)",
           "crs_node": "dpmpp_2m/crs(measure=vx+cos,xi=1.5,end=hold)"}


# ------------------------------------------------------------------------------------------------------------
# specs
# ------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _velocity(testbed: str, part: str, measure: str):
    from schedule_lab.schedules.constant_rate.calibrate import calibrate
    from schedule_lab.schedules.constant_rate.construct import data_free_velocity
    from schedule_lab.solvers.classic import model_samples

    if measure in ("data-free", "cos+karras", "karras"):
        return data_free_velocity(measure, kind())  # exactly what sl_constant_rate uses without a calibration
    p = load_part(testbed, part)
    return calibrate(p.model, kind(), torch.zeros(64, p.dim), "vx+cos", points=24, samples=64, seed=0,
                     generate=model_samples)


def crs_sigmas(velocity, steps: int, xi: float, end: str) -> torch.Tensor:
    """Constant-rate sigmas with the last-interval handling ``end`` (docs/defaults.md §3): ``hold`` = the construction
    as shipped (last positive level σ_min); ``land`` = steps + 1 levels placed, σ_min dropped."""
    from schedule_lab.schedules.constant_rate.calibrate import schedule

    # end="hold" explicitly: schedule()'s own default now follows the per-NFE table (land), which would make
    # "hold" rows land and "land" rows drop two levels
    if end == "hold":
        return schedule(velocity, kind(), steps, xi=xi, end="hold")
    if end == "land":
        full = schedule(velocity, kind(), steps + 1, xi=xi, end="hold")
        return torch.cat([full[:-2], full[-1:]])
    raise ValueError(f"end={end!r}")


def sigmas_for(spec: str, testbed: str, part: str, steps: int) -> torch.Tensor:
    _, _, sched, opts = split_spec(spec)
    if sched == "karras":
        return karras(steps, kind().sigma_min, kind().sigma_max)
    if sched == "crs":
        vel = _velocity(testbed, part, opts["measure"])
        return crs_sigmas(vel, steps, float(opts["xi"]), opts["end"])
    if sched == "searched":
        return searched_sigmas(spec, testbed, part, steps)
    raise ValueError(f"unknown schedule in {spec!r}")


def run_spec(spec: str, p: Part, nfe: int) -> torch.Tensor:
    """One row's samples: the catalogue's run of the spec's sampler on its sigmas from σ_0 · noise (TADA's extra
    noise seeded 7)."""
    sig = sigmas_for(spec, p.testbed, p.part, nfe).to(torch.float32)
    return catalogue.run(catalogue_sampler(spec), sig, p.model, p.noise, kind=kind(), seed=TADA_SEED).x0


# ------------------------------------------------------------------------------------------------------------
# rows
# ------------------------------------------------------------------------------------------------------------
def load_rows() -> dict:
    return row_cache.load_rows(ROWS_DIR)


def save_rows(rows: dict, testbeds=None) -> None:
    """Write the rows of ``testbeds`` (default: all present) to their per-testbed files, atomically."""
    row_cache.save_rows(rows, ROWS_DIR, testbeds)


def row_key(testbed: str, part: str, spec: str, nfe: int) -> str:
    return f"{testbed}|{part}|{spec}|{nfe}"


@lru_cache(maxsize=32)
def _reference(testbed: str, part: str) -> torch.Tensor:
    p = load_part(testbed, part)
    return converged_endpoint(p.model, p.x_T, 0.002, 80.0, steps=p.reference_steps)


@lru_cache(maxsize=32)
def _ref_stats(testbed: str, part: str):
    p = load_part(testbed, part)
    return gaussian_stats(p.features(p.reference)) if p.features is not None else None


def measure(spec: str, testbed: str, part: str, nfe: int) -> dict:
    p = load_part(testbed, part)
    start = time.perf_counter()
    x0 = run_spec(spec, p, nfe).float()
    seconds = time.perf_counter() - start
    if not torch.isfinite(x0).all():
        return {"sw2": math.inf, "rmse": math.inf, "seconds": seconds}
    row = {"sw2": sliced_wasserstein(x0, p.reference, n_projections=512, seed=0),
           "rmse": float((x0.double() - _reference(testbed, part).double()).square().mean().sqrt()),
           "seconds": round(seconds, 3)}
    if p.features is not None:
        with torch.no_grad():
            row["fd"] = frechet_distance(*gaussian_stats(p.features(x0)), *_ref_stats(testbed, part))
    return row


def ensure(rows: dict, specs, testbeds, part: str, nfes, log=print) -> dict:
    for tb in testbeds:
        for spec in specs:
            for nfe in nfes:
                key = row_key(tb, part, spec, nfe)
                if key in rows:
                    continue
                rows[key] = measure(spec, tb, part, nfe)
                log(f"{key}  sw2 {rows[key]['sw2']:.4f}  rmse {rows[key]['rmse']:.4f}  {rows[key]['seconds']}s",
                    flush=True)
            save_rows(rows, [tb])
    return rows


def floors(rows: dict, testbeds, part: str) -> dict:
    """sw2 of the converged ODE itself (the floor every row approaches)."""
    out = {}
    for tb in testbeds:
        key = f"{tb}|{part}|converged|0"
        if key not in rows:
            p = load_part(tb, part)
            ref = _reference(tb, part).float()
            rows[key] = {"sw2": sliced_wasserstein(ref, p.reference, n_projections=512, seed=0), "rmse": 0.0}
            if p.features is not None:
                with torch.no_grad():
                    rows[key]["fd"] = frechet_distance(*gaussian_stats(p.features(ref)), *_ref_stats(tb, part))
        out[tb] = rows[key]
    return out


# ------------------------------------------------------------------------------------------------------------
# the rule
# ------------------------------------------------------------------------------------------------------------
def ratios(rows: dict, spec: str, testbed: str, part: str, nfe: int, stock: str) -> dict:
    a, b = rows[row_key(testbed, part, spec, nfe)], rows[row_key(testbed, part, stock, nfe)]
    out = {"sw2": a["sw2"] / b["sw2"], "rmse": a["rmse"] / b["rmse"] if b["rmse"] > 0 else math.inf}
    if "fd" in a and "fd" in b:
        out["fd"] = a["fd"] / b["fd"]
    return out


def metrics_for(spec: str) -> tuple[str, ...]:
    """TADA solves an ODE of its own: judged on the distribution distance only (docs/defaults.md §2)."""
    return ("sw2",) if spec.startswith("tada") else ("sw2", "rmse")


def worst(rows, spec, testbeds, part, nfe, stock) -> tuple[float, str]:
    worst_value, where = -math.inf, ""
    for tb in testbeds:
        r = ratios(rows, spec, tb, part, nfe, stock)
        for m in metrics_for(spec):
            if r[m] > worst_value:
                worst_value, where = r[m], f"{tb} {m}"
    return worst_value, where


def choose(rows, candidates, testbeds, nfes, stock, current) -> dict:
    """Per NFE: the candidate with the lowest worst ratio; within 1 % of the best the current default wins, else
    the first listed (docs/defaults.md §3)."""
    out = {}
    for nfe in nfes:
        scored = [(worst(rows, c, testbeds, "tuning", nfe, stock), c) for c in candidates]
        best = min(s[0][0] for s in scored)
        near = [c for (w, _), c in scored if w <= best * 1.01]
        pick = current if current in near else near[0]
        out[str(nfe)] = {"default": pick, "worst_ratio": worst(rows, pick, testbeds, "tuning", nfe, stock)[0],
                         "worst_at": worst(rows, pick, testbeds, "tuning", nfe, stock)[1],
                         "current": current, "current_worst_ratio": worst(rows, current, testbeds, "tuning", nfe,
                                                                          stock)[0],
                         "ranking": sorted([(round(w, 4), c, where) for (w, where), c in scored])[:5]}
    return out


def table(rows, specs, testbeds, part, nfes, stock_of, metric="sw2") -> list[str]:
    """Markdown: one line per (testbed, spec), the metric's ratio to its stock default at each NFE."""
    lines = ["| testbed | method | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
             "|---|---|" + "---|" * len(nfes)]
    for tb in testbeds:
        for spec in specs:
            stock = stock_of(spec)
            cells = []
            for n in nfes:
                k = row_key(tb, part, spec, n)
                if k not in rows or row_key(tb, part, stock, n) not in rows:
                    cells.append("–")
                    continue
                if spec == stock:
                    cells.append(f"{rows[k][metric]:.4g}")
                else:
                    r = ratios(rows, spec, tb, part, n, stock).get(metric)
                    cells.append("–" if r is None else (f"**{r:.2f}**" if r > 1.1 else f"{r:.2f}"))
            lines.append(f"| {tb} | {spec} | " + " | ".join(cells) + " |")
    return lines


def stock_of(spec: str) -> str:
    return STOCK["euler"] if spec.startswith("euler") else STOCK["dpmpp_2m"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m schedule_lab.lab.defaults.bench")
    ap.add_argument("--stage", choices=["tune", "choose"], default="tune")
    ap.add_argument("--testbeds", nargs="*", default=None,
                    help="default: every testbed with a tuning part")
    ap.add_argument("--nfes", nargs="*", type=int, default=list(NFES))
    ap.add_argument("--only", choices=["tada", "crs", "all"], default="all")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = load_rows()
    tuning = [tb for tb in (args.testbeds or TUNING_TESTBEDS) if tb in TUNING_TESTBEDS]
    if args.stage == "tune":
        specs = [STOCK["dpmpp_2m"], STOCK["euler"]]
        specs += list(TADA_CANDIDATES) if args.only in ("tada", "all") else []
        specs += list(CRS_CANDIDATES) if args.only in ("crs", "all") else []
        ensure(rows, specs, tuning, "tuning", args.nfes)
        floors(rows, tuning, "tuning")
        save_rows(rows, tuning)
    write_choice(rows, TUNING_TESTBEDS, args.nfes)
    return 0


def shipped_tables(path=CHOSEN_FILE) -> tuple[dict, dict]:
    """The code's per-NFE tables as chosen: TADA {nfe: (detail, order)}, data-free constant-rate {nfe: {"measure",
    "xi", "end"}}, measured constant-rate {nfe: {"xi", "end"}}."""
    chosen = json.loads(Path(path).read_text())
    tada, crs = {}, {}
    for n, entry in chosen["tada"].items():
        opts = split_spec(entry["default"])[1]
        tada[int(n)] = (float(opts["detail"]), int(opts["order"]))
    for n, entry in chosen["crs"].items():
        opts = split_spec(entry["default"])[3]
        crs[int(n)] = {"measure": opts["measure"], "xi": float(opts["xi"]), "end": opts["end"]}
    measured = {}
    for n, entry in chosen["crs_measured"].items():
        opts = split_spec(entry["default"])[3]
        measured[int(n)] = {"xi": float(opts["xi"]), "end": opts["end"]}
    return tada, crs, measured


def write_choice(rows: dict, testbeds, nfes) -> dict:
    """Apply the rule on the tuning rows present; write defaults_chosen.json and defaults_tuning.md."""
    testbeds = [tb for tb in testbeds if all(row_key(tb, "tuning", c, n) in rows
                                             for c in (*TADA_CANDIDATES, *CRS_CANDIDATES, STOCK["dpmpp_2m"])
                                             for n in nfes)]
    chosen = {"command": COMMAND, "testbeds": testbeds, "nfes": list(nfes),
              "tada": choose(rows, TADA_CANDIDATES, testbeds, nfes, STOCK["tada"], CURRENT["tada"]),
              "crs": choose(rows, DATA_FREE_CANDIDATES, testbeds, nfes, STOCK["dpmpp_2m"], CURRENT["crs"]),
              "crs_measured": choose(rows, MEASURED_CANDIDATES, testbeds, nfes, STOCK["dpmpp_2m"],
                                     CURRENT["crs_node"])}
    CHOSEN_FILE.write_text(json.dumps(chosen, indent=1) + "\n")
    md = ["# Defaults study on the tuning parts", "",
          f"`{COMMAND}` — rule in docs/defaults.md §3; testbeds: {', '.join(testbeds)}.", "",
          "## Chosen per NFE (worst ratio to dpmpp_2m + karras over the tuning parts; where it is worst)", "",
          "| NFE | method | default | worst ratio (where) | today's default: worst ratio |", "|---|---|---|---|---|"]
    for n in nfes:
        for method in ("tada", "crs", "crs_measured"):
            t = chosen[method][str(n)]
            md.append(f"| {n} | {method} | {t['default']} | {t['worst_ratio']:.2f} ({t['worst_at']}) | "
                      f"{t['current']}: {t['current_worst_ratio']:.2f} |")
    floor = floors(rows, testbeds, "tuning")
    for metric in ("sw2", "rmse"):
        md += ["", f"## {metric}: ratio to the stock default (stock rows: the value itself)", ""]
        md += table(rows, [STOCK["dpmpp_2m"], STOCK["euler"], *TADA_CANDIDATES, *CRS_CANDIDATES], testbeds,
                    "tuning", nfes, stock_of, metric)
    md += ["", "Converged-ODE floor (sw2): " + ", ".join(f"{tb} {floor[tb]['sw2']:.4g}" for tb in testbeds), ""]
    (RESULTS / "defaults_tuning.md").write_text("\n".join(md))
    return chosen


if __name__ == "__main__":
    raise SystemExit(main())
