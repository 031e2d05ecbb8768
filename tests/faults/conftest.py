"""Fault suite (docs/testing.md, "Fault suite"): the real-host fixtures of tests/integration (one server per run),
reused, not copied.

The generated cases (``test_generated.py``) feed the hardened reader directly and need no host; the named host
cases and the sample of generated files dropped into ``models/schedules`` use the ``comfy`` server fixture. As in
tests/integration, a host test without a host is skipped with the reason, and under CI=true it fails instead.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the generator (malformed.py), imported as a plain module (importlib mode)
_spec = importlib.util.spec_from_file_location("sl_integration_conftest", HERE.parent / "integration" / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)  # also puts tests/integration on sys.path (sl_graphs, sl_env)

comfy_workdir = _integration.comfy_workdir
comfy = _integration.comfy
ComfyServer = _integration.ComfyServer


def pytest_collection_modifyitems(config, items):
    hosted = [item for item in items if HERE in Path(str(item.fspath)).parents
              and {"comfy", "comfy_python"} & set(item.fixturenames)]
    if not hosted:
        return
    if not _integration.COMFYUI_PATH:
        if _integration.IN_CI:
            pytest.exit(f"CI=true but {_integration.NO_HOST}", returncode=3)
        for item in hosted:
            item.add_marker(pytest.mark.skip(reason=_integration.NO_HOST))
        return
    problem = _integration.host_problem()
    if problem:
        pytest.exit(problem, returncode=3)


@pytest.fixture(scope="session")
def comfy_python() -> tuple[str, str]:
    """(COMFYUI_PATH, COMFYUI_PYTHON) of the real host, for checks that need its modules but not a server."""
    return _integration.COMFYUI_PATH, _integration.COMFYUI_PYTHON
