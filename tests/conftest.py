"""Test bootstrap: make the pack importable as ``schedule_lab`` wherever the checkout lives.

ComfyUI imports the pack under a mangled module name, so every module inside it uses relative
imports; here we register the repository root as the package ``schedule_lab`` (unless it is
already installed under that name) so tests can write ``from schedule_lab.schedules import ...``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Pin threads before torch is imported anywhere (docs/testbeds.md: oversubscription costs 20x).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _register_pack() -> None:
    if "schedule_lab" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "schedule_lab", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["schedule_lab"] = module
    spec.loader.exec_module(module)


_register_pack()

import torch  # noqa: E402

torch.set_num_threads(1)
