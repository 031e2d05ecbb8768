"""The pack inside a real ComfyUI server: node listing, dropdown registration, end-to-end graphs.

Skipped unless COMFYUI_PATH is set (see conftest.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import sl_graphs as G

ROOT = Path(__file__).resolve().parents[2]
PACK_NODE_IDS = sorted(set(re.findall(r'node_id="(SL_[A-Za-z0-9_]+)"', "".join(
    p.read_text() for p in (ROOT / "nodes").glob("*.py")))))


def _registry():
    from schedule_lab.nodes.registry import DROPDOWN_SAMPLERS, DROPDOWN_SCHEDULERS

    return list(DROPDOWN_SAMPLERS), list(DROPDOWN_SCHEDULERS)


def _images(entry: dict) -> list[dict]:
    return [img for out in entry["outputs"].values() for img in out.get("images", [])]


def _combo_options(spec: list) -> list:
    """Options of a combo input spec: V1 style ``[[...], {...}]`` or V3 style ``["COMBO", {"options": [...]}]``."""
    return spec[0] if isinstance(spec[0], list) else spec[1]["options"]


def _assert_success(comfy, entry: dict) -> None:
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())


def test_every_pack_node_is_listed_with_a_description_and_tooltips(comfy):
    info = comfy.get("/object_info")
    assert PACK_NODE_IDS, "no SL_ node ids found in nodes/"
    for node_id in PACK_NODE_IDS:
        assert node_id in info, f"{node_id} missing from /object_info; log:\n{comfy.log_tail()}"
        node = info[node_id]
        assert node["description"].strip(), f"{node_id} has no description"
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


@pytest.mark.parametrize("node,field", [("KSampler", "sampler_name"), ("KSamplerAdvanced", "sampler_name"),
                                        ("KSamplerSelect", "sampler_name")])
def test_sampler_lists_are_stock_then_ours(comfy, stock_lists, node, field):
    samplers, _ = _registry()
    options = _combo_options(comfy.get("/object_info")[node]["input"]["required"][field])
    assert options == stock_lists["samplers"] + samplers


@pytest.mark.parametrize("node", ["KSampler", "KSamplerAdvanced", "BasicScheduler"])
def test_scheduler_lists_are_stock_then_ours(comfy, stock_lists, node):
    _, schedulers = _registry()
    assert schedulers, "the registry has no scheduler"
    options = _combo_options(comfy.get("/object_info")[node]["input"]["required"]["scheduler"])
    assert options == stock_lists["schedulers"] + schedulers


def test_txt2img_through_stock_ksampler_with_pack_scheduler_writes_png(comfy):
    entry = comfy.run(G.ksampler("euler", "sl_ays_sd1", steps=4, prefix="sl_ks_eps"))
    _assert_success(comfy, entry)
    images = _images(entry)
    assert images, entry["outputs"]
    png = comfy.workdir / "output" / images[0]["subfolder"] / images[0]["filename"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pack_scheduler_on_a_flow_model_through_ksampler(comfy):
    entry = comfy.run(G.ksampler("euler", "sl_ays_sdxl", steps=4, flow_shift=3.0, prefix="sl_ks_flow"))
    _assert_success(comfy, entry)
    assert _images(entry)


def test_sampler_custom_advanced_with_pack_nodes(comfy):
    sigmas = {"class_type": "SL_Scheduler", "inputs": {"model": "_model", "scheduler": "sl_ays_sd1",
                                                       "steps": 5, "denoise": 1.0}}
    info = {"class_type": "SL_ScheduleInfo", "inputs": {"sigmas": ["sigmas", 0], "model": "_model"}}
    entry = comfy.run(G.custom_advanced(sigmas, prefix="sl_custom", extra={"info": info}))
    _assert_success(comfy, entry)
    assert _images(entry)
    text = entry["outputs"]["info"]["text"][0]
    assert text.startswith("steps: 5"), text


def _sigmas_via_info(comfy, sigmas_node: dict, model_needed: bool = True) -> list[float]:
    g = G.base()
    g["s"] = {"class_type": sigmas_node["class_type"],
              "inputs": {k: (g["_model"] if v == "_model" else v) for k, v in sigmas_node["inputs"].items()}}
    g["info"] = {"class_type": "SL_ScheduleInfo", "inputs": {"sigmas": ["s", 0]}}
    g.pop("_model")
    for unused in ("pos", "neg", "latent"):
        g.pop(unused)
    entry = comfy.run(g)
    _assert_success(comfy, entry)
    return entry["outputs"]["info"]["schedule_lab_sigmas"][0]["sigmas"]


@pytest.mark.parametrize("steps", [11, 10, 7, 25])
def test_pack_ays_in_basic_scheduler_is_the_builtin_ays_levels_down_to_sigma_min(comfy, steps):
    """sl_ays_sd1 on an SD1 model: the levels of ComfyUI's own AYS node, with one more level kept at the bottom.
    The node for steps - 1 resamples the published table to ``steps`` levels and replaces the last (SD1's σ_min)
    by 0; the pack keeps all ``steps`` of them as the positive levels, then 0 (docs/defaults.md §10)."""
    ours = _sigmas_via_info(comfy, {"class_type": "BasicScheduler", "inputs": {
        "model": "_model", "scheduler": "sl_ays_sd1", "steps": steps, "denoise": 1.0}})
    builtin = _sigmas_via_info(comfy, {"class_type": "AlignYourStepsScheduler", "inputs": {
        "model_type": "SD1", "steps": steps - 1, "denoise": 1.0}})
    karras = _sigmas_via_info(comfy, {"class_type": "BasicScheduler", "inputs": {
        "model": "_model", "scheduler": "karras", "steps": steps, "denoise": 1.0}})
    assert len(ours) == steps + 1 and ours[-1] == 0
    assert ours[:-2] == pytest.approx(builtin[:-1], rel=1e-6, abs=1e-7)
    assert ours[-2] == pytest.approx(karras[-2], rel=1e-5)  # the model's σ_min, where ComfyUI's karras ends


def test_save_then_load_schedule_round_trip(comfy):
    sigmas = {"class_type": "SL_Scheduler", "inputs": {"model": "_model", "scheduler": "sl_ays_sdxl",
                                                       "steps": 6, "denoise": 1.0}}
    save = {"class_type": "SL_SaveSchedule", "inputs": {"sigmas": ["sigmas", 0], "model": "_model",
                                                        "filename": "roundtrip", "note": "test",
                                                        "overwrite": True}}
    entry = comfy.run(G.custom_advanced(sigmas, prefix="sl_save", extra={"savesched": save}))
    _assert_success(comfy, entry)
    saved = comfy.workdir / "schedules" / "roundtrip.json"
    assert saved.is_file(), entry["outputs"]
    # The combo list is read when the schema is built, so the new file is offered without a restart.
    spec = comfy.get("/object_info/SL_LoadSchedule")["SL_LoadSchedule"]["input"]["required"]["schedule"]
    assert "roundtrip.json" in _combo_options(spec)
    original = _sigmas_via_info(comfy, {"class_type": "SL_Scheduler", "inputs": {
        "model": "_model", "scheduler": "sl_ays_sdxl", "steps": 6, "denoise": 1.0}})
    loaded = _sigmas_via_info(comfy, {"class_type": "SL_LoadSchedule", "inputs": {
        "model": "_model", "schedule": "roundtrip.json", "steps": 0, "denoise": 1.0}})
    assert loaded == pytest.approx(original, rel=1e-6)


@pytest.mark.parametrize("bad", ["../escape", "sub/dir", "..", ""])
def test_save_schedule_refuses_unsafe_names_and_writes_nothing(comfy, bad):
    before = sorted(p.name for p in (comfy.workdir / "schedules").iterdir())
    sigmas = {"class_type": "SL_Scheduler", "inputs": {"model": "_model", "scheduler": "sl_ays_sd1",
                                                       "steps": 4, "denoise": 1.0}}
    g = G.base()
    g["s"] = {"class_type": "SL_Scheduler", "inputs": dict(sigmas["inputs"], model=g["_model"])}
    g["savesched"] = {"class_type": "SL_SaveSchedule", "inputs": {"sigmas": ["s", 0], "model": g["_model"],
                                                                  "filename": bad, "note": "", "overwrite": True}}
    g.pop("_model")
    entry = comfy.run(g)
    assert entry["status"]["status_str"] == "error"
    messages = [m for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert messages and "filename" in messages[0][1]["exception_message"], messages
    assert sorted(p.name for p in (comfy.workdir / "schedules").iterdir()) == before
