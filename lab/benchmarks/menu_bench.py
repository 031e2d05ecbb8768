"""The pack against ComfyUI's menu on the learned models (protocol in docs/menu.md §1–§3).

    eval "$(../shared/host/comfyui-host.sh)"      # COMFYUI_PATH / COMFYUI_PYTHON: the menu runs from ComfyUI's code
    python -m schedule_lab.lab.benchmarks.menu_bench --setting flow-768/shift3 --part tuning [--stage error|dist|all]

Stage ``error``: every menu row (ComfyUI's samplers × schedulers and the scheduler nodes' lists, run by
``comfy_worker.run_menu``) and every pack row (``PACK_ROWS`` through ``solvers.catalogue.run``) on the part's first
``--n-error`` noises, scored by E = RMSE to the converged ODE from the same x_T. Stage ``dist``: the candidates of
docs/menu.md §3 (the 6 menu rows with the lowest E per NFE, the family's stock default, the pack rows, the converged
ODE) on ``--n-dist`` noises, scored by FD_patch / KID_patch / SW2 against the part's reference crops, with the
data-vs-data floor and the seed-to-seed spread. Rows are cached in ``results/menu_rows/<setting>__<part>.json``
(a rerun only computes what is missing); tables go to ``results/menu_<setting>__<part>.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from schedule_lab.schedules.catalogue import SCHEDULES, schedule_sigmas
from schedule_lab.schedules.model_kind import ModelKind

from .comfy_worker import MENU_SAMPLERS, MENU_SCHEDULERS, NODE_LISTS, run_menu
from .methods import Method, steps_for_nfe
from .setups import load_model, noise, pin_threads

__all__ = ["PACK_ROWS", "PARTS", "SETTINGS", "STOCK", "main"]

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Setting:
    model: str       # benchmarks.setups.load_model name
    sampling: dict   # ComfyUI model_sampling to build in the worker (comfy_worker._model_sampling)
    kind: ModelKind  # what the pack's catalogue is told
    family: str      # eps | v | edm | flow
    size: int = 16   # crop side of the model's data: noise has 3 * size**2 entries (16: 768-d, 32: 3072-d)

    @property
    def dim(self) -> int:
        return 3 * self.size * self.size


SETTINGS = {
    "flow-768/shift1": Setting("zoo-flow-768", {"type": "flow", "shift": 1.0}, ModelKind.flow(1.0), "flow"),
    "flow-768/shift3": Setting("zoo-flow-768", {"type": "flow", "shift": 3.0}, ModelKind.flow(3.0), "flow"),
    # Flux's time shift (ModelSamplingFlux, μ = 1.15 at 1024x1024): SD3's shift e^μ on a 10000-entry table.
    "flow-768/flux": Setting("zoo-flow-768", {"type": "flux", "shift": 1.15}, ModelKind.flux(1.15), "flow"),
    "patch-unet/edm": Setting("patch-unet", {"type": "edm", "sigma_min": 0.002, "sigma_max": 80.0,
                                             "sigma_data": 0.5}, ModelKind.edm(0.002, 80.0, 0.5), "edm"),
    "eps-768/sd1": Setting("zoo-eps-768", {"type": "eps"}, ModelKind.vp("eps"), "eps"),
    "v-768/sd1": Setting("zoo-v-768", {"type": "v"}, ModelKind.vp("v"), "v"),
    "flow-3072/shift3": Setting("zoo-flow-3072", {"type": "flow", "shift": 3.0}, ModelKind.flow(3.0), "flow", 32),
    "edm-768/edm": Setting("zoo-edm-768", {"type": "edm", "sigma_min": 0.002, "sigma_max": 80.0,
                                           "sigma_data": 0.5}, ModelKind.edm(0.002, 80.0, 0.5), "edm"),
    "eps-3072/sd1": Setting("zoo-eps-3072", {"type": "eps"}, ModelKind.vp("eps"), "eps", 32),
    "v-3072/sd1": Setting("zoo-v-3072", {"type": "v"}, ModelKind.vp("v"), "v", 32),
    "edm-3072/edm": Setting("zoo-edm-3072", {"type": "edm", "sigma_min": 0.002, "sigma_max": 80.0,
                                             "sigma_data": 0.5}, ModelKind.edm(0.002, 80.0, 0.5), "edm", 32),
}
#: The family's stock default (KSampler's sampler + scheduler an artist gets for that model type).
STOCK = {"flow": ("euler", "simple"), "eps": ("dpmpp_2m", "karras"), "v": ("dpmpp_2m", "karras"),
         "edm": ("dpmpp_2m", "karras")}
#: part → (noise seed, reference strip, reference crop seed), docs/menu.md §1.
PARTS = {"tuning": (1101, "tuning", 1102), "held_out": (1201, "held_out", 1202)}
#: The pack's rows (sampler spec, schedule): catalogue entries as the stock KSampler runs them; "<stock>" is the
#: family's stock scheduler.
PACK_ROWS = (("euler", "sl_constant_rate"), ("dpmpp_2m", "sl_constant_rate"), ("dpmpp_2m", "sl_ays_sd1"),
             ("dpmpp_2m", "sl_ays_sdxl"), ("sl_tada", "sl_constant_rate"), ("sl_tada", "<stock>"))
REF_STEPS, REF_DIST_STEPS, CANDIDATES = 128, 32, 6
#: docs/menu.md §5: the pack's schedules an artist picks in the KSampler, run under every sampler of ComfyUI's menu
#: and the pack's sl_tada. "calibrated" = `sl_constant_rate` on the Constant-Rate Scheduler node's MODEL output (node
#: defaults), the others as the KSampler computes them for the model without a calibration.
PACK_SCHEDULES = ("sl_constant_rate", "calibrated", "sl_ays_sd1", "sl_ays_sdxl")
PACK_SAMPLERS = ("sl_tada",)
#: Deprecated schedules (docs/defaults.md §15): their rows stay in the tables, never as "the pack's best".
DEPRECATED = tuple(sc for sc in PACK_SCHEDULES if sc in SCHEDULES and SCHEDULES[sc].deprecated)
#: sl_tada on each pack schedule (error stage only; the distance stage keeps PACK_ROWS)
TADA_ROWS = tuple(("sl_tada", sc) for sc in PACK_SCHEDULES if ("sl_tada", sc) not in PACK_ROWS)
#: The pack's lists go to the worker for 1..LIST_STEPS steps: NFE 30, KSampler's one more step for uni_pc, and the
#: worker's search for the step count of an NFE budget (up to NFE + 1 steps).
LIST_STEPS = 33
LONG_NFES = (10, 15, 20, 30)


def _reference_sigmas(kind: ModelKind, steps: int) -> torch.Tensor:
    if kind.kind == "flow":
        return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    from schedule_lab.schedules.baseline import karras

    return karras(steps, kind.sigma_min, kind.sigma_max, 7.0, dtype=torch.float64)


def _converged(model, kind, z, steps):
    from ..testbeds.reference import converged_endpoint

    sig = _reference_sigmas(kind, steps)
    return converged_endpoint(model, z * float(sig[0]), sigmas=sig)


def _key(*parts) -> str:
    return "|".join(str(p) for p in parts)


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.to(torch.float64).numpy().tobytes()).hexdigest()[:12]


_VELOCITY: dict[str, object] = {}


def calibration(setting: Setting):
    """The Constant-Rate Scheduler node's calibration of this model with its default settings (vx+cos, the
    default points and samples, seed 0, an empty latent: data-free samples drawn by the pack's generator), through
    the pack's public calibration API as the node calls it (``nodes.constant_rate_ops.calibrate``)."""
    key = f"{setting.model}|{setting.kind!r}"
    if key not in _VELOCITY:
        from schedule_lab.schedules.constant_rate import calibrate as cr
        from schedule_lab.solvers.classic import model_samples

        latent = torch.zeros(cr.DEFAULT_SAMPLES, setting.dim)  # one batch of the default sample count
        _VELOCITY[key] = cr.calibrate(load_model(setting.model), setting.kind, latent, cr.DEFAULT_MEASURE,
                                      cr.DEFAULT_POINTS, cr.DEFAULT_SAMPLES, 0, generate=model_samples)
    return _VELOCITY[key]


