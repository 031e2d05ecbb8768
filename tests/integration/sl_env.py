"""Where the real host is: COMFYUI_PATH (a ComfyUI checkout) and COMFYUI_PYTHON (its venv's python)."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON", sys.executable)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Importing these is what ComfyUI's main.py needs before it can load a node; torchsde is the one a plain
# torch venv lacks most often.
_PROBE = ("import sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['probe', '--cpu']; "
          "import torch, torchsde, aiohttp, yaml, comfy.options; comfy.options.enable_args_parsing(); "
          "import comfy.samplers")


@functools.cache
def host_problem(path: str | None = None, python: str | None = None) -> str | None:
    """One sentence naming COMFYUI_PATH and COMFYUI_PYTHON when the pair cannot run ComfyUI, else None."""
    COMFYUI_PATH, COMFYUI_PYTHON = path or globals()["COMFYUI_PATH"], python or globals()["COMFYUI_PYTHON"]  # noqa: N806
    if not (Path(COMFYUI_PATH) / "main.py").is_file():
        return (f"COMFYUI_PATH={COMFYUI_PATH} has no main.py: point COMFYUI_PATH at a ComfyUI checkout "
                f"(COMFYUI_PYTHON={COMFYUI_PYTHON})")
    try:
        done = subprocess.run([COMFYUI_PYTHON, "-c", _PROBE, COMFYUI_PATH], cwd=COMFYUI_PATH,
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"COMFYUI_PYTHON={COMFYUI_PYTHON} cannot be run ({e}); set it to the python of COMFYUI_PATH's venv"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"COMFYUI_PYTHON={COMFYUI_PYTHON} cannot import ComfyUI at COMFYUI_PATH={COMFYUI_PATH} ({last}). "
                "Set COMFYUI_PYTHON to the python of a venv with ComfyUI's requirements installed "
                "(eval \"$(../shared/host/comfyui-host.sh)\" prepares one and sets both variables)")
    return None
