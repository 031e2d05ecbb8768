"""The standalone A/B job: every sampler × schedule on a bundled tiny model, no ComfyUI needed.

Two bundled models (``--model``):

* ``patches`` (default): the natural-image EDM UNet (``lab/testbeds/unet.py``, 3×16×16 crops of the photographs that
  ship with scikit-learn and scikit-image) at **5 steps**, where the methods differ most on the held-out tables
  (docs/defaults.md). Metrics against 1000 crops of the photographs' held-out strips (which neither the UNet nor its
  feature network saw): FD_patch (Fréchet distance in the crop-source classifier's 128-d features) and sliced W2
  (512 projections, the defaults study's distribution distance).
* ``flow``: the zoo's rectified-flow UNet on the same crops (``lab/testbeds/weights/zoo_flow_768``, docs/zoo.md),
  sampled as ComfyUI samples SD3 (``ModelSamplingSD3`` shift 3: ``ModelKind.flow(3.0)``) at **5 steps**, with the same
  metrics and reference as ``patches``; its stock default is the flow family's ``euler`` + ``simple``.
* ``digits``: the EDM MLP on 8×8 digits at 10 steps (the previous default), FD_cls and SWD against the test split.

**The menu's best pair** (docs/menu.md §2): beside the pack, compare shows the best pair of ComfyUI's own menu (its
deterministic samplers × its schedulers) for this model family at this step count, as the cached menu benchmark
found it (``lab/benchmarks/results/menu_summary.json``, written by ``lab/benchmarks/menu_bench.py``: the lowest
error to the converged ODE at NFE = steps, and the lowest FD_patch where that stage ran). The row is sampled by
ComfyUI's own code (``comfy_worker.run_menu``) on the same noise, so it needs the host: ``eval
"$(../shared/host/comfyui-host.sh)"`` (sets COMFYUI_PATH / COMFYUI_PYTHON). Without it the grid, the plot and the
table say which pair it is and that the row needs the host (the plot shows its cached sigma list); it is never
replaced by a copy of ComfyUI's code.

Writes into ``--out``: ``grid.png`` (rows = sampler / schedule with NFE and the distances, columns = one noise seed
each, the same in every row; cells upscaled nearest-neighbour; skipped rows listed under the grid with the reason),
``schedules.png`` (log σ against step for every schedule shown) and ``table.md`` / ``table.json`` (steps, counted
NFE, wall time, the two distances and their ratio to stock dpmpp_2m + karras). The samplers and schedules default to
our euler and dpmpp_2m, the karras and AYS baselines, and every sampler and self-contained schedule of the pack's
own in ``solvers.catalogue`` — a catalogued method appears here without any change to this file. Every cell is one
``catalogue.run``. A sampler that needs a trained module the model does not have (``sl_tpdm`` without a TPM for it)
is listed as skipped with the reason, never run half-way.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats
from schedule_lab.schedules import catalogue as schedule_catalogue
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import catalogue

from ..benchmarks.setups import noise
from ..testbeds.metrics import swd

__all__ = ["DEFAULT_SAMPLERS", "DEFAULT_SCHEDULES", "MODELS", "STOCKS", "Bundle", "bundled_tpm", "compare",
           "default_samplers", "default_schedules", "default_steps", "load_bundle", "menu_best", "run_menu_rows",
           "valid_names"]

DEFAULT_SAMPLERS = ("euler", "dpmpp_2m")
DEFAULT_SCHEDULES = ("karras", "ays")
#: The flow model's baselines: the flow family's stock scheduler (simple) and karras (an artist's other choice);
#: ``ays`` is SD1's published list as it is (σ up to 14.6), not a flow schedule.
FLOW_SCHEDULES = ("simple", "karras")
MODELS = ("patches", "digits", "flow")
#: Steps per model when --steps is not given: 5 on the natural-image models, where the held-out tables show the
#: methods apart (docs/defaults.md §5, docs/menu.md §4); 10 on the digits MLP (its previous default).
DEFAULT_STEPS = {"patches": 5, "digits": 10, "flow": 5}
#: The family's stock default per model (menu_bench.STOCK): dpmpp_2m + karras (EDM), euler + simple (flow).
STOCKS = {"patches": ("dpmpp_2m", "karras"), "digits": ("dpmpp_2m", "karras"), "flow": ("euler", "simple")}
STOCK = STOCKS["patches"]
#: The TPM trained for the flow model at shift 3 (``schedule-lab tpdm train --testbed zoo-flow``; its record names
#: σ 1 → 0.001). Not in testbeds.models.BUNDLED_TPMS, which maps a model class (ZooUNet has four parameterisations).
FLOW_TPM = "tpm_zoo_flow"
#: The menu benchmark's setting (menu_bench.SETTINGS) of each model, at its --sigma-range "model".
MENU_SETTINGS = {"patches": "patch-unet/edm", "flow": "flow-768/shift3"}
MENU_SUMMARY = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "menu_summary.json"
HOST_SETUP = 'eval "$(../shared/host/comfyui-host.sh)"'


def default_samplers(model: str = "patches") -> list[str]:
    return list(DEFAULT_SAMPLERS) + [n for n, e in catalogue.SAMPLERS.items() if e.ours]


def default_schedules(model: str = "patches") -> list[str]:
    base = FLOW_SCHEDULES if model == "flow" else DEFAULT_SCHEDULES
    return list(base) + [n for n, e in schedule_catalogue.SCHEDULES.items() if e.ours and e.self_contained]


def default_steps(model: str) -> int:
    return DEFAULT_STEPS[model]


def valid_names() -> tuple[list[str], list[str]]:
    """Samplers and schedules compare can run: the catalogue's (schedules needing saved files excepted)."""
    return list(catalogue.SAMPLERS), [n for n, e in schedule_catalogue.SCHEDULES.items() if e.self_contained]