def pack_list(setting: Setting, name: str, steps: int) -> torch.Tensor:
    """What the stock KSampler gets from the pack's registered scheduler ``name`` for ``steps`` (``calibrated``:
    ``sl_constant_rate`` on the MODEL carrying the node's calibration)."""
    if name == "calibrated":
        return schedule_sigmas("sl_constant_rate", setting.kind, steps, {"velocity": calibration(setting)})
    return schedule_sigmas(name, setting.kind, steps)


def _pack_methods(setting: Setting, rows=PACK_ROWS) -> list[Method]:
    stock_schedule = STOCK[setting.family][1]
    out = []
    for spec, sc in rows:
        sc = stock_schedule if sc == "<stock>" else sc
        out.append(Method(spec, sc, "pack", lambda n, sc=sc: pack_list(setting, sc, n), setting.kind))
    return out


_LISTS: dict[tuple, tuple[dict, dict]] = {}


def pack_lists(setting: Setting, schedules=PACK_SCHEDULES) -> tuple[dict, dict]:
    """({name: {steps: sigmas}} for 1..LIST_STEPS steps, {name: digest of those lists}): the worker's extra lists
    and the cache key of their rows (a changed catalogue entry or calibration is recomputed). Memoised per process."""
    key = (setting.model, repr(setting.kind), tuple(schedules))
    if key not in _LISTS:
        lists = {sc: {k: pack_list(setting, sc, k) for k in range(1, LIST_STEPS + 1)} for sc in schedules}
        digests = {sc: _digest(torch.cat([v.to(torch.float64) for v in ls.values()])) for sc, ls in lists.items()}
        _LISTS[key] = lists, digests
    return _LISTS[key]


