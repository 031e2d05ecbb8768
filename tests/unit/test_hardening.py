"""Hardening (docs/testing.md, "Fault suite"): shared files and odd inputs cannot break the pack. One test (or more)
per defect, each written to fail on the code before its fix; the generated cases are in tests/faults/."""
from __future__ import annotations

import json
import logging
import os
import stat
import time
from functools import lru_cache

import pytest
import torch

from schedule_lab.nodes import constant_rate_ops, search_ops
from schedule_lab.schedules import ScheduleError, load_schedule, make_schedule_doc, save_schedule
from schedule_lab.schedules.baseline import karras
from schedule_lab.schedules.constant_rate import calibrate as calibrate_module
from schedule_lab.schedules.constant_rate import measure
from schedule_lab.schedules.constant_rate.cache import cached_velocity, load_velocity
from schedule_lab.schedules.constant_rate.construct import default_velocity
from schedule_lab.schedules.files import adapt_to_kind, doc_hash, safe_schedule_name
from schedule_lab.schedules.latents import latent_features
from schedule_lab.schedules.model_calls import CountedModel
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.schedules.resample import truncate_for_denoise
from schedule_lab.schedules.search.evolution import EvolutionConfig, EvolutionSearch
from schedule_lab.schedules.search.fitness import ReferenceSet
from schedule_lab.schedules.search.genes import GeneSpace
from schedule_lab.schedules.search.results import make_search_doc, searched_sigmas
from schedule_lab.schedules.search.state import load_state, make_state_doc, save_state
from schedule_lab.solvers.classic import sample_euler, sample_heun

SD = ModelKind.vp()


def _doc(**change):
    doc = make_schedule_doc(karras(4, SD.sigma_min, SD.sigma_max), SD, "manual", {"note": "x"}, "0.1.0")
    doc.update(change)
    doc["sha256"] = doc_hash(doc)  # anyone can recompute the checksum
    return doc


def _write(path, doc_or_text):
    text = doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text)
    path.write_text(text, encoding="utf-8")
    return path


# -- 1. a malformed file: a ScheduleError naming the file, never a raw exception -----------------------------------

MALFORMED = {
    "deep_nesting": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "int_4300_digits": '{"format": "schedule-lab/schedule", "version": ' + "9" * 4300 + "}",
    "int_400_digits_in_sigmas": json.dumps(_doc()).replace('"sigmas": [', '"sigmas": [' + "1" * 400 + ", ", 1),
    "nan": json.dumps(_doc()).replace('"sigmas": [', '"sigmas": [NaN, ', 1),
    "infinity": json.dumps(_doc()).replace('"sigmas": [', '"sigmas": [Infinity, ', 1),
    "float_overflow": json.dumps(_doc()).replace('"sigmas": [', '"sigmas": [1e999, ', 1),
    "params_list": json.dumps(_doc(provenance={"method": "timestep_search", "params": [1, 2]})),
    "sigmas_strings": json.dumps(_doc(sigmas=["14.6", "0"])),
    "not_utf8": "\udcff",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_schedule_file_is_a_schedule_error_naming_the_file_not_its_path(tmp_path, case):
    path = tmp_path / f"bad_{case}.json"
    if case == "not_utf8":
        path.write_bytes(b"\xff\xfe{}")
    else:
        _write(path, MALFORMED[case])
    with pytest.raises(ScheduleError) as info:
        load_schedule(path)
    message = str(info.value)
    assert f"'bad_{case}.json'" in message and str(tmp_path) not in message


@pytest.mark.parametrize("timesteps", [10**8, 10**10])
def test_a_huge_model_timesteps_is_refused_before_any_allocation(tmp_path, timesteps):
    model = SD.to_dict()
    model["table"] = dict(model["table"], timesteps=timesteps)
    path = _write(tmp_path / "huge.json", _doc(model=model))
    start = time.perf_counter()
    with pytest.raises(ScheduleError, match=r"'huge.json'.*model.table.timesteps"):
        load_schedule(path)
    assert time.perf_counter() - start < 0.5  # 11 s and several GB before the fix


def test_more_sigmas_than_the_step_cap_are_refused_by_the_schema(tmp_path):
    sigmas = torch.linspace(14.0, 0.03, 20_001).tolist() + [0.0]
    path = _write(tmp_path / "long.json", _doc(sigmas=sigmas))
    with pytest.raises(ScheduleError, match=r"'long.json'.*sigmas.*2 to 10001 entries"):
        load_schedule(path)


def test_a_file_above_the_size_cap_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b"[" + b"0," * (3 * 1024 * 1024) + b"0]")
    with pytest.raises(ScheduleError, match=r"'big.json' is .* bytes, above"):
        load_schedule(path)


