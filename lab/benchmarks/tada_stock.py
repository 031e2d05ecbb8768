"""Why `sl_tada` loses on the family's stock scheduler (karras) at few steps, with numbers (docs/defaults.md §8).

    python -m schedule_lab.lab.benchmarks.tada_stock --stage diagnose [--n 128] [--nfe 4 5 6]
    python -m schedule_lab.lab.benchmarks.tada_stock --stage rule --cells suite|learned   # docs/defaults.md §8b
    python -m schedule_lab.lab.benchmarks.tada_stock --stage choose                       # apply the rule

On the bundled EDM patch UNet (menu_bench's ``patch-unet/edm`` setting, its tuning noises, seed 1101), E = RMSE to
the converged ODE (Heun 128, cached on disk) and E_own = RMSE to TADA's own converged endpoint (TADA with the same
options on 128 Karras steps, same seed). Three diagnoses, each printed as a table:

* ``interval``: which interval of the Karras list carries the error — each interval j in turn is refined into 16
  geometric sub-steps (extra model calls, a diagnostic only) and E is re-measured, for TADA and for DPM-Solver++(2M);
* ``settings``: TADA's detail × order grid on the stock list (is it a bad setting or the method on this list?);
* ``variants``: the same NFE spent differently (karras with N + 1 levels and σ_min dropped, ``land``), for TADA and
  dpmpp_2m.
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import torch

from schedule_lab.schedules.baseline import karras
from schedule_lab.solvers import catalogue

from .menu_bench import PARTS, REF_STEPS, SETTINGS, _converged
from .setups import load_model, noise, pin_threads

SETTING = "patch-unet/edm"
RESULTS = Path(__file__).resolve().parent / "results"
ROWS = {"suite": RESULTS / "tada_stock_rows_suite.json", "learned": RESULTS / "tada_stock_rows_learned.json"}
RULE_NFES = (4, 5, 6, 8, 10, 15, 20, 30)
DETAILS_2M = (0.5, 1.0, 2.0)
OWN_STEPS = 64
CHOSEN = RESULTS / "tada_stock_chosen.json"


def _rmse(a, b) -> float:
    return float((a - b).square().mean().sqrt())


def _refine(sig: torch.Tensor, j: int, m: int = 16) -> torch.Tensor:
    """``sig`` with interval j (σ_j → σ_{j+1} > 0) split into m geometric sub-steps."""
    a, b = float(sig[j]), float(sig[j + 1])
    inner = torch.tensor([a * (b / a) ** (k / m) for k in range(1, m)], dtype=sig.dtype)
    return torch.cat([sig[: j + 1], inner, sig[j + 1:]])


def _land(kind, n: int) -> torch.Tensor:
    s = karras(n + 1, kind.sigma_min, kind.sigma_max, 7.0)
    return torch.cat([s[:-2], s[-1:]])


class Bench:
    def __init__(self, n: int, setting: str = SETTING, part: str = "tuning"):
        self.setting = SETTINGS[setting]
        self.kind = self.setting.kind
        self.model = load_model(self.setting.model)
        self.seed = PARTS[part][0]
        self.z = noise(n, self.seed, 768)
        self.ref = _converged(self.model, self.kind, self.z, REF_STEPS)
        self._own = {}

    def run(self, spec: str, sig: torch.Tensor) -> torch.Tensor:
        return catalogue.run(spec, sig, self.model, self.z, kind=self.kind, seed=self.seed).x0

    def own(self, spec: str) -> torch.Tensor:
        if spec not in self._own:
            sig = karras(REF_STEPS, self.kind.sigma_min, self.kind.sigma_max, 7.0)
            self._own[spec] = self.run(spec, sig)
        return self._own[spec]

    def row(self, spec: str, sig: torch.Tensor, own: bool = True) -> tuple[float, float | None]:
        x = self.run(spec, sig)
        return _rmse(x, self.ref), (_rmse(x, self.own(spec)) if own and spec.startswith("sl_tada") else None)


def _fmt(v):
    return "–" if v is None else f"{v:.4f}"


def diagnose(b: Bench, nfes, log=print) -> None:
    kind = b.kind
    from schedule_lab.solvers.tada import default_settings

    log("## interval attribution (E after refining one interval into 16 sub-steps; lower = that interval's error)")
    for n in nfes:
        sig = karras(n, kind.sigma_min, kind.sigma_max, 7.0)
        d, o = default_settings(n, kind)
        specs = (f"sl_tada(detail={d:g},order={o})", "dpmpp_2m")
        log(f"NFE {n}: sigmas {[round(float(s), 4) for s in sig]}")
        for spec in specs:
            base = b.row(spec, sig, own=False)[0]
            cells = []
            for j in range(n - 1):  # the last interval (σ_min → 0) is the read-out
                e = b.row(spec, _refine(sig, j), own=False)[0]
                cells.append(f"[{float(sig[j]):.3g}→{float(sig[j + 1]):.3g}] {e:.4f}")
            log(f"  {spec}: E {base:.4f}; refined " + "; ".join(cells))
    log("## settings grid on karras (E, E_own)")
    for n in nfes:
        sig = karras(n, kind.sigma_min, kind.sigma_max, 7.0)
        dp = b.row("dpmpp_2m", sig)[0]
        log(f"NFE {n}: dpmpp_2m+karras E {dp:.4f}")
        for o in (1, 2, 3):
            cells = []
            for d in (0.5, 1, 2, 4, 16):
                e, eo = b.row(f"sl_tada(detail={d:g},order={o})", sig)
                cells.append(f"d{d:g} {e:.4f}/{_fmt(eo)}")
            log(f"  order {o}: " + "; ".join(cells))
    log("## variants: the same NFE on karras with N+1 levels and σ_min dropped (land)")
    for n in nfes:
        sig = _land(kind, n)
        d, o = default_settings(n, kind)
        for spec in ("dpmpp_2m", f"sl_tada(detail={d:g},order={o})", "sl_tada(detail=1,order=2)"):
            e, eo = b.row(spec, sig)
            log(f"  NFE {n} land {spec}: E {e:.4f} own {_fmt(eo)}")


# ------------------------------------------------------------------------------------------------------------
# the rule of docs/defaults.md §8b
# ------------------------------------------------------------------------------------------------------------
def candidates(nfe: int) -> dict[str, tuple[str, float, int]]:
    """name → (integrator, detail, order): today's `ab` default at ``nfe`` and `2m` with each detail."""
    from schedule_lab.solvers.tada import SETTINGS_BY_NFE

    grid = sorted(SETTINGS_BY_NFE)
    d, o = SETTINGS_BY_NFE[[n for n in grid if n <= nfe][-1]]
    out = {f"ab(detail={d:g},order={o})": ("ab", d, o)}
    out.update({f"2m(detail={x:g})": ("2m", x, 2) for x in DETAILS_2M})
    return out


