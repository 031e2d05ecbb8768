"""Why `sl_tada` loses on the family's stock scheduler (karras) at few steps, with numbers (issue 20, item 5).

    python -m schedule_lab.lab.benchmarks.tada_stock --stage diagnose [--n 128] [--nfe 4 5 6]

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

import torch

from schedule_lab.schedules.baseline import karras
from schedule_lab.solvers import catalogue

from .menu_bench import PARTS, REF_STEPS, SETTINGS, _converged
from .setups import load_model, noise, pin_threads

SETTING = "patch-unet/edm"


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
                cells.append(f"[{float(sig[j]):.3g}→{float(sig[j + 1]):.3g}] {b.row(spec, _refine(sig, j), own=False)[0]:.4f}")
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.tada_stock")
    p.add_argument("--stage", default="diagnose", choices=["diagnose"])
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--nfe", nargs="+", type=int, default=[4, 5, 6])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    pin_threads(args.threads)
    b = Bench(args.n)
    diagnose(b, args.nfe, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
