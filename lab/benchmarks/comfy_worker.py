"""ComfyUI's own k-diffusion samplers as benchmark peers, run in a worker subprocess.

ComfyUI is never imported into the benchmark process: ``comfy.k_diffusion.sampling`` pulls in comfy's model
management (device probing, torchsde, ...) and ComfyUI pins its own torch. The harness writes a request (testbed,
sigma range, sampler names, schedules, NFE budgets, the noise of every seed), starts

    $COMFYUI_PYTHON lab/benchmarks/comfy_worker.py request.json      (default: this interpreter)

with the checkout in $COMFYUI_PATH, and reads back the endpoints, steps, counted NFE and wall times; metrics are
computed in the harness like every other row. The worker builds the same denoiser and the same schedules from this
pack, so only the sampler code differs. Without COMFYUI_PATH, or when the import fails, the rows are skipped with a
printed note. Only deterministic samplers are listed (the metric needs the same x_T → endpoint map).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

__all__ = ["COMFY_SAMPLERS", "run_comfy"]

COMFY_SAMPLERS = ("euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ipndm", "deis")


def run_comfy(testbed: str, sigma_range: str, samplers, schedules, nfes, noises: dict[int, torch.Tensor],
              log=print):
    """Run ComfyUI samplers in a subprocess. Returns (results, note): results is a list of dicts
    ``{sampler, schedule, nfe_target, steps, runs: {seed: {x0, nfe, wall_s}}}``, or None with the reason."""
    from safetensors.torch import load_file, save_file

    comfy_path = os.environ.get("COMFYUI_PATH")
    if not comfy_path:
        return None, "ComfyUI samplers skipped: set COMFYUI_PATH to a ComfyUI checkout to include them"
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory(prefix="sl-comfy-") as tmp:
        tmp = Path(tmp)
        save_file({str(s): z.contiguous() for s, z in noises.items()}, str(tmp / "noise.safetensors"))
        request = {"comfyui_path": comfy_path, "testbed": testbed, "sigma_range": sigma_range,
                   "samplers": list(samplers), "schedules": list(schedules), "nfes": list(nfes),
                   "threads": torch.get_num_threads(), "dir": str(tmp)}
        (tmp / "request.json").write_text(json.dumps(request))
        log(f"  ComfyUI samplers: {python} {Path(__file__).name} (COMFYUI_PATH={comfy_path})")
        proc = subprocess.Popen([python, str(Path(__file__).resolve()), str(tmp / "request.json")],
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
            tail = " | ".join(other[-3:])
            return None, (f"ComfyUI samplers skipped: the worker failed with {python} ({tail}); "
                          "set COMFYUI_PYTHON to the interpreter of ComfyUI's own venv")
        meta = json.loads((tmp / "result.json").read_text())
        tensors = load_file(str(tmp / "result.safetensors"))
    results = []
    for i, row in enumerate(meta["rows"]):
        row["runs"] = {int(seed): {**r, "x0": tensors[f"{i}/{seed}"]} for seed, r in row["runs"].items()}
        results.append(row)
    note = None if not meta["failed"] else "ComfyUI samplers that failed: " + "; ".join(meta["failed"])
    return results, note


def _worker(request_path: str) -> None:
    from safetensors.torch import load_file, save_file

    from schedule_lab.lab.benchmarks.methods import Method, schedule_table, steps_for_nfe
    from schedule_lab.lab.benchmarks.setups import load_testbed

    req = json.loads(Path(request_path).read_text())
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