def tada_fn(integrator: str, detail: float, order: int, kind):
    from schedule_lab.solvers.tada import sample_tada

    return functools.partial(sample_tada, detail=detail, order=order, kind=kind, integrator=integrator)


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, rows: dict) -> None:
    path.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")


def rows_suite(nfes, log=print) -> dict:
    """SW2 of dpmpp_2m + karras and of every candidate on the nine tuning parts (defaults.bench's parts and metric;
    cached stock and `ab` rows of results/defaults_rows are reused)."""
    from schedule_lab.kernels.sliced_wasserstein import sliced_wasserstein

    from ..defaults import bench
    from ..testbeds.suite import TUNING_TESTBEDS, kind, load_part

    rows, cached = _load(ROWS["suite"]), bench.load_rows()
    for tb in TUNING_TESTBEDS:
        p = load_part(tb, "tuning")
        for nfe in nfes:
            sig = karras(nfe, kind().sigma_min, kind().sigma_max, 7.0)
            todo = {"dpmpp_2m": ("dpmpp_2m", "dpmpp_2m/karras")}
            for name, (integ, d, o) in candidates(nfe).items():
                todo[name] = (tada_fn(integ, d, o, kind()), f"tada(detail={d:g},order={o})/karras" if integ == "ab"
                              else None)
            for name, (fn, bench_spec) in todo.items():
                key = f"{tb}|{name}|{nfe}"
                if key in rows:
                    continue
                hit = cached.get(bench.row_key(tb, "tuning", bench_spec, nfe)) if bench_spec else None
                if hit is not None:
                    rows[key] = {"SW2": hit["sw2"], "from": "defaults_rows"}
                    continue
                x0 = catalogue.run(fn, sig, p.model, p.noise, kind=kind(), seed=bench.TADA_SEED).x0.float()
                rows[key] = {"SW2": sliced_wasserstein(x0, p.reference, n_projections=512, seed=0)}
                log(f"  {key}: SW2 {rows[key]['SW2']:.5f}")
            _save(ROWS["suite"], rows)
    return rows


