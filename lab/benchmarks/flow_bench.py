"""Flow models (SD3, Flux): the pack's flow entries against ComfyUI's own menu on exact flow testbeds
(docs/defaults.md §7).

    python -m schedule_lab.lab.benchmarks.flow_bench --stage tada             # §7a: sl_tada's flow defaults
    python -m schedule_lab.lab.benchmarks.flow_bench --stage calibration      # §7b: ξ of a flow calibration
    python -m schedule_lab.lab.benchmarks.flow_bench --stage rows --before b31c6a7   # quality rows, before → after

Cells: the eight exact testbeds of ``testbeds.suite`` (seven mixtures and digits-exact) seen as rectified-flow
models (``lab/testbeds/flow.py``), tuning parts at SD3 shift 1 and 3, held-out parts at shift 3 and as Flux at 1024²
(mu 1.15); 1000 samples each from the part's unit noise at σ = 1. The converged flow ODE (Heun, 400 steps, cached)
does not depend on the shift, so each part has one.

Menu rows (``comfy:<sampler>/<scheduler>``) come from ComfyUI's own code in a worker subprocess ($COMFYUI_PYTHON with
$COMFYUI_PATH): its samplers from comfy.k_diffusion.sampling / comfy.extra_samplers.uni_pc on the lists of
comfy.samplers.calculate_sigmas for its ModelSamplingDiscreteFlow (shift) / ModelSamplingFlux (mu) with CONST, with
KSampler's discard-penultimate rule for uni_pc; steps per NFE are the most whose counted model calls fit the budget.
Pack rows (``pack:<sampler>/<schedule>``) go through the public catalogue; ``calibrated`` is the Constant-Rate
Scheduler's vx+cos calibration (node defaults: 24 points, 64 generated samples). ``before:`` rows use the lists and
sl_tada settings the pack produced at an earlier commit (``--before``; computed by that commit's own code in a
subprocess) with today's samplers, which did not change.

Metrics: sliced W2 (512 projections) to the part's reference data and RMSE to the converged ODE (not for TADA, which
solves its own ODE). Printed beside them: the converged ODE's sliced W2 and the data-vs-data floor (mean ± sd over 4
draws of the reference distribution of the same size: the metric's seed spread). Rows are cached per testbed in
``lab/benchmarks/results/flow_rows/``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import torch

from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats
from schedule_lab.kernels.sliced_wasserstein import sliced_wasserstein
from schedule_lab.schedules.catalogue import schedule_sigmas
from schedule_lab.schedules.constant_rate.calibrate import calibrate, schedule
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import catalogue
from schedule_lab.solvers.classic import model_samples

from ..testbeds.exact import ExactDenoiser
from ..testbeds.flow import FlowDenoiser, flow_part, flow_reference_sigmas
from ..testbeds.reference import converged_endpoint
from . import row_cache

RESULTS = Path(__file__).resolve().parent / "results"
ROWS_DIR = RESULTS / "flow_rows"
ROOT = Path(__file__).resolve().parents[2]

TESTBEDS = ("gmm-2", "gmm-16", "gmm-64-skew", "gmm-256", "gmm-1024", "gmm-512-wide", "manifold-512", "digits-exact")
FAMILIES = {"shift1": lambda: ModelKind.flow(1.0), "shift3": lambda: ModelKind.flow(3.0),
            "flux": lambda: ModelKind.flux(1.15)}
CELLS = {"tuning": [(tb, "tuning", f) for tb in TESTBEDS for f in ("shift1", "shift3")],
         "held_out": [(tb, "held_out", f) for tb in TESTBEDS for f in ("shift3", "flux")],
         "zoo": [("zoo-flow-768", "held_out", "shift3")]}
#: The held-out cells of the rows stage (the full menu costs ~8 CPU-minutes a cell on a loaded 2-core machine): five
#: SD3 shift-3 cells over dimensions 2–512 and the memorising digits, and two Flux cells. Fixed before any held-out
#: pack row was computed; ``--parts held_out`` runs all 16.
CELLS["held_out_rows"] = ([(tb, "held_out", "shift3") for tb in ("gmm-2", "gmm-16", "gmm-256", "manifold-512",
                                                                  "digits-exact")]
                          + [(tb, "held_out", "flux") for tb in ("gmm-256", "digits-exact")])
SAMPLES = 1000
REFERENCE_STEPS = 400
TADA_SEED = 7
STOCK = "comfy:euler/simple"  # the SD3/Flux family's stock default

COMFY_SAMPLERS = ("euler", "heun", "dpmpp_2m", "ipndm", "ipndm_v", "deis", "res_multistep", "gradient_estimation",
                  "uni_pc", "uni_pc_bh2", "lms")
COMFY_SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "normal", "beta", "kl_optimal",
                    "linear_quadratic", "ddim_uniform")
MENU = tuple(f"comfy:{a}/{b}" for a in COMFY_SAMPLERS for b in COMFY_SCHEDULERS)
DISCARD_PENULTIMATE = ("uni_pc", "uni_pc_bh2")  # comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS

TADA_DETAILS = (0.5, 1, 2, 4, 8, 16)
TADA_CANDIDATES = tuple(f"pack:sl_tada(detail={d},order={o})/simple" for d in TADA_DETAILS for o in (2, 3))
TADA_CURRENT = "pack:sl_tada(detail=1,order=3)/simple"
#: docs/defaults.md §7a, amended before any TADA row was read: 4–8 only (10–20 did not fit the CPU time; flow keeps
#: the former (1, 3) there).
TADA_NFES = (4, 5, 6, 8)
ROW_NFES = (4, 5, 6, 8)
PACK_ROWS = ("pack:dpmpp_2m/sl_constant_rate", "pack:euler/sl_constant_rate", "pack:dpmpp_2m/calibrated",
             "pack:euler/calibrated", "pack:dpmpp_2m/sl_ays_sd1", "pack:dpmpp_2m/sl_ays_sdxl",
             "pack:euler/sl_ays_sdxl", "pack:sl_tada/simple", "pack:sl_tada/sl_constant_rate")
TADA_COMMAND = "python -m schedule_lab.lab.benchmarks.flow_bench --stage tada"
#: docs/defaults.md §7b: ξ of a measured (vx+cos) calibration on flow models, against the data-free list.
CAL_XIS = (1.0, 1.25, 1.5)
CAL_SAMPLERS = ("dpmpp_2m", "euler")
CAL_CANDIDATES = tuple(f"pack:{a}/calibrated(xi={x:g})" for x in CAL_XIS for a in CAL_SAMPLERS)
CAL_DATA_FREE = tuple(f"pack:{a}/sl_constant_rate" for a in CAL_SAMPLERS)
CAL_COMMAND = "python -m schedule_lab.lab.benchmarks.flow_bench --stage calibration"


def log(*a, **k):
    print(*a, **k, flush=True)  # noqa: T201


# ------------------------------------------------------------------------------------------------------------
# cells
# ------------------------------------------------------------------------------------------------------------
#: The learned rectified-flow model of the zoo (a conv UNet on 3×16×16 natural-image crops, v target, CONST), with
#: the held-out strips of ``patches-unet`` as its reference: a confirmation row only, where lab/testbeds/zoo.py exists.
ZOO_TESTBED = "zoo-flow-768"


def _flow_model(testbed: str, part: str):
    """(Part, flow model): an exact testbed through FlowDenoiser, or the zoo's flow UNet (already in the flow frame)."""
    if testbed == ZOO_TESTBED:
        try:
            from ..testbeds.zoo import load_zoo
        except ImportError:
            raise SystemExit(f"{ZOO_TESTBED} needs the model zoo (lab/testbeds/zoo.py, zoo_flow_768.safetensors)"
                             ) from None
        from ..testbeds.suite import load_part

        return load_part("patches-unet", "held_out", SAMPLES), load_zoo("flow")
    return flow_part(testbed, part, SAMPLES)


