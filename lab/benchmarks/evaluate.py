"""One evaluation for every benchmark: methods × NFE budgets × seeds on a testbed, scored against its references.

``evaluate(methods, testbed, nfes, seeds, n_samples=..., ref_steps=...)`` runs every ``benchmarks.methods.Method``
at the most steps that fit each NFE budget (``steps_for_nfe``), each seed's unit noise scaled to the schedule's
first sigma, every cell one ``catalogue.run``; it scores the endpoints (RMSE to the converged ODE, or to the
sampler's own ODE for ``own_ode`` samplers; mode agreement on the exact testbed; FD_cls and SWD against the data)
and returns one testbed section of a results document: rows (mean ± std over seeds), floors and notes.
``benchmarks.report`` renders it; ``benchmarks.report.write_results`` writes the files.

``ScheduleScore(testbed, seed)`` is the same scoring for one sigma list at a time, on evaluation noise no optimiser
saw (the search benchmarks: their lists come from optimisers, not from the catalogue).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from schedule_lab.kernels.frechet import gaussian_stats
from schedule_lab.solvers import catalogue

from ..testbeds.metrics import classifier_features, fd_cls, mode_agreement, rmse, swd
from ..testbeds.reference import converged_endpoint
from . import methods as M
from .peers import available as diffusers_available
from .report import mean_std
from .setups import Testbed, noise

__all__ = ["PEERS_NOTE", "ScheduleScore", "Settings", "cross_check", "evaluate"]

#: Samplers scored against an ODE of their own (catalogue flag own_ode).
OWN_ODE = [name for name, e in catalogue.SAMPLERS.items() if e.own_ode]


@dataclass(frozen=True)
class Settings:
    """What shapes an evaluation besides the methods and the testbed."""

    nfe: list
    seeds: list
    n_samples: int = 1000
    ref_steps: int = 500
    peers: tuple = ()  # diffusers peers among the methods (for the cross-check note)
    comfy_samplers: tuple = ()  # ComfyUI samplers run by the worker subprocess on ``schedules``
    schedules: tuple = ()
    sigma_range: str = "sd1"


def evaluate(methods: list, testbed: Testbed, nfes, seeds, *, n_samples: int = 1000, ref_steps: int = 500,
             peers=(), comfy_samplers=(), schedules=(), sigma_range: str = "sd1", log=print) -> dict:
    """Every method at every NFE budget over ``seeds``; see the module docstring. ``comfy_samplers`` (with the
    ``schedules`` they run on) adds ComfyUI's own samplers when COMFYUI_PATH is set; ``peers`` names the diffusers
    peers among ``methods`` (for the DPM-Solver cross-check)."""
    args = Settings(list(nfes), list(seeds), n_samples, ref_steps, tuple(peers), tuple(comfy_samplers),
                    tuple(schedules), sigma_range)
    return _evaluate(testbed, methods, args, log)


def _snap(sigma0: float, sigma_max: float) -> float:
    """σ_max itself when a schedule starts within float32 rounding of it (diffusers' tables are float32)."""
    return sigma_max if abs(sigma0 / sigma_max - 1) < 1e-4 else sigma0


def _score(bed: Testbed, x0, ref, target_stats, classifier, stochastic: bool = False, own_ref=None) -> dict:
    out = {}
    if not stochastic:  # a sampler with noise of its own does not aim at the ODE endpoint
        out["rmse"] = rmse(x0, ref)
        if bed.mode_agreement:
            out["mode_agreement"] = mode_agreement(x0, ref, bed.train)
    if own_ref is not None:  # ... but one with an ODE of its own (TADA) aims at that one's endpoint
        out["rmse_own"] = rmse(x0, own_ref)
    out["fd_cls"] = fd_cls(x0, target_stats, classifier)
    out["swd"] = swd(x0, bed.target)
    return out


def _row(method_or_names, nfe_target, steps, runs: list[dict]) -> dict:
    sampler, schedule, source = method_or_names
    row = {"sampler": sampler, "schedule": schedule, "source": source, "nfe_target": nfe_target, "steps": steps}
    for key in runs[0]:
        row[key] = [r[key] for r in runs]
    row["mean"] = {k: mean_std(v)[0] for k, v in row.items() if isinstance(v, list)}
    row["std"] = {k: mean_std(v)[1] for k, v in row.items() if isinstance(v, list)}
    return row


def cross_check(bed: Testbed, z: torch.Tensor, nfes, schedules=("karras", "ays")) -> list[dict]:
    """diffusers DPMSolverMultistep (VP route, our sigmas) against our dpmpp_2m on the same sigma lists."""
    out = []
    for sc in schedules:
        (mine,) = M.sampler_methods(bed.kind, ["dpmpp_2m"], [sc])
        (theirs,) = M.diffusers_methods(bed.kind, ["diffusers.DPMSolverMultistep"], [sc])
        for n in nfes:
            ours, peer = (m.run(bed.model, z, n).x0 for m in (mine, theirs))
            diff = (ours - peer).abs()
            out.append({"schedule": sc, "steps": n, "max_abs_diff": float(diff.max()),
                        "rmse_diff": rmse(ours, peer), "ours_rmse_scale": float(ours.square().mean().sqrt())})
    return out


def _evaluate(bed: Testbed, methods: list, args: Settings, log=print) -> dict:
    from ..testbeds.models import load_classifier

    classifier = bed.classifier if bed.classifier is not None else load_classifier()
    target_stats = gaussian_stats(classifier_features(bed.target, classifier))
    noises = {s: noise(args.n_samples, s, bed.dim) for s in args.seeds}
    refs: dict = {}
    ref_seconds = [0.0]

    def reference(seed, sigma_max):
        key = (seed, round(sigma_max, 6))
        if key not in refs:
            t0 = time.perf_counter()
            refs[key] = converged_endpoint(bed.model, noises[seed] * sigma_max, sigma_min=bed.kind.sigma_min,
                                           sigma_max=sigma_max, steps=args.ref_steps)
            ref_seconds[0] += time.perf_counter() - t0
            log(f"  reference seed {seed} from σ {sigma_max:.4g}: Heun-{args.ref_steps} "
                f"({time.perf_counter() - t0:.1f} s; cached on disk)")
        return refs[key]

    def own_reference(m, seed, sigma0):
        key = (m.sampler, seed, round(sigma0, 6))
        if key not in refs:
            t0 = time.perf_counter()
            refs[key] = converged_endpoint(
                bed.model, noises[seed] * sigma0, sigma_min=bed.kind.sigma_min, sigma_max=sigma0,
                steps=args.ref_steps, sampler=lambda model, x, sigmas: m.own_endpoint(model, x, seed, sigmas),
                sampler_key=f"{m.sampler} kind={bed.kind.kind} seed={seed}")
            ref_seconds[0] += time.perf_counter() - t0
            log(f"  own reference of {m.sampler} seed {seed}: {args.ref_steps} karras steps "
                f"({time.perf_counter() - t0:.1f} s; cached on disk)")
        return refs[key]

    def label(schedule, sigma0):
        return schedule if sigma0 == bed.kind.sigma_max else f"{schedule} (σmax {sigma0:.4g})"

    def score(x0, seed, sigma0, stochastic=False, method=None):
        own = own_reference(method, seed, sigma0) if method is not None and method.own_endpoint else None
        return _score(bed, x0, reference(seed, sigma0), target_stats, classifier, stochastic, own)

    rows, notes = [], []
    for nfe in args.nfe:
        for m in methods:
            try:
                steps = M.steps_for_nfe(m, nfe)
                stochastic = M.is_stochastic(m)
                sigma0 = _snap(float(m.sigmas(steps)[0]), bed.kind.sigma_max)
                runs = []
                for seed in args.seeds:
                    res = m.run(bed.model, noises[seed], steps, seed, sigma_start=sigma0)
                    runs.append({"nfe": res.nfe, "wall_s": res.wall_s, **score(res.x0, seed, sigma0, stochastic, m)})
            except Exception as e:  # noqa: BLE001  (one broken method must not sink the whole table)
                log(f"  NFE {nfe:>3} {m.label:<42} FAILED: {type(e).__name__}: {e}")
                notes.append(f"Skipped {m.label} at NFE {nfe}: {type(e).__name__}: {e}")
                continue
            source = f"{m.source}, stochastic" if stochastic else m.source
            row = _row((m.sampler, label(m.schedule, sigma0), source), nfe, steps, runs)
            rows.append(row)
            err = (f"RMSE {row['mean']['rmse']:.3f}" if "rmse" in row["mean"] else
                   f"RMSE→own {row['mean']['rmse_own']:.3f}" if "rmse_own" in row["mean"] else "stochastic")
            log(f"  NFE {nfe:>3} {m.label:<42} {steps:>3} steps, NFE {row['nfe'][0]:>3}, {err}, "
                f"FD_cls {row['mean']['fd_cls']:.2f}, {row['mean']['wall_s']:.2f} s")

    if args.comfy_samplers:
        rows += _comfy_rows(bed, args, noises, label, score, notes, log)
        rows.sort(key=lambda row: row["nfe_target"])  # stable: the ComfyUI rows join their NFE group
    floors = _floors(bed, args, reference, target_stats, classifier)
    other = floors[-1]["name"].split(" ")[0]
    notes.insert(0, f"FD_cls is biased in N: the rows and the converged-ODE floor use N = {args.n_samples}; the "
                    f"{other}-split floor uses its {floors[-1]['images']} images.")
    if any(row["source"].endswith("stochastic") for row in rows):
        notes.append("Rows marked *stochastic* draw noise of their own (seeded through extra_args[\"seed\"], as "
                     "ComfyUI passes it), so their endpoint is not the ODE's: only distribution metrics are shown"
                     + (f", plus, for samplers with an ODE of their own ({', '.join(OWN_ODE)}), the RMSE to "
                        f"that ODE's converged endpoint from the same x_T and seed (the same sampler with "
                        f"{args.ref_steps} karras steps)." if any("rmse_own" in row for row in rows) else "."))
    check = []
    if args.peers and diffusers_available() is None:
        notes.append(PEERS_NOTE)
        if "diffusers.DPMSolverMultistep" in args.peers:
            check = cross_check(bed, noises[args.seeds[0]], args.nfe)
            notes.append(_cross_check_note(check, args))
            log(f"  cross-check diffusers DPMSolverMultistep vs our dpmpp_2m: max |Δ| = "
                f"{max(c['max_abs_diff'] for c in check):.1e}")

    return {"name": bed.name, "description": bed.description, "sigma_min": bed.kind.sigma_min,
            "sigma_max": bed.kind.sigma_max, "range_note": bed.range_note, "against": bed.against,
            "mode_agreement": bed.mode_agreement, "n_samples": args.n_samples, "seeds": list(args.seeds),
            "threads": torch.get_num_threads(),
            "reference": f"Heun-{args.ref_steps} on karras {bed.kind.sigma_min:.4g}–σmax",
            "rows": rows, "floors": floors, "cross_check": check, "notes": notes,
            "reference_seconds": round(ref_seconds[0], 1)}


PEERS_NOTE = ("diffusers peers run our denoiser on our sigma lists (lab/benchmarks/peers.py): DPMSolverMultistep on "
              "the VP route (set_timesteps(n), then its sigma table replaced by ours; x0 = D(x/√ᾱ, σ)), UniPC through "
              "its public custom-sigma input as flow sigmas s = σ/(1+σ) (same λ), EulerDiscrete through "
              "set_timesteps(sigmas=...), DDIM on its own trailing timesteps; prediction_type=\"sample\", final "
              "sigma 0.")


def _cross_check_note(check: list[dict], args) -> str:
    worst = max(c["max_abs_diff"] for c in check)
    worst_rms = max(c["rmse_diff"] for c in check)
    return (f"Cross-check: diffusers DPMSolverMultistep (VP route, our sigma list) vs our dpmpp_2m on the same "
            f"karras/AYS sigmas, seed {args.seeds[0]}, NFE {'/'.join(map(str, args.nfe))}: max |Δx0| = {worst:.1e}, "
            f"RMS Δx0 ≤ {worst_rms:.1e} over {args.n_samples}×64 pixels in [-1, 1] (float32 rounding: diffusers "
            "steps in float32; ≤ 1e-6 on the smooth Gaussian testbed, tests/unit/test_benchmarks.py).")


def _comfy_rows(bed: Testbed, args, noises, label, score, notes, log) -> list[dict]:
    """ComfyUI's samplers from the worker subprocess, scored here like every other row."""
    from .comfy_worker import run_comfy

    results, note = run_comfy(bed.name, args.sigma_range, args.comfy_samplers, args.schedules, args.nfe, noises,
                              log=log)
    if note:
        log(f"  note: {note}")
        notes.append(f"Note: {note}.")
    rows = []
    for r in results or []:
        sigma0 = _snap(float(M.schedule_table(bed.kind)[r["schedule"]](r["steps"])[0]), bed.kind.sigma_max)
        runs = [{"nfe": r["runs"][s]["nfe"], "wall_s": r["runs"][s]["wall_s"], **score(r["runs"][s]["x0"], s, sigma0)}
                for s in args.seeds]
        rows.append(_row((r["sampler"], label(r["schedule"], sigma0), "comfyui"), r["nfe_target"], r["steps"], runs))
    return rows


def _floors(bed: Testbed, args, reference, target_stats, classifier) -> list[dict]:
    """The converged ODE's own scores (per seed) and the other data split's scores against the target split."""
    ends = [reference(s, bed.kind.sigma_max) for s in args.seeds]
    converged = {"name": f"converged ODE (Heun-{args.ref_steps}, karras)", "nfe": 2 * args.ref_steps - 1,
                 "rmse": 0.0, **({"mode_agreement": 1.0} if bed.mode_agreement else {}),
                 "fd_cls": [fd_cls(e, target_stats, classifier) for e in ends],
                 "swd": [swd(e, bed.target) for e in ends]}
    other, other_name = (bed.test, "test") if bed.against == "train" else (bed.train, "train")
    data = {"name": f"{other_name} split vs {bed.against} split ({other.shape[0]} images)", "nfe": 0,
            "images": other.shape[0], "fd_cls": fd_cls(other, target_stats, classifier),
            "swd": swd(other, bed.target)}
    return [converged, data]


class ScheduleScore:
    """``score(sampler, sigmas) -> (RMSE to the converged ODE, FD_cls)`` of a catalogue sampler on a sigma list,
    from ``samples`` evaluation noises of seed ``seed_offset + seed`` (never seen by the optimisers)."""

    def __init__(self, testbed: Testbed, seed: int, samples: int = 512, seed_offset: int = 10_000,
                 converged_steps: int = 250):
        self.tb = testbed
        self.z = noise(samples, seed_offset + seed, testbed.dim)
        kind = testbed.kind
        self.ref = converged_endpoint(testbed.model, self.z * kind.sigma_max, kind.sigma_min, kind.sigma_max,
                                      steps=converged_steps)
        self.target_stats = None

    def __call__(self, sampler: str, sigmas: torch.Tensor) -> tuple[float, float]:
        x = catalogue.run(sampler, sigmas, self.tb.model, self.z).x0
        if self.target_stats is None:
            self.target_stats = gaussian_stats(classifier_features(self.tb.target, self.tb.classifier))
        return rmse(x, self.ref), fd_cls(x, self.target_stats, self.tb.classifier)
