"""ComfyUI's own k-diffusion samplers as benchmark peers, run in a worker subprocess.

ComfyUI is never imported into the benchmark process: ``comfy.k_diffusion.sampling`` pulls in comfy's model
management (device probing, torchsde, ...) and ComfyUI pins its own torch. The harness writes a request (testbed,
sigma range, sampler names, schedules, NFE budgets, the noise of every seed), starts

    $COMFYUI_PYTHON lab/benchmarks/comfy_worker.py request.json      (default: this interpreter)

with the checkout in $COMFYUI_PATH, and reads back the endpoints, steps, counted NFE and wall times; metrics are
computed in the harness like every other row. The worker builds the same denoiser and the same schedules from this
pack, so only the sampler code differs. Without COMFYUI_PATH, or when the import fails, the rows are skipped with a
printed note. Only deterministic samplers are listed (the metric needs the same x_T → endpoint map).

``run_menu`` (request mode ``menu``, docs/menu.md §2) runs *ComfyUI's menu itself*: its samplers on the sigmas of
``comfy.samplers.calculate_sigmas`` for each of its schedulers, computed on ComfyUI's own model_sampling classes
(``ModelSamplingDiscrete`` eps/v, ``ModelSamplingContinuousEDM``, ``ModelSamplingDiscreteFlow`` with a shift,
``ModelSamplingFlux``), with KSampler's discard-penultimate rule, plus the AlignYourSteps / GITS / OptimalSteps
nodes' lists where they apply.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

__all__ = ["COMFY_SAMPLERS", "MENU_SAMPLERS", "MENU_SCHEDULERS", "NODE_LISTS", "run_comfy", "run_menu"]

COMFY_SAMPLERS = ("euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ipndm", "deis")
#: ComfyUI's deterministic samplers and its schedulers (KSampler's menu), docs/menu.md §3.
MENU_SAMPLERS = ("euler", "heun", "dpmpp_2m", "ipndm", "ipndm_v", "deis", "res_multistep", "gradient_estimation",
                 "uni_pc", "uni_pc_bh2", "lms")
MENU_SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "normal", "beta", "kl_optimal",
                   "linear_quadratic", "ddim_uniform")
#: Sigma lists of ComfyUI's scheduler nodes → the model types they are made for (model_sampling "type").
NODE_LISTS = {"AYS_SD1": ("eps", "v"), "AYS_SDXL": ("eps", "v"), "GITS_1.20": ("eps", "v"),
              "OptimalSteps_FLUX": ("flow", "flux")}


def _call_worker(request: dict, noises: dict[int, torch.Tensor], log, prefix: str, script: Path | None = None):
    """Run this file (or ``script``, another module's worker entry taking the request path) as ComfyUI's worker on
    ``request`` (plus the noise of every seed): (rows with their endpoints under ``runs[seed]["x0"]``, failed names,
    None), or (None, None, the reason) when COMFYUI_PATH is unset or the worker failed."""
    from safetensors.torch import load_file, save_file

    comfy_path = os.environ.get("COMFYUI_PATH")
    if not comfy_path:
        return None, None, "set COMFYUI_PATH (eval \"$(../shared/host/comfyui-host.sh)\") to include them"
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        tmp = Path(tmp)
        save_file({str(s): z.contiguous() for s, z in noises.items()}, str(tmp / "noise.safetensors"))
        request = {**request, "comfyui_path": comfy_path, "threads": torch.get_num_threads(), "dir": str(tmp)}
        (tmp / "request.json").write_text(json.dumps(request))
        script = Path(__file__).resolve() if script is None else Path(script).resolve()
        log(f"  ComfyUI's code: {python} {script.name} (COMFYUI_PATH={comfy_path})")
        proc = subprocess.Popen([python, str(script), str(tmp / "request.json")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        other = []
        for line in proc.stderr:  # progress as it comes; anything else is kept for the error message
            if line.startswith("[comfy-worker]"):
                log("  " + line.rstrip())
            else:
                other.append(line.rstrip())
        proc.wait()
        if proc.returncode != 0 or not (tmp / "result.json").exists():
            tail = " | ".join(other[-5:])
            return None, None, (f"the worker failed with {python} ({tail}); set COMFYUI_PYTHON to the interpreter "
                                "of ComfyUI's own venv")
        meta = json.loads((tmp / "result.json").read_text())
        tensors = load_file(str(tmp / "result.safetensors"))
    for i, row in enumerate(meta["rows"]):
        row["runs"] = {int(seed): {**r, "x0": tensors[f"{i}/{seed}"]} for seed, r in row["runs"].items()}
    return meta["rows"], meta["failed"], None


def run_comfy(testbed: str, sigma_range: str, samplers, schedules, nfes, noises: dict[int, torch.Tensor],
              log=print):
    """Run ComfyUI samplers in a subprocess. Returns (results, note): results is a list of dicts
    ``{sampler, schedule, nfe_target, steps, runs: {seed: {x0, nfe, wall_s}}}``, or None with the reason."""
    request = {"testbed": testbed, "sigma_range": sigma_range, "samplers": list(samplers),
               "schedules": list(schedules), "nfes": list(nfes)}
    rows, failed, why = _call_worker(request, noises, log, "sl-comfy-")
    if rows is None:
        return None, f"ComfyUI samplers skipped: {why}"
    return rows, (None if not failed else "ComfyUI samplers that failed: " + "; ".join(failed))


def run_menu(model: str, sampling: dict, samplers, schedulers, nfes, noises: dict[int, torch.Tensor], log=print,
             only=None, extra_lists=None):
    """ComfyUI's menu on testbed model ``model`` (``benchmarks.setups.load_model`` name) sampled as ``sampling``
    (``{"type": "flow", "shift": 3.0}``, ``{"type": "flux", "shift": 1.15}``, ``{"type": "edm", "sigma_min": ...,
    "sigma_max": ..., "sigma_data": ...}``, ``{"type": "eps"}`` / ``"v"``). ``schedulers`` may include the node
    lists of ``NODE_LISTS``; ``only``: a list of (sampler, schedule) pairs to restrict the product to.
    ``extra_lists``: ``{name: {steps: sigma list}}``, schedules computed outside ComfyUI (the pack's lists, as its
    registered KSampler schedulers return them for ``steps``); ``schedulers`` may name them, and ComfyUI's samplers
    run on them as KSampler runs a registered scheduler (``uni_pc``/``uni_pc_bh2``: the ``steps + 1`` list with its
    penultimate sigma dropped), so a list is needed for every step count up to the largest NFE + 3. Returns
    (rows, note) like ``run_comfy``; each row also carries its ``sigmas``."""
    request = {"mode": "menu", "model": model, "sampling": sampling, "samplers": list(samplers),
               "schedules": list(schedulers), "nfes": list(nfes),
               "only": None if only is None else [list(p) for p in only],
               "extra_lists": {name: {str(int(k)): [float(v) for v in sig] for k, sig in lists.items()}
                               for name, lists in (extra_lists or {}).items()}}
    rows, failed, why = _call_worker(request, noises, log, "sl-menu-")
    if rows is None:
        return None, f"ComfyUI's menu skipped: {why}"
    return rows, (None if not failed else "ComfyUI menu rows that failed: " + "; ".join(failed))


def _model_sampling(comfy, sampling: dict):
    """One of ComfyUI's own model_sampling objects, built as its ModelSampling* nodes build them."""
    ms = comfy.model_sampling
    kind = sampling["type"]
    if kind == "flow":
        class Sampling(ms.ModelSamplingDiscreteFlow, ms.CONST):
            pass
        obj = Sampling(None)
        obj.set_parameters(shift=float(sampling.get("shift", 1.0)), multiplier=1000)
    elif kind == "flux":
        class Sampling(ms.ModelSamplingFlux, ms.CONST):
            pass
        obj = Sampling(None)
        obj.set_parameters(shift=float(sampling.get("shift", 1.15)))
    elif kind == "edm":
        class Sampling(ms.ModelSamplingContinuousEDM, ms.EDM):
            pass
        obj = Sampling(None)
        obj.set_parameters(float(sampling["sigma_min"]), float(sampling["sigma_max"]), float(sampling["sigma_data"]))
    elif kind in ("eps", "v"):
        class Sampling(ms.ModelSamplingDiscrete, ms.EPS if kind == "eps" else ms.V_PREDICTION):
            pass
        obj = Sampling(None)  # SD1's scaled_linear 0.00085-0.012
    else:
        raise ValueError(f"unknown sampling type {kind!r}")
    return obj


def _menu_sigmas(comfy_samplers, nodes, ms, sampler: str, schedule: str, steps: int,
                 extra: dict | None = None) -> torch.Tensor:
    if schedule in nodes:
        return nodes[schedule](steps).to(torch.float32)
    # KSampler.calculate_sigmas: the same rule for ComfyUI's schedulers and for a registered one (the pack's)
    discard = sampler in comfy_samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    asked = steps + 1 if discard else steps
    if extra and schedule in extra:
        sigmas = torch.tensor(extra[schedule][str(asked)], dtype=torch.float32)
    else:
        sigmas = comfy_samplers.calculate_sigmas(ms, schedule, asked).to(torch.float32)
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


def _menu_worker(req: dict) -> None:
    from safetensors.torch import load_file, save_file

    from schedule_lab.lab.benchmarks.setups import load_model
    from schedule_lab.solvers import catalogue

    torch.set_num_threads(int(req["threads"]))
    tmp = Path(req["dir"])
    model = load_model(req["model"])
    sys.path.insert(0, req["comfyui_path"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # no CUDA probing
    import comfy.k_diffusion.sampling as sampling
    import comfy.model_sampling  # noqa: F401
    import comfy.samplers as comfy_samplers
    from comfy.extra_samplers import uni_pc

    def say(msg):
        print(f"[comfy-worker] {msg}", file=sys.stderr, flush=True)

    ms = _model_sampling(comfy, req["sampling"])
    kind = req["sampling"]["type"]
    nodes = {}
    for name, kinds in NODE_LISTS.items():
        if kind not in kinds or name not in req["schedules"]:
            continue
        if name.startswith("AYS"):
            from comfy_extras.nodes_align_your_steps import AlignYourStepsScheduler as node

            args = (name.split("_")[1],)
        elif name.startswith("GITS"):
            from comfy_extras.nodes_gits import GITSScheduler as node

            args = (float(name.split("_")[1]),)
        else:
            from comfy_extras.nodes_optimalsteps import OptimalStepsScheduler as node

            args = ("FLUX",)
        nodes[name] = lambda steps, node=node, args=args: node.execute(*args, steps, 1.0).result[0]
    fns = {"uni_pc": uni_pc.sample_unipc, "uni_pc_bh2": uni_pc.sample_unipc_bh2}
    noises = {int(k): v for k, v in load_file(str(tmp / "noise.safetensors")).items()}
    extra = req.get("extra_lists") or {}
    probe = torch.zeros(1, 4)
    rows, tensors, failed = [], {}, []
    for name in req["samplers"]:
        fn = fns.get(name) or getattr(sampling, f"sample_{name}", None)
        if fn is None:
            failed.append(f"{name}: no comfy.k_diffusion.sampling.sample_{name}")
            continue
        for sc in req["schedules"]:
            if sc.split("_")[0] in ("AYS", "GITS", "OptimalSteps") and sc not in nodes:
                continue  # a node list made for another model type
            if req.get("only") is not None and [name, sc] not in req["only"]:
                continue
            try:
                def calls(steps, fn=fn, name=name, sc=sc):
                    return catalogue.run(fn, _menu_sigmas(comfy_samplers, nodes, ms, name, sc, steps, extra),
                                         lambda x, s, **_: x * 0, probe).nfe
                counted = {}
                for nfe in req["nfes"]:
                    steps = 0
                    for k in range(1, nfe + 2):
                        if k not in counted:
                            counted[k] = calls(k)
                        if counted[k] <= nfe:
                            steps = k
                    if steps == 0:
                        continue
                    sigmas = _menu_sigmas(comfy_samplers, nodes, ms, name, sc, steps, extra)
                    runs = {}
                    for seed, z in noises.items():
                        res = catalogue.run(fn, sigmas.clone(), model, z, seed=seed)
                        tensors[f"{len(rows)}/{seed}"] = res.x0.contiguous()
                        runs[seed] = {"nfe": res.nfe, "wall_s": res.wall_s}
                    rows.append({"sampler": name, "schedule": sc, "nfe_target": nfe, "steps": steps,
                                 "sigmas": [round(float(v), 6) for v in sigmas], "runs": runs})
                say(f"{name} / {sc} done")
            except Exception as e:  # noqa: BLE001  (report and go on)
                failed.append(f"{name}/{sc}: {type(e).__name__}: {e}")
    save_file(tensors, str(tmp / "result.safetensors"))
    (tmp / "result.json").write_text(json.dumps({"rows": rows, "failed": failed}))


def _worker(request_path: str) -> None:
    from safetensors.torch import load_file, save_file

    from schedule_lab.lab.benchmarks.methods import Method, schedule_table, steps_for_nfe
    from schedule_lab.lab.benchmarks.setups import load_testbed

    req = json.loads(Path(request_path).read_text())
    if req.get("mode") == "menu":
        return _menu_worker(req)
    torch.set_num_threads(int(req["threads"]))
    tmp = Path(req["dir"])
    bed = load_testbed(req["testbed"], req["sigma_range"])  # before comfy is importable: no host registration
    sys.path.insert(0, req["comfyui_path"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # no CUDA probing
    import comfy.k_diffusion.sampling as sampling

    def say(msg):
        print(f"[comfy-worker] {msg}", file=sys.stderr, flush=True)

    say(f"ComfyUI {req['comfyui_path']}, torch {torch.__version__}")
    noises = {int(k): v for k, v in load_file(str(tmp / "noise.safetensors")).items()}
    schedules = schedule_table(bed.kind)
    rows, tensors, failed = [], {}, []
    for name in req["samplers"]:
        fn = getattr(sampling, f"sample_{name}", None)
        if fn is None:
            failed.append(f"{name}: no comfy.k_diffusion.sampling.sample_{name}")
            continue
        for sc in req["schedules"]:
            method = Method(f"comfy.{name}", sc, "comfyui", schedules[sc], bed.kind, fn)
            try:
                for nfe in req["nfes"]:
                    steps = steps_for_nfe(method, nfe)
                    runs = {}
                    for seed, z in noises.items():
                        res = method.run(bed.model, z, steps, seed)
                        tensors[f"{len(rows)}/{seed}"] = res.x0.contiguous()
                        runs[seed] = {"nfe": res.nfe, "wall_s": res.wall_s}
                    rows.append({"sampler": method.sampler, "schedule": sc, "nfe_target": nfe, "steps": steps,
                                 "runs": runs})
                    say(f"{method.label} NFE {nfe}: {steps} steps")
            except Exception as e:  # noqa: BLE001  (report and go on with the next sampler)
                failed.append(f"{name}/{sc}: {type(e).__name__}: {e}")
    save_file(tensors, str(tmp / "result.safetensors"))
    (tmp / "result.json").write_text(json.dumps({"rows": rows, "failed": failed}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _bootstrap

    _bootstrap.pack()
    _worker(sys.argv[1])