def _search_doc(nfe=3):
    sigmas = karras(nfe, SD.sigma_min, SD.sigma_max)
    return make_search_doc(sigmas, SD, nfe=nfe, sampler="euler", fitness="endpoint", best_fitness=0.1,
                           history=[], pack_version="0.1.0")


def test_sl_searched_skips_each_bad_file_with_one_warning_naming_it(tmp_path, caplog):
    save_schedule(tmp_path / "good.json", _search_doc())
    for case, text in MALFORMED.items():
        if case != "not_utf8":
            _write(tmp_path / f"bad_{case}.json", text)
    files = sorted(p.name for p in tmp_path.iterdir())
    with caplog.at_level(logging.WARNING, logger="schedule_lab"):
        sigmas = searched_sigmas(SD, 3, [(n, str(tmp_path / n)) for n in files])
        searched_sigmas(SD, 3, [(n, str(tmp_path / n)) for n in files])  # warned once, not twice
    assert torch.allclose(sigmas.double(), karras(3, SD.sigma_min, SD.sigma_max).double())
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == len(MALFORMED) - 1
    assert all(f"'bad_{c}.json'" in " ".join(warned) for c in MALFORMED if c != "not_utf8")


def test_malformed_search_params_in_a_rehashed_file_do_not_break_sl_searched(tmp_path):
    doc = _search_doc()
    doc["provenance"]["params"]["holdout_fitness"] = "not a number"
    doc["sha256"] = doc_hash(doc)
    save_schedule(tmp_path / "a_bad.json", _search_doc())  # a sound file beside it
    _write(tmp_path / "b_bad.json", doc)
    sigmas = searched_sigmas(SD, 3, [(n, str(tmp_path / n)) for n in ["a_bad.json", "b_bad.json"]])
    assert len(sigmas) == 4


# -- 4. the call-counting wrapper keeps the model's attributes (SDE samplers read inner_model) -----------------------

def test_counted_model_exposes_the_wrapped_models_attributes():
    class Denoiser:
        inner_model = "the ComfyUI model"

        def __call__(self, x, sigma, **kw):
            return x

    counted = CountedModel(Denoiser())
    assert counted.inner_model == "the ComfyUI model"
    counted(torch.zeros(2, 3), torch.ones(2))
    assert (counted.calls, counted.samples) == (1, 2)


# -- 6. Cancel within one model call: the reference stage and the calibration ----------------------------------------

class _Stop(Exception):
    pass


def _stop_after(n):
    seen = {"calls": 0}

    def should_stop():
        if seen["calls"] >= n:
            raise _Stop
        seen["calls"] += 1
    return should_stop, seen


def test_the_search_reference_stage_stops_within_one_model_call(tmp_path):
    calls = []

    def model(x, sigma, **kw):
        calls.append(1)
        return x * 0

    should_stop, _ = _stop_after(5)
    with pytest.raises(_Stop):
        ReferenceSet(model, SD, (4,), n_search=2, n_holdout=0, reference_steps=50, nfe=3, should_stop=should_stop,
                     reference_sampler=sample_heun)
    assert len(calls) == 5  # 99 model calls before the fix


@lru_cache(maxsize=1)
def _digits():
    from schedule_lab.lab.testbeds.digits import load_digits_split
    from schedule_lab.lab.testbeds.exact import ExactDenoiser

    return ExactDenoiser(load_digits_split().train[:300])


def test_run_search_passes_cancel_to_every_model_call(tmp_path):
    should_stop, seen = _stop_after(7)
    with pytest.raises(_Stop):
        search_ops.run_search(_digits(), SD, (1, 8, 8), sample_euler, sampler_name="euler", nfe=3, population=4,
                              generations=1, reference_steps=20, samples=4, holdout=0, directory=tmp_path,
                              filename="c", should_stop=should_stop)
    assert seen["calls"] == 7


