"""docs/menu.md §5: per model family, the best pair of (a sampler of ComfyUI's menu or the pack's) × (a pack schedule)
an artist can pick in one KSampler choice, by the rule stated before its rows were computed.

    eval "$(../shared/host/comfyui-host.sh)"      # the never-lose rows at NFE 10-30 run ComfyUI's code
    python -m schedule_lab.lab.benchmarks.menu_rule --family flow edm [--no-run]

Reads the error-stage rows of ``menu_bench`` (``results/menu_rows/<setting>__<part>.json``: the menu, ComfyUI's
samplers on the pack's lists, sl_tada on them), scores every candidate (worst E / menu's best E over the family's
tuning settings at NFE 4, 5, 6, 8), checks the never-lose constraint in rank order (running the candidate and the
stock default at NFE 10, 15, 20, 30 unless ``--no-run``), and writes ``results/menu_rule.json`` (format: docs/menu.md
§5) and ``results/menu_rule.md``. The held-out part is read for confirmation, never for the choice.
"""
from __future__ import annotations

import argparse
import json

from . import menu_bench as mb
from .comfy_worker import MENU_SAMPLERS

__all__ = ["FAMILIES", "PRESET_NAMES", "RULE_NFES", "candidates", "main", "score"]

#: docs/menu.md §5: the family's tuning settings (an `edm-768/edm` row set joins EDM when its rows exist)
FAMILIES = {"flow": ("flow-768/shift1", "flow-768/shift3", "flow-768/flux"),
            "edm": ("patch-unet/edm", "edm-768/edm"), "eps": ("eps-768/sd1",), "v": ("v-768/sd1",)}
PRESET_NAMES = {"flow": "sl_flow_few_steps", "edm": "sl_edm_few_steps", "eps": "sl_sd1_few_steps",
                "v": "sl_v_few_steps"}
RULE_NFES = (4, 5, 6, 8)
TIE = 0.01  # scores within 1 % of the best are a tie
NOISE_FLOOR = 0.02  # the constraint's seed noise is at least 2 %
SL_FEW_STEPS = ("sl_tada", "sl_constant_rate")  # solvers/presets.py's sl_few_steps
#: A Preset is a sampler + scheduler name: a calibrated winner used without the Constant-Rate Scheduler's MODEL is
#: the data-free list, another setting (on flow, before docs/defaults.md §11, the guard measured it losing to
#: euler + simple at 4-5 NFE).
CALIBRATED_NOT_SHIPPED = ("not shipped as a preset: a Preset names only a sampler and a scheduler, so without the "
                          "Constant-Rate Scheduler's MODEL the pair runs the data-free sl_constant_rate list, a "
                          "setting this rule did not choose (on flow, before docs/defaults.md §11, it lost to the "
                          "stock default at 4-5 NFE: guard_learned rows, docs/menu.md §5b); the pairing is "
                          "documented on the node instead")
TARGET = 0.8  # the accuracy target: ≤ 0.8x the menu's best E at 4-8 NFE
COMMAND = "python -m schedule_lab.lab.benchmarks.menu_rule"
SAMPLERS = tuple(MENU_SAMPLERS) + mb.PACK_SAMPLERS


def candidates() -> list[tuple[str, str]]:
    """Every (sampler, pack schedule) of §5, in the tie rule's order (3) and (4) (all four: ``_tie_key``); not the
    deprecated schedules (docs/defaults.md §15)."""
    return [(a, sc) for a in SAMPLERS for sc in mb.PACK_SCHEDULES if sc not in mb.DEPRECATED]


def _tie_key(pair):
    a, sc = pair
    return (sc == "calibrated", a in mb.PACK_SAMPLERS, SAMPLERS.index(a), mb.PACK_SCHEDULES.index(sc))


def _cache(setting: str, part: str) -> mb.Cache | None:
    path = mb.RESULTS / "menu_rows" / f"{setting.replace('/', '_')}__{part}.json"
    return mb.Cache(path) if path.exists() else None