def rows_learned(nfes, n: int = 128, log=print) -> dict:
    """The patch UNet's menu tuning part: SW2 to 2000 tuning-strip crops and E (TADA: to its own endpoint)."""
    from ..testbeds.metrics import swd
    from ..testbeds.patches import crops

    rows = _load(ROWS["learned"])
    b = Bench(n)
    strip, ref_seed = PARTS["tuning"][1], PARTS["tuning"][2]
    ref_crops = crops(strip, 2000, seed=ref_seed).x.reshape(2000, -1)
    kind = b.kind
    own = {}
    for nfe in nfes:
        sig = karras(nfe, kind.sigma_min, kind.sigma_max, 7.0)
        todo = {"dpmpp_2m": ("dpmpp_2m", None)}
        todo.update({name: (tada_fn(*c, kind), c) for name, c in candidates(nfe).items()})
        for name, (fn, c) in todo.items():
            key = f"{SETTING}|{name}|{nfe}"
            if key in rows:
                continue
            x0 = catalogue.run(fn, sig, b.model, b.z, kind=kind, seed=b.seed).x0
            row = {"SW2": swd(x0, ref_crops), "E_ode": _rmse(x0, b.ref)}
            if c is not None:
                if c not in own:
                    dense = karras(OWN_STEPS, kind.sigma_min, kind.sigma_max, 7.0)
                    own[c] = catalogue.run(fn, dense, b.model, b.z, kind=kind, seed=b.seed).x0
                row["E"] = _rmse(x0, own[c])
            else:
                row["E"] = row["E_ode"]
            rows[key] = row
            log(f"  {key}: SW2 {row['SW2']:.5f} E {row['E']:.4f}")
            _save(ROWS["learned"], rows)
    return rows


def choose(nfes, log=print) -> dict:
    """§8b: per NFE the candidate with the lowest worst ratio to dpmpp_2m + karras over every cell."""
    suite, learned = _load(ROWS["suite"]), _load(ROWS["learned"])
    out = {}
    lines = ["| NFE | candidate | worst ratio (cell, metric) | learned SW2 / E ratio |", "|---|---|---|---|"]
    for nfe in nfes:
        scores = {}
        for name in candidates(nfe):
            worst = (0.0, "", "")
            complete = True
            for rows in (suite, learned):
                cells = sorted({k.split("|")[0] for k in rows})
                for cell in cells:
                    a, b = rows.get(f"{cell}|{name}|{nfe}"), rows.get(f"{cell}|dpmpp_2m|{nfe}")
                    if a is None or b is None:
                        complete = False
                        continue
                    for metric in ("SW2", "E") if rows is learned else ("SW2",):
                        worst = max(worst, (a[metric] / b[metric], cell, metric))
            if complete and worst[1]:
                scores[name] = worst
        if not scores:
            continue
        best = min(v[0] for v in scores.values())
        names = list(scores)
        near = [x for x in names if scores[x][0] <= best * 1.01]
        pick = near[0] if near[0].startswith("ab") else min(near, key=lambda x: (not x.startswith("ab"),
                                                                                  candidates(nfe)[x][1]))
        out[str(nfe)] = {"pick": pick, "setting": list(candidates(nfe)[pick]),
                         "scores": {k: [round(v[0], 4), v[1], v[2]] for k, v in scores.items()}}
        for name, (r, cell, metric) in scores.items():
            la, lb = learned.get(f"{SETTING}|{name}|{nfe}"), learned.get(f"{SETTING}|dpmpp_2m|{nfe}")
            lr = f"{la['SW2'] / lb['SW2']:.3f} / {la['E'] / lb['E']:.3f}" if la and lb else "–"
            lines.append(f"| {nfe} | {'**' + name + '**' if name == pick else name} | {r:.3f} ({cell}, {metric}) "
                         f"| {lr} |")
    text = ("# sl_tada on karras: the rule of docs/defaults.md §8b\n\n`python -m schedule_lab.lab.benchmarks."
            "tada_stock --stage rule --cells suite`, `... --cells learned`, then `--stage choose`. Ratio to "
            "dpmpp_2m + karras; bold = chosen.\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "tada_stock.md").write_text(text)
    CHOSEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    log(text)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.tada_stock")
    p.add_argument("--stage", default="diagnose", choices=["diagnose", "rule", "choose"])
    p.add_argument("--cells", default="suite", choices=list(ROWS))
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--nfe", nargs="+", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    pin_threads(args.threads)
    log = functools.partial(print, flush=True)
    if args.stage == "diagnose":
        diagnose(Bench(args.n), args.nfe or [4, 5, 6], log=log)
    elif args.stage == "rule":
        (rows_suite if args.cells == "suite" else functools.partial(rows_learned, n=args.n))(
            args.nfe or RULE_NFES, log=log)
    else:
        choose(args.nfe or RULE_NFES, log=log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