def stage_pack_menu(setting: Setting, part: str, nfes, n: int, cache: Cache, samplers=MENU_SAMPLERS,
                    schedules=PACK_SCHEDULES, only=None, log=print) -> None:
    """docs/menu.md §5: ComfyUI's samplers (from its code) on the pack's lists, as the stock KSampler runs them.
    Rows ``E|xpack|<sampler>|<schedule>|<nfe>|<n>|<seed>|<digest of the lists>``."""
    seed = PARTS[part][0]
    lists, digests = pack_lists(setting, schedules)
    pairs = [(a, sc) for a in samplers for sc in schedules if only is None or (a, sc) in only]
    todo = {k: [p for p in pairs if _key("E", "xpack", *p, k, n, seed, digests[p[1]]) not in cache.rows]
            for k in nfes}
    todo = {k: v for k, v in todo.items() if v}
    if not todo:
        return
    model = load_model(setting.model)
    z = noise(n, seed, setting.dim)
    ref = _converged(model, setting.kind, z, REF_STEPS)
    # every pair: one worker call per NFE, saved as it comes; a few pairs (``only``): one call
    calls = sorted(todo.items()) if only is None else [(sorted(todo), sorted({p for v in todo.values() for p in v}))]
    for k, want in calls:
        ks = k if isinstance(k, list) else [k]
        _menu_call(setting, sorted({p[0] for p in want}), sorted({p[1] for p in want}), ks, seed, z, ref, n, cache,
                   lambda r: _key("E", "xpack", r["sampler"], r["schedule"], r["nfe_target"], n, seed,
                                  digests[r["schedule"]]),
                   "ComfyUI's samplers on the pack's lists", log, only=want, extra_lists=lists)


def xpack_e(cache: Cache, setting: Setting, nfe: int, n: int, seed: int) -> dict[tuple[str, str], dict]:
    """The rows of ``stage_pack_menu`` for the current lists at this NFE."""
    _, digests = pack_lists(setting)
    out = {}
    for a in MENU_SAMPLERS:
        for sc in PACK_SCHEDULES:
            row = cache.rows.get(_key("E", "xpack", a, sc, nfe, n, seed, digests[sc]))
            if row is not None:
                out[(a, sc)] = row
    return out


class Cache:
    def __init__(self, path: Path):
        self.path = path
        self.rows = json.loads(path.read_text()) if path.exists() else {}

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.rows, indent=1, sort_keys=True) + "\n")


