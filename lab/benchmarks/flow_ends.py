"""The pack's lists on flow models, scored with Euler and DPM-Solver++(2M) on the zoo's flow models' tuning parts
(rule: docs/defaults.md §11, stated before these rows).

    python -m schedule_lab.lab.benchmarks.flow_ends      # rows (cached) + choice -> results/flow_ends.{md,json}

For ``MODELS`` on menu bench's tuning noises (128 = 4 sets of 32), E (RMSE to the converged ODE from the same noise)
of each sampler on every candidate list, divided by the same sampler on ComfyUI's ``simple`` list:
``sl_constant_rate``'s data-free settings (measure × ξ, *land*) and the Constant-Rate Scheduler's calibration (ξ,
*land*, or "data-free": the calibrated MODEL's list is the data-free one) per NFE. The choice is the candidate with
the lowest worst ratio over the models and samplers.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from schedule_lab.schedules.catalogue import schedule_sigmas
from schedule_lab.schedules.constant_rate.calibrate import schedule
from schedule_lab.schedules.constant_rate.construct import (
    FLOW_MEASURED_SETTINGS,
    FLOW_SETTINGS,
    data_free_velocity,
)

from .list_ends import N_NOISE, N_SETS, _digest, _pick, set_errors
from .menu_bench import PARTS, REF_STEPS, SETTINGS, _converged, calibration
from .setups import load_model, noise, pin_threads

__all__ = ["MODELS", "NFES", "SAMPLERS", "VETOED", "candidates", "choose", "main", "shipped", "tables"]

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "flow_ends_rows"  # one file per model, so two processes can fill it
MODELS = ("flow-768/shift1", "flow-768/shift3", "flow-3072/shift3")
SAMPLERS = ("euler", "dpmpp_2m")
NFES = (4, 5, 6, 8, 10, 15, 20, 30)
MEASURES, XIS = ("data-free", "simple", "cos+simple"), (1.0, 1.25, 1.5)
#: the settings before this rule (its tie-break; ties within list_ends.TIE go to them)
CURRENT_FREE = f"free|{FLOW_SETTINGS['measure']}|{FLOW_SETTINGS['xi']:g}"
CURRENT_MEASURED = f"measured|{FLOW_MEASURED_SETTINGS['xi']:g}"
COMMAND = "python -m schedule_lab.lab.benchmarks.flow_ends"
#: §11's veto (§10a's): the parts ("free", "measured") whose guard rows on the flow settings added a lost cell
#: outside the ledger; a vetoed part keeps construct.FLOW_SETTINGS / FLOW_MEASURED_SETTINGS at every NFE.
VETOED: tuple[str, ...] = ()


def candidates(setting_name: str, nfe: int, velocity=None) -> dict[str, torch.Tensor]:
    """label -> sigma list of every candidate at ``nfe`` steps (plus the reference "simple")."""
    kind = SETTINGS[setting_name].kind
    out = {"simple": schedule_sigmas("simple", kind, nfe)}
    for m in MEASURES:
        vel = data_free_velocity(m, kind)
        for xi in XIS:
            out[f"free|{m}|{xi:g}"] = schedule(vel, kind, nfe, xi=xi, end="land")
    if velocity is not None:
        for xi in XIS:
            out[f"measured|{xi:g}"] = schedule(velocity, kind, nfe, xi=xi, end="land")
    return out


def _cache_file(name: str) -> Path:
    return CACHE / f"{name.replace('/', '_')}.json"


def rows(models=MODELS, log=print) -> dict:
    """cache[setting][sampler|label|nfe] = {"sigmas": ..., "E": [per set]} (recomputed when a list changes)."""
    cache = {}
    for name in MODELS:
        path = _cache_file(name)
        if path.exists():
            cache[name] = json.loads(path.read_text())
    seed = PARTS["tuning"][0]
    for name in models:
        setting = SETTINGS[name]
        model = load_model(setting.model)
        t0 = time.time()
        vel = calibration(setting)
        log(f"{name}: calibration in {time.time() - t0:.0f} s")
        z = noise(N_NOISE, seed, setting.dim)
        ref = None
        got = cache.setdefault(name, {})
        for nfe in NFES:
            for label, sig in candidates(name, nfe, vel).items():
                for sampler in SAMPLERS:
                    key = f"{sampler}|{label}|{nfe}"
                    if key in got and got[key]["sigmas"] == _digest(sig):
                        continue
                    if ref is None:
                        t0 = time.time()
                        ref = _converged(model, setting.kind, z, REF_STEPS)
                        log(f"{name}: converged reference in {time.time() - t0:.0f} s")
                    got[key] = {"sigmas": _digest(sig),
                                "E": set_errors(sampler, sig, model, z, setting.kind, seed, ref)}
            log(f"{name}: NFE {nfe} done")
            CACHE.mkdir(parents=True, exist_ok=True)
            _cache_file(name).write_text(json.dumps(got, indent=0, sort_keys=True))
    return cache


def _ratio(cache, name, sampler, label, nfe) -> float:
    a, b = cache[name][f"{sampler}|{label}|{nfe}"]["E"], cache[name][f"{sampler}|simple|{nfe}"]["E"]
    return (sum(a) / len(a)) / (sum(b) / len(b))


def _worst(cache, label, nfe, over=None) -> float:
    """The worst ratio to simple over the models and samplers (``over``: divided by that label's ratio instead)."""
    return max(_ratio(cache, m, s, label, nfe) / (_ratio(cache, m, s, over, nfe) if over else 1.0)
               for m in MODELS for s in SAMPLERS)


def choose(cache) -> dict:
    """The rule of docs/defaults.md §11 on the cached rows."""
    out = {"free": {}, "measured": {}, "scores": {}}
    for nfe in NFES:
        free = {lab: _worst(cache, lab, nfe) for lab in (f"free|{m}|{xi:g}" for m in MEASURES for xi in XIS)}
        pick = _pick(free, CURRENT_FREE)
        meas = {f"measured|{xi:g}": max(_worst(cache, f"measured|{xi:g}", nfe),
                                        _worst(cache, f"measured|{xi:g}", nfe, over=pick)) for xi in XIS}
        meas["measured|data-free"] = max(free[pick], 1.0)
        out["free"][str(nfe)], out["measured"][str(nfe)] = pick, _pick(meas, CURRENT_MEASURED)
        out["scores"][str(nfe)] = {"free": free, "measured": meas}
    return out


def tables(path: Path = RESULTS / "flow_ends.json") -> tuple[dict, dict]:
    """The chosen settings as ``construct.FLOW_SETTINGS_BY_NFE`` / ``FLOW_MEASURED_SETTINGS_BY_NFE`` spell them."""
    data = json.loads(Path(path).read_text())
    free = {int(n): _settings(lab) for n, lab in data["free"].items()}
    measured = {int(n): _settings(lab) for n, lab in data["measured"].items()}
    return free, measured


def shipped(path: Path = RESULTS / "flow_ends.json") -> tuple[dict, dict]:
    """What ``construct.FLOW_SETTINGS_BY_NFE`` / ``FLOW_MEASURED_SETTINGS_BY_NFE`` must be: ``tables`` minus
    ``VETOED``."""
    from schedule_lab.schedules.constant_rate.construct import FLOW_MEASURED_SETTINGS, FLOW_SETTINGS

    free, measured = tables(path)
    if "free" in VETOED:
        free = {n: dict(FLOW_SETTINGS) for n in free}
    if "measured" in VETOED:
        measured = {n: dict(FLOW_MEASURED_SETTINGS) for n in measured}
    return free, measured


def _settings(label: str) -> dict:
    parts = label.split("|")
    if parts[0] == "free":
        return {"measure": parts[1], "xi": float(parts[2]), "end": "land"}
    return {"use": "data-free"} if parts[1] == "data-free" else {"xi": float(parts[1]), "end": "land"}


def report(cache, chosen) -> str:
    lines = ["# The pack's lists on flow models with Euler and DPM-Solver++(2M) (tuning parts; rule: "
             "docs/defaults.md §11)", "",
             f"`{COMMAND}`. E of each sampler ÷ the same sampler on ComfyUI's simple list, menu bench's tuning noises "
             f"(seed {PARTS['tuning'][0]}, {N_NOISE} = {N_SETS} × {N_NOISE // N_SETS}), converged ODE = Heun "
             f"{REF_STEPS}. Cell: the worst over the models and samplers, then per model (euler/dpmpp_2m). Order: "
             + ", ".join(MODELS) + ".", ""]
    head = "| candidate | " + " | ".join(f"NFE {n}" for n in NFES) + " |"
    for group, title, current in (("free", "`sl_constant_rate` without a calibration", CURRENT_FREE),
                                  ("measured", "the Constant-Rate Scheduler's calibration (vx+cos)",
                                   CURRENT_MEASURED)):
        lines += [f"## {title}", "", head, "|---" * (len(NFES) + 1) + "|"]
        labels = sorted({k.split("|", 1)[1].rsplit("|", 1)[0] for k in cache[MODELS[0]]
                         if k.split("|")[1] == group})
        for lab in labels:
            cells = []
            for nfe in NFES:
                per = "; ".join("/".join(f"{_ratio(cache, m, s, lab, nfe):.2f}" for s in SAMPLERS) for m in MODELS)
                cell = f"{_worst(cache, lab, nfe):.2f} ({per})"
                if chosen[group][str(nfe)] == lab:
                    cell = f"**{cell}**"
                if lab == current:
                    cell += " ·"
                cells.append(cell)
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        if group == "measured":
            lines.append("| measured\\|data-free | " + " | ".join(
                ("**" if chosen["measured"][str(n)] == "measured|data-free" else "")
                + f"{chosen['scores'][str(n)]['measured']['measured|data-free']:.2f}"
                + ("**" if chosen["measured"][str(n)] == "measured|data-free" else "") for n in NFES) + " |")
        lines.append("")
    lines += ["**bold** = chosen; · = the setting before this rule. The calibration's score is also its worst ratio to "
              "the chosen data-free list.", "",
              "Simple's own E (mean RMSE) per model, sampler and NFE: " + "; ".join(
                  f"{m} {s}: " + ", ".join(f"{sum(cache[m][f'{s}|simple|{n}']['E']) / N_SETS:.4f}" for n in NFES)
                  for m in MODELS for s in SAMPLERS), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                   help="compute these models' rows only (another process does the rest); the choice needs all")
    a = p.parse_args(argv)
    pin_threads(a.threads)
    cache = rows(a.models)
    if any(m not in cache for m in MODELS):
        print("rows of " + ", ".join(m for m in MODELS if m not in cache) + " missing; no choice made")
        return 1
    chosen = choose(cache)
    (RESULTS / "flow_ends.json").write_text(json.dumps({"command": COMMAND, **chosen}, indent=1, sort_keys=True))
    text = report(cache, chosen)
    (RESULTS / "flow_ends.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