@lru_cache(maxsize=64)
def cell(testbed: str, part: str):
    """(Part, flow model, converged endpoint) of a testbed part; the endpoint is the same for every family."""
    p, model = _flow_model(testbed, part)
    key_ = getattr(model, "cache_key", None) or f"{testbed}:{getattr(model, 'weights_sha256', '')}"
    with torch.no_grad():
        ref = converged_endpoint(model, p.noise.double() if testbed != ZOO_TESTBED else p.noise,
                                 sigmas=flow_reference_sigmas(REFERENCE_STEPS), key=key_).float()
    return p, model, ref


@lru_cache(maxsize=64)
def _calibration(testbed: str, part: str, family: str):
    p, model, _ = cell(testbed, part)
    return calibrate(model, FAMILIES[family](), torch.zeros(64, p.dim), "vx+cos", samples=64, seed=0,
                     generate=model_samples)


def _split(spec: str):
    origin, rest = spec.split(":", 1)
    sampler, sched = rest.rsplit("/", 1)
    return origin, sampler, sched


def pack_sigmas(testbed: str, part: str, family: str, sched: str, nfe: int) -> torch.Tensor:
    kind = FAMILIES[family]()
    if sched.startswith("calibrated"):  # calibrated or calibrated(xi=X)
        xi = float(sched.split("xi=")[1].rstrip(")")) if "xi=" in sched else None
        return schedule(_calibration(testbed, part, family), kind, nfe, xi=xi)
    return schedule_sigmas(sched, kind, nfe)


