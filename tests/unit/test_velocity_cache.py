"""The calibration cache: hit, miss, corrupt entries discarded and re-measured, nothing partial written."""
from __future__ import annotations

import json

import pytest
import torch

from schedule_lab.schedules import ScheduleError
from schedule_lab.schedules.constant_rate.cache import cache_key, cached_velocity, load_velocity, save_velocity
from schedule_lab.schedules.constant_rate.construct import Velocity

SETTINGS = {"measure": "vx", "points": 8, "samples": 4, "seed": 0}


def _velocity(scale=1.0):
    return Velocity(torch.linspace(-2, 3, 6, dtype=torch.float64), scale * torch.arange(1, 7, dtype=torch.float64),
                    "vx", {"model_calls": 8})


class Counter:
    def __init__(self, scale=1.0):
        self.calls, self.scale = 0, scale

    def __call__(self):
        self.calls += 1
        return _velocity(self.scale)


def test_second_run_is_a_hit_with_the_same_velocity(tmp_path):
    measure = Counter()
    first, status1 = cached_velocity(tmp_path, "model-a", SETTINGS, measure)
    second, status2 = cached_velocity(tmp_path, "model-a", SETTINGS, measure)
    assert (status1, status2, measure.calls) == ("miss", "hit", 1)
    assert torch.equal(first.values, second.values) and second.info == {"model_calls": 8}
    assert [p.name for p in tmp_path.iterdir()] == [f"{cache_key('model-a', SETTINGS)}.json"]


def test_other_model_or_settings_are_misses(tmp_path):
    measure = Counter()
    cached_velocity(tmp_path, "model-a", SETTINGS, measure)
    cached_velocity(tmp_path, "model-b", SETTINGS, measure)
    cached_velocity(tmp_path, "model-a", {**SETTINGS, "seed": 1}, measure)
    assert measure.calls == 3 and len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("damage", ["truncate", "edit", "garbage", "other_key", "bad_velocity"])
def test_a_corrupt_entry_is_discarded_and_measured_again(tmp_path, damage):
    cached_velocity(tmp_path, "model-a", SETTINGS, Counter())
    key = cache_key("model-a", SETTINGS)
    path = tmp_path / f"{key}.json"
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "edit":
        path.write_text(text.replace('"measure": "vx"', '"measure": "vX"', 1))
    elif damage == "garbage":
        path.write_bytes(b"\xff\xfe\x00garbage")
    elif damage == "other_key":
        save_velocity(tmp_path, key, "model-a", SETTINGS, _velocity())
        doc = json.loads(path.read_text())
        other = cache_key("model-z", SETTINGS)
        (tmp_path / f"{other}.json").write_text(path.read_text())
        key = other
        path = tmp_path / f"{other}.json"
        assert doc["key"] != other
    else:
        from schedule_lab.schedules.files import doc_hash

        doc = json.loads(text)
        doc["velocity"]["v"] = [-1.0] * len(doc["velocity"]["v"])
        doc["sha256"] = doc_hash(doc)
        path.write_text(json.dumps(doc))
    velocity, status = load_velocity(tmp_path, key)
    assert velocity is None and status.startswith("corrupt") and not path.exists()
    again = Counter(2.0)
    model = "model-z" if damage == "other_key" else "model-a"
    fresh, status = cached_velocity(tmp_path, model, SETTINGS, again)
    assert again.calls == 1 and status == "miss" and float(fresh.values[0]) == 2.0
    assert load_velocity(tmp_path, key)[1] == "hit"


def test_an_interrupted_calibration_caches_nothing(tmp_path):
    def cancelled():
        raise KeyboardInterrupt  # ComfyUI's Cancel raises from the progress callback

    with pytest.raises(KeyboardInterrupt):
        cached_velocity(tmp_path, "model-a", SETTINGS, cancelled)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import schedule_lab.schedules.files as files  # the one atomic writer (schedules, states, calibrations)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(ScheduleError, match="cannot be written \\(disk full\\)"):
        save_velocity(tmp_path, cache_key("m", SETTINGS), "m", SETTINGS, _velocity())
    assert list(tmp_path.iterdir()) == []


def test_the_cache_survives_a_restart_of_the_process(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    cached_velocity(tmp_path, "model-a", SETTINGS, Counter())
    root = Path(__file__).resolve().parents[2]
    code = ("import sys, importlib.util; s = importlib.util.spec_from_file_location('schedule_lab', sys.argv[1] + "
            "'/__init__.py', submodule_search_locations=[sys.argv[1]]); m = importlib.util.module_from_spec(s); "
            "sys.modules['schedule_lab'] = m; s.loader.exec_module(m); "
            "from schedule_lab.schedules.constant_rate.cache import cached_velocity; "
            "print(cached_velocity(sys.argv[2], 'model-a', " + repr(SETTINGS) + ", lambda: 1 / 0)[1])")
    out = subprocess.run([sys.executable, "-c", code, str(root), str(tmp_path)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "hit"


def test_bad_keys_and_settings_are_refused(tmp_path):
    with pytest.raises(ScheduleError, match="model_id"):
        cache_key("", SETTINGS)
    with pytest.raises(ScheduleError, match="JSON-safe"):
        cache_key("m", {"x": object()})
    with pytest.raises(ScheduleError, match="alphanumeric"):
        load_velocity(tmp_path, "../etc/passwd")
