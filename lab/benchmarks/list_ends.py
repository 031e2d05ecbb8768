"""The ends of the pack's lists on eps / v / EDM models, chosen on the learned models' tuning parts (rule:
docs/defaults.md §10, stated before these rows).

    python -m schedule_lab.lab.benchmarks.list_ends            # rows (cached) + choice -> results/list_ends.{md,json}

For the zoo's ε and v models on SD1's table and the zoo's EDM model, on menu bench's tuning noises (128 = 4 sets of
32), E (RMSE to the converged ODE from the same noise) of dpmpp_2m on every candidate list, divided by dpmpp_2m +
karras: `sl_constant_rate`'s data-free settings (measure × ξ × end) and the Constant-Rate Scheduler's calibration
(ξ × end) per NFE, and the three ways of fitting Align Your Steps to N steps (``schedules.for_model.AYS_FITS``).
The choice is the candidate with the lowest worst ratio over the models (AYS: and over the NFE).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from schedule_lab.schedules.catalogue import schedule_sigmas
from schedule_lab.schedules.constant_rate.calibrate import schedule
from schedule_lab.schedules.constant_rate.construct import data_free_velocity, default_schedule_settings
from schedule_lab.schedules.for_model import AYS_FITS, ays_for_model
from schedule_lab.solvers import catalogue

from .menu_bench import PARTS, REF_STEPS, SETTINGS, _converged, calibration
from .setups import load_model, noise, pin_threads

__all__ = ["FAMILY_MODEL", "MODELS", "NFES", "VETOED", "candidates", "choose", "choose_per_family", "family_tables",
           "main"]

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "list_ends_rows.json"
MODELS = ("eps-768/sd1", "v-768/sd1", "edm-768/edm")
NFES = (4, 5, 6, 8, 10, 15, 20, 30)
N_NOISE, N_SETS = 128, 4
MEASURES, XIS, ENDS = ("data-free", "cos+karras", "karras"), (1.0, 1.25, 1.5), ("land", "hold")
#: §10's candidates (§10b added "karras"): §10's one-table choice is made among these only.
MEASURES_10 = ("data-free", "cos+karras")
#: §10b: each family's tuning model.
FAMILY_MODEL = {"eps": "eps-768/sd1", "v": "v-768/sd1", "edm": "edm-768/edm"}
#: §10a's veto on §10b's per-family tables: the parts whose held-out guard rows added a lost cell outside the ledger
#: (family -> parts among "free", "measured"). Written from `guard_learned`'s output, docs/defaults.md §10b.
VETOED: dict[str, tuple[str, ...]] = {"eps": ("free",)}
#: §10a: the families whose guard rows accepted §10's one-table choice (a vetoed §10b part falls back to it there,
#: else to §3's table).
ACCEPTED_10 = {"free": ("eps",), "measured": ("eps",)}
TIE = 0.01  # ties within 1 % go to the current setting
COMMAND = "python -m schedule_lab.lab.benchmarks.list_ends"
#: The tables before this rule (§3's choice on the exact mixtures): the rule's "current setting" for ties and marks.
BEFORE_FREE = {4: ("cos+karras", 1.25, "land"), 5: ("cos+karras", 1.25, "land"), 6: ("data-free", 1.5, "land"),
               8: ("cos+karras", 1.25, "land"), 10: ("cos+karras", 1.25, "land"), 15: ("cos+karras", 1.25, "land"),
               20: ("data-free", 1.5, "land")}
BEFORE_MEASURED = {4: (1.5, "land"), 5: (1.5, "land"), 6: (1.25, "land"), 8: (1.25, "hold"), 10: (1.25, "land"),
                   15: (1.5, "land"), 20: (1.5, "land")}


def candidates(setting_name: str, nfe: int, velocity=None, free_only: bool = False) -> dict[str, torch.Tensor]:
    """label -> sigma list of every candidate at ``nfe`` steps (plus the reference "karras"); ``free_only``: the
    data-free candidates alone (§12)."""
    kind = SETTINGS[setting_name].kind
    out = {"karras": schedule_sigmas("karras", kind, nfe)}
    for m in MEASURES:
        vel = data_free_velocity(m, kind)
        for xi in XIS:
            for end in ENDS:
                out[f"free|{m}|{xi:g}|{end}"] = schedule(vel, kind, nfe, xi=xi, end=end)
    if free_only:
        return out
    if velocity is not None:
        for xi in XIS:
            for end in ENDS:
                out[f"measured|{xi:g}|{end}"] = schedule(velocity, kind, nfe, xi=xi, end=end)
    for table in ("sd1", "sdxl"):
        for fit in AYS_FITS:
            out[f"ays|{table}|{fit}"] = ays_for_model(kind, nfe, table, fit=fit)
    return out


def _digest(sig: torch.Tensor) -> str:
    return ",".join(f"{float(v):.6g}" for v in sig)


def set_errors(sampler: str, sig: torch.Tensor, model, z: torch.Tensor, kind, seed: int, ref: torch.Tensor) -> list:
    """E (RMSE to the converged endpoints ``ref``) of ``sampler`` on ``sig`` from noise ``z``, per noise set of
    ``N_NOISE // N_SETS`` (rounded as the caches store it)."""
    x0 = catalogue.run(sampler, sig, model, z, kind=kind, seed=seed).x0
    err = (x0 - ref).reshape(N_SETS, len(z) // N_SETS, -1).square().mean((1, 2)).sqrt()
    return [round(float(e), 7) for e in err]


def rows(log=print, models=MODELS, free_only: bool = False) -> dict:
    """cache[setting][label|nfe] = {"sigmas": ..., "E": [per set]} (recomputed when a list changes)."""
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    seed = PARTS["tuning"][0]
    for name in models:
        setting = SETTINGS[name]
        model = load_model(setting.model)
        vel = None if free_only else calibration(setting)
        z = noise(N_NOISE, seed, setting.dim)
        ref = None
        got = cache.setdefault(name, {})
        for nfe in NFES:
            for label, sig in candidates(name, nfe, vel, free_only).items():
                key = f"{label}|{nfe}"
                if key in got and got[key]["sigmas"] == _digest(sig):
                    continue
                if ref is None:
                    t0 = time.time()
                    ref = _converged(model, setting.kind, z, REF_STEPS)
                    log(f"{name}: converged reference in {time.time() - t0:.0f} s")
                got[key] = {"sigmas": _digest(sig),
                            "E": set_errors("dpmpp_2m", sig, model, z, setting.kind, seed, ref)}
            log(f"{name}: NFE {nfe} done")
            on_disk = json.loads(CACHE.read_text()) if CACHE.exists() else {}
            on_disk[name] = got
            CACHE.write_text(json.dumps(on_disk, indent=0, sort_keys=True))
    return cache


def _ratio(cache, name, label, nfe) -> float:
    a, b = cache[name][f"{label}|{nfe}"]["E"], cache[name][f"karras|{nfe}"]["E"]
    return (sum(a) / len(a)) / (sum(b) / len(b))


def _current_free(nfe: int) -> str:
    m, xi, end = BEFORE_FREE[max(n for n in BEFORE_FREE if n <= nfe)]
    return f"free|{m}|{xi:g}|{end}"


def _current_measured(nfe: int) -> str:
    xi, end = BEFORE_MEASURED[max(n for n in BEFORE_MEASURED if n <= nfe)]
    return f"measured|{xi:g}|{end}"


def _labels(cache, name: str, part: str, nfe: int) -> list[str]:
    """The candidate labels of ``part`` ("free" or "measured") cached for model ``name`` at ``nfe``."""
    return [k.rsplit("|", 1)[0] for k in cache[name] if k.startswith(f"{part}|") and k.endswith(f"|{nfe}")]


def _pick(scores: dict[str, float], current: str) -> str:
    best = min(scores, key=scores.get)
    return current if current in scores and scores[current] <= scores[best] * (1 + TIE) else best


def choose(cache) -> dict:
    """The rule of docs/defaults.md §10 on the cached rows."""
    out = {"free": {}, "measured": {}, "ays": {}, "scores": {}}
    for nfe in NFES:
        labels = [lab for lab in _labels(cache, MODELS[0], "free", nfe) if lab.split("|")[1] in MEASURES_10]
        free = {lab: max(_ratio(cache, m, lab, nfe) for m in MODELS) for lab in labels}
        pick = _pick(free, _current_free(nfe))
        out["free"][str(nfe)] = pick
        meas = {}
        for lab in _labels(cache, MODELS[0], "measured", nfe):
            meas[lab] = max(max(_ratio(cache, m, lab, nfe), _ratio(cache, m, lab, nfe) / _ratio(cache, m, pick, nfe))
                            for m in MODELS)
        out["measured"][str(nfe)] = _pick(meas, _current_measured(nfe))
        out["scores"][str(nfe)] = {"free": free, "measured": meas}
    for table in ("sd1", "sdxl"):
        scores = {fit: max(_ratio(cache, m, f"ays|{table}|{fit}", nfe) for m in MODELS for nfe in NFES)
                  for fit in AYS_FITS}
        out["ays"][table] = _pick(scores, "comfy")
        out["scores"][f"ays_{table}"] = scores
    return out


def choose_per_family(cache) -> dict:
    """§10b: per family, on its tuning model, per NFE: the data-free setting (now with "karras") and the calibration's
    (now with "data-free": the calibrated MODEL's list is the data-free one at that step count)."""
    out = {}
    for fam, name in FAMILY_MODEL.items():
        free, measured, scores = {}, {}, {}
        for nfe in NFES:
            fs = {lab: _ratio(cache, name, lab, nfe) for lab in _labels(cache, name, "free", nfe)}
            pick = _pick(fs, _current_free(nfe))
            base = _ratio(cache, name, pick, nfe)
            ms = {lab: max(_ratio(cache, name, lab, nfe), _ratio(cache, name, lab, nfe) / base)
                  for lab in _labels(cache, name, "measured", nfe)}
            ms["measured|data-free"] = max(_ratio(cache, name, pick, nfe), 1.0)
            free[str(nfe)], measured[str(nfe)] = pick, _pick(ms, _current_measured(nfe))
            scores[str(nfe)] = {"free": fs, "measured": ms}
        out[fam] = {"model": name, "free": free, "measured": measured, "scores": scores}
    return out


def family_tables(path: Path = RESULTS / "list_ends.json") -> tuple[dict, dict]:
    """§10b's per-family tables minus §10a's veto, as ``construct.FAMILY_SETTINGS_BY_NFE`` /
    ``FAMILY_MEASURED_SETTINGS_BY_NFE`` spell them ({family: {nfe: settings}})."""
    data = json.loads(Path(path).read_text())
    free, measured = {}, {}
    for fam, entry in data["families"].items():
        for part, out in (("free", free), ("measured", measured)):
            if part not in VETOED.get(fam, ()):
                labels = entry[part]
            elif fam in ACCEPTED_10[part]:
                labels = data[part]  # §10's one-table choice, which §10a's guard accepted for this family
            else:
                continue  # §3's table
            out[fam] = {int(n): _settings(label) for n, label in labels.items()}
    eps_both = Path(path).with_name("list_ends_eps.json")
    chosen = json.loads(eps_both.read_text())["free"] if eps_both.exists() else None
    if chosen is not None and not EPS_BOTH_VETOED:  # §12: ε's data-free table chosen on both ε sizes
        free["eps"] = {int(n): _settings(label) for n, label in chosen.items()}
    elif chosen is not None and EPS_PER_NFE_CONFIRMED:  # §13: §12's table per NFE, vetoed NFEs keep §10's entry
        free["eps"] = {int(n): _settings(KARRAS_OWN if int(n) in EPS_STOCK_NFES else
                                         EPS_CURRENT[int(n)] if int(n) in EPS_BOTH_VETOED_NFES else label)
                       for n, label in chosen.items()}
    edm_both = Path(path).with_name("list_ends_edm.json")
    if edm_both.exists() and not EDM_BOTH_VETOED:  # §14: EDM's calibration chosen on both EDM sizes
        measured["edm"] = {int(n): _settings(label)
                           for n, label in json.loads(edm_both.read_text())["measured"].items()}
    return free, measured


def _settings(label: str) -> dict:
    parts = label.split("|")
    if parts[0] == "free":
        return {"measure": parts[1], "xi": float(parts[2]), "end": parts[3]}
    return {"use": "data-free"} if parts[1] == "data-free" else {"xi": float(parts[1]), "end": parts[2]}


def report(cache, chosen) -> str:
    lines = ["# The ends of the pack's lists on ε / v / EDM (tuning parts; rule: docs/defaults.md §10)", "",
             f"`{COMMAND}`. E of dpmpp_2m ÷ dpmpp_2m + karras, menu bench's tuning noises (seed "
             f"{PARTS['tuning'][0]}, {N_NOISE} = {N_SETS} × {N_NOISE // N_SETS}), converged ODE = Heun {REF_STEPS} on "
             "karras. Cell: worst over the models, then each model.", ""]
    head = "| candidate | " + " | ".join(f"NFE {n}" for n in NFES) + " |"
    for group, title in (("free", "`sl_constant_rate` without a calibration"),
                         ("measured", "the Constant-Rate Scheduler's calibration (vx+cos)")):
        lines += [f"## {title}", "", head, "|---" * (len(NFES) + 1) + "|"]
        labels = sorted({k.rsplit("|", 1)[0] for k in cache[MODELS[0]] if k.startswith(group + "|")})
        for lab in labels:
            cells = []
            for nfe in NFES:
                per = [_ratio(cache, m, lab, nfe) for m in MODELS]
                cell = f"{max(per):.2f} ({'/'.join(f'{p:.2f}' for p in per)})"
                if chosen[group][str(nfe)] == lab:
                    cell = f"**{cell}**"
                if lab == (_current_free(nfe) if group == "free" else _current_measured(nfe)):
                    cell += " ·"
                cells.append(cell)
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["**bold** = chosen; · = the setting before this rule. Per-model order: " + ", ".join(MODELS) + ".", "",
              "## Align Your Steps", "", head, "|---" * (len(NFES) + 1) + "|"]
    for table in ("sd1", "sdxl"):
        for fit in AYS_FITS:
            lab = f"ays|{table}|{fit}"
            cells = []
            for nfe in NFES:
                per = [_ratio(cache, m, lab, nfe) for m in MODELS]
                cells.append(f"{max(per):.2f} ({'/'.join(f'{p:.2f}' for p in per)})")
            mark = " (chosen)" if chosen["ays"][table] == fit else ""
            lines.append(f"| {table} {fit}{mark} | " + " | ".join(cells) + " |")
    lines += ["", "Karras's own E (mean RMSE) per model and NFE: " + "; ".join(
        f"{m}: " + ", ".join(f"{sum(cache[m][f'karras|{n}']['E']) / N_SETS:.4f}" for n in NFES) for m in MODELS), ""]
    return "\n".join(lines)


def family_report(cache, families) -> str:
    lines = ["## Per family (§10b: with Karras's spacing and \"no calibration\" as candidates)", "",
             "Cell: the chosen setting and its E ÷ karras on the family's tuning model. Vetoed by the held-out guard "
             f"(§10a): {', '.join(f'{f} {p}' for f, ps in VETOED.items() for p in ps) or 'nothing'}.", "",
             "| family | table | " + " | ".join(f"NFE {n}" for n in NFES) + " |", "|---" * (len(NFES) + 2) + "|"]
    for fam, entry in families.items():
        for part in ("free", "measured"):
            cells = []
            for n in NFES:
                lab = entry[part][str(n)]
                score = entry["scores"][str(n)][part][lab]
                cells.append(f"{lab.split('|', 1)[1]} ({score:.2f})")
            lines.append(f"| {fam} ({entry['model']}) | {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


#: §12's veto: True if ε's guard rows with §12's table showed a lost cell outside the ledger (ε keeps §10's table).
EPS_BOTH_VETOED = True
#: §13: §12's table per NFE: the NFEs where §12a's guard rows showed a lost cell outside the ledger keep §10's entry
#: (``EPS_CURRENT``); the rest take §12's choice, if the guard's rows on fresh noise (``guard_learned --confirm``)
#: confirm it (``EPS_PER_NFE_CONFIRMED``; False: ε keeps §10's table).
EPS_BOTH_VETOED_NFES: tuple[int, ...] = (8,)
EPS_PER_NFE_CONFIRMED = True
#: §16: the ε NFEs whose entry lost to karras beyond seed noise on the held-out or the fresh noise sets
#: (results/guard_confirm.md, 7 Dec 18:46 UTC): there the entry is Karras's own list (a veto toward the stock list).
EPS_STOCK_NFES: tuple[int, ...] = (6, 8)
KARRAS_OWN = "free|karras|1|hold"
#: §12: ε's data-free table chosen on both ε sizes.
EPS_MODELS = ("eps-768/sd1", "eps-3072/sd1")
#: §12's "current" entries: §10's ε table (cos+karras ξ 1.5, land at 4-20, hold at 30)
EPS_CURRENT = {n: f"free|cos+karras|1.5|{'hold' if n >= 30 else 'land'}" for n in NFES}


def choose_eps_both(cache) -> dict:
    """§12 on the cached rows: per NFE, the data-free label with the lowest worst ratio over ``EPS_MODELS``."""
    out = {"free": {}, "scores": {}}
    for nfe in NFES:
        fs = {lab: max(_ratio(cache, m, lab, nfe) for m in EPS_MODELS)
              for lab in _labels(cache, EPS_MODELS[1], "free", nfe)}
        out["free"][str(nfe)] = _pick(fs, EPS_CURRENT[nfe])
        out["scores"][str(nfe)] = fs
    return out


def eps_report(cache, chosen) -> str:
    lines = ["# ε's data-free list on both ε sizes (tuning parts; rule: docs/defaults.md §12)", "",
             f"`{COMMAND} --eps-both`. E of dpmpp_2m ÷ dpmpp_2m + karras, menu bench's tuning noises; cell: worst "
             f"over {', '.join(EPS_MODELS)} (then each). **bold** = chosen, · = §10's table.", "",
             "| candidate | " + " | ".join(f"NFE {n}" for n in NFES) + " |", "|---" * (len(NFES) + 1) + "|"]
    for lab in sorted(chosen["scores"][str(NFES[0])]):
        cells = []
        for nfe in NFES:
            per = [_ratio(cache, m, lab, nfe) for m in EPS_MODELS]
            cell = f"{max(per):.2f} ({'/'.join(f'{p:.2f}' for p in per)})"
            cell = f"**{cell}**" if chosen["free"][str(nfe)] == lab else cell
            cells.append(cell + (" ·" if EPS_CURRENT[nfe] == lab else ""))
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


#: §14: EDM's calibration (the measured table) on both EDM sizes; True if §10a's veto applied (EDM keeps §10b's).
EDM_BOTH_VETOED = False
EDM_MODELS = ("edm-768/edm", "edm-3072/edm")


def choose_edm_both(cache, path: Path = RESULTS / "list_ends.json") -> dict:
    """§14 on the cached rows: per NFE, among the calibrated candidates whose E is ≤ the data-free entry's on both
    ``EDM_MODELS`` (and "data-free", always eligible), the lowest worst ratio to karras; ties (1 %) to §10b's entry."""
    before = json.loads(Path(path).read_text())["families"]["edm"]
    out = {"measured": {}, "scores": {}, "data_free": {}, "eligible": {}}
    for nfe in NFES:
        free = before["free"][str(nfe)]  # EDM's data-free entry (§10b), what "data-free" means at this NFE
        scores, eligible = {"measured|data-free": max(_ratio(cache, m, free, nfe) for m in EDM_MODELS)}, []
        for lab in _labels(cache, EDM_MODELS[1], "measured", nfe):
            scores[lab] = max(_ratio(cache, m, lab, nfe) for m in EDM_MODELS)
            if all(_ratio(cache, m, lab, nfe) <= _ratio(cache, m, free, nfe) for m in EDM_MODELS):
                eligible.append(lab)
        pool = {lab: scores[lab] for lab in ["measured|data-free", *eligible]}
        out["measured"][str(nfe)] = _pick(pool, before["measured"][str(nfe)])
        out["scores"][str(nfe)], out["data_free"][str(nfe)], out["eligible"][str(nfe)] = scores, free, eligible
    return out


def edm_report(cache, chosen) -> str:
    lines = ["# EDM's calibration on both EDM sizes (tuning parts; rule: docs/defaults.md §14)", "",
             f"`{COMMAND} --edm-both`. E of dpmpp_2m ÷ dpmpp_2m + karras, menu bench's tuning noises; cell: worst "
             f"over {', '.join(EDM_MODELS)} (then each); ✗ = worse than the data-free entry on a model (not "
             "eligible). **bold** = chosen.", "",
             "| candidate | " + " | ".join(f"NFE {n}" for n in NFES) + " |", "|---" * (len(NFES) + 1) + "|"]
    for lab in ["measured|data-free", *sorted(k for k in chosen["scores"][str(NFES[0])] if k != "measured|data-free")]:
        cells = []
        for nfe in NFES:
            target = chosen["data_free"][str(nfe)] if lab == "measured|data-free" else lab
            per = [_ratio(cache, m, target, nfe) for m in EDM_MODELS]
            cell = f"{max(per):.2f} ({'/'.join(f'{p:.2f}' for p in per)})"
            if lab != "measured|data-free" and lab not in chosen["eligible"][str(nfe)]:
                cell += " ✗"
            cells.append(f"**{cell}**" if chosen["measured"][str(nfe)] == lab else cell)
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def _run_both(family: str, cache, choose_fn, report_fn) -> int:
    """A family's rule on both model sizes (``--{family}-both``): choose on ``cache``, write
    results/list_ends_{family}.json / .md, print the table."""
    chosen = choose_fn(cache)
    (RESULTS / f"list_ends_{family}.json").write_text(
        json.dumps({"command": f"{COMMAND} --{family}-both", **chosen}, indent=1, sort_keys=True))
    text = report_fn(cache, chosen)
    (RESULTS / f"list_ends_{family}.md").write_text(text)
    print(text)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eps-both", action="store_true", help="§12: ε's data-free table on both ε sizes")
    p.add_argument("--edm-both", action="store_true", help="§14: EDM's calibration on both EDM sizes")
    a = p.parse_args(argv)
    pin_threads(a.threads)
    if a.edm_both:  # §14, with every model's cached rows (edm-768's of §10)
        return _run_both("edm", rows(models=EDM_MODELS[1:]), choose_edm_both, edm_report)
    if a.eps_both:  # §12, with every model's cached rows (eps-768's of §10)
        return _run_both("eps", rows(models=EPS_MODELS[1:], free_only=True), choose_eps_both, eps_report)
    cache = rows()
    chosen = choose(cache)
    families = choose_per_family(cache)
    (RESULTS / "list_ends.json").write_text(json.dumps({"command": COMMAND, **chosen, "families": families,
                                                        "vetoed": {f: list(p) for f, p in VETOED.items()}},
                                                       indent=1, sort_keys=True))
    text = report(cache, chosen) + family_report(cache, families)
    (RESULTS / "list_ends.md").write_text(text)
    print(text)
    for nfe in NFES:
        print(nfe, default_schedule_settings(nfe), "->", chosen["free"][str(nfe)], "|", chosen["measured"][str(nfe)])
    print("ays:", chosen["ays"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