def metrics(x0: torch.Tensor, testbed: str, part: str, sampler: str) -> dict:
    p, _, ref = cell(testbed, part)
    x0 = x0.float()
    if not torch.isfinite(x0).all():
        return {"sw2": math.inf, "rmse": math.inf}
    row = {"sw2": sliced_wasserstein(x0, p.reference, n_projections=512, seed=0)}
    if p.features is not None:  # the natural-image crops: FD in the patch classifier's features
        with torch.no_grad():
            row["fd"] = frechet_distance(*gaussian_stats(p.features(x0)), *gaussian_stats(p.features(p.reference)))
    if "sl_tada" not in sampler:
        row["rmse"] = float((x0.double() - ref.double()).square().mean().sqrt())
    return row


def run_pack(spec: str, testbed: str, part: str, family: str, nfe: int, lists: dict | None = None,
             seed: int = TADA_SEED) -> dict:
    origin, sampler, sched = _split(spec)
    p, model, _ = cell(testbed, part)
    if origin == "before":  # simple: ComfyUI's own (what KSampler hands the sampler), today's catalogue equals it
        sig = (pack_sigmas(testbed, part, family, sched, nfe) if sched == "simple" else
               torch.tensor(lists[f"{testbed}|{part}|{family}|{sched}|{nfe}"], dtype=torch.float32))
        if sampler == "sl_tada":
            detail, order = lists[f"tada|{family}|{nfe}"]
            sampler = f"sl_tada(detail={detail:g},order={order})"
    else:
        sig = pack_sigmas(testbed, part, family, sched, nfe)
    t0 = time.perf_counter()
    res = catalogue.run(sampler, sig.to(torch.float32), model, p.noise, kind=FAMILIES[family](), seed=seed)
    return {**metrics(res.x0, testbed, part, sampler), "nfe": res.nfe, "seconds": round(time.perf_counter() - t0, 3),
            "sigmas": [round(float(s), 6) for s in sig]}


# ------------------------------------------------------------------------------------------------------------
# rows (cached per testbed)
# ------------------------------------------------------------------------------------------------------------
def key(testbed, part, family, spec, nfe) -> str:
    return f"{testbed}|{part}|{family}|{spec}|{nfe}"


def load_rows() -> dict:
    return row_cache.load_rows(ROWS_DIR)


def save_rows(rows: dict) -> None:
    row_cache.save_rows(rows, ROWS_DIR)


def ensure_pack(rows, specs, cells, nfes, lists=None):
    for tb, part, fam in cells:
        for spec in specs:
            for nfe in nfes:
                k = key(tb, part, fam, spec, nfe)
                if spec.startswith("before:") and f"{tb}|{part}|{fam}|{_split(spec)[2]}|{nfe}" not in lists:
                    continue  # the earlier commit could not build this list (e.g. it could not load the model)
                if k not in rows:
                    rows[k] = run_pack(spec, tb, part, fam, nfe, lists)
                    log(f"{k}  sw2 {rows[k]['sw2']:.4f}  rmse {rows[k].get('rmse', float('nan')):.4f}")
        save_rows(rows)
    return rows