def cell(cache: mb.Cache, setting: mb.Setting, part: str, nfe: int, n: int = 128) -> dict:
    """{"best": (pair, row), "stock": row | None, "rows": {candidate pair: (E, halves)}} of one cell: a candidate's E
    is its E to the converged ODE, sl_tada's its E to its own converged endpoint (§5)."""
    seed = mb.PARTS[part][0]
    menu = mb._menu_e(cache, nfe, n, seed)
    out = {"best": None, "stock": menu.get(mb.STOCK[setting.family]), "rows": {}}
    full = {p: r for p, r in menu.items() if p[0] in MENU_SAMPLERS}
    if len(full) >= 50:  # the menu's best is over the whole menu, not the stock-only rows of NFE 10-30
        best = min(full, key=lambda p: full[p]["E"])
        out["best"] = (best, full[best])
    for pair, row in mb.xpack_e(cache, setting, nfe, n, seed).items():
        out["rows"][pair] = (row["E"], row["E_halves"])
    for pair, row in mb._pack_e(cache, setting, nfe, n, seed).items():
        if pair[0] in mb.PACK_SAMPLERS and pair[1] in mb.PACK_SCHEDULES and "E_own_halves" in row:
            out["rows"][pair] = (row["E_own"], row["E_own_halves"])
    return out


def never_lose(e, halves, stock) -> tuple[bool, float, float]:
    """(passes, E/E_stock, the seed noise s) of §5: E ≤ E_stock (1 + s), s = max(2 %, |r1 − r2| / 2)."""
    r = e / stock["E"]
    r1, r2 = halves[0] / stock["E_halves"][0], halves[1] / stock["E_halves"][1]
    s = max(NOISE_FLOOR, abs(r1 - r2) / 2)
    return r <= 1 + s, r, s


def score(cells: dict, pair) -> float | None:
    """The worst ratio to the menu's best E over the cells (None if a cell lacks the row or its menu)."""
    worst = 0.0
    for c in cells.values():
        if c["best"] is None or pair not in c["rows"]:
            return None
        worst = max(worst, c["rows"][pair][0] / c["best"][1]["E"])
    return worst


def _ensure_rows(name: str, part: str, pairs, nfes=mb.LONG_NFES, stock: bool = True, n: int = 128,
                 log=print) -> None:
    """Candidate rows (and the stock default's, ``stock``) at ``nfes``, cached like every other row (§5: NFE 10-30
    for the never-lose check; a held-out part's rows for the chosen presets)."""
    setting = mb.SETTINGS[name]
    cache = _cache(name, part)
    seed = mb.PARTS[part][0]
    model = mb.load_model(setting.model)
    z = mb.noise(n, seed, setting.dim)
    ref = mb._converged(model, setting.kind, z, mb.REF_STEPS)
    if stock:
        mb.menu_rows(setting, part, nfes, n, cache, z, ref, only=[mb.STOCK[setting.family]], log=log)
    comfy = [p for p in pairs if p[0] not in mb.PACK_SAMPLERS]
    if comfy:  # ComfyUI's samplers: one worker call for all of them
        mb.stage_pack_menu(setting, part, nfes, n, cache, only=comfy, log=log)
    for pair in pairs:
        if pair[0] in mb.PACK_SAMPLERS:
            mb.pack_rows(setting, part, nfes, n, cache, model, z, ref, rows=[pair], log=log)
    cache.save()


def _ensure_long(name: str, part: str, pair, log=print) -> None:
    _ensure_rows(name, part, [pair], log=log)


def _fmt_cells(cells: dict, pair) -> dict:
    out = {}
    for (name, nfe), c in cells.items():
        row = c["rows"].get(pair)
        if row is None:
            continue
        d = {"E": row[0]}
        if c["best"] is not None:
            d["menu_best"] = [*c["best"][0], c["best"][1]["E"]]
            d["ratio_menu_best"] = round(row[0] / c["best"][1]["E"], 4)
        if c["stock"] is not None:
            ok, r, s = never_lose(row[0], row[1], c["stock"])
            d.update({"stock_E": c["stock"]["E"], "ratio_stock": round(r, 4), "seed_noise": round(s, 4),
                      "never_lose": ok})
        out.setdefault(name, {})[str(nfe)] = d
    return out


