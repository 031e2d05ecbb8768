"""Guard: the shipped defaults against the stock default on the held-out parts (docs/defaults.md §3).

    python -m schedule_lab.lab.defaults.guard [--testbeds ...] [--nfes ...] [--tolerance 1.10]

Not a timed test: a benchmark that **exits 1** when any method's shipped default is more than 10 % worse than the
stock default (``dpmpp_2m`` + ``karras``; ``euler`` + ``karras`` for Euler rows) on any held-out part at any NFE —
sliced W2 for every row, and RMSE to the converged ODE for rows that solve the standard ODE (not TADA, which
solves its own) — and prints the table that shows where. The defaults are read from the code
(``solvers.tada.default_settings``, ``schedules.constant_rate.construct.default_schedule_settings``), so the guard
checks what ships, not what a JSON file says. Rows are shared with ``bench`` (``results/defaults_rows``);
the tables go to ``results/defaults_held_out.md``.
"""
from __future__ import annotations

import argparse
import sys

import torch

from ..testbeds.suite import TESTBEDS
from .bench import NFES, RESULTS, ensure, floors, load_rows, ratios, row_key, save_rows

TOLERANCE = 1.10


def shipped_specs(nfe: int) -> dict[str, str]:
    """Method → benchmark spec of the default that ships at ``nfe`` (EDM/eps/v kinds)."""
    from schedule_lab.schedules.constant_rate.construct import default_schedule_settings
    from schedule_lab.schedules.model_kind import ModelKind
    from schedule_lab.solvers.tada import default_settings

    kind = ModelKind.edm(0.002, 80.0)
    detail, order = default_settings(nfe, kind)
    crs = default_schedule_settings(nfe, kind)
    measured = default_schedule_settings(nfe, kind, measured=True)
    tada = f"tada(detail={detail:g},order={order})"
    crs_df = f"crs(measure={crs['measure']},xi={crs['xi']:g},end={crs['end']})"
    crs_vx = (crs_df if measured.get("use") == "data-free"  # §10b: the calibrated MODEL gives the data-free list
              else f"crs(measure=vx+cos,xi={measured['xi']:g},end={measured['end']})")
    return {
        "sl_tada (karras)": f"{tada}/karras",
        "sl_constant_rate data-free (dpmpp_2m)": f"dpmpp_2m/{crs_df}",
        "sl_constant_rate data-free (euler)": f"euler/{crs_df}",
        "Constant-Rate Scheduler vx+cos (dpmpp_2m)": f"dpmpp_2m/{crs_vx}",
        "sl_tada on sl_constant_rate": f"{tada}/{crs_df}",
    }


#: The defaults shipped before the defaults study (detail 1 / order 2; data-free or vx+cos, ξ 1.5, last level at σ_min).
BEFORE = {
    "sl_tada (karras)": "tada(detail=1,order=2)/karras",
    "sl_constant_rate data-free (dpmpp_2m)": "dpmpp_2m/crs(measure=data-free,xi=1.5,end=hold)",
    "sl_constant_rate data-free (euler)": "euler/crs(measure=data-free,xi=1.5,end=hold)",
    "Constant-Rate Scheduler vx+cos (dpmpp_2m)": "dpmpp_2m/crs(measure=vx+cos,xi=1.5,end=hold)",
}


def before_after(rows: dict, testbeds, nfes) -> list[str]:
    """Per method and NFE: the worst and the median held-out sw2 ratio to stock, before → after."""
    out = ["| method | NFE | sw2 worst before → after | sw2 median before → after | rmse worst before → after |",
           "|---|---|---|---|---|"]
    for method, old in BEFORE.items():
        for n in nfes:
            new = shipped_specs(n)[method]
            cells = []
            for metric, agg in (("sw2", max), ("sw2", "median"), ("rmse", max)):
                pair = []
                for spec in (old, new):
                    vals = sorted(ratios(rows, spec, tb, "held_out", n, stock_for(spec))[metric] for tb in testbeds
                                  if row_key(tb, "held_out", spec, n) in rows
                                  and row_key(tb, "held_out", stock_for(spec), n) in rows)
                    pair.append("–" if not vals else f"{(vals[-1] if agg is max else vals[len(vals) // 2]):.2f}")
                cells.append(" → ".join(pair) if not (metric == "rmse" and method.startswith("sl_tada")) else "–")
            out.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    return out


def stock_for(spec: str) -> str:
    return "euler/karras" if spec.startswith("euler") else "dpmpp_2m/karras"


def check(rows: dict, testbeds, nfes, tolerance: float = TOLERANCE):
    """(lines of the markdown table, list of failures) for the held-out parts."""
    header = "| testbed | method | metric | " + " | ".join(f"NFE {n}" for n in nfes) + " |"
    lines = [header, "|---|---|---|" + "---|" * len(nfes)]
    failures = []
    for tb in testbeds:
        for method in shipped_specs(nfes[0]):
            metrics = ("sw2",) if method.startswith("sl_tada") else ("sw2", "rmse")
            for metric in metrics + (("fd",) if tb == "patches-unet" else ()):
                cells = []
                for n in nfes:
                    spec = shipped_specs(n)[method]
                    stock = stock_for(spec)
                    if row_key(tb, "held_out", spec, n) not in rows or row_key(tb, "held_out", stock, n) not in rows:
                        cells.append("–")
                        continue
                    r = ratios(rows, spec, tb, "held_out", n, stock).get(metric)
                    if r is None:
                        cells.append("–")
                        continue
                    bad = r > tolerance and metric != "fd"  # FD_patch is reported, not guarded (docs §2)
                    if bad:
                        failures.append((tb, method, metric, n, r, spec))
                    cells.append(f"**{r:.2f}**" if bad else f"{r:.2f}")
                lines.append(f"| {tb} | {method} | {metric} | " + " | ".join(cells) + " |")
    return lines, failures