def test_calibration_stops_within_one_model_call():
    calls = []

    def model(x, sigma, **kw):
        calls.append(1)
        return x * 0

    should_stop, _ = _stop_after(3)
    with pytest.raises(_Stop):
        constant_rate_ops.calibrate(model, SD, torch.zeros(1, 2, 4, 4), "vx", points=6, samples=4,
                                    should_stop=should_stop)
    assert len(calls) == 3


# -- 7. a search state past its last generation, or with a malformed history, is refused ---------------------------

def _space_search(tmp_path, generations=2):
    space = GeneSpace(SD)
    config = EvolutionConfig(population=4, top_k=1, mutations=2, crossovers=1, generations=generations,
                             resample_noise=False).check()
    return EvolutionSearch(space, 3, lambda s, d: float(s.sum()), config, seed=0, label="t")


def _edited_state(tmp_path, **change):
    search = _space_search(tmp_path)
    doc = search.state_doc()
    doc.update(change)
    doc = make_state_doc({k: v for k, v in doc.items() if k not in ("format", "version", "sha256")})
    path = tmp_path / "s.searchstate"
    save_state(path, doc)
    return search, path


def test_a_state_past_its_last_generation_is_refused_not_run_until_cancelled(tmp_path):
    search, path = _edited_state(tmp_path, generation=5)
    with pytest.raises(ScheduleError, match="generation 5"):
        search.restore(load_state(path), source="search state 's.searchstate'")


def test_a_malformed_history_is_a_schedule_error(tmp_path):
    with pytest.raises(ScheduleError, match=r"history\[0\]"):
        _edited_state(tmp_path, history=[{"generation": "zero"}])


def test_resume_with_another_latent_size_is_refused(tmp_path):
    search_ops.run_search(_digits(), SD, (1, 8, 8), sample_euler, sampler_name="euler", nfe=3, population=4,
                          generations=1, reference_steps=10, samples=4, holdout=0, directory=tmp_path,
                          filename="r")
    bigger = lambda x, sigma, **kw: _digits()(x[..., :8, :8], sigma, **kw).repeat(1, 1, 2, 2)  # noqa: E731
    with pytest.raises(ScheduleError, match="latent"):
        search_ops.run_search(bigger, SD, (1, 16, 16), sample_euler, sampler_name="euler", nfe=3, population=4,
                              generations=1, reference_steps=10, samples=4, holdout=0, directory=tmp_path,
                              filename="r")


# -- 8. the step cap applies to the steps typed, not to steps / denoise --------------------------------------------

@pytest.mark.parametrize("steps, denoise", [(1, 1e-5), (150, 0.01)])
def test_denoise_does_not_meet_the_step_cap(steps, denoise):
    from schedule_lab.schedules.baseline import ays

    out = truncate_for_denoise(lambda n: ays(n), steps, denoise)
    assert len(out) == steps + 1 and float(out[-1]) == 0.0
    full = ays(int(steps / denoise)) if int(steps / denoise) <= 10000 else None
    if full is not None:
        assert torch.equal(out, full[-(steps + 1):])


def test_an_absurd_denoise_is_refused_naming_denoise():
    with pytest.raises(ScheduleError, match="denoise=1e-09"):
        truncate_for_denoise(lambda n: karras(n, 0.03, 14.6), 10, 1e-9)


# -- 9. names Windows cannot hold, and long names -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["CON", "nul", "COM1.json", "lpt9", "aux.txt", "a?b", "a*b", "a<b", "a>b", "a|b",
                                  'a"b', "trailing.", "x" * 300])
def test_names_windows_cannot_hold_and_long_names_are_refused(name):
    with pytest.raises(ScheduleError, match="schedule name"):
        safe_schedule_name(name)


@pytest.mark.parametrize("name", ["console", "my CON schedule", "com10", "sd15 karras-10_v2"])
def test_ordinary_names_stay_accepted(name):
    assert safe_schedule_name(name) == name + ".json"


# -- 10. the mode of a replaced file is kept; new files are 0644 ---------------------------------------------------

def test_a_new_file_is_0644_and_an_overwritten_file_keeps_its_mode(tmp_path):
    path = tmp_path / "m.json"
    save_schedule(path, _doc())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    os.chmod(path, 0o664)
    save_schedule(path, _doc())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o664


# -- 5. Timestep Search refuses to overwrite unless asked ----------------------------------------------------------

