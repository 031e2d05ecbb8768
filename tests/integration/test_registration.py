"""Registration into the real ``comfy.samplers`` module: append-only, in place, idempotent, drift-safe."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sl_env import COMFYUI_PATH, COMFYUI_PYTHON

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report():
    out = subprocess.run([COMFYUI_PYTHON, str(Path(__file__).with_name("registration_probe.py")), str(ROOT)],
                         cwd=COMFYUI_PATH, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.split("@@", 1)[1])


def test_lists_keep_their_identity(report):
    assert report["same_objects"]


def test_stock_names_unchanged_and_ours_appended_in_registry_order(report):
    from schedule_lab.nodes.registry import DROPDOWN_SCHEDULERS

    assert report["after"]["schedulers"] == report["stock"]["schedulers"] + list(DROPDOWN_SCHEDULERS)
    assert report["after"]["samplers"] == report["stock"]["samplers"] + ["sl_probe_euler"]


def test_second_registration_adds_nothing(report):
    assert report["first"]["samplers"] == ["sl_probe_euler"]
    assert report["second"] == {"schedulers": [], "samplers": []}


def test_registered_sampler_resolves_through_comfy(report):
    assert report["resolved"]


def test_registered_scheduler_runs_through_calculate_sigmas(report):
    sig = report["sigmas"]
    assert len(sig) == 11 and sig[-1] == 0.0 and report["finite"]
    assert all(a > b for a, b in zip(sig, sig[1:], strict=False))


def test_missing_symbol_logs_one_warning_and_raises_nothing(report):
    assert report["drift"] == []
    assert len(report["drift_warnings"]) == 1