def model_kind(sigma_range: str, sigma_data: float, model: str = "patches") -> ModelKind:
    """``model``: the bundled model's own EDM range 0.002–80 (what ComfyUI's schedulers would see for it);
    ``sd1``: the SD1 VP range 0.0292–14.61 that the AYS SD1 table covers. The flow model is always sampled as SD3
    (shift 3)."""
    if model == "flow":
        if sigma_range != "model":
            raise ValueError("--sigma-range sd1 applies to the EDM models; the flow model is sampled as SD3 (shift 3)")
        return ModelKind.flow(3.0)
    return ModelKind.edm(0.002, 80.0, sigma_data) if sigma_range == "model" else ModelKind.vp("eps")


@dataclass
class Bundle:
    """What compare needs of a bundled model: the denoiser, its weights' name, the sample shape, the two metrics
    against a reference set (``metrics(x) -> {name: value}``, names in ``metric_names``), their floor (another data
    split against the reference), the cell drawing and the TPM trained for it (None: sl_tpdm is skipped)."""

    name: str
    title: str
    weights: str
    model: object
    dim: int
    metric_names: tuple[str, str]
    metrics: Callable[[torch.Tensor], dict]
    floor: dict
    against: str
    to_pixels: Callable[[torch.Tensor], object]  # (n, dim) → uint8 array (n, h, w[, 3])
    cell: int
    tpm_file: str


