"""The pack's version. The one number is ``version`` in pyproject.toml's ``[project]`` table (the Comfy Registry
reads it there); this module reads it back: from the pyproject.toml next to it (the pack folder in ComfyUI's
custom_nodes, a git checkout), else from the installed distribution's metadata (a wheel has no pyproject.toml)."""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["PACK_VERSION", "read_version"]


PYPROJECT = Path(__file__).resolve().parent / "pyproject.toml"


def read_version(pyproject: Path = PYPROJECT) -> str:
    if pyproject.is_file():
        project = pyproject.read_text(encoding="utf-8").split("[project]", 1)[-1].split("\n[", 1)[0]
        found = re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE)
        if found:
            return found.group(1)
    try:
        from importlib.metadata import version

        return version("schedule-lab")
    except Exception:  # noqa: BLE001  (not installed: say so rather than guess a number)
        return "unknown"


PACK_VERSION = read_version()
