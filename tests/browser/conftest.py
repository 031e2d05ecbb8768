"""Browser fixtures: the real ComfyUI frontend in headless Chromium, against the real-host server.

The server is the real-host fixture of ``tests/integration/conftest.py`` (imported, not copied): ComfyUI 0.3.64 on
CPU with this pack linked in and the tiny checkpoint. Chromium is Debian's (``apt-get install chromium``), driven by
Playwright with an explicit ``executable_path`` (Playwright's own browser download is not used). Outside CI a
missing Chromium or Playwright skips these tests with the reason; under ``CI=true`` it stops the run instead.
Screenshots are written to ``out/browser/`` (``SL_BROWSER_SHOTS``) as test artefacts. ``SL_FRONTEND_ROOT`` serves
another frontend package's ``static/`` (.ci/run runs the suite on the snapshot's frontend and on the newest).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHOTS = ROOT / os.environ.get("SL_BROWSER_SHOTS", "out/browser")  # .ci/run: one folder per frontend
sys.path.insert(0, str(HERE))


def _load_integration_conftest():
    path = HERE.parent / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("sl_integration_conftest", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_host = _load_integration_conftest()
comfy_workdir, comfy = _host.comfy_workdir, _host.comfy  # the real-host server fixtures, reused
IN_CI, COMFYUI_PATH, NO_HOST = _host.IN_CI, _host.COMFYUI_PATH, _host.NO_HOST

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not COMFYUI_PATH:
        return NO_HOST
    if importlib.util.find_spec("playwright") is None:
        return ("Playwright is not installed in this interpreter: \"$COMFYUI_PYTHON\" -m pip install playwright "
                "(the browser tests run with the host venv's python)")
    if chromium_path() is None:
        return "Chromium is not installed: apt-get install -y chromium (or set CHROMIUM to its path)"
    return None


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.fspath)).parents]
    if not mine:
        return
    problem = browser_problem()
    if problem is None:
        problem = _host.host_problem()
        if problem:
            pytest.exit(problem, returncode=3)
        return
    if IN_CI:  # CI must never pass by skipping the browser
        pytest.exit(f"CI=true but the browser tests cannot run: {problem}", returncode=3)
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


# The tiny checkpoint's UNet feature sizes (conv_in 320, output norm 320, time_embed 1280): what Apply TPM taps.
TINY_UNET_SIZES = (320, 320, 1280)


def pack_files_in(workdir: Path, workflows: list[Path]) -> dict[str, list[str]]:
    """The pack files the example workflows read, made in the test host's model folders: each TPM a random-weight
    time predictor of the tiny checkpoint's layout, built and saved by the pack's own TPM classes (.safetensors);
    each schedule file the pack's own writer's output (sl_constant_rate's data-free list, 10 steps, for the model kind
    of the tiny model: what the save_and_inspect_schedule workflow saves)."""
    import json

    import torch

    from schedule_lab.schedules.catalogue import schedule_sigmas
    from schedule_lab.schedules.files import make_schedule_doc, save_schedule
    from schedule_lab.schedules.model_kind import ModelKind
    from schedule_lab.solvers.tpdm.official import save_tpm
    from schedule_lab.solvers.tpdm.tpm import TimePredictor
    from schedule_lab.version import PACK_VERSION

    made: dict[str, list[str]] = {"tpm": [], "schedules": []}
    for path in workflows:
        for node in json.loads(path.read_text())["nodes"]:
            name = (node.get("widgets_values") or [""])[0]
            if node["type"] == "SL_LoadTPM" and not (workdir / "tpm" / name).exists():
                torch.manual_seed(0)
                c1, c2, d = TINY_UNET_SIZES
                save_tpm(workdir / "tpm" / name, TimePredictor(c1 + c2, d, width=8, init_bias=(2.5, 1.0),
                                                               h1_channels=c1), family="unet")
                made["tpm"].append(name)
            if node["type"] == "SL_LoadSchedule" and not (workdir / "schedules" / name).exists():
                kind = ModelKind.vp()
                sigmas = schedule_sigmas("sl_constant_rate", kind, 10).to(torch.float32)
                save_schedule(str(workdir / "schedules" / name),
                              make_schedule_doc(sigmas, kind, method="saved", params={"note": "browser tests"},
                                                pack_version=PACK_VERSION))
                made["schedules"].append(name)
    return made


@pytest.fixture(scope="session")
def pack_files(comfy) -> dict[str, list[str]]:
    return pack_files_in(comfy.workdir, sorted((ROOT / "example_workflows").glob("*.json")))


@pytest.fixture(scope="session")
def shared_page(browser, comfy, pack_files):
    """One page per session (per frontend): loading the frontend costs seconds, so the tests share it and
    :func:`sl_page.reset_page` clears what one test leaves for the next."""
    from sl_page import open_comfy

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = context.new_page()
    open_comfy(pg, comfy.base)
    yield pg
    context.close()


@pytest.fixture()
def page(shared_page, comfy):
    """The ComfyUI frontend with the pack's extensions registered, an empty graph, no dialog open and the pack's
    settings at their defaults; ``page.sl_console`` holds (type, text) of this test's console messages and page
    errors. The pack files the workflows read exist."""
    from sl_page import reset_page

    reset_page(shared_page, comfy.base)
    yield shared_page


@pytest.fixture()
def fresh_page(browser, comfy, pack_files):
    """A page of its own (for what a first load shows, e.g. a dialog raised while the workflow loads)."""
    from sl_page import open_comfy

    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = context.new_page()
    open_comfy(pg, comfy.base)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def frontend_version(shared_page) -> tuple[int, ...]:
    """The served frontend's version (1.27.x from the host's requirements; another with SL_FRONTEND_ROOT)."""
    from sl_page import frontend_version as read

    return read(shared_page)
