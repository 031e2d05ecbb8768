"""The README's "What to expect per model family": one sentence per family and step range, every number read from the
menu benchmark's summary (``results/menu_summary.json``, written by ``menu_bench``), each sentence naming the command
that produced its rows; where the per-family rule's output exists (``results/menu_rule.json``, written by
``menu_rule``, format in docs/menu.md), the family's sentence ends with the rule's choice and its worst ratios.

    python -m schedule_lab.lab.benchmarks.family_expectations      # writes results/family_expectations.md

``tests/lab/test_menu_bench.py`` checks that the README holds the generated lines as they are. Held-out rows are used
where the summary has them, else the tuning part's (the sentence says which).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["FAMILIES", "expectations", "main"]

RESULTS = Path(__file__).resolve().parent / "results"

#: README family → (menu_bench setting or None when not measured yet, what the artist calls it).
FAMILIES = (
    ("SD1.5 / SDXL (ε-prediction)", "eps-768/sd1"),
    ("SD2.x 768-v and v-prediction finetunes", "v-768/sd1"),
    ("EDM-type models (Playground v2.5 and EDM finetunes)", "patch-unet/edm"),
    ("SD3 / SD3.5 (rectified flow, shift 3)", "flow-768/shift3"),
    ("Flux (rectified flow, Flux's time shift μ = 1.15)", "flow-768/flux"),
)
#: README family label → the rule's family key (menu_rule.json "families").
RULE_FAMILY = {FAMILIES[0][0]: "eps", FAMILIES[1][0]: "v", FAMILIES[2][0]: "edm", FAMILIES[3][0]: "flow",
               FAMILIES[4][0]: "flow"}
MODELS = {"eps-768/sd1": "the zoo's ε model", "v-768/sd1": "the zoo's v model",
          "patch-unet/edm": "the natural-image patch UNet",
          "flow-768/shift3": "the zoo's flow model", "flow-768/flux": "the zoo's flow model"}


#: The 3072-d zoo model of a README family's setting: its held-out rows, where ``menu_bench`` has run, add a clause.
LARGER = {"eps-768/sd1": "eps-3072/sd1", "v-768/sd1": "v-3072/sd1", "patch-unet/edm": "edm-3072/edm",
          "flow-768/shift3": "flow-3072/shift3"}
#: The issue's accuracy target: the pack's best schedule without a search ≤ 0.8× the menu's best pair's E at 4–8 NFE.
TARGET = 0.8


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}×" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}×"


def _nfes(cells) -> str:
    keys = sorted(int(k) for k in cells)
    return f"{keys[0]}–{keys[-1]}" if len(keys) > 1 else str(keys[0])


def _part(summary: dict, setting: str) -> str | None:
    """The part a sentence reads: held-out where the pack's rows are in it (a held-out part may hold the menu's rows
    alone), else tuning, else None."""
    return next((p for p in ("held_out", "tuning") if summary.get(setting, {}).get(p)
                 and all(c.get("pack_best_E") for c in summary[setting][p].values())), None)


def sentence(label: str, setting: str | None, summary: dict) -> str:
    part = _part(summary, setting) if setting is not None else None
    if part is None:
        why = "its zoo model is not in the menu benchmark yet" if setting is None else (
            f"`menu_bench --setting {setting}` has not run yet")
        return (f"- **{label}**: not measured against ComfyUI's menu yet ({why}); the stock default "
                "(dpmpp_2m + karras) is what the pack's defaults are checked against (docs/defaults.md).")
    cells = summary[setting][part]
    n = _nfes(cells)
    best = "; ".join(f"{c['menu_best_E'][0]} + {c['menu_best_E'][1]} at {k}" for k, c in sorted(
        cells.items(), key=lambda kv: int(kv[0])))
    stock = [c["stock_E_ratio"] for c in cells.values() if c.get("stock_E_ratio")]
    packs = {k: c["pack_best_E"] for k, c in cells.items() if c.get("pack_best_E")}
    tada = [c["tada_best_E_own"][2] for c in cells.values() if c.get("tada_best_E_own")]
    pairs = sorted({f"{p[0]} + {p[1]}" for p in packs.values()})
    wins = [f"{p[2]:.2f}× at {k}" for k, p in sorted(packs.items(), key=lambda kv: int(kv[0])) if p[2] < 1.0]
    tada_on = sorted({c["tada_best_E_own"][1] for c in cells.values() if c.get("tada_best_E_own")})
    return (f"- **{label}, {n} steps** ({MODELS[setting]}, {part} part): ComfyUI's best pair changes with the step "
            f"count ({best}); the stock default is {_span(stock)} its error to the converged ODE; the pack's best "
            f"schedule without a search ({', '.join(pairs)}) is {_span([p[2] for p in packs.values()])}"
            + (f" (a tie or better: {', '.join(wins)})" if wins else "")
            + (f"; sl_tada on {', '.join(tada_on)} {_span(tada)} on its own converged ODE" if tada else "")
            + f". `python -m schedule_lab.lab.benchmarks.menu_bench --setting {setting} --part {part} --stage error`.")


def larger_clause(setting: str | None, summary: dict) -> str:
    """" On the 3072-d model ...": the larger zoo model's stock and pack ratios, where its rows exist."""
    big = LARGER.get(setting or "")
    part = _part(summary, big) if big else None
    if part is None:
        return ""
    cells = summary[big][part]
    stock = [c["stock_E_ratio"] for c in cells.values() if c.get("stock_E_ratio")]
    packs = [c["pack_best_E"][2] for c in cells.values()]
    pairs = sorted({f"{c['pack_best_E'][0]} + {c['pack_best_E'][1]}" for c in cells.values()})
    return (f" On the 3072-d model ({big}, {part.replace('_', '-')} part, {_nfes(cells)} steps) the stock default is "
            f"{_span(stock)} and the pack's best schedule without a search ({', '.join(pairs)}) {_span(packs)} the "
            f"menu's best pair's error (`python -m schedule_lab.lab.benchmarks.menu_bench --setting {big} --part "
            f"{part} --stage error`).")


