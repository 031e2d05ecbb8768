"""Let ``python lab/benchmarks/<script>.py`` import the pack as ``schedule_lab`` without installing it."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pack():
    """Return the ``schedule_lab`` package, registering the repository root under that name if needed."""
    if "schedule_lab" not in sys.modules:
        try:
            import schedule_lab  # noqa: F401  (installed with `pip install -e .`)
        except ImportError:
            spec = importlib.util.spec_from_file_location(
                "schedule_lab", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
            )
            module = importlib.util.module_from_spec(spec)
            sys.modules["schedule_lab"] = module
            spec.loader.exec_module(module)
    return sys.modules["schedule_lab"]