def _patches_bundle(flow: bool = False) -> Bundle:
    """The patch UNet, or (``flow``) the zoo's rectified-flow model on the same crops, metrics and reference."""
    from ..benchmarks.setups import load_model
    from ..testbeds.patches import PATCH, crops
    from ..testbeds.unet import PATCH_UNET_FILE, load_patch_classifier

    model, clf = load_model("zoo-flow-768" if flow else "patch-unet"), load_patch_classifier()
    ref = crops("held_out", 1000, seed=201).x.reshape(1000, -1)  # the defaults suite's held-out reference
    with torch.no_grad():
        ref_stats = gaussian_stats(clf.features(ref).double())

    def metrics(x):
        with torch.no_grad():
            fd = frechet_distance(*gaussian_stats(clf.features(x.float()).double()), *ref_stats)
        return {"fd_patch": float(fd), "sw2": swd(x.float(), ref)}

    def to_pixels(x):  # [-1, 1] RGB → uint8 (n, 16, 16, 3)
        img = ((x.reshape(-1, 3, PATCH, PATCH).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return img.permute(0, 2, 3, 1).numpy()

    floor = metrics(crops("tuning", 1000, seed=101).x.reshape(1000, -1))
    if flow:
        name, title, weights = ("flow", "rectified-flow natural-image UNet (3×16×16, lab/testbeds/zoo.py) sampled as "
                                "SD3", "lab/testbeds/weights/zoo_flow_768")
    else:
        name, title, weights = ("patches", "natural-image patch UNet (3×16×16, lab/testbeds/unet.py)",
                                f"lab/testbeds/weights/{PATCH_UNET_FILE}")
    return Bundle(name, title, weights, model, 3 * PATCH * PATCH, ("fd_patch", "sw2"), metrics,
                  {"name": "tuning-strip crops vs held-out-strip crops (1000 each)", **floor},
                  "1000 crops of the photographs' held-out strips (seed 201)", to_pixels, 4 * PATCH,
                  FLOW_TPM if flow else _tpm_name(model))


def _digits_bundle() -> Bundle:
    from ..testbeds.digits import load_digits_split
    from ..testbeds.metrics import classifier_features, fd_cls
    from ..testbeds.models import load_classifier, load_edm_mlp

    model, classifier = load_edm_mlp(), load_classifier()
    split = load_digits_split()
    test_stats = gaussian_stats(classifier_features(split.test, classifier))

    def metrics(x):
        return {"fd_cls": fd_cls(x, test_stats, classifier), "swd": swd(x, split.test)}

    def to_pixels(x):  # [-1, 1] → ink dark on white (sklearn digits: 16 = ink)
        return ((1 - x.reshape(-1, 8, 8).clamp(-1, 1)) * 127.5).round().to(torch.uint8).numpy()

    return Bundle("digits", "bundled EDM MLP digits model (8×8)", "lab/testbeds/weights/edm_mlp_digits", model, 64,
                  ("fd_cls", "swd"), metrics, {"name": "train split vs test split", **metrics(split.train)},
                  "the digits test split", to_pixels, 8 * 6, _tpm_name(model))


def load_bundle(name: str) -> Bundle:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return _digits_bundle() if name == "digits" else _patches_bundle(flow=name == "flow")


def menu_best(model: str, steps: int, sigma_range: str = "model", summary_path: Path | None = None) -> dict:
    """The menu's best pair(s) for ``model`` at NFE ``steps`` from the cached menu benchmark (``MENU_SUMMARY``):
    ``{"setting", "part", "nfe", "pairs": [{"sampler", "schedule", "by", "value"}], "cached_sigmas": {pair: list},
    "note"}``; ``pairs`` is empty (and ``note`` says why and which command adds them) where the benchmark has no
    row for this model, σ range or NFE. ``by`` is ``"E"`` (error to the converged ODE, the accuracy pick) or
    ``"FD"`` (FD_patch among the candidates, where the distance stage ran); one pair best on both is listed once."""
    out = {"setting": MENU_SETTINGS.get(model), "part": None, "nfe": steps, "pairs": [], "cached_sigmas": {},
           "note": ""}
    if out["setting"] is None:
        out["note"] = (f"no menu benchmark for the {model} model (lab/benchmarks/menu_bench.py has "
                       f"{', '.join(sorted(MENU_SETTINGS))}); the menu's best pair is shown on --model "
                       f"{' / '.join(sorted(MENU_SETTINGS))}")
        return out
    if sigma_range != "model":
        out["note"] = f"the menu benchmark ran on the model's own σ range; --sigma-range {sigma_range} has no menu row"
        return out
    path = MENU_SUMMARY if summary_path is None else summary_path
    summary = json.loads(path.read_text()).get(out["setting"], {}) if path.exists() else {}
    command = (f"python -m schedule_lab.lab.benchmarks.menu_bench --setting {out['setting']} --part tuning "
               f"--nfe {steps} --stage error (with the host: {HOST_SETUP})")
    # the pair is picked where choices are made (the tuning part); held-out rows only where no tuning row exists
    part = next((p for p in ("tuning", "held_out") if str(steps) in summary.get(p, {})), None)
    if part is None:
        have = sorted({int(k) for p in summary.values() for k in p})
        out["note"] = (f"the cached menu benchmark ({path.name}) has no row for {out['setting']} at NFE {steps} "
                       f"(it has NFE {', '.join(map(str, have)) or 'none'}); `{command}` adds it")
        return out
    cell = summary[part][str(steps)]
    out["part"] = part
    for by, key in (("E", "menu_best_E"), ("FD", "menu_best_FD")):
        if cell.get(key):
            sampler, schedule, value = cell[key]
            same = next((p for p in out["pairs"] if (p["sampler"], p["schedule"]) == (sampler, schedule)), None)
            if same is not None:
                same["by"] += f"+{by}"
            else:
                out["pairs"].append({"sampler": sampler, "schedule": schedule, "by": by, "value": value})
    rows_file = path.parent / "menu_rows" / f"{out['setting'].replace('/', '_')}__{part}.json"
    rows = json.loads(rows_file.read_text()) if rows_file.exists() else {}
    for p in out["pairs"]:
        key = next((k for k in rows if k.startswith(f"E|menu|{p['sampler']}|{p['schedule']}|{steps}|")), None)
        if key is not None:
            out["cached_sigmas"][(p["sampler"], p["schedule"])] = rows[key]["sigmas"]
    return out


def _menu_label(p: dict, menu: dict) -> str:
    return f"menu's best by {p['by']} (NFE {menu['nfe']}, {menu['part']} part)"


def comfy_rows(model: str, pairs: list[dict], nfe: int, batch: torch.Tensor, seed: int, bundle: Bundle, columns: int,
               kind: ModelKind, log=print) -> tuple[list, list, dict, str | None]:
    """Sample (sampler, schedule) ``pairs`` (dicts with ``sampler``, ``schedule``, ``source``, ``label``) with
    ComfyUI's own samplers (``comfy_worker.run_menu``, on the menu benchmark's model sampling of ``model``) at NFE
    ``nfe`` on ``batch``: a ComfyUI scheduler's list is ComfyUI's, a pack (``sl_``) schedule's list is the
    catalogue's for ``kind`` (run as KSampler runs a registered scheduler, ``extra_lists``). Returns (rows, cells,
    sigmas by plot label, why not): ``why not`` is None when the worker ran, else its reason (COMFYUI_PATH unset:
    "")."""
    import os

    from ..benchmarks.comfy_worker import run_menu
    from ..benchmarks.menu_bench import SETTINGS

    setting = SETTINGS[MENU_SETTINGS[model]]
    keys = [(p["sampler"], p["schedule"]) for p in pairs]
    lists = {sc: {n: schedule_catalogue.schedule_sigmas(sc, kind, n).tolist() for n in range(1, nfe + 4)}
             for _, sc in keys if sc in schedule_catalogue.SCHEDULES and schedule_catalogue.SCHEDULES[sc].ours}
    res, note = run_menu(setting.model, setting.sampling, sorted({a for a, _ in keys}), sorted({b for _, b in keys}),
                         [nfe], {seed: batch}, log=log, only=keys, extra_lists=lists)
    if res is None:
        return [], [], {}, "" if not os.environ.get("COMFYUI_PATH") else note
    rows, cells, sigmas = [], [], {}
    by_pair = {(r["sampler"], r["schedule"]): r for r in res}
    for p in pairs:
        r = by_pair.get((p["sampler"], p["schedule"]))
        if r is None:
            continue
        run = r["runs"][seed]
        x0 = run["x0"]
        rows.append({"sampler": p["sampler"], "schedule": p["schedule"], "source": p["source"], "steps": r["steps"],
                     "nfe": run["nfe"], "wall_s": run["wall_s"], **bundle.metrics(x0[columns:]),
                     "sigmas": r["sigmas"], **p.get("flags", {})})
        cells.append(x0[:columns])
        sigmas[f"{p['label']}: {p['sampler']} / {p['schedule']} (ComfyUI)"] = torch.tensor(r["sigmas"])
    return rows, cells, sigmas, (note or None) if rows else (note or "no row came back")


def run_menu_rows(menu: dict, batch: torch.Tensor, seed: int, bundle: Bundle, columns: int, log=print,
                  kind: ModelKind | None = None):
    """Sample the menu's best pair(s) with ComfyUI's own code (:func:`comfy_rows`) on ``batch``; returns
    (rows, cells, sigmas by label, note). Without the host (COMFYUI_PATH unset, or the worker failing) no row, and
    the note says how to get it."""
    if not menu["pairs"]:
        return [], [], {}, menu["note"]
    pairs = [{"sampler": p["sampler"], "schedule": p["schedule"], "source": "ComfyUI " + _menu_label(p, menu),
              "label": "menu", "flags": {"menu": True}} for p in menu["pairs"]]
    names = ", ".join(f"{p['sampler']} + {p['schedule']}" for p in pairs)
    rows, cells, sigmas, why = comfy_rows(bundle.name, pairs, menu["nfe"], batch, seed, bundle, columns,
                                          kind or ModelKind.flow(3.0), log)
    if not rows:
        return [], [], {}, (f"menu's best pair at NFE {menu['nfe']} ({names}; {menu['setting']}, lab/benchmarks/"
                            f"results/menu_summary.json) not sampled: it runs from ComfyUI's own code and needs the "
                            f"host: {HOST_SETUP}, then rerun" + (f" ({why})" if why else ""))
    return rows, cells, sigmas, (why or "")


def compare(steps: int, samplers, schedules, seed: int, columns: int, n_samples: int, out: Path,
            sigma_range: str = "model", log=print, model: str = "patches", menu: bool = True,
            comfy_pairs=()) -> dict:
    """Every sampler × schedule on bundled model ``model`` (see the module docstring), (``menu``) the menu's best
    pair beside them, and ``comfy_pairs`` — (sampler, schedule, label) rows whose sampler is ComfyUI's own (a preset
    naming ipndm, say), run by ComfyUI's code like the menu row; returns the table document."""
    import time

    t_start = time.perf_counter()
    bundle = load_bundle(model)
    kind = model_kind(sigma_range, float(getattr(bundle.model, "sigma_data", 0.5)), model)
    stock_pair = STOCKS[model]
    grid_noise = torch.cat([noise(1, seed + j, bundle.dim) for j in range(columns)])
    batch = torch.cat([grid_noise, noise(n_samples, seed, bundle.dim)])
    rows, cells = [], []
    log(f"compare: {len(samplers)} samplers × {len(schedules)} schedules at {steps} steps on the {bundle.title} "
        f"({kind.describe()}), N = {n_samples} for the metrics, {columns} grid columns from seed {seed}")
    skipped = []
    provided, missing = bundled_tpm(bundle.model, bundle.tpm_file, kind)
    a, b = bundle.metric_names
    for sampler in samplers:
        base = catalogue.parse_sampler(sampler)[0]
        if "tpdm" in catalogue.SAMPLERS[base].needs and "tpdm" not in provided:
            reason = f"{sampler} (every schedule): {missing}"
            skipped.append(reason)
            log(f"  {sampler:<32} SKIPPED: {missing}")
            continue
        for schedule in schedules:
            label = f"{sampler} / {schedule}"
            try:
                result = catalogue.run(_adaptive_options(sampler, kind, bundle.tpm_file), schedule, bundle.model,
                                       batch, kind=kind, steps=steps, seed=seed, provided=provided)
            except Exception as e:  # noqa: BLE001  (show the other combinations; say why this one is missing)
                skipped.append(f"{label}: {type(e).__name__}: {e}")
                log(f"  {label:<32} SKIPPED: {type(e).__name__}: {e}")
                continue
            rows.append(_row(sampler, schedule, steps, result, bundle, columns))
            cells.append(result.x0[:columns])
            r = rows[-1]
            log(f"  {label:<32} NFE {_nfe(r):>3}  {_HEAD[a]} {r[a]:8.3f}  {_HEAD[b]} {r[b]:.4f}  {r['wall_s']:.2f} s")
    extra_sigmas = {}
    for sampler, schedule, label in comfy_pairs:
        what = f"{label} ({sampler} + {schedule})"
        if model not in MENU_SETTINGS or sigma_range != "model":
            skipped.append(f"{what}: ComfyUI's samplers run here only on --model {' / '.join(MENU_SETTINGS)} with "
                           "--sigma-range model")
            continue
        got, got_cells, got_sigmas, why = comfy_rows(model, [{"sampler": sampler, "schedule": schedule, "source":
                                                              f"ComfyUI's {sampler} ({label})", "label": label}],
                                                     steps, batch, seed, bundle, columns, kind, log)
        if not got:
            skipped.append(f"{what}: runs ComfyUI's own sampler and needs the host: {HOST_SETUP}, then rerun"
                           + (f" ({why})" if why else ""))
            log(f"  {what:<32} SKIPPED: {skipped[-1]}")
            continue
        rows += got
        cells += got_cells
        extra_sigmas.update(got_sigmas)
        r = got[0]
        log(f"  {label + ' ' + sampler + ' / ' + schedule:<32} NFE {_nfe(r):>3}  {_HEAD[a]} {r[a]:8.3f}  "
            f"{_HEAD[b]} {r[b]:.4f}  {r['wall_s']:.2f} s  (ComfyUI's code)")
    if not rows:
        raise RuntimeError("compare: every combination failed:\n" + "\n".join(skipped))
    # the menu's best pair, from ComfyUI's own code on the same noise (or a note saying what it needs)
    menu_info = menu_best(model, steps, sigma_range) if menu else None
    menu_sigmas, menu_note = {}, ""
    if menu_info is not None:
        for p in menu_info["pairs"]:
            log(f"  menu's best pair by {p['by']} at NFE {steps} ({menu_info['setting']}, {menu_info['part']} part): "
                f"{p['sampler']} + {p['schedule']}")
        menu_rows, menu_cells, menu_sigmas, menu_note = run_menu_rows(menu_info, batch, seed, bundle, columns, log,
                                                                      kind)
        for r in menu_rows:
            log(f"  {'menu ' + r['sampler'] + ' / ' + r['schedule']:<32} NFE {_nfe(r):>3}  {_HEAD[a]} {r[a]:8.3f}  "
                f"{_HEAD[b]} {r[b]:.4f}  {r['wall_s']:.2f} s  (ComfyUI's code)")
        rows += menu_rows
        cells += menu_cells
        if not menu_rows:  # no host, no cached pair: the plot still shows the pair's list from the cached benchmark
            menu_sigmas = {f"menu: {a_} / {b_} (cached, {menu_info['setting']})": torch.tensor(v)
                           for (a_, b_), v in menu_info["cached_sigmas"].items()}
        if menu_note:
            log(f"  NOTE: {menu_note}")
    stock = next((r for r in rows if (r["sampler"], r["schedule"]) == stock_pair and not r.get("menu")), None)
    best = next((r for r in rows if r.get("menu")), None)
    for r in rows:
        for m in bundle.metric_names:
            r[f"{m}_vs_stock"] = r[m] / stock[m] if stock is not None and stock[m] > 0 else None
            r[f"{m}_vs_menu"] = r[m] / best[m] if best is not None and best[m] > 0 else None
    out.mkdir(parents=True, exist_ok=True)
    labels = [(("menu: " if r.get("menu") else "") + f"{r['sampler']} / {r['schedule']}",
               f"NFE {_nfe(r)}  {_HEAD[a]} {_num(r[a])}  {_HEAD[b]} {_num(r[b])}") for r in rows]
    footer = [f"skipped {s}" for s in skipped] + ([f"menu row: {menu_note}"] if menu_note else [])
    draw_grid(cells, labels, [f"seed {seed + j}" for j in range(columns)], out / "grid.png", bundle, footer=footer)
    plot_schedules({**{s: schedule_catalogue.schedule_sigmas(s, kind, steps) for s in schedules}, **extra_sigmas,
                    **menu_sigmas},
                   steps, kind, out / "schedules.png")
    doc = {"schema": "schedule-lab/compare/v3", "model": bundle.name, "weights": bundle.weights,
           "title": bundle.title, "kind": kind.describe(), "steps": steps, "seed": seed, "columns": columns,
           "n_samples": n_samples, "threads": torch.get_num_threads(), "metrics": list(bundle.metric_names),
           "against": bundle.against, "floor": bundle.floor, "stock": list(stock_pair), "rows": rows,
           "skipped": skipped,
           "menu": None if menu_info is None else {**{k: v for k, v in menu_info.items() if k != "cached_sigmas"},
                                                   "sampled": any(r.get("menu") for r in rows), "note": menu_note},
           "total_wall_s": round(time.perf_counter() - t_start, 2)}
    (out / "table.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "table.md").write_text(table_markdown(doc))
    log(f"wrote {out / 'grid.png'}, {out / 'schedules.png'}, {out / 'table.md'}, {out / 'table.json'} "
        f"({doc['total_wall_s']:.1f} s)")
    return doc


def _tpm_name(model) -> str:
    """The bundled TPM trained for ``model`` (``testbeds.models.BUNDLED_TPMS``: tpm_patch_unet, tpm_edm_digits)."""
    from ..testbeds.models import BUNDLED_TPMS

    return BUNDLED_TPMS.get(type(model).__name__, "")


_SD1_RANGE = (ModelKind.vp("eps").sigma_max, ModelKind.vp("eps").sigma_min)


def trained_range(name: str) -> tuple[float, float] | None:
    """(σ start, σ min) a bundled TPM was trained on, from its ``.json`` record (None if the record has none)."""
    from ..testbeds.models import read_sidecar

    try:
        sampler = read_sidecar(name).get("sampler") or {}
    except FileNotFoundError:
        return None
    if "sigma_start" not in sampler or "min_sigma" not in sampler:
        return None
    return float(sampler["sigma_start"]), float(sampler["min_sigma"])


def _same_range(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(abs(x - y) <= 1e-3 * abs(y) for x, y in zip(a, b, strict=True))


def bundled_tpm(model, name: str | None = None, kind: ModelKind | None = None) -> tuple[dict, str]:
    """What ``sl_tpdm`` needs on a bundled model: the TPM trained for it (``lab/testbeds/weights/<name>.safetensors``,
    trained by ``schedule-lab tpdm train`` on the σ range its ``.json`` record names) and the tap that reads the
    model's features. The schedule then only gives the start level and ``steps`` is the cap, as in ComfyUI's
    KSampler. ``name`` defaults to the one trained for the model (``testbeds.models.BUNDLED_TPMS``). With ``kind``,
    a TPM trained on another σ range is not used (its policy was never trained there).
    Returns ``(provided, why_not)``: ``({"tpdm": ...}, "")``, or ``({}, reason)`` when there is no TPM for it."""
    from schedule_lab.solvers.tpdm.official import load_tpm

    from ..testbeds.models import WEIGHTS_DIR
    from ..testbeds.taps import tap_for

    name = _tpm_name(model) if name is None else name
    if not name:
        return {}, f"no bundled TPM for {type(model).__name__} (`schedule-lab tpdm train --help` trains one)"

    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.exists():
        return {}, (f"no TPM trained for this model yet (lab/testbeds/weights/{name}.safetensors is missing; "
                    "`schedule-lab tpdm train --help` trains one); `--model digits --sigma-range sd1` shows "
                    "sl_tpdm with its bundled TPM")
    trained = trained_range(name)
    # a flow sampler's stop is an option (the TPM runs to its own recorded min_sigma, _adaptive_options): on flow
    # only the start must be the one it was trained from
    want = None if kind is None else (kind.sigma_max, trained[1] if kind.kind == "flow" and trained else
                                      kind.sigma_min)
    if kind is not None and trained is not None and not _same_range(trained, want):
        flag = "--sigma-range sd1" if _same_range(trained, _SD1_RANGE) else "--sigma-range model"
        return {}, (f"{name} was trained on σ {trained[0]:.4g} → {trained[1]:.4g}, this run samples "
                    f"{kind.sigma_max:.4g} → {kind.sigma_min:.4g}; {flag} runs it on its own range")
    try:
        tap = tap_for(model)
    except TypeError as e:
        return {}, str(e)
    tpm, _ = load_tpm(path)
    return {"tpdm": (tpm.eval(), tap.read)}, ""


def adaptive_cap(tpm_name: str | None) -> int:
    """The step cap an adaptive sampler runs to: the cap its bundled TPM was trained with (the ``max_steps`` of its
    ``.json`` record), else the Adaptive Steps Sampler node's default. Not the grid's step count: the TPM decides
    when each image is clean, and capping it at the fixed-step samplers' count cuts its policy short."""
    from schedule_lab.solvers.tpdm.sampler import DEFAULT_MAX_STEPS

    from ..testbeds.models import read_sidecar

    try:
        return int((read_sidecar(tpm_name).get("sampler") or {}).get("max_steps", DEFAULT_MAX_STEPS))
    except (FileNotFoundError, TypeError, ValueError):
        return DEFAULT_MAX_STEPS


def _adaptive_options(sampler: str, kind: ModelKind, tpm_name: str | None = None) -> str:
    """``sl_tpdm`` without options runs to its own stopping rule: down to the model's smallest noise level (as the
    Adaptive Steps Sampler node does in ComfyUI, and as the bundled TPM was trained), within its own cap
    (:func:`adaptive_cap`). A sampler given with options runs with those."""
    if sampler == "sl_tpdm":
        trained = trained_range(tpm_name) if tpm_name else None
        stop = trained[1] if kind.kind == "flow" and trained else kind.sigma_min  # flow: the TPM's own stop
        return f"sl_tpdm(min_sigma={stop!r}, max_steps={adaptive_cap(tpm_name)})"
    return sampler


def _nfe(row: dict) -> str:
    """The NFE a row used: a fixed-step sampler's count, an adaptive one's mean per image (its batched calls and
    cap beside it)."""
    if row.get("adaptive"):
        return f"{row['nfe']:.1f} (≤{row['nfe_max']}, cap {row['cap']})"
    return str(row["nfe"])


def _row(sampler, schedule, steps, result, bundle: Bundle, columns) -> dict:
    entry = catalogue.SAMPLERS[catalogue.parse_sampler(sampler)[0]]
    source = "registry" if entry.ours else "ours"
    row = {"sampler": sampler, "schedule": schedule, "source": source, "steps": steps, "nfe": result.nfe,
           "wall_s": result.wall_s, **bundle.metrics(result.x0[columns:]),
           "sigmas": [float(s) for s in result.sigmas]}
    if entry.adaptive and result.schedules:  # each image's own steps: the NFE it used
        used = [len(s) - 1 for s in result.schedules[columns:]] or [len(s) - 1 for s in result.schedules]
        row.update(adaptive=True, nfe=round(sum(used) / len(used), 2), nfe_max=result.nfe,
                   cap=adaptive_cap(bundle.tpm_file), steps=f"cap {adaptive_cap(bundle.tpm_file)}")
    return row


_HEAD = {"fd_patch": "FD_patch", "sw2": "sliced W2", "fd_cls": "FD_cls", "swd": "SWD"}


def _num(v: float) -> str:
    """Three significant digits without exponent notation (1613, 0.299)."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table_markdown(doc: dict) -> str:
    a, b = doc["metrics"]
    fl = doc["floor"]
    stock = doc.get("stock", list(STOCK))
    menu = doc.get("menu") or {}
    has_menu = any(r.get("menu") for r in doc["rows"])
    lines = [
        f"`schedule-lab compare --model {doc['model']}`: {doc['title']}, {doc['kind']}; {doc['steps']} steps; "
        f"{_HEAD[a]} and {_HEAD[b]} of N = {doc['n_samples']} samples (seed {doc['seed']}) against "
        f"{doc['against']}; ratios to the family's stock default {stock[0]} / {stock[1]}"
        + (" and to the menu's best pair (ComfyUI's code)" if has_menu else "")
        + f" (below 1 = closer to the data); torch threads {doc['threads']}; the whole command took "
        f"{doc['total_wall_s']:.0f} s. Floor ({fl['name']}): {_HEAD[a]} {fl[a]:.3g}, {_HEAD[b]} {fl[b]:.3g}.",
        "",
        f"| sampler | schedule | source | steps | NFE | time s | {_HEAD[a]} ↓ | ÷ stock | {_HEAD[b]} ↓ | ÷ stock |"
        + (f" ÷ menu best ({_HEAD[a]} / {_HEAD[b]}) |" if has_menu else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if has_menu else ""),
    ]

    def ratio(v):
        return "–" if v is None else f"{v:.2f}"

    for r in doc["rows"]:
        lines.append(f"| {r['sampler']} | {r['schedule']} | {r['source']} | {r['steps']} | {_nfe(r)} | "
                     f"{r['wall_s']:.2f} | {r[a]:.4g} | {ratio(r[a + '_vs_stock'])} | {r[b]:.4g} | "
                     f"{ratio(r[b + '_vs_stock'])} |"
                     + (f" {ratio(r.get(a + '_vs_menu'))} / {ratio(r.get(b + '_vs_menu'))} |" if has_menu else ""))
    lines += [f"\nSkipped {s}" for s in doc.get("skipped", [])]
    if menu.get("note"):
        lines.append(f"\nMenu row: {menu['note']}")
    return "\n".join(lines) + "\n"


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def draw_grid(cells: list[torch.Tensor], labels: list[tuple[str, str]], column_titles: list[str], path: Path,
              bundle: Bundle, footer: list[str] = ()):
    """Rows of cells upscaled nearest-neighbour to ``bundle.cell`` pixels, a two-line label on the left, a title
    over each column (its seed) and, under the grid, one line per skipped row with the reason."""
    from PIL import Image, ImageDraw

    font, small = _font(13), _font(11)
    pad, head, cell = 4, 20, bundle.cell
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = 8 + max(max(probe.textlength(a, font=font), probe.textlength(b, font=small)) for a, b in labels)
    label_w = int(label_w) + pad
    n_cols = cells[0].shape[0]
    width = label_w + n_cols * (cell + pad) + pad
    foot = [line for s in footer for line in _wrap(s, small, probe, width - 12)]
    height = head + len(cells) * (cell + pad) + pad + (16 * len(foot) + 6 if foot else 0)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for j, title in enumerate(column_titles):
        draw.text((label_w + j * (cell + pad) + 2, 4), title, fill="black", font=small)
    for i, (x, (line1, line2)) in enumerate(zip(cells, labels, strict=True)):
        y = head + i * (cell + pad)
        draw.text((6, y + cell // 2 - 16), line1, fill="black", font=font)
        draw.text((6, y + cell // 2 + 3), line2, fill=(90, 90, 90), font=small)
        pixels = bundle.to_pixels(x)
        for j in range(n_cols):
            tile = Image.fromarray(pixels[j]).resize((cell, cell), Image.NEAREST)
            img.paste(tile, (label_w + j * (cell + pad), y))
    y = head + len(cells) * (cell + pad) + pad + 2
    for line in foot:
        draw.text((6, y), line, fill=(150, 40, 40), font=small)
        y += 16
    img.save(path, optimize=True)


def _wrap(text: str, font, probe, width: int) -> list[str]:
    words, lines, line = text.split(" "), [], ""
    for w in words:
        trial = f"{line} {w}".strip()
        if line and probe.textlength(trial, font=font) > width:
            lines.append(line)
            line = "    " + w
        else:
            line = trial
    return lines + [line] if line else lines


def plot_schedules(schedules: dict[str, torch.Tensor], steps: int, kind: ModelKind, path: Path):
    """log σ against step index (positive sigmas; the final 0 is off the log axis) for every schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    styles = ("-", "--", ":", "-.")
    for i, (name, sigmas) in enumerate(schedules.items()):
        positive = [float(s) for s in sigmas if s > 0]
        ax.plot(range(len(positive)), positive, styles[i % len(styles)], marker="o", markersize=3.5,
                linewidth=1.4, label=f"{name} ({positive[-1]:.3g}–{positive[0]:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("σ (log scale; final σ = 0 not shown)")
    ax.set_title(f"Schedules at {steps} steps; model kind: {kind.kind}, σ {kind.sigma_min:.3g}–{kind.sigma_max:.3g}",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
