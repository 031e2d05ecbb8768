"""Searched timestep lists against ComfyUI's menu on the learned models.

Protocol and results: docs/search.md, "Searched lists against ComfyUI's menu".

    eval "$(../shared/host/comfyui-host.sh)"      # COMFYUI_PATH / COMFYUI_PYTHON: the samplers are ComfyUI's
    python -m schedule_lab.lab.benchmarks.searched_bench --setting flow-768/shift3 --nfe 4 5 6

Per setting (``menu_bench.SETTINGS``) and NFE:

1. **Samplers searched for**: the ``--samplers-per-cell`` best samplers of the menu at that NFE on the *tuning*
   part (``results/menu_rows/<setting>__tuning.json``, menu_bench's error stage), among those KSampler runs on a
   ``sl_searched`` list as it is (one model call per step, no discarded sigma: not heun, uni_pc, uni_pc_bh2).
2. **Search** (in ComfyUI's worker, with ComfyUI's sampler function, as the Timestep Search node drives it): the
   pack's ``schedules.search.pipeline.optimise`` on the first ``--n-search`` noises of the tuning part and their
   converged ODE endpoints (``menu_bench._converged``, Heun 128): evolution seeded with the menu's best lists at
   that NFE, then the Nelder–Mead polish of its best list (``schedules.search.polish``). Fitness = E, the RMSE to
   the converged ODE from the same x_T — the metric of the target. The sampler whose searched list has the lowest
   *tuning* E is the cell's searched row.
3. **Held-out evaluation**: the first ``--n-eval`` noises of the held-out part (menu_bench.PARTS), never searched
   on; the menu's ``--menu-top`` best pairs of the tuning part at that NFE are re-run there from ComfyUI's code
   (``comfy_worker.run_menu``), and the menu's best pair on held-out noise is the best of those. Every eligible
   ComfyUI sampler is also run on the searched list (tuning and held-out), so the table shows the searched list with
   the pack's dpmpp_2m too.

Outputs: ``results/searched_menu.md`` / ``.json``, the lists as Timestep Search result files
``results/searched_lists/<setting>__nfe<k>.json`` (copy them into ``ComfyUI/models/schedules``: ``sl_searched``
picks them for that model family and step count), cached worker rows in ``results/searched_rows/``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
#: ComfyUI samplers KSampler runs on a sl_searched list as it is: one model call per step, no discarded sigma.
ELIGIBLE = ("euler", "dpmpp_2m", "ipndm", "ipndm_v", "deis", "res_multistep", "gradient_estimation", "lms")
SEEDS_PER_CELL = 6  # menu lists that seed the evolution


def _menu_rows(setting_name: str, part: str, nfe: int, n: int, seed: int) -> list[dict]:
    path = RESULTS / "menu_rows" / f"{setting_name.replace('/', '_')}__{part}.json"
    rows = json.loads(path.read_text()) if path.exists() else {}
    out = []
    for key, row in rows.items():
        p = key.split("|")
        if p[0] == "E" and p[1] == "menu" and p[4] == str(nfe) and p[5] == str(n) and p[6] == str(seed):
            out.append({"sampler": p[2], "schedule": p[3], **row})
    return sorted(out, key=lambda r: r["E"])


def plan_cell(setting_name: str, nfe: int, samplers_per_cell: int, n_menu: int = 128) -> dict:
    """The samplers to search for and the menu lists that seed the evolution (tuning rows only)."""
    from .menu_bench import PARTS

    rows = _menu_rows(setting_name, "tuning", nfe, n_menu, PARTS["tuning"][0])
    if not rows:
        raise SystemExit(f"no tuning menu rows for {setting_name} at NFE {nfe}: run python -m "
                         f"schedule_lab.lab.benchmarks.menu_bench --setting {setting_name} --part tuning --stage error")
    samplers = []
    for r in rows:
        if r["sampler"] in ELIGIBLE and r["sampler"] not in samplers:
            samplers.append(r["sampler"])
    samplers = samplers[:samplers_per_cell]
    seeds = []
    for r in rows:
        s = [float(v) for v in r["sigmas"]]
        if len(s) == nfe + 1 and s not in seeds:
            seeds.append(s)
        if len(seeds) == SEEDS_PER_CELL:
            break
    return {"samplers": samplers, "initial": seeds, "menu_tuning_best": rows[0]}


# -- the worker (ComfyUI's interpreter) ----------------------------------------------------------------------------

def worker(req: dict) -> None:
    """ComfyUI's worker (this file run by ``comfy_worker._call_worker`` with ComfyUI's interpreter): search every
    task with ComfyUI's sampler, score on held-out noise."""
    from safetensors.torch import load_file, save_file

    from schedule_lab.lab.benchmarks.setups import load_model
    from schedule_lab.schedules.model_kind import ModelKind
    from schedule_lab.schedules.search.evolution import EvolutionConfig
    from schedule_lab.schedules.search.fitness import EndpointFitness, ReferenceSet
    from schedule_lab.schedules.search.pipeline import optimise

    torch.set_num_threads(int(req["threads"]))
    tmp = Path(req["dir"])
    model = load_model(req["model"])
    kind = ModelKind.from_dict(req["kind"])
    sys.path.insert(0, req["comfyui_path"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.k_diffusion.sampling as sampling

    def say(msg):
        print(f"[comfy-worker] {msg}", file=sys.stderr, flush=True)

    t = load_file(str(tmp / "noise.safetensors"))
    z_t, z_h = t["1"], t["2"]
    inputs = load_file(str(Path(req["inputs_dir"]) / "inputs.safetensors"))
    noise = torch.cat([z_t, z_h])
    endpoints = torch.cat([inputs["ref_tuning"], inputs["ref_held_out"]])
    rows = []
    for task in req["tasks"]:
        nfe, name = int(task["nfe"]), task["sampler"]
        fn = getattr(sampling, f"sample_{name}")
        ref = ReferenceSet(model, kind, tuple(z_t.shape[1:]), n_search=len(z_t), n_holdout=len(z_h),
                           reference_steps=nfe, nfe=nfe, endpoints=endpoints, noise=noise)
        fit = EndpointFitness(model, fn, ref)  # every search sample, every call: deterministic
        t0 = time.perf_counter()
        evo = req["evolution"]
        if task.get("start") is not None:  # more polish of a list already searched (no evolution)
            run = optimise(model, fn, ref, fit, nfe, init=torch.tensor(task["start"], dtype=torch.float64),
                           polish_options={"evaluations": int(task["polish"])})
        else:
            run = optimise(model, fn, ref, fit, nfe, seed=0, label=f"E/{name}", initial=task["initial"],
                           evolution=EvolutionConfig(population=evo["population"], top_k=evo["top_k"],
                                                     mutations=evo["mutations"], crossovers=evo["crossovers"],
                                                     generations=evo["generations"], resample_noise=False),
                           polish_options={"evaluations": req["polish_evaluations"]})
        wall = time.perf_counter() - t0
        evo_sigmas = run.polished.start_sigmas
        row = {"nfe": nfe, "sampler": name, "sigmas": [float(v) for v in run.sigmas],
               "evolution_sigmas": [float(v) for v in evo_sigmas],
               "E_tuning": run.polished.fitness, "E_tuning_evolution": run.polished.start_fitness,
               "E_held_out": fit.holdout(run.sigmas), "E_held_out_evolution": fit.holdout(evo_sigmas),
               "evaluations": {"evolution": run.evaluations, "polish": run.polished.evaluations},
               "model_calls": dict(run.calls), "wall_s": round(wall, 1), "history": run.history,
               "polish_history": [round(v, 6) for v in run.polished.history],
               "initial": task["initial"], "by_sampler": {}}
        for other in req["eligible"]:  # the found list with every eligible ComfyUI sampler
            ofit = EndpointFitness(model, getattr(sampling, f"sample_{other}"), ref)
            row["by_sampler"][other] = {"E_tuning": ofit(run.sigmas), "E_held_out": ofit.holdout(run.sigmas)}
        say(f"{name} NFE {nfe}: tuning E {row['E_tuning']:.4f} (evolution {row['E_tuning_evolution']:.4f}), "
            f"held-out {row['E_held_out']:.4f}, {wall:.0f}s")
        rows.append({**row, "runs": {}})
    save_file({"none": torch.zeros(1)}, str(tmp / "result.safetensors"))
    (tmp / "result.json").write_text(json.dumps({"rows": rows, "failed": []}))


# -- the harness (the lab's interpreter) -----------------------------------------------------------------------------

def _cache(setting_name: str, out: Path) -> tuple[Path, dict]:
    path = out / "searched_rows" / f"{setting_name.replace('/', '_')}.json"
    return path, (json.loads(path.read_text()) if path.exists() else {})


def run_setting(setting_name: str, nfes, args, log=print) -> dict:
    from safetensors.torch import save_file

    from ..testbeds.metrics import rmse
    from .comfy_worker import _call_worker, run_menu
    from .menu_bench import PARTS, REF_STEPS, SETTINGS, _converged
    from .setups import load_model, noise

    setting = SETTINGS[setting_name]
    model = load_model(setting.model)
    s_t, s_h = PARTS["tuning"][0], PARTS["held_out"][0]
    # the first n noises of menu_bench's parts (its E rows use the same draws) and their converged ODE endpoints
    z_t_all = noise(args.n_menu, s_t, 768)
    z_t, z_h = z_t_all[: args.n_search], noise(args.n_eval, s_h, 768)
    ref_t = _converged(model, setting.kind, z_t_all, REF_STEPS)[: args.n_search]
    ref_h = _converged(model, setting.kind, z_h, REF_STEPS)
    path, cache = _cache(setting_name, args.out)
    evo = {"population": args.population, "top_k": max(1, args.population // 4), "mutations": args.population // 2,
           "crossovers": args.population // 4, "generations": args.generations}
    config_key = (f"search|n{args.n_search}|pop{args.population}|gen{args.generations}|polish{args.polish}"
                  f"|seeds{SEEDS_PER_CELL}")
    tasks, plans = [], {}
    for k in nfes:
        plans[k] = plan_cell(setting_name, k, args.samplers_per_cell, args.n_menu)
    for rank in range(args.samplers_per_cell):  # every NFE's best sampler first, then the runners-up
        for k in nfes:
            names = plans[k]["samplers"]
            if rank < len(names) and f"{config_key}|{names[rank]}|{k}" not in cache:
                tasks.append({"nfe": k, "sampler": names[rank], "initial": plans[k]["initial"]})
    import tempfile

    def more_key(k: int) -> str | None:
        found = [cache[f"{config_key}|{n}|{k}"] for n in plans[k]["samplers"] if f"{config_key}|{n}|{k}" in cache]
        if not found or args.more_polish <= 0:
            return None
        best = min(found, key=lambda r: r["E_tuning"])
        return f"{config_key}|{best['sampler']}|{k}|more{args.more_polish}"

    def run_task(task):
        with tempfile.TemporaryDirectory(prefix="sl-search-in-") as d:
            save_file({"ref_tuning": ref_t.contiguous(), "ref_held_out": ref_h.contiguous()},
                      str(Path(d) / "inputs.safetensors"))
            # _call_worker gives the worker its own folder; the inputs are read from this one
            request = {"mode": "search", "model": setting.model, "kind": setting.kind.to_dict(), "tasks": [task],
                       "evolution": evo, "polish_evaluations": args.polish, "eligible": list(ELIGIBLE),
                       "inputs_dir": d}
            rows, _, why = _call_worker(request, {1: z_t, 2: z_h}, log, "sl-search-", script=Path(__file__))
        if rows is None:
            raise SystemExit(f"the search worker failed: {why}")
        return rows

    for task in tasks:  # one worker call per task, cached as soon as it is done
        log(f"{setting_name}: searching for {task['sampler']} at NFE {task['nfe']} in ComfyUI's worker")
        rows = run_task(task)
        for r in rows:
            r.pop("runs", None)
            cache[f"{config_key}|{r['sampler']}|{r['nfe']}"] = r
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    for k in nfes:  # --more-polish: continue the polish of the cell's best list (chosen on tuning E)
        key = more_key(k)
        if key is None or key in cache:
            continue
        base = cache[key.rsplit("|", 1)[0]]
        log(f"{setting_name}: {args.more_polish} more polish calls for {base['sampler']} at NFE {k}")
        (r,) = run_task({"nfe": k, "sampler": base["sampler"], "initial": [], "start": base["sigmas"],
                         "polish": args.more_polish})
        r.pop("runs", None)
        r["evolution_sigmas"], r["E_held_out_evolution"] = base["evolution_sigmas"], base["E_held_out_evolution"]
        r["E_tuning_evolution"], r["history"] = base["E_tuning_evolution"], base["history"]
        r["evaluations"] = {"evolution": base["evaluations"]["evolution"],
                            "polish": base["evaluations"]["polish"] + r["evaluations"]["polish"]}
        r["model_calls"] = {"evolution": base["model_calls"].get("evolution", 0),
                            "polish": base["model_calls"].get("polish", 0) + r["model_calls"].get("polish", 0)}
        r["wall_s"] = round(base["wall_s"] + r["wall_s"], 1)
        cache[key] = r
        path.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    # the menu's best tuning pairs, re-run on the held-out noises from ComfyUI's code
    want = {}
    for k in nfes:
        top = _menu_rows(setting_name, "tuning", k, args.n_menu, s_t)[: args.menu_top]
        for r in top:
            if f"menu|{r['sampler']}|{r['schedule']}|{k}|{args.n_eval}|{s_h}" not in cache:
                want.setdefault(k, []).append((r["sampler"], r["schedule"]))
    for k, pairs in want.items():
        log(f"{setting_name}: menu's {len(pairs)} best tuning pairs at NFE {k} on held-out noise")
        rows, note = run_menu(setting.model, setting.sampling, sorted({p[0] for p in pairs}),
                              sorted({p[1] for p in pairs}), [k], {s_h: z_h}, log=lambda m: None, only=pairs)
        if rows is None:
            raise SystemExit(note)
        for r in rows:
            cache[f"menu|{r['sampler']}|{r['schedule']}|{k}|{args.n_eval}|{s_h}"] = {
                "E": rmse(r["runs"][s_h]["x0"], ref_h), "nfe": r["runs"][s_h]["nfe"], "sigmas": r["sigmas"]}
        path.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    # the cell's rows
    out = {}
    for k in nfes:
        found = [cache[f"{config_key}|{name}|{k}"] for name in plans[k]["samplers"]
                 if f"{config_key}|{name}|{k}" in cache]
        if not found:
            continue
        best = min(found, key=lambda r: r["E_tuning"])  # chosen on tuning noise only
        if more_key(k) in cache:  # its longer polish (never worse on tuning noise)
            best = cache[more_key(k)]
        menu_h = {key.split("|")[1] + " + " + key.split("|")[2]: v["E"] for key, v in cache.items()
                  if key.startswith("menu|") and key.split("|")[3] == str(k) and key.split("|")[4] == str(args.n_eval)}
        menu_best = min(menu_h, key=menu_h.get)
        by = best["by_sampler"]
        best_other = min(by, key=lambda s: by[s]["E_tuning"])  # the best ComfyUI sampler on this list, by tuning E
        out[str(k)] = {
            "searched": {"sampler": best["sampler"], "sigmas": [round(v, 6) for v in best["sigmas"]],
                         "E_tuning": round(best["E_tuning"], 6), "E_held_out": round(best["E_held_out"], 6),
                         "E_held_out_evolution_only": round(best["E_held_out_evolution"], 6),
                         "evaluations": best["evaluations"], "model_calls": best["model_calls"],
                         "wall_s": best["wall_s"]},
            "per_sampler_search": {r["sampler"]: {"E_tuning": round(r["E_tuning"], 6),
                                                  "E_held_out": round(r["E_held_out"], 6)} for r in found},
            "list_with_dpmpp_2m": {kk: round(v, 6) for kk, v in by["dpmpp_2m"].items()},
            "list_with_best_sampler": [best_other, {kk: round(v, 6) for kk, v in by[best_other].items()}],
            "menu_tuning_best": [plans[k]["menu_tuning_best"]["sampler"], plans[k]["menu_tuning_best"]["schedule"],
                                 plans[k]["menu_tuning_best"]["E"]],
            "menu_held_out_best": [*menu_best.split(" + "), round(menu_h[menu_best], 6)],
            "menu_pairs_on_held_out": len(menu_h),
            "ratio": round(best["E_held_out"] / menu_h[menu_best], 3),
            "ratio_dpmpp_2m": round(by["dpmpp_2m"]["E_held_out"] / menu_h[menu_best], 3),
        }
        _save_list(setting, setting_name, k, best, args)
    return out


def _save_list(setting, setting_name: str, nfe: int, row: dict, args) -> Path:
    from schedule_lab.schedules.files import save_schedule
    from schedule_lab.schedules.search.results import make_search_doc
    from schedule_lab.version import PACK_VERSION

    doc = make_search_doc(
        torch.tensor(row["sigmas"], dtype=torch.float64), setting.kind, nfe=nfe, sampler=row["sampler"],
        fitness=f"endpoint/{row['sampler']}/samples={args.n_search}+{args.n_eval}/reference=heun{128}/latent=768",
        best_fitness=row["E_tuning"], holdout_fitness=row["E_held_out"], seed=0,
        config={"population": args.population, "generations": args.generations, "polish": args.polish,
                "seeded_with_menu_lists": SEEDS_PER_CELL},
        history=row["history"], pack_version=PACK_VERSION, refined=True, optimiser="evolution + polish",
        model_calls=row["model_calls"])
    path = args.out / "searched_lists" / f"{setting_name.replace('/', '_')}__nfe{nfe}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_schedule(path, doc)
    return path


def table(summary: dict, args) -> str:
    lines = ["# Searched lists against ComfyUI's menu (target: a searched list ≤ 0.6× the menu's best pair's E)", "",
             "Written by `python -m schedule_lab.lab.benchmarks.searched_bench` (docs/search.md, \"Searched lists "
             f"against ComfyUI's menu\"). Search on the first {args.n_search} noises of the tuning part; E on the "
             f"first {args.n_eval} noises of the held-out part (menu_bench.PARTS), never searched on. The menu's best "
             f"pair on held-out noise is the best of its {args.menu_top} best tuning pairs re-run there from ComfyUI's "
             "code. Ratio = searched E / menu's best E, same held-out noises.", "",
             "| setting | NFE | menu's best pair (tuning) | menu's best pair on held-out (E) | searched: sampler | "
             "E tuning | E held-out | **ratio** | evolution only, held-out | list + dpmpp_2m (ratio) | list + best "
             "ComfyUI sampler by tuning (ratio) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, cells in summary.items():
        for k, c in sorted(cells.items(), key=lambda kv: int(kv[0])):
            mt, mh, s = c["menu_tuning_best"], c["menu_held_out_best"], c["searched"]
            bo, bv = c["list_with_best_sampler"]
            lines.append(
                f"| {name} | {k} | {mt[0]} + {mt[1]} ({mt[2]:.4f}) | {mh[0]} + {mh[1]} ({mh[2]:.4f}) | {s['sampler']} "
                f"| {s['E_tuning']:.4f} | {s['E_held_out']:.4f} | **{c['ratio']:.2f}** | "
                f"{s['E_held_out_evolution_only']:.4f} | {c['list_with_dpmpp_2m']['E_held_out']:.4f} "
                f"({c['ratio_dpmpp_2m']:.2f}) | {bo} {bv['E_held_out']:.4f} ({bv['E_held_out'] / mh[2]:.2f}) |")
    lines += ["", "Searched lists (sigmas):", ""]
    for name, cells in summary.items():
        for k, c in sorted(cells.items(), key=lambda kv: int(kv[0])):
            lines.append(f"* {name}, NFE {k}, {c['searched']['sampler']}: "
                         + ", ".join(f"{v:.4g}" for v in c["searched"]["sigmas"]))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from .menu_bench import SETTINGS
    from .setups import pin_threads

    p = argparse.ArgumentParser(prog="python -m schedule_lab.lab.benchmarks.searched_bench",
                                description=__doc__.split("\n")[0])
    p.add_argument("--setting", nargs="+", default=["flow-768/shift3", "flow-768/flux", "patch-unet/edm"],
                   choices=list(SETTINGS))
    p.add_argument("--nfe", nargs="+", type=int, default=[4, 5, 6])
    p.add_argument("--samplers-per-cell", type=int, default=2)
    p.add_argument("--n-search", type=int, default=64)
    p.add_argument("--n-eval", type=int, default=128)
    p.add_argument("--n-menu", type=int, default=128, help="noises of the tuning menu rows (menu_bench --n-error)")
    p.add_argument("--menu-top", type=int, default=12)
    p.add_argument("--population", type=int, default=12)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--polish", type=int, default=60, help="Nelder–Mead fitness calls after the evolution")
    p.add_argument("--more-polish", type=int, default=0, help="then this many more on each cell's best list")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    pin_threads(args.threads)
    json_path = args.out / "searched_menu.json"
    summary = json.loads(json_path.read_text()) if json_path.exists() else {}  # other settings' runs are kept
    for name in args.setting:
        cells = run_setting(name, args.nfe, args, log=lambda m: print(m, flush=True))
        summary = json.loads(json_path.read_text()) if json_path.exists() else {}
        summary.setdefault(name, {}).update(cells)
        json_path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        (args.out / "searched_menu.md").write_text(table(summary, args))
        print(table({name: cells}, args), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):  # the worker: `<ComfyUI python> searched_bench.py req`
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import _bootstrap

        _bootstrap.pack()
        worker(json.loads(Path(sys.argv[1]).read_text()))
    else:
        raise SystemExit(main())