def family_rule(family: str, run: bool, held_out: bool = False, long_held_out: bool = False, prefetch: int = 0,
                log=print) -> dict:
    names = [s for s in FAMILIES[family] if _cache(s, "tuning") is not None]
    cells = {}
    for name in names:
        setting = mb.SETTINGS[name]
        cache = _cache(name, "tuning")
        for k in RULE_NFES:
            cells[(name, k)] = cell(cache, setting, "tuning", k)
    names = [s for s in names if all(cells[(s, k)]["best"] is not None for k in RULE_NFES)]
    cells = {key: c for key, c in cells.items() if key[0] in names}
    if not names:
        return {"settings": [], "note": "no tuning rows"}
    scored = {p: score(cells, p) for p in candidates()}
    missing = sorted(p for p, v in scored.items() if v is None)
    ranked = sorted((p for p, v in scored.items() if v is not None), key=lambda p: scored[p])
    best = scored[ranked[0]]
    tied = sorted((p for p in ranked if scored[p] <= best * (1 + TIE)), key=_tie_key)
    order = tied + [p for p in ranked if p not in tied]
    if run and prefetch:  # the never-lose rows of the next `prefetch` candidates in one worker call per setting
        ahead = order[:prefetch]
        for name in names:
            _ensure_rows(name, "tuning", ahead, log=log)
    chosen, checked = None, []
    for pair in order:
        if run:
            for name in names:
                _ensure_long(name, "tuning", pair, log=log)
        long_cells = {}
        for name in names:
            setting, cache = mb.SETTINGS[name], _cache(name, "tuning")
            for k in (*RULE_NFES, *mb.LONG_NFES):
                long_cells[(name, k)] = cell(cache, setting, "tuning", k)
        fails, unmeasured = [], []
        for (name, k), c in long_cells.items():
            if pair not in c["rows"] or c["stock"] is None:
                unmeasured.append(f"{name}@{k}")
                continue
            ok, r, _ = never_lose(*c["rows"][pair], c["stock"])
            if not ok:
                fails.append(f"{name}@{k}: {r:.3f}x stock")
        checked.append({"pair": list(pair), "score": round(scored[pair], 4), "fails": fails,
                        "unmeasured": unmeasured})
        log(f"{family}: {pair} score {scored[pair]:.3f} fails {fails} unmeasured {unmeasured}")
        if not fails and (not unmeasured or not run):
            chosen = pair  # with --no-run and rows missing at NFE 10-30: provisional
            break
    provisional = bool(chosen and checked[-1]["unmeasured"])
    # a provisional pair (never-lose rows at NFE 10-30 not all measured) names no preset
    out = {"settings": names, "preset": PRESET_NAMES[family] if chosen and not provisional else None,
           "provisional": provisional,
           "ranking": [[*p, round(scored[p], 4)] for p in ranked[:12]], "missing_candidates": len(missing),
           "checked": checked}
    if chosen is None:
        return out
    out.update({"sampler": chosen[0], "scheduler": "sl_constant_rate" if chosen[1] == "calibrated" else chosen[1],
                "calibrated": chosen[1] == "calibrated", "score": round(scored[chosen], 4)})
    if out["calibrated"]:  # found after the rule ran: a Preset cannot carry the calibration (docs/menu.md §5b)
        out["preset"] = None
        out["not_shipped"] = CALIBRATED_NOT_SHIPPED
    if held_out:  # confirmation rows: the chosen pair and sl_few_steps at 4-8, the chosen and stock at 10-30
        for name in FAMILIES[family]:
            cache = _cache(name, "held_out")
            if cache is None:
                continue
            have = [k for k in RULE_NFES if cell(cache, mb.SETTINGS[name], "held_out", k)["best"] is not None]
            if have:  # only where the held-out menu has run (its best pair is the comparison)
                _ensure_rows(name, "held_out", [chosen, SL_FEW_STEPS], have, stock=False, log=log)
            if long_held_out:
                _ensure_rows(name, "held_out", [chosen], mb.LONG_NFES, log=log)
    parts = {}
    for part in ("tuning", "held_out"):
        pc = {}
        for name in FAMILIES[family]:
            cache = _cache(name, part)
            if cache is None:
                continue
            for k in (*RULE_NFES, *mb.LONG_NFES):
                pc[(name, k)] = cell(cache, mb.SETTINGS[name], part, k)
        parts[part] = {"chosen": _fmt_cells(pc, chosen), "sl_few_steps": _fmt_cells(pc, SL_FEW_STEPS)}
        ratios = [c["ratio_menu_best"] for s in parts[part]["chosen"].values() for k, c in s.items()
                  if int(k) in RULE_NFES and "ratio_menu_best" in c]
        parts[part]["worst_ratio_menu_best_4_8"] = max(ratios) if ratios else None
        parts[part]["meets_target_0.8"] = (max(ratios) <= TARGET) if ratios else None
    out["parts"] = parts
    row5 = None
    for name in names:
        cache = _cache(name, "tuning")
        seed = mb.PARTS["tuning"][0]
        rows = (mb._pack_e if chosen[0] in mb.PACK_SAMPLERS else mb.xpack_e)(cache, mb.SETTINGS[name], 5, 128, seed)
        if chosen in rows:
            row5 = rows[chosen]["steps"]
            break
    out["steps_at_nfe5"] = row5
    return out


