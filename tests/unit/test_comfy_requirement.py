"""The ComfyUI the pack claims equals the one its tests run on: pyproject's requires-comfyui, the README's "Needs
ComfyUI X or newer" and the snapshot the real-host suite prepares (../shared/host/comfyui-host.sh)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _claimed() -> str:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    match = re.fullmatch(r">=(\d+\.\d+\.\d+)", spec)
    assert match, f"requires-comfyui {spec!r} is not '>=X.Y.Z'"
    return match.group(1)


def test_readme_and_pyproject_claim_the_same_oldest_comfyui():
    (readme,) = re.findall(r"Needs ComfyUI (\d+\.\d+\.\d+) or newer", (ROOT / "README.md").read_text())
    assert readme == _claimed()


def test_the_claimed_comfyui_is_the_one_the_real_host_tests_run_on():
    host = ROOT.parent / "shared" / "host" / "comfyui-host.sh"
    if not host.exists():
        pytest.skip("../shared/host is not beside this checkout")
    (snap,) = re.findall(r"^snap=ComfyUI-(\d+\.\d+\.\d+)-", host.read_text(), flags=re.M)
    assert snap == _claimed()