def test_run_search_refuses_an_existing_name_before_any_model_call(tmp_path):
    save_schedule(tmp_path / "taken.json", _doc())
    before = (tmp_path / "taken.json").read_bytes()

    def model(x, sigma, **kw):
        raise AssertionError("no model call expected")

    with pytest.raises(ScheduleError, match="'taken.json' already exists"):
        search_ops.run_search(model, SD, (1, 8, 8), sample_euler, sampler_name="euler", nfe=3, directory=tmp_path,
                              filename="taken", overwrite=False)
    assert (tmp_path / "taken.json").read_bytes() == before


# -- 11. Constant-Rate checks xi (and steps, denoise) before any model call ---------------------------------------

@pytest.mark.parametrize("xi", [0.0, -1.0, float("nan"), 100.0])
def test_constant_rate_settings_are_checked_before_calibration(xi):
    with pytest.raises(ScheduleError, match="xi"):
        calibrate_module.check_settings(steps=10, denoise=1.0, xi=xi)


# -- 12. minor ones ----------------------------------------------------------------------------------------------

def test_one_latent_feature_map_pools_video_latents_for_search_and_constant_rate():
    video = torch.randn(3, 16, 5, 8, 8)
    assert latent_features(video).shape == (3, 16 * 16)
    assert calibrate_module.latent_features is latent_features  # what the Constant-Rate Scheduler measures with
    assert not hasattr(search_ops, "pooled_features")


def test_a_folder_at_a_cache_path_is_a_clear_error_before_measuring(tmp_path):
    from schedule_lab.schedules.constant_rate.cache import cache_key

    (tmp_path / f"{cache_key('m', {'a': 1})}.json").mkdir()
    measured = []
    with pytest.raises(ScheduleError, match="is a folder"):
        cached_velocity(tmp_path, "m", {"a": 1}, lambda: measured.append(1) or default_velocity(SD))
    assert measured == []


def test_a_malformed_cache_record_is_discarded_without_a_raw_error(tmp_path):
    from schedule_lab.schedules.constant_rate.cache import cache_key

    key = cache_key("m", {"a": 1})
    (tmp_path / f"{key}.json").write_text('{"format": "schedule-lab/velocity", "version": 1, "velocity": '
                                          + "[" * 5000 + "]" * 5000 + "}")
    velocity, status = load_velocity(tmp_path, key)
    assert velocity is None and status.startswith("corrupt") and not (tmp_path / f"{key}.json").exists()


def test_default_points_is_one_number():
    assert calibrate_module.DEFAULT_POINTS == measure.DEFAULT_POINTS == 24


def test_load_schedule_hint_is_passed_not_cut_out_of_another_message(tmp_path):
    flow = ModelKind.flow(shift=3.0)
    doc = make_schedule_doc(torch.tensor([1.0, 0.5, 0.0]), flow, "manual", {}, "0.1.0")
    with pytest.raises(ScheduleError, match="enable clamp_to_model") as info:
        adapt_to_kind(doc, SD, clamp_hint="enable clamp_to_model")
    assert "clamp=True" not in str(info.value)


@pytest.mark.skipif(__import__("shutil").which("node") is None, reason="node is not installed")
def test_the_plot_script_draws_200000_sigmas_without_overflowing_the_stack(tmp_path):
    import subprocess
    from pathlib import Path

    # the chart is a pure ES module (no ComfyUI import), loaded as it is: copied, never rewritten
    src = (Path(__file__).resolve().parents[2] / "web" / "js" / "schedule_chart.js").read_text()
    (tmp_path / "chart.mjs").write_text(src)
    (tmp_path / "run.mjs").write_text(
        'import { chartRange, points } from "./chart.mjs";\n'
        "const s = Array.from({ length: 200000 }, (_, i) => 200000 - i);\n"
        'const state = { data: { sigmas: s, log_sigma: s.map(Math.log) }, axis: "log σ" };\n'
        'const p = points(state.data.log_sigma, chartRange(state), 116, 116, "log σ");\n'
        "console.log(JSON.stringify([p.length, p[0][1], p[p.length - 1][1]]));\n")
    out = subprocess.run(["node", str(tmp_path / "run.mjs")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-300:]
    assert json.loads(out.stdout) == [200000, 16, 102]  # top and bottom of the plot area (padding 16 / 14)