def _md(result: dict) -> str:
    lines = ["# The per-family presets of docs/menu.md §5", "",
             f"Written by `{COMMAND} --family {' '.join(result['families'])}`. Score = worst E / the menu's best "
             "E over the family's tuning settings at NFE 4, 5, 6, 8 (sl_tada: E to its own converged endpoint); "
             "never-lose = E ≤ E(stock default) × (1 + s) at NFE 4-30.", ""]
    for fam, r in result["families"].items():
        lines += [f"## {fam}: settings {', '.join(r.get('settings', [])) or '—'}", ""]
        if r.get("sampler"):
            lines.append(f"Chosen: **{r['sampler']} + {r['scheduler']}**"
                         + (" (calibrated: the Constant-Rate Scheduler node's MODEL)" if r["calibrated"] else "")
                         + f", score {r['score']:.3f}"
                         + (f"; preset `{r['preset']}`" if r.get("preset") else "")
                         + (" — **provisional**: the never-lose rows at NFE 10-30 are not all measured"
                            if r.get("provisional") else "")
                         + (f" — {r['not_shipped']}" if r.get("not_shipped") else "") + ".")
        else:
            lines.append("No candidate met the constraint with the rows present.")
        lines += ["", "Ranking (best 12 by score): " + "; ".join(f"{a} + {b} {s:.3f}" for a, b, s in r["ranking"]),
                  ""]
        for c in r["checked"]:
            lines.append(f"* checked {c['pair'][0]} + {c['pair'][1]} ({c['score']:.3f}): "
                         + (f"fails {', '.join(c['fails'])}" if c["fails"] else "passes")
                         + (f"; unmeasured {', '.join(c['unmeasured'])}" if c["unmeasured"] else ""))
        for part, p in r.get("parts", {}).items():
            for label in ("chosen", "sl_few_steps"):
                lines += ["", f"### {part}: {label}", "",
                          "| setting | NFE | E | menu's best pair (E) | E / menu best | E / stock | seed noise | "
                          "never lose |", "|---|---|---|---|---|---|---|---|"]
                for name, per in p[label].items():
                    for k, d in sorted(per.items(), key=lambda kv: int(kv[0])):
                        mbp = d.get("menu_best")
                        lines.append(f"| {name} | {k} | {d['E']:.4f} | "
                                     + (f"{mbp[0]} + {mbp[1]} ({mbp[2]:.4f})" if mbp else "—") + " | "
                                     + (f"{d['ratio_menu_best']:.3f}" if "ratio_menu_best" in d else "—") + " | "
                                     + (f"{d['ratio_stock']:.3f} | {d['seed_noise']:.3f} | "
                                        f"{'yes' if d['never_lose'] else '**no**'} |" if "ratio_stock" in d
                                        else "— | — | — |"))
            lines += ["", f"{part}: worst E / menu best at 4-8 NFE = {p['worst_ratio_menu_best_4_8']}; "
                          f"target ≤ {TARGET}: {p['meets_target_0.8']}"]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    p.add_argument("--family", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--no-run", action="store_true", help="only read cached rows (no NFE 10-30 runs)")
    p.add_argument("--held-out", action="store_true", help="run the chosen pair and sl_few_steps on every held-out "
                   "part whose menu rows exist (menu_bench --part held_out --stage menu)")
    p.add_argument("--long-held-out", action="store_true", help="with --held-out: also NFE 10-30 (chosen, stock)")
    p.add_argument("--prefetch", type=int, default=0, help="run the never-lose rows of the first N candidates in "
                   "one go (a worker start costs more than a few rows); the choice is the same")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    mb.pin_threads(args.threads)
    path = mb.RESULTS / "menu_rule.json"
    result = json.loads(path.read_text()) if path.exists() else {"families": {}}
    result.update({"rule": "docs/menu.md §5", "command": COMMAND, "nfes": list(RULE_NFES),
                   "long_nfes": list(mb.LONG_NFES), "target": TARGET})
    for fam in args.family:
        result["families"][fam] = family_rule(fam, not args.no_run, args.held_out, args.long_held_out,
                                              args.prefetch, log=lambda m: print(m, flush=True))
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    md = _md(result)
    (mb.RESULTS / "menu_rule.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