def ensure_floors(rows, cells):
    """Per part: the converged ODE's sliced W2 and the data-vs-data floor (4 draws of the data, mean ± sd)."""
    for tb, part, _ in cells:
        k = f"{tb}|{part}|floor"
        if k in rows:
            continue
        p, _, ref = cell(tb, part)
        draws = [_data_draw(p, s) for s in (301, 302, 303, 304)]
        vals = [sliced_wasserstein(d, p.reference, n_projections=512, seed=0) for d in draws]
        mean = sum(vals) / len(vals)
        rows[k] = {"converged_sw2": sliced_wasserstein(ref, p.reference, n_projections=512, seed=0),
                   "data_sw2": mean, "data_sw2_sd": (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5}
    save_rows(rows)
    return rows


def _data_draw(p, seed: int) -> torch.Tensor:
    """SAMPLES fresh draws of the part's data distribution: the mixture itself, or the exact denoiser's data."""
    if hasattr(p.model, "sample"):
        return p.model.sample(SAMPLES, seed)
    if p.testbed == "patches-unet":  # other held-out crops of the same photographs
        from ..testbeds.patches import crops

        return crops("held_out", SAMPLES, seed=seed).x.reshape(SAMPLES, -1).float()
    data = p.model.data
    idx = torch.randint(len(data), (SAMPLES,), generator=torch.Generator().manual_seed(seed))
    return data[idx].float()


# ------------------------------------------------------------------------------------------------------------
# ComfyUI's menu, in the host's interpreter
# ------------------------------------------------------------------------------------------------------------
def ensure_menu(rows, specs, cells, nfes):
    todo = [(tb, part, fam) for tb, part, fam in cells
            if any(key(tb, part, fam, s, n) not in rows for s in specs for n in nfes)]
    if not todo:
        return rows
    comfy_path, python = os.environ.get("COMFYUI_PATH"), os.environ.get("COMFYUI_PYTHON", sys.executable)
    if not comfy_path:
        raise SystemExit("menu rows need ComfyUI's own code: eval \"$(../shared/host/comfyui-host.sh)\" first "
                         "(sets COMFYUI_PATH and COMFYUI_PYTHON)")
    from safetensors.torch import load_file, save_file

    for tb, part, fam in todo:
        with tempfile.TemporaryDirectory(prefix="sl-flow-") as tmp:
            p, _, _ = cell(tb, part)
            inputs = {"noise": p.noise.contiguous()}
            if hasattr(p.model, "data"):  # an exact denoiser's data (digits need scikit-learn, not in ComfyUI's venv)
                inputs["data"] = p.model.data.contiguous()
            save_file(inputs, str(Path(tmp) / "inputs.safetensors"))
            req = {"comfyui_path": comfy_path, "testbed": tb, "part": part, "family": fam,
                   "specs": [s for s in specs], "nfes": list(nfes), "dir": tmp}
            (Path(tmp) / "request.json").write_text(json.dumps(req))
            proc = subprocess.run([python, "-c", _WORKER_START, str(Path(__file__).resolve().parent),
                                   str(Path(tmp) / "request.json")],
                                  capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if proc.returncode != 0:
                raise SystemExit(f"ComfyUI worker failed ({python}): {proc.stderr[-2000:]}")
            meta = json.loads((Path(tmp) / "result.json").read_text())
            tensors = load_file(str(Path(tmp) / "result.safetensors"))
        for i, r in enumerate(meta["rows"]):
            k = key(tb, part, fam, r["spec"], r["nfe"])
            rows[k] = {**metrics(tensors[str(i)], tb, part, r["spec"]), "nfe": r["counted"], "steps": r["steps"],
                       "sigmas": r["sigmas"]}
        for failure in meta["failed"]:  # kept as a row, so the cell counts as complete; never a best pair
            rows[key(tb, part, fam, failure["spec"], failure["nfe"])] = {"failed": failure["error"]}
            log(f"  {tb}|{part}|{fam}: {failure['spec']} NFE {failure['nfe']}: {failure['error']}")
        log(f"{tb}|{part}|{fam}: {len(meta['rows'])} menu rows")
        save_rows(rows)
    return rows


#: The worker in ComfyUI's interpreter, where the pack is not installed: register the repository as schedule_lab.
_WORKER_START = ("import sys; sys.path.insert(0, sys.argv[1]); import _bootstrap; _bootstrap.pack(); "
                 "from schedule_lab.lab.benchmarks.flow_bench import worker; worker(sys.argv[2])")


def worker(request_path: str) -> None:
    from safetensors.torch import load_file, save_file

    req = json.loads(Path(request_path).read_text())
    torch.set_num_threads(1)
    inputs = load_file(str(Path(req["dir"]) / "inputs.safetensors"))
    noise = inputs["noise"]
    if "data" in inputs:
        model = FlowDenoiser(ExactDenoiser(inputs["data"]), inputs["data"].to(torch.float64).mean(0))
    elif req["testbed"] == ZOO_TESTBED:
        from ..testbeds.zoo import load_zoo

        model = load_zoo("flow")
    else:
        _, model = flow_part(req["testbed"], req["part"], SAMPLES)
    sys.path.insert(0, req["comfyui_path"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.extra_samplers.uni_pc as uni_pc
    import comfy.k_diffusion.sampling as kd
    import comfy.model_sampling as cms
    import comfy.samplers as cs

    fam = req["family"]
    if fam == "flux":
        class Sampling(cms.ModelSamplingFlux, cms.CONST):
            pass
        ms = Sampling()
        ms.set_parameters(shift=1.15)
    else:
        class Sampling(cms.ModelSamplingDiscreteFlow, cms.CONST):  # what ModelSamplingSD3 builds
            pass
        ms = Sampling()
        ms.set_parameters(shift={"shift1": 1.0, "shift3": 3.0}[fam], multiplier=1000)

    def sampler_fn(name):
        if name == "uni_pc":
            return uni_pc.sample_unipc
        if name == "uni_pc_bh2":
            return uni_pc.sample_unipc_bh2
        return getattr(kd, f"sample_{name}")

    def sigmas_for(name, sched, steps):
        if name in DISCARD_PENULTIMATE:
            s = cs.calculate_sigmas(ms, sched, steps + 1)
            return torch.cat([s[:-2], s[-1:]])
        return cs.calculate_sigmas(ms, sched, steps)

    class Counted:
        def __init__(self):
            self.n = 0

        def __call__(self, x, sigma, **kw):
            self.n += 1
            return model(x, sigma, **kw)

    def run(fn, sig, x):
        counted = Counted()
        out = fn(counted, x * float(sig[0]), sig.clone(), extra_args={"seed": 0}, disable=True)
        return out, counted.n

    rows, tensors, failed = [], {}, []
    for spec in req["specs"]:
        name, sched = spec.split(":", 1)[1].split("/")
        fn = sampler_fn(name)
        for nfe in req["nfes"]:
            try:
                steps = nfe
                while steps > 1:  # the most steps whose counted calls fit the budget (heun: 2 per step but the last)
                    if run(fn, sigmas_for(name, sched, steps), noise[:2])[1] <= nfe:
                        break
                    steps -= 1
                sig = sigmas_for(name, sched, steps)
                out, counted = run(fn, sig, noise)
                tensors[str(len(rows))] = out.float().contiguous()
                rows.append({"spec": spec, "nfe": nfe, "steps": steps, "counted": counted,
                             "sigmas": [round(float(s), 6) for s in sig]})
            except Exception as e:  # noqa: BLE001  (a sampler/scheduler pair that fails is reported, not fatal)
                failed.append({"spec": spec, "nfe": nfe, "error": f"{type(e).__name__}: {e}"})
    save_file(tensors, str(Path(req["dir"]) / "result.safetensors"))
    (Path(req["dir"]) / "result.json").write_text(json.dumps({"rows": rows, "failed": failed}))


# ------------------------------------------------------------------------------------------------------------
# "before": the lists an earlier commit's own code produced
# ------------------------------------------------------------------------------------------------------------
_BEFORE_CODE = r'''
import json, sys, torch
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import catalogue, tada
from schedule_lab.schedules.constant_rate.calibrate import calibrate, schedule
from schedule_lab.testbeds.suite import load_part
req = json.loads(open(sys.argv[1]).read())
fams = {"shift1": ModelKind.flow(1.0), "shift3": ModelKind.flow(3.0), "flux": ModelKind("flow", req["flux_min"], 1.0,
        shift=req["flux_shift"], multiplier=1.0)}
out = {}
for fam, kind in fams.items():
    for n in req["nfes"]:
        out[f"tada|{fam}|{n}"] = list(tada.default_settings(n, kind))
for tb, part, fam in req["cells"]:
    kind = fams[fam]
    for n in req["nfes"]:
        for name in ("sl_constant_rate", "sl_ays_sd1", "sl_ays_sdxl", "simple"):
            out[f"{tb}|{part}|{fam}|{name}|{n}"] = catalogue.schedule_sigmas(name, kind, n).tolist()
    if tb not in req["suite"]:
        continue  # a model this commit cannot load: data-free lists only
    p = load_part(tb, part, req["samples"])
    m = p.model
    mean = (m.weights @ m.means) if hasattr(m, "weights") else m.data.double().mean(0)
    def flow_model(x, sigma, **kw):
        s = float(sigma.reshape(-1)[0])
        if s >= 1.0:
            return mean.to(x).reshape(1, -1).expand_as(x).clone()
        return m(x / (1.0 - s), sigma / (1.0 - sigma), **kw)
    vel = calibrate(flow_model, kind, torch.zeros(64, p.dim), "vx+cos", samples=64, seed=0)
    for n in req["nfes"]:
        out[f"{tb}|{part}|{fam}|calibrated|{n}"] = schedule(vel, kind, n).tolist()
print(json.dumps(out))
'''


def before_lists(commit: str, cells, nfes) -> dict:
    """Lists and sl_tada settings of ``commit``'s own code (git archive of this repository, run in a subprocess)."""
    cache = RESULTS / "flow_rows" / f"before_{commit}_{len(cells)}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    flux = ModelKind.flux(1.15)
    with tempfile.TemporaryDirectory(prefix="sl-before-") as tmp:
        pkg = Path(tmp) / "schedule_lab"
        pkg.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive.stdout, check=True)
        req = Path(tmp) / "req.json"
        req.write_text(json.dumps({"cells": [list(c) for c in cells], "nfes": list(nfes), "samples": SAMPLES,
                                   "suite": list(TESTBEDS),
                                   "flux_min": flux.sigma_min, "flux_shift": flux.shift}))
        proc = subprocess.run([sys.executable, "-c", _BEFORE_CODE, str(req)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": tmp, "OMP_NUM_THREADS": "1"}, cwd=tmp)
        if proc.returncode != 0:
            raise SystemExit(f"the before-commit code failed: {proc.stderr[-2000:]}")
        lists = json.loads(proc.stdout.strip().splitlines()[-1])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(lists) + "\n")
    return lists


# ------------------------------------------------------------------------------------------------------------
# the rule (docs/defaults.md §7a) and the tables
# ------------------------------------------------------------------------------------------------------------
def ratio(rows, cell_, spec, nfe, against, metric="sw2"):
    tb, part, fam = cell_
    a, b = rows.get(key(tb, part, fam, spec, nfe)), rows.get(key(tb, part, fam, against, nfe))
    if a is None or b is None or metric not in a or metric not in b:
        return None
    return a[metric] / b[metric] if b[metric] > 0 else math.inf


def menu_best(rows, cell_, nfe, metric, complete=True):
    """(value, spec) of the menu's best pair at a cell; NaN when ``complete`` and not all MENU rows are there."""
    tb, part, fam = cell_
    scored = [(rows[key(tb, part, fam, s, nfe)].get(metric, math.inf), s) for s in MENU
              if key(tb, part, fam, s, nfe) in rows]
    if not scored or (complete and len(scored) < len(MENU)):
        return math.nan, None
    return min(scored)


def worst(rows, spec, cells, nfe, against=STOCK):
    values = [(ratio(rows, c, spec, nfe, against), c) for c in cells]
    return max((v, c) for v, c in values if v is not None)


def worst_vs_menu(rows, spec, cells, nfe, metric="sw2"):
    """The worst ratio to the menu's best pair over ``cells`` (NaN where no menu row was computed)."""
    out = []
    for c in cells:
        best, _ = menu_best(rows, c, nfe, metric)
        mine = rows.get(key(*c, spec, nfe), {}).get(metric)
        if mine is not None and best == best:
            out.append(mine / best)
    return max(out) if out else math.nan


def _or_dash(value) -> str:
    return "– (menu not run)" if value is None else f"{value:.3f}"


def _finite(value: float):
    """A rounded number for JSON, None where it is not finite (no menu rows)."""
    return round(value, 4) if math.isfinite(value) else None


def choose_tada(rows, cells, nfes) -> dict:
    out = {}
    for nfe in nfes:
        scored = [(worst(rows, c, cells, nfe)[0], c) for c in TADA_CANDIDATES]
        best = min(s for s, _ in scored)
        near = [c for s, c in scored if s <= best * 1.01]
        pick = TADA_CURRENT if TADA_CURRENT in near else near[0]
        w, where = worst(rows, pick, cells, nfe)
        out[str(nfe)] = {"default": pick, "worst_ratio_to_euler_simple": round(w, 4), "worst_at": "/".join(where),
                         "current": TADA_CURRENT,
                         "current_worst_ratio": round(worst(rows, TADA_CURRENT, cells, nfe)[0], 4),
                         "worst_ratio_to_menu_best": _finite(worst_vs_menu(rows, pick, cells, nfe)),
                         "ranking": sorted((round(s, 4), c) for s, c in scored)[:5]}
    return out


def stage_tada(args) -> None:
    cells = CELLS["tuning"]
    rows = load_rows()
    rows = ensure_menu(rows, [STOCK], cells, TADA_NFES)
    rows = ensure_pack(rows, TADA_CANDIDATES, cells, TADA_NFES)
    rows = ensure_floors(rows, cells)
    if not args.no_menu:  # the reported column; the rule needs only the stock rows
        rows = ensure_menu(rows, MENU, cells, ROW_NFES)
    chosen = choose_tada(rows, cells, TADA_NFES)
    (RESULTS / "flow_tada_chosen.json").write_text(json.dumps({"command": TADA_COMMAND, "rule": "docs/defaults.md §7a",
                                                               "chosen": chosen}, indent=1) + "\n")
    lines = [f"# sl_tada on flow models: the rule's choice (`{TADA_COMMAND}`)", "",
             "Worst ratio of sliced W2 to euler + simple (ComfyUI's code) over the 16 tuning cells (8 exact testbeds "
             "× SD3 shift 1 and 3); menu: the worst ratio to the menu's best pair per cell (4–8 NFE).", "",
             "| NFE | default (detail, order) | worst / euler+simple | at | current (1, 3) | worst / menu best |",
             "|---|---|---|---|---|---|"]
    for nfe, c in chosen.items():
        lines.append(f"| {nfe} | {c['default'].split(':')[1]} | {c['worst_ratio_to_euler_simple']:.3f} | "
                     f"{c['worst_at']} | {c['current_worst_ratio']:.3f} | "
                     f"{_or_dash(c['worst_ratio_to_menu_best'])} |")
    (RESULTS / "flow_tada.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))


def stage_calibration(args) -> None:
    """§7b: per ξ, the worst ratio of the calibrated list to the data-free list (same sampler) over the tuning cells,
    both samplers, both metrics, NFE 4–8; the lowest worst ratio is the flow default."""
    cells = CELLS["tuning"]
    rows = ensure_pack(load_rows(), CAL_DATA_FREE + CAL_CANDIDATES, cells, ROW_NFES)
    lines = [f"# Flow calibration: ξ of a measured vx+cos calibration (`{CAL_COMMAND}`)", "",
             "Ratio of the calibrated list to the data-free `sl_constant_rate` list with the same sampler, over the "
             "16 tuning cells; worst (and median) over cells, per NFE and overall.", "",
             "| ξ | metric | sampler | " + " | ".join(f"NFE {n}" for n in ROW_NFES) + " | worst |",
             "|---|---|---|" + "---|" * (len(ROW_NFES) + 1)]
    score = {}
    for xi in CAL_XIS:
        overall = []
        for metric in ("rmse", "sw2"):
            for a in CAL_SAMPLERS:
                spec, base = f"pack:{a}/calibrated(xi={xi:g})", f"pack:{a}/sl_constant_rate"
                per = []
                for nfe in ROW_NFES:
                    vals = [ratio(rows, c, spec, nfe, base, metric) for c in cells]
                    per.append(_wm([v for v in vals if v is not None]))
                    overall += [(v, f"{'|'.join(c)} {a} {metric} NFE {nfe}") for v, c in zip(vals, cells, strict=True)
                                if v is not None]
                lines.append(f"| {xi:g} | {metric} | {a} | " + " | ".join(per) + " | |")
        w = max(overall)
        score[xi] = w
        lines.append(f"| {xi:g} | **worst** | | " + " | " * len(ROW_NFES) + f"{w[0]:.3f} ({w[1]}) |")
    pick = min(CAL_XIS, key=lambda x: score[x][0])
    lines += ["", f"Chosen: ξ = {pick:g} (worst ratio {score[pick][0]:.3f} at {score[pick][1]})."]
    (RESULTS / "flow_calibration.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))


def stage_rows(args) -> None:
    cells = [c for p in args.parts for c in CELLS[p]]
    # the pack's rows are always recomputed (their names stay while the defaults behind them change)
    rows = {k: v for k, v in load_rows().items() if not any(f"|{s}|" in k for s in PACK_ROWS)}
    rows = ensure_menu(rows, [STOCK], cells, ROW_NFES)
    if not args.cached_menu:
        rows = ensure_menu(rows, MENU, cells, ROW_NFES)
    rows = ensure_floors(rows, cells)
    specs = list(PACK_ROWS)
    if args.before:
        lists = before_lists(args.before, cells, ROW_NFES)
        before = [s.replace("pack:", "before:") for s in PACK_ROWS]
        rows = ensure_pack(rows, before, cells, ROW_NFES, lists)
        specs = [x for pair in zip(before, PACK_ROWS, strict=True) for x in pair]
    rows = ensure_pack(rows, PACK_ROWS, cells, ROW_NFES)
    write_rows_tables(rows, specs, cells, args)


def write_rows_tables(rows, specs, cells, args) -> None:
    out = [f"# Flow rows: the pack's flow entries against ComfyUI's menu (`python -m schedule_lab.lab.benchmarks."
           f"flow_bench --stage rows --parts {' '.join(args.parts)}" + (f" --before {args.before}`)" if args.before
                                                                        else "`)"), "",
           "Per cell and NFE: the ratio to euler + simple (the family's stock default) and to the menu's best pair "
           "(best of 99 ComfyUI sampler × scheduler pairs, per metric). Error = RMSE to the converged flow ODE "
           "(TADA: –, it solves its own ODE). `before:` = the lists and sl_tada settings of the pack at that commit.",
           "", "Cells: " + ", ".join("/".join(c) for c in cells) + ".", ""]
    for metric in ("rmse", "sw2"):
        out += [f"## {'Error to the converged ODE' if metric == 'rmse' else 'Sliced W2 to the data'}: worst and "
                "median ratio over the cells", "",
                "| method | " + " | ".join(f"NFE {n}: / stock (worst, median) | / menu best (worst, median)"
                                           for n in ROW_NFES) + " |",
                "|---|" + "---|---|" * len(ROW_NFES)]
        for spec in [STOCK] + specs:
            cells_txt = []
            for nfe in ROW_NFES:
                vs_stock, vs_menu = [], []
                for c in cells:
                    r = ratio(rows, c, spec, nfe, STOCK, metric)
                    best, _ = menu_best(rows, c, nfe, metric)
                    mine = rows.get(key(*c, spec, nfe), {}).get(metric)
                    if r is not None:
                        vs_stock.append(r)
                    if mine is not None and best == best and best > 0:
                        vs_menu.append(mine / best)
                cells_txt.append(_wm(vs_stock))
                cells_txt.append(_wm(vs_menu))
            out.append(f"| {spec} | " + " | ".join(cells_txt) + " |")
        out.append("")
    out += ["## Per cell at 5 NFE (sliced W2; floors: converged ODE, data-vs-data mean ± sd)", "",
            "| cell | converged | data floor | euler+simple | menu best (sw2) | " + " | ".join(specs) + " |",
            "|---|---|---|---|---|" + "---|" * len(specs)]
    for c in cells:
        fl = rows[f"{c[0]}|{c[1]}|floor"]
        best, which = menu_best(rows, c, 5, "sw2")
        which = "–" if which is None else which.split(":")[1]
        vals = [rows.get(key(*c, s, 5), {}).get("sw2") for s in specs]
        out.append(f"| {'|'.join(c)} | {fl['converged_sw2']:.4f} | {fl['data_sw2']:.4f} ± {fl['data_sw2_sd']:.4f} | "
                   f"{rows[key(*c, STOCK, 5)]['sw2']:.4f} | {best:.4f} ({which}) | "
                   + " | ".join("–" if v is None else f"{v:.4f}" for v in vals) + " |")
    name = "flow_rows_" + "_".join(args.parts) + ".md"
    (RESULTS / name).write_text("\n".join(out) + "\n")
    log("\n".join(out))


def _wm(values):
    if not values:
        return "–"
    v = sorted(values)
    return f"{v[-1]:.2f}, {v[len(v) // 2]:.2f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", choices=("tada", "calibration", "rows"), required=True)
    ap.add_argument("--parts", nargs="+", default=["held_out"], choices=list(CELLS))
    ap.add_argument("--no-menu", action="store_true", help="tada stage: skip the menu's best-pair column")
    ap.add_argument("--cached-menu", action="store_true",
                    help="rows stage: the menu's best pair from the cached menu rows only (the table says how many)")
    ap.add_argument("--before", default=None, help="commit whose lists and sl_tada settings make the before rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    {"tada": stage_tada, "calibration": stage_calibration, "rows": stage_rows}[args.stage](args)


if __name__ == "__main__":
    main()