def summary(rows: dict, testbeds, nfes) -> list[str]:
    """README lines: per shipped method, the held-out ratio to stock (median and range over testbeds) at 4–8 and at
    15–20 NFE, for sliced W2 (and RMSE for schedules), plus the 5-NFE value on the natural-image model."""
    out = ["| method | metric | 4–8 NFE: median (range) | 15–20 NFE: median (range) | natural-image UNet, 5 NFE |",
           "|---|---|---|---|---|"]
    for method in shipped_specs(nfes[0]):
        metrics = ("sw2",) if method.startswith("sl_tada") else ("sw2", "rmse")
        for metric in metrics:
            cells = []
            for group in ((4, 5, 6, 8), (15, 20)):
                vals = []
                for tb in testbeds:
                    for n in group:
                        spec = shipped_specs(n)[method]
                        if (n in nfes and row_key(tb, "held_out", spec, n) in rows
                                and row_key(tb, "held_out", stock_for(spec), n) in rows):
                            vals.append(ratios(rows, spec, tb, "held_out", n, stock_for(spec))[metric])
                vals.sort()
                cells.append(f"{vals[len(vals) // 2]:.2f} ({vals[0]:.2f}–{vals[-1]:.2f})" if vals else "–")
            spec5 = shipped_specs(5)[method]
            key = row_key("patches-unet", "held_out", spec5, 5)
            unet = (f"{ratios(rows, spec5, 'patches-unet', 'held_out', 5, stock_for(spec5))[metric]:.2f}"
                    if key in rows and row_key("patches-unet", "held_out", stock_for(spec5), 5) in rows else "–")
            out.append(f"| {method} | {metric} | {cells[0]} | {cells[1]} | {unet} |")
    return out


def confirm(rows: dict, testbeds, nfes, tolerance: float = TOLERANCE, out=RESULTS / "defaults_held_out.md",
            compute: bool = True) -> int:
    for tb in testbeds if compute else ():
        specs = {"dpmpp_2m/karras", "euler/karras"}
        for n in nfes:
            specs |= set(shipped_specs(n).values())
        for n in nfes:
            wanted = sorted({"dpmpp_2m/karras", "euler/karras", *shipped_specs(n).values(), *BEFORE.values()})
            ensure(rows, wanted, [tb], "held_out", [n])
        floors(rows, [tb], "held_out")
        save_rows(rows, [tb])
    lines, failures = check(rows, testbeds, nfes, tolerance)
    text = ["# Shipped defaults on the held-out parts (ratio to the stock default; > 1.10 in bold)", "",
            "`python -m schedule_lab.lab.defaults.guard` — stock = dpmpp_2m + karras (euler + karras for "
            "Euler rows). sw2 = sliced W2 to the part's reference data; rmse = error to the converged ODE (not for "
            "TADA, which solves its own ODE); fd = FD_patch (natural-image model only, reported, not guarded).", "",
            *lines, ""]
    out.write_text("\n".join(text))
    (RESULTS / "defaults_before_after.md").write_text(
        "# Defaults before and after the defaults study, held-out parts (ratio to the stock default)\n\n"
        "`python -m schedule_lab.lab.defaults.guard`\n\n" + "\n".join(before_after(rows, testbeds, nfes))
        + "\n")
    (RESULTS / "defaults_summary.md").write_text(
        "Ratio to the stock default on the held-out parts (below 1 = better than dpmpp_2m + karras; euler rows "
        "against euler + karras), from `python -m schedule_lab.lab.defaults.guard`:\n\n"
        + "\n".join(summary(rows, testbeds, nfes)) + "\n")
    print("\n".join(lines))
    if failures:
        print(f"\nGUARD FAILED: {len(failures)} default(s) more than {100 * (tolerance - 1):.0f} % worse than the "
              "stock default on a held-out part:", file=sys.stderr)
        for tb, method, metric, n, r, spec in failures:
            print(f"  {tb}  NFE {n}  {method} [{spec}]  {metric} ratio {r:.3f}", file=sys.stderr)
        return 1
    print(f"\nguard passed: every shipped default within {100 * (tolerance - 1):.0f} % of the stock default "
          "on every held-out part")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m schedule_lab.lab.defaults.guard")
    ap.add_argument("--testbeds", nargs="*", default=list(TESTBEDS))
    ap.add_argument("--nfes", nargs="*", type=int, default=list(NFES))
    ap.add_argument("--tolerance", type=float, default=TOLERANCE)
    ap.add_argument("--cached-only", action="store_true",
                    help="judge the rows already in results/defaults_rows without computing missing ones")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    return confirm(load_rows(), args.testbeds, args.nfes, args.tolerance, compute=not args.cached_only)


if __name__ == "__main__":
    raise SystemExit(main())