def _e_row(x0: torch.Tensor, ref: torch.Tensor, n: int, name: str = "E") -> dict:
    from ..testbeds.metrics import rmse

    return {name: round(rmse(x0, ref), 6), f"{name}_halves": [round(rmse(x0[: n // 2], ref[: n // 2]), 6),
                                                              round(rmse(x0[n // 2:], ref[n // 2:]), 6)]}


def _menu_call(setting: Setting, samplers, schedules, ks, seed: int, z, ref, n: int, cache: Cache, key, what: str,
               log, only=None, extra_lists=None) -> None:
    """One ComfyUI worker call (``run_menu``) at NFE ``ks``; each row scored by E against ``ref`` and cached under
    ``key(row)``, then saved (a long run stopped keeps what it did)."""
    t0 = time.perf_counter()
    rows, note = run_menu(setting.model, setting.sampling, samplers, schedules, ks, {seed: z}, log=lambda m: None,
                          only=only, extra_lists=extra_lists)
    if rows is None:
        raise SystemExit(note)
    if note:
        log(note)
    for r in rows:
        run = r["runs"][seed]
        cache.rows[key(r)] = {**_e_row(run["x0"], ref, n), "nfe": run["nfe"], "steps": r["steps"],
                              "sigmas": r["sigmas"]}
    log(f"  {what} NFE {ks}: {len(rows)} rows in {time.perf_counter() - t0:.0f}s")
    cache.save()


def menu_rows(setting: Setting, part: str, nfes, n: int, cache: Cache, z, ref, only=None, log=print) -> None:
    """ComfyUI's menu (its samplers × schedulers and the scheduler nodes' lists, from its code) at ``nfes``;
    ``only``: (sampler, scheduler) pairs to restrict it to (e.g. the stock default at NFE 10–30)."""
    seed = PARTS[part][0]
    if only is None:
        todo_nfes = [k for k in nfes if not any(r.startswith("E|menu|") and r.endswith(f"|{k}|{n}|{seed}")
                                                for r in cache.rows)]
    else:
        todo_nfes = [k for k in nfes if any(_key("E", "menu", *p, k, n, seed) not in cache.rows for p in only)]
    if not todo_nfes:
        return
    schedules = list(MENU_SCHEDULERS) + [k for k, kinds in NODE_LISTS.items() if setting.sampling["type"] in kinds]
    samplers = MENU_SAMPLERS
    if only is not None:
        samplers, schedules = sorted({p[0] for p in only}), sorted({p[1] for p in only})
    # the whole menu: one worker call per NFE, saved as it comes (a long run stopped keeps what it did); a few pairs:
    # one call (starting ComfyUI's worker costs more than a few rows)
    for ks in ([[k] for k in todo_nfes] if only is None else [todo_nfes]):
        _menu_call(setting, samplers, schedules, ks, seed, z, ref, n, cache,
                   lambda r: _key("E", "menu", r["sampler"], r["schedule"], r["nfe_target"], n, seed), "menu", log,
                   only=only)


def pack_rows(setting: Setting, part: str, nfes, n: int, cache: Cache, model, z, ref, rows=PACK_ROWS + TADA_ROWS,
              log=print) -> None:
    """The pack's rows through its public catalogue (``solvers.catalogue.run``, as KSampler runs them)."""
    seed = PARTS[part][0]
    for m in _pack_methods(setting, rows):
        own, own_refs = m.own_endpoint, {}
        for k in nfes:
            steps = steps_for_nfe(m, k)
            sig = m.sigmas(steps)
            key = _key("E", "pack", m.sampler, m.schedule, k, n, seed, _digest(sig))
            done = cache.rows.get(key, {})
            if "E_halves" in done and (own is None or "own_options" in done):  # rows before §5 lack the halves,
                continue  # TADA rows before the per-NFE endpoint lack its options
            res = m.run(model, z, steps, seed)
            row = {**_e_row(res.x0, ref, n), "nfe": res.nfe, "steps": steps,
                   "sigmas": [round(float(v), 6) for v in sig]}
            if own is not None:  # TADA: its own converged endpoint, same seed, 128 steps of the same schedule
                options = tada_options(sig, setting.kind)  # with the options this row ran with, not the 128-step ones
                if options not in own_refs:
                    own_refs[options] = tada_endpoint(model, z * float(m.sigmas(REF_STEPS)[0]), seed,
                                                      m.sigmas(REF_STEPS), setting.kind, options)
                row.update(_e_row(res.x0, own_refs[options], n, "E_own"))
                row["own_options"] = list(options)
            cache.rows[key] = row
            log(f"  pack {m.label} NFE {k}: E {row['E']:.4f}" + (f" (own {row['E_own']:.4f})" if own else ""))
        cache.save()


def tada_options(sigmas: torch.Tensor, kind: ModelKind) -> tuple[float, int, str]:
    """(detail, order, integrator) that ``sl_tada`` without options resolves to on ``sigmas``: the step count and
    whether the list is Karras-spaced decide them (``solvers.tada``'s public defaults)."""
    from schedule_lab.solvers.tada import default_integrator, default_settings, is_karras_spaced

    steps, karras = len(sigmas) - 1, is_karras_spaced(sigmas)
    integrator = default_integrator(kind, steps, karras)
    detail, order = default_settings(steps, kind, integrator, karras=karras)
    return float(detail), int(order), integrator


def tada_endpoint(model, x_T: torch.Tensor, seed: int, sigmas: torch.Tensor, kind: ModelKind,
                  options: tuple[float, int, str]) -> torch.Tensor:
    """TADA's own converged endpoint for a row that ran with ``options``: the same detail, order and integrator on
    the dense ``sigmas`` (TADA's augmented ODE depends on them; on the dense list the defaults would differ)."""
    import functools

    from schedule_lab.solvers import catalogue
    from schedule_lab.solvers.tada import sample_tada

    detail, order, integrator = options
    fn = functools.partial(sample_tada, kind=kind, detail=detail, order=order, integrator=integrator)
    return catalogue.run(fn, sigmas, model, x_T, kind=kind, seed=seed, sigma_start=1.0).x0


def stage_error(setting: Setting, part: str, nfes, n: int, cache: Cache, log=print) -> None:
    seed = PARTS[part][0]
    model = load_model(setting.model)
    z = noise(n, seed, setting.dim)
    ref = _converged(model, setting.kind, z, REF_STEPS)
    ref_half = _converged(model, setting.kind, z, REF_STEPS // 2)
    cache.rows[_key("ref-convergence", REF_STEPS, n, seed)] = {
        "rmse_heun64_vs_heun128": round(float((ref_half - ref).square().mean().sqrt()), 6)}
    menu_rows(setting, part, nfes, n, cache, z, ref, log=log)
    pack_rows(setting, part, nfes, n, cache, model, z, ref, log=log)


def _menu_e(cache: Cache, nfe: int, n: int, seed: int) -> dict[tuple[str, str], dict]:
    out = {}
    for key, row in cache.rows.items():
        p = key.split("|")
        if p[0] == "E" and p[1] == "menu" and p[4] == str(nfe) and p[5] == str(n) and p[6] == str(seed):
            out[(p[2], p[3])] = row
    return out


def _pack_e(cache: Cache, setting: Setting, nfe: int, n: int, seed: int) -> dict[tuple[str, str], dict]:
    out = {}
    for m in _pack_methods(setting, PACK_ROWS + TADA_ROWS):
        sig = m.sigmas(steps_for_nfe(m, nfe))
        row = cache.rows.get(_key("E", "pack", m.sampler, m.schedule, nfe, n, seed, _digest(sig)))
        if row is not None:
            out[(m.sampler, m.schedule)] = row
    return out


def candidates(cache: Cache, setting: Setting, nfe: int, n: int, seed: int) -> list[tuple[str, str]]:
    """docs/menu.md §3: the CANDIDATES menu rows with the lowest E at this NFE, plus the stock default."""
    rows = sorted(_menu_e(cache, nfe, n, seed).items(), key=lambda kv: kv[1]["E"])
    out = [pair for pair, _ in rows[:CANDIDATES]]
    stock = STOCK[setting.family]
    return out + ([stock] if stock not in out else [])


def _distances(x: torch.Tensor, ref: torch.Tensor, ref_stats, classifier) -> dict:
    from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats

    from ..testbeds.metrics import classifier_features, kid, swd

    f = classifier_features(x, classifier)
    # KID's cubic kernel assumes features of order 1: both sets are divided by the reference features' RMS value
    scale = float(ref_stats[1].square().mean().sqrt())
    return {"FD": round(frechet_distance(*gaussian_stats(f), *ref_stats[0]), 4),
            "KID": round(1e3 * kid(f / scale, ref_stats[1] / scale), 4), "SW2": round(swd(x, ref), 5)}


def stage_dist(setting: Setting, part: str, nfes, n: int, n_error: int, cache: Cache, log=print,
               spread_offset: int = 50) -> None:
    if setting.size != 16:
        raise SystemExit(f"the distance stage's features come from the 16-px patch classifier; {setting.model} is "
                         f"{setting.size}-px: run --stage error (E) for it")
    from schedule_lab.kernels.frechet import gaussian_stats

    from ..testbeds.metrics import classifier_features
    from ..testbeds.patches import crops
    from ..testbeds.unet import load_patch_classifier

    seed, strip, ref_seed = PARTS[part]
    clf = load_patch_classifier()
    ref = crops(strip, n, seed=ref_seed, size=setting.size).x.reshape(n, -1)
    f_ref = classifier_features(ref, clf)
    ref_stats = (gaussian_stats(f_ref), f_ref)
    for split, offset in ((strip, 10), ("train", 20)):  # data-vs-data floors
        key = _key("floor", split, n, ref_seed, ref_seed + offset)
        if key not in cache.rows:
            other = crops(split, n, seed=ref_seed + offset, size=setting.size).x.reshape(n, -1)
            cache.rows[key] = _distances(other, ref, ref_stats, clf)
    model = load_model(setting.model)
    z = noise(n, seed, setting.dim)
    # the pack's rows
    for m in _pack_methods(setting):
        for k in nfes:
            steps = steps_for_nfe(m, k)
            key = _key("D", "pack", m.sampler, m.schedule, k, n, seed, _digest(m.sigmas(steps)))
            if key in cache.rows:
                continue
            cache.rows[key] = _distances(m.run(model, z, steps, seed).x0, ref, ref_stats, clf)
            log(f"  pack {m.label} NFE {k}: {cache.rows[key]}")
            cache.save()
    # the menu's candidates, one worker call for all of them (each NFE its own pairs)
    want = {}
    for k in nfes:
        for pair in candidates(cache, setting, k, n_error, seed):
            if _key("D", "menu", *pair, k, n, seed) not in cache.rows:
                want.setdefault(k, []).append(pair)
    for k, pairs in want.items():
        rows, note = run_menu(setting.model, setting.sampling, sorted({p[0] for p in pairs}),
                              sorted({p[1] for p in pairs}), [k], {seed: z}, log=lambda m: None, only=pairs)
        if rows is None:
            raise SystemExit(note)
        for r in rows:
            key = _key("D", "menu", r["sampler"], r["schedule"], k, n, seed)
            cache.rows[key] = _distances(r["runs"][seed]["x0"], ref, ref_stats, clf)
            log(f"  menu {r['sampler']} / {r['schedule']} NFE {k}: {cache.rows[key]}")
        cache.save()
    # seed-to-seed spread: the stock default and the menu's best pair by FD, from the disjoint noise seed + 50
    s2 = seed + spread_offset
    z2 = None
    for k in nfes:
        d = {pair: cache.rows.get(_key("D", "menu", *pair, k, n, seed)) for pair in candidates(cache, setting, k,
                                                                                             n_error, seed)}
        d = {p: v for p, v in d.items() if v}
        if not d:
            continue
        best = min(d, key=lambda p: d[p]["FD"])
        for pair in {best, STOCK[setting.family]}:
            key = _key("D", "menu", *pair, k, n, s2)
            if key in cache.rows:
                continue
            z2 = noise(n, s2, setting.dim) if z2 is None else z2
            rows, note = run_menu(setting.model, setting.sampling, [pair[0]], [pair[1]], [k], {s2: z2},
                                  log=lambda m: None)
            if rows is None:
                raise SystemExit(note)
            cache.rows[key] = _distances(rows[0]["runs"][s2]["x0"], ref, ref_stats, clf)
            log(f"  spread: menu {pair} NFE {k} seed {s2}: {cache.rows[key]}")
            cache.save()
    # last (the most expensive row): the converged ODE's own distances, what a perfect solver gets
    key = _key("D", "ode", REF_DIST_STEPS, n, seed)
    if key not in cache.rows:
        t0 = time.perf_counter()
        x0 = _converged(model, setting.kind, noise(n, seed, setting.dim), REF_DIST_STEPS)
        cache.rows[key] = _distances(x0, ref, ref_stats, clf)
        log(f"  converged ODE (Heun {REF_DIST_STEPS}): {cache.rows[key]} {time.perf_counter() - t0:.0f}s")
        cache.save()
    cache.save()


def _fmt(v, digits=4):
    return "—" if v is None else f"{v:.{digits}f}"


def tables(setting_name: str, part: str, nfes, n_error: int, n_dist: int, cache: Cache) -> tuple[str, dict]:
    """The markdown tables of one setting and part, and the per-NFE summary (what the README/issue quote)."""
    setting = SETTINGS[setting_name]
    seed, strip, ref_seed = PARTS[part]
    stock = STOCK[setting.family]
    lines = [f"# ComfyUI's menu vs Schedule Lab: `{setting_name}`, {part} part", "",
             f"Written by `python -m schedule_lab.lab.benchmarks.menu_bench --setting {setting_name} --part {part}` "
             f"(protocol: docs/menu.md §1–§3). Model `{setting.model}`, sampled as ComfyUI's {setting.sampling}; "
             f"the pack is told `{setting.kind.kind}` shift {setting.kind.shift:g}. E = RMSE to the converged ODE "
             f"(Heun {REF_STEPS}) on {n_error} noises (seed {seed}); FD / KID (×10³) / SW2 on {n_dist} samples "
             f"against {n_dist} {strip}-strip crops (seed {ref_seed}). Stock default: {stock[0]} + {stock[1]}.", ""]
    conv = cache.rows.get(_key("ref-convergence", REF_STEPS, n_error, seed))
    floor_same = cache.rows.get(_key("floor", strip, n_dist, ref_seed, ref_seed + 10))
    floor_train = cache.rows.get(_key("floor", "train", n_dist, ref_seed, ref_seed + 20))
    ode = cache.rows.get(_key("D", "ode", REF_DIST_STEPS, n_dist, seed))
    ode2 = cache.rows.get(_key("D", "ode", REF_DIST_STEPS, n_dist, seed + 50))
    lines += ["| floor / reference | FD | KID | SW2 |", "|---|---|---|---|"]
    for label, row in ((f"data vs data ({strip} strips, another {n_dist} crops)", floor_same),
                       ("data vs data (train-strip crops)", floor_train),
                       (f"converged ODE (Heun {REF_DIST_STEPS}), seed {seed}", ode),
                       (f"converged ODE (Heun {REF_DIST_STEPS}), seed {seed + 50}", ode2)):
        if row:
            lines.append(f"| {label} | {row['FD']:.4f} | {row['KID']:.4f} | {row['SW2']:.5f} |")
    if conv:
        lines += ["", f"Reference convergence: RMSE(Heun {REF_STEPS // 2}, Heun {REF_STEPS}) = "
                      f"{conv['rmse_heun64_vs_heun128']:.6f}."]
    summary = {}
    for k in nfes:
        menu_e = _menu_e(cache, k, n_error, seed)
        if not menu_e:
            continue
        pack_e = _pack_e(cache, setting, k, n_error, seed)
        best_e_pair = min(menu_e, key=lambda p: menu_e[p]["E"])
        best_e = menu_e[best_e_pair]["E"]
        d_menu = {p: cache.rows.get(_key("D", "menu", *p, k, n_dist, seed)) for p in candidates(cache, setting, k,
                                                                                               n_error, seed)}
        d_menu = {p: v for p, v in d_menu.items() if v}
        d_pack = {}
        for m in _pack_methods(setting):
            row = cache.rows.get(_key("D", "pack", m.sampler, m.schedule, k, n_dist, seed,
                                      _digest(m.sigmas(steps_for_nfe(m, k)))))
            if row:
                d_pack[(m.sampler, m.schedule)] = row
        best_fd_pair = min(d_menu, key=lambda p: d_menu[p]["FD"]) if d_menu else None
        best_fd = d_menu[best_fd_pair]["FD"] if best_fd_pair else None
        spread = []
        for p in {best_fd_pair, stock} - {None}:
            a, b = d_menu.get(p), cache.rows.get(_key("D", "menu", *p, k, n_dist, seed + 50))
            if a and b:
                spread.append(abs(a["FD"] - b["FD"]))
        spread_fd = max(spread) if spread else None
        lines += ["", f"## NFE {k}", "",
                  f"Menu's best pair: **{best_e_pair[0]} + {best_e_pair[1]}** on E ({best_e:.4f})"
                  + (f", **{best_fd_pair[0]} + {best_fd_pair[1]}** on FD ({best_fd:.4f})" if best_fd_pair else "")
                  + (f"; seed-to-seed |ΔFD| {spread_fd:.4f}" if spread_fd is not None else "") + ".", "",
                  "| sampler | schedule | source | steps | NFE | E | E / menu best | E own (TADA) | FD | FD / menu "
                  "best | KID | SW2 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        shown = sorted(menu_e, key=lambda p: menu_e[p]["E"])[:10]
        shown += [p for p in d_menu if p not in shown]
        shown += [stock] if stock not in shown and stock in menu_e else []
        entries = [("menu", p, menu_e[p], d_menu.get(p)) for p in shown]
        entries += [("pack", p, pack_e[p], d_pack.get(p)) for p in pack_e]
        ode_fd = ode["FD"] if ode else None
        for source, (sa, sc), er, dr in entries:
            tags = []
            if source == "menu" and (sa, sc) == best_e_pair:
                tags.append("★E")
            if source == "menu" and (sa, sc) == best_fd_pair:
                tags.append("★FD")
            if source == "menu" and (sa, sc) == stock:
                tags.append("stock")
            if dr and ode_fd is not None and spread_fd is not None and dr["FD"] < ode_fd - spread_fd:
                tags.append("<ODE")
            fd_ratio = dr["FD"] / best_fd if dr and best_fd else None
            e_col = er["E"] / best_e
            lines.append(f"| {sa} | {sc} | {source}{' ' + ' '.join(tags) if tags else ''} | {er['steps']} | "
                         f"{er['nfe']} | {er['E']:.4f} | {e_col:.2f} | {_fmt(er.get('E_own'))} | "
                         f"{_fmt(dr and dr['FD'])} | {_fmt(fd_ratio, 2)} | {_fmt(dr and dr['KID'])} | "
                         f"{_fmt(dr and dr['SW2'], 5)} |")
        # where the metrics disagree (over every row with distances)
        every = {**{("menu",) + p: v for p, v in d_menu.items()}, **{("pack",) + p: v for p, v in d_pack.items()}}
        if every:
            by = {m: min(every, key=lambda r, m=m: every[r][m]) for m in ("FD", "KID", "SW2")}
            notes = [f"best by {m} is {' + '.join(by[m][1:])} ({by[m][0]})" for m in ("KID", "SW2")
                     if by[m] != by["FD"]]
            lines += ["", "Disagreements: " + ("; ".join(notes) + f" — FD picks {' + '.join(by['FD'][1:])} "
                                               f"({by['FD'][0]})." if notes else "none (FD, KID and SW2 pick "
                                               "the same row).")]
        xpack = xpack_e(cache, setting, k, n_error, seed)
        if xpack:  # docs/menu.md §5: every sampler of the menu (and sl_tada) on the pack's lists
            lines += ["", f"ComfyUI's samplers on the pack's lists (docs/menu.md §5), E / the menu's best E "
                          f"({best_e:.4f}); sl_tada: E to its own converged endpoint / the menu's best E:", "",
                      "| sampler | " + " | ".join(PACK_SCHEDULES) + " |",
                      "|---|" + "---|" * len(PACK_SCHEDULES)]
            for a in (*MENU_SAMPLERS, *PACK_SAMPLERS):
                cols = []
                for sc in PACK_SCHEDULES:
                    row = xpack.get((a, sc)) if a in MENU_SAMPLERS else pack_e.get((a, sc))
                    e = None if row is None else row.get("E" if a in MENU_SAMPLERS else "E_own")
                    cols.append("—" if e is None else f"{e / best_e:.2f}")
                lines.append(f"| {a} | " + " | ".join(cols) + " |")
            best_x = min(xpack, key=lambda p: xpack[p]["E"])
            lines += ["", f"Best of these: {best_x[0]} + {best_x[1]}, {xpack[best_x]['E'] / best_e:.3f}× the menu's "
                          "best E."]
        no_tada = {p: v for p, v in pack_e.items() if not p[0].startswith("sl_tada") and p[1] not in DEPRECATED}
        pack_best_e = min(no_tada, key=lambda p: no_tada[p]["E"]) if no_tada else None
        shipped = [p for p in d_pack if p[1] not in DEPRECATED]
        pack_best_fd = min(shipped, key=lambda p: d_pack[p]["FD"]) if shipped else None
        # the summary keeps §4's rows (PACK_ROWS; the README's sentences read it); §5's are in menu_rule.json
        first = {(a, stock[1] if sc == "<stock>" else sc) for a, sc in PACK_ROWS}
        tada = {p: v for p, v in pack_e.items() if p[0].startswith("sl_tada") and "E_own" in v and p in first}
        summary[str(k)] = {
            "menu_best_E": [*best_e_pair, best_e],
            "stock_E_ratio": round(menu_e[stock]["E"] / best_e, 3) if stock in menu_e else None,
            "pack_best_E": [*pack_best_e, round(no_tada[pack_best_e]["E"] / best_e, 3)] if pack_best_e else None,
            "tada_best_E_own": ([*min(tada, key=lambda p: tada[p]["E_own"]),
                                 round(min(v["E_own"] for v in tada.values()) / best_e, 3)] if tada else None),
            "menu_best_FD": [*best_fd_pair, best_fd] if best_fd_pair else None,
            "stock_FD_ratio": (round(d_menu[stock]["FD"] / best_fd, 3) if best_fd and stock in d_menu else None),
            "pack_best_FD": ([*pack_best_fd, round(d_pack[pack_best_fd]["FD"] / best_fd, 3)]
                             if pack_best_fd and best_fd else None),
            "ode_FD": ode_fd, "seed_spread_FD": spread_fd,
            "floor_FD": floor_same["FD"] if floor_same else None,
        }
    return "\n".join(lines) + "\n", summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.menu_bench",
                                description=__doc__.split("\n")[0])
    p.add_argument("--setting", nargs="+", default=["flow-768/shift3"], choices=list(SETTINGS))
    p.add_argument("--part", default="tuning", choices=list(PARTS))
    p.add_argument("--stage", default="all", choices=["error", "menu", "pack", "dist", "all", "tables"],
                   help="menu: the menu's E rows only (a held-out part's baseline; menu_rule --held-out adds the "
                        "chosen presets' rows); pack: only the §5 candidates (ComfyUI's samplers and sl_tada on the "
                        "pack's lists)")
    p.add_argument("--nfe", nargs="+", type=int, default=[4, 5, 6, 8], help="NFE of the error stage")
    p.add_argument("--nfe-dist", nargs="+", type=int, default=[4, 6, 8], help="NFE of the distance stage")
    p.add_argument("--n-error", type=int, default=128)
    p.add_argument("--n-dist", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    pin_threads(args.threads)
    summary_path = args.out / "menu_summary.json"
    for name in args.setting:
        setting = SETTINGS[name]
        cache = Cache(args.out / "menu_rows" / f"{name.replace('/', '_')}__{args.part}.json")
        print(f"{name} ({args.part})", flush=True)
        if args.stage == "menu":
            seed = PARTS[args.part][0]
            z = noise(args.n_error, seed, setting.dim)
            ref = _converged(load_model(setting.model), setting.kind, z, REF_STEPS)
            menu_rows(setting, args.part, args.nfe, args.n_error, cache, z, ref, log=lambda m: print(m, flush=True))
        if args.stage == "pack":
            seed = PARTS[args.part][0]
            model = load_model(setting.model)
            z = noise(args.n_error, seed, setting.dim)
            ref = _converged(model, setting.kind, z, REF_STEPS)
            stage_pack_menu(setting, args.part, args.nfe, args.n_error, cache, log=lambda m: print(m, flush=True))
            pack_rows(setting, args.part, args.nfe, args.n_error, cache, model, z, ref,
                      rows=[("sl_tada", sc) for sc in PACK_SCHEDULES], log=lambda m: print(m, flush=True))
        if args.stage in ("error", "all"):
            stage_error(setting, args.part, args.nfe, args.n_error, cache, log=lambda m: print(m, flush=True))
            stage_pack_menu(setting, args.part, args.nfe, args.n_error, cache, log=lambda m: print(m, flush=True))
        if args.stage in ("dist", "all"):
            stage_dist(setting, args.part, args.nfe_dist, args.n_dist, args.n_error, cache,
                       log=lambda m: print(m, flush=True))
        text, per_nfe = tables(name, args.part, sorted(set(args.nfe) | set(args.nfe_dist)), args.n_error,
                               args.n_dist, cache)
        (args.out / f"menu_{name.replace('/', '_')}__{args.part}.md").write_text(text)
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}  # another run may write it
        summary.setdefault(name, {})[args.part] = per_nfe
        summary_path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
