"""Combinations and searched lists as first-class rows of the defaults study (docs/defaults.md §3b).

    python -m schedule_lab.lab.defaults.search [--parts tuning held_out] [--testbeds ...] [--nfes 4 5 6 8 10]
    python -m schedule_lab.lab.defaults.search --cached-only      # re-judge the rows already computed

Rows are ``bench`` specs (one row = one ``solvers.catalogue.run``), shared with its row cache
(``results/defaults_rows``):

* ``tada(<per-NFE default>)/crs(<shipped data-free default>)`` — TADA on the constant-rate list;
* ``dpmpp_2m/searched(opt=O,init=I)`` — a list searched for DPM-Solver++(2M) on the part's own model;
* ``tada(<per-NFE default>)/searched(opt=refine,init=I)`` — a list searched *for* TADA, then TADA on it.

A searched list is made once per (testbed, part, sampler, settings, NFE) from the search's own noise (seed 301 on
tuning parts, 401 on held-out parts; never a row's noise) and cached in ``results/defaults_searched/<testbed>.json``
with its cost. Settings O/I: ``evolution``/``uniform`` (the Timestep Search node's defaults), ``refine``/``karras``
and ``refine``/``crs`` (finite-difference refinement, 20 iterations, lr 0.2, batch 32, from the Karras or the shipped
constant-rate list). The rule (§3b) picks the search's settings per NFE and writes ``results/defaults_search.json``
(the code table ``schedules/search/defaults.py`` is a copy, checked by a test) and ``results/defaults_combos.md``.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from ..testbeds.suite import TESTBEDS, TUNING_TESTBEDS, kind
from .bench import RESULTS, STOCK, ensure, load_rows, ratios, row_key, save_rows, split_spec, worst
from .searched import _load_searched, crs_spec

CHOSEN_FILE = RESULTS / "defaults_search.json"
COMMAND = "python -m schedule_lab.lab.defaults.search"
#: Candidate settings of the search, in the order of docs/defaults.md §3b (ties go to the first, the node's default).
SEARCH_SETTINGS = ("opt=evolution,init=uniform", "opt=refine,init=karras", "opt=refine,init=crs")
CURRENT_SEARCH = SEARCH_SETTINGS[0]
FIRST_NFES = (4, 5, 6, 8, 10)


# ------------------------------------------------------------------------------------------------------------
# the specs at an NFE
# ------------------------------------------------------------------------------------------------------------
def tada_spec(nfe: int) -> str:
    from schedule_lab.solvers.tada import default_settings

    detail, order = default_settings(nfe, kind())
    return f"tada(detail={detail:g},order={order})"


def search_specs(nfe: int) -> dict[str, str]:
    """Label → spec of the searched rows at ``nfe`` (the candidates for the search's settings first)."""
    out = {f"search for dpmpp_2m [{s}]": f"dpmpp_2m/searched({s})" for s in SEARCH_SETTINGS}
    out |= {f"sl_tada on a list searched for it [{s}]": f"{tada_spec(nfe)}/searched({s})"
            for s in SEARCH_SETTINGS[1:]}
    return out


def combo_specs(nfe: int) -> dict[str, str]:
    """Label → spec of every row of the combinations table at ``nfe``: the shipped defaults, then the combinations."""
    return {"dpmpp_2m + karras (stock)": STOCK["dpmpp_2m"],
            "sl_tada (karras)": f"{tada_spec(nfe)}/karras",
            "sl_constant_rate (dpmpp_2m)": f"dpmpp_2m/{crs_spec(nfe)}",
            "sl_tada on sl_constant_rate": f"{tada_spec(nfe)}/{crs_spec(nfe)}",
            **search_specs(nfe)}


# ------------------------------------------------------------------------------------------------------------
# the rule and the tables
# ------------------------------------------------------------------------------------------------------------
def choose_search(rows: dict, testbeds, nfes) -> dict:
    """Per NFE: the search setting with the lowest worst tuning ratio to stock (sw2 and rmse); ties within 1 % go
    to the node's current default, else the first listed (docs/defaults.md §3b)."""
    out = {}
    for n in nfes:
        cands = [f"dpmpp_2m/searched({s})" for s in SEARCH_SETTINGS]
        have = [tb for tb in testbeds if all(row_key(tb, "tuning", c, n) in rows for c in (*cands, STOCK["dpmpp_2m"]))]
        if not have:
            continue
        scored = [(worst(rows, c, have, "tuning", n, STOCK["dpmpp_2m"]), c) for c in cands]
        best = min(w for (w, _), _ in scored)
        near = [c for (w, _), c in scored if w <= best * 1.01]
        current = f"dpmpp_2m/searched({CURRENT_SEARCH})"
        pick = current if current in near else near[0]
        w, where = worst(rows, pick, have, "tuning", n, STOCK["dpmpp_2m"])
        opts = split_spec(pick)[3]
        out[str(n)] = {"default": pick, "optimiser": opts["opt"], "init": opts["init"], "worst_ratio": round(w, 4),
                       "worst_at": where, "testbeds": have,
                       "ranking": sorted((round(w, 4), c, where) for (w, where), c in scored)}
    return out


NO_SEARCH = ("sl_tada (karras)", "sl_constant_rate (dpmpp_2m)", "sl_tada on sl_constant_rate")


def best_few_step(rows: dict, testbeds, nfes=(4, 5, 6), only=None) -> dict:
    """Per NFE: the row (shipped default or combination; ``only``: these labels) with the lowest worst tuning sw2
    ratio to stock."""
    out = {}
    for n in nfes:
        specs = {k: v for k, v in combo_specs(n).items() if v != STOCK["dpmpp_2m"] and (only is None or k in only)}
        have = [tb for tb in testbeds if all(row_key(tb, "tuning", s, n) in rows
                                             for s in (*specs.values(), STOCK["dpmpp_2m"]))]
        if not have:
            continue
        scored = []
        for label, spec in specs.items():
            vals = [ratios(rows, spec, tb, "tuning", n, STOCK["dpmpp_2m"])["sw2"] for tb in have]
            scored.append((max(vals), label, spec))
        w, label, spec = min(scored)
        out[str(n)] = {"label": label, "spec": spec, "worst_tuning_sw2": round(w, 4), "testbeds": have}
    return out


def _cell(rows, spec, tb, part, n, metric):
    stock = STOCK["dpmpp_2m"]
    if row_key(tb, part, spec, n) not in rows or row_key(tb, part, stock, n) not in rows:
        return None
    if spec == stock:
        return rows[row_key(tb, part, spec, n)][metric]
    return ratios(rows, spec, tb, part, n, stock).get(metric)


def combos_table(rows: dict, part: str, testbeds, nfes, metric: str) -> list[str]:
    labels = list(combo_specs(nfes[0]))
    lines = ["| method | " + " | ".join(f"NFE {n}: worst (median)" for n in nfes) + " |",
             "|---|" + "---|" * len(nfes)]
    for label in labels:
        cells = []
        for n in nfes:
            spec = combo_specs(n)[label]
            vals = sorted(v for tb in testbeds if (v := _cell(rows, spec, tb, part, n, metric)) is not None
                          and math.isfinite(v))
            if not vals or spec == STOCK["dpmpp_2m"]:
                cells.append("1" if vals else "–")
                continue
            cells.append(f"{vals[-1]:.2f} ({vals[len(vals) // 2]:.2f}) [{len(vals)}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def per_testbed(rows: dict, part: str, testbeds, n: int, metric: str) -> list[str]:
    labels = list(combo_specs(n))
    lines = ["| testbed | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for tb in testbeds:
        cells = []
        for label in labels:
            v = _cell(rows, combo_specs(n)[label], tb, part, n, metric)
            cells.append("–" if v is None else f"{v:.4g}" if label.endswith("(stock)") else f"{v:.2f}")
        lines.append(f"| {tb} | " + " | ".join(cells) + " |")
    return lines


def write_tables(rows: dict, nfes) -> dict:
    chosen = {"command": COMMAND, "rule": "docs/defaults.md §3b", "nfes": list(nfes),
              "search": choose_search(rows, TUNING_TESTBEDS, nfes),
              "best_few_step": best_few_step(rows, TUNING_TESTBEDS, [n for n in nfes if n <= 6]),
              "best_without_search": best_few_step(rows, TUNING_TESTBEDS, [n for n in nfes if n <= 6], NO_SEARCH)}
    CHOSEN_FILE.write_text(json.dumps(chosen, indent=1) + "\n")
    searched = {tb: _load_searched(tb) for tb in TESTBEDS}
    md = ["# Combinations and searched lists (docs/defaults.md §3b)", "",
          f"`{COMMAND}` — ratio to dpmpp_2m + karras (below 1 = better); each cell: the worst ratio over the "
          "part's testbeds (the median in brackets) [how many testbeds]. sw2 = sliced W2 to the part's data; "
          "rmse = error to the converged ODE (for TADA rows the standard ODE's endpoint, reported only).", ""]
    md += ["## The search's settings by the rule (tuning parts)", "",
           "| NFE | chosen | worst tuning ratio (where) | ranking |", "|---|---|---|---|"]
    for n, c in chosen["search"].items():
        md.append(f"| {n} | {c['default']} | {c['worst_ratio']:.2f} ({c['worst_at']}) | "
                  + "; ".join(f"{r[1]}: {r[0]:.2f}" for r in c["ranking"]) + " |")
    md += ["", "## Best few-step setting (lowest worst tuning sw2 ratio)", "",
           "| NFE | row | spec | worst tuning sw2 ratio |", "|---|---|---|---|"]
    for n, b in chosen["best_few_step"].items():
        md.append(f"| {n} | {b['label']} | `{b['spec']}` | {b['worst_tuning_sw2']:.2f} |")
    md += ["", "## Best few-step setting without a search (shipped defaults and TADA on constant-rate)", "",
           "| NFE | row | spec | worst tuning sw2 ratio |", "|---|---|---|---|"]
    for n, b in chosen["best_without_search"].items():
        md.append(f"| {n} | {b['label']} | `{b['spec']}` | {b['worst_tuning_sw2']:.2f} |")
    for part, tbs in (("tuning", TUNING_TESTBEDS), ("held_out", TESTBEDS)):
        for metric in ("sw2", "rmse"):
            md += ["", f"## {part}: {metric}", ""] + combos_table(rows, part, tbs, list(nfes), metric)
    for n in (5,):
        if n in nfes:
            for part, tbs in (("held_out", TESTBEDS),):
                md += ["", f"## {part}, NFE {n}, per testbed: sw2 (stock: the value itself)", ""]
                md += per_testbed(rows, part, tbs, n, "sw2")
    costs = [(e["seconds"], e["model_calls"]) for tb in searched.values() for e in tb.values()]
    if costs:
        md += ["", f"Searches run: {len(costs)}, {sum(c[0] for c in costs) / 60:.1f} minutes of wall time in all "
               "(reference included; 1 thread on a shared, loaded 2-core machine), median model calls per search "
               f"{sorted(c[1] for c in costs)[len(costs) // 2]}.", ""]
    (RESULTS / "defaults_combos.md").write_text("\n".join(md) + "\n")
    return chosen


def shipped_search_table(path=CHOSEN_FILE) -> dict[int, tuple[str, str]]:
    """``schedules.search.defaults.SETTINGS_BY_NFE`` as the rule wrote it: {nfe: (optimiser, initial list)}."""
    chosen = json.loads(Path(path).read_text())
    names = {"uniform": "uniform", "karras": "karras", "crs": "constant_rate"}
    return {int(n): (c["optimiser"], names[c["init"]]) for n, c in chosen["search"].items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m schedule_lab.lab.defaults.search")
    ap.add_argument("--parts", nargs="*", default=["tuning", "held_out"])
    ap.add_argument("--testbeds", nargs="*", default=list(TESTBEDS))
    ap.add_argument("--nfes", nargs="*", type=int, default=list(FIRST_NFES))
    ap.add_argument("--rows", nargs="*", default=None, help="labels of combo_specs to compute (default: all)")
    ap.add_argument("--cached-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = load_rows()
    if not args.cached_only:
        for part in args.parts:
            tbs = [tb for tb in args.testbeds if part == "held_out" or tb in TUNING_TESTBEDS]
            for tb in tbs:
                for n in args.nfes:
                    specs = [v for k, v in combo_specs(n).items() if args.rows is None or k in args.rows]
                    ensure(rows, [STOCK["dpmpp_2m"], *specs], [tb], part, [n])
                save_rows(rows, [tb])
    chosen = write_tables(load_rows(), sorted(set(args.nfes) | set(FIRST_NFES)))
    print(json.dumps(chosen["search"], indent=1))
    print(json.dumps(chosen["best_few_step"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