def targets(summary: dict) -> str:
    """Every model's cells against the accuracy target (the issue's "report every miss with its table")."""
    lines = ["# The accuracy target per model (`python -m schedule_lab.lab.benchmarks.family_expectations`)", "",
             f"The pack's best schedule without a search, E ÷ the menu's best pair's E at the same NFE (target ≤ "
             f"{TARGET}), and `sl_tada`'s best on its own converged ODE, from `results/menu_summary.json`. "
             "Held-out parts where they have the pack's rows, else tuning. The pack's rows here are the stock "
             "samplers an artist pairs with the pack's lists (`menu_bench.PACK_ROWS`); every ComfyUI sampler on the "
             "pack's lists is in `menu_rule.md` (docs/menu.md §5).", "",
             "| model | part | NFE | menu's best pair | stock default | pack's best, no search | met "
             "| sl_tada (own ODE) |",
             "|---|---|---|---|---|---|---|---|"]
    for setting in sorted(summary):
        part = _part(summary, setting)
        if part is None:
            continue
        for k, c in sorted(summary[setting][part].items(), key=lambda kv: int(kv[0])):
            best, pack, tada = c["menu_best_E"], c["pack_best_E"], c.get("tada_best_E_own")
            lines.append(f"| {setting} | {part} | {k} | {best[0]} + {best[1]} ({best[2]:.4f}) | "
                         f"{c['stock_E_ratio']:.2f}× | {pack[0]} + {pack[1]} {pack[2]:.2f}× | "
                         f"{'yes' if pack[2] <= TARGET else '**no**'} | "
                         + (f"on {tada[1]} {tada[2]:.2f}×" if tada else "–") + " |")
    return "\n".join(lines) + "\n"


def rule_sentence(family: dict, key: str, command: str) -> str:
    """The rule's choice for one family (menu_rule.json ``families[key]``), or "" when it chose none."""
    if not family or not family.get("sampler"):
        return ""
    name = f" (preset {family['preset']})" if family.get("preset") else ""
    calibrated = " on the Constant-Rate Scheduler's calibrated MODEL" if family.get("calibrated") else ""
    parts = family.get("parts") or {}
    out = (f" The per-family rule chose **{family['sampler']} + {family['scheduler']}**{name}{calibrated} for {key} "
           f"models")
    if family.get("score") is not None:
        out += f": worst {family['score']:.2f}× the menu's best E at 4–8 NFE on the tuning part"
    held = parts.get("held_out") or {}
    if held.get("worst_ratio_menu_best_4_8") is not None:
        met = "meets" if held.get("meets_target_0.8") else "misses"
        out += f", {held['worst_ratio_menu_best_4_8']:.2f}× on the held-out part ({met} the 0.8× target)"
    if family.get("provisional"):
        out += " (provisional: some never-lose rows at NFE 10–30 were not measured)"
    return out + f" (`{command}`)."


def expectations(summary: dict, rule: dict | None = None) -> str:
    lines = ["Ratios are errors to the converged ODE (E, docs/menu.md §3) divided by the error of the best pair of "
             "ComfyUI's menu at the same number of model calls, same noise; below 1 beats it. From "
             "`lab/benchmarks/results/menu_summary.json`" + (" and `menu_rule.json`" if rule else "")
             + " (written by the commands named), regenerated by "
             "`python -m schedule_lab.lab.benchmarks.family_expectations`.", ""]
    for label, setting in FAMILIES:
        line = sentence(label, setting, summary) + larger_clause(setting, summary)
        if rule:
            key = RULE_FAMILY[label]
            line += rule_sentence((rule.get("families") or {}).get(key), key,
                                  rule.get("command") or "python -m schedule_lab.lab.benchmarks.menu_rule")
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.family_expectations",
                                description=__doc__.split("\n")[0])
    p.add_argument("--summary", type=Path, default=RESULTS / "menu_summary.json")
    p.add_argument("--rule", type=Path, default=RESULTS / "menu_rule.json", help="the rule's output, used if present")
    p.add_argument("--out", type=Path, default=RESULTS / "family_expectations.md")
    args = p.parse_args(argv)
    rule = json.loads(args.rule.read_text()) if args.rule.exists() else None
    summary = json.loads(args.summary.read_text())
    text = expectations(summary, rule)
    args.out.write_text(text)
    (args.out.parent / "targets.md").write_text(targets(summary))
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
