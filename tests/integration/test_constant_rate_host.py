"""Constant-Rate Scheduler in the real host: calibration on the tiny checkpoint into SamplerCustomAdvanced, the
disk cache reused on the second run, sl_constant_rate in the stock KSampler using that calibration, Cancel."""
from __future__ import annotations

import json

import sl_graphs as G


def _ok(comfy, entry):
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    assert [img for out in entry["outputs"].values() for img in out.get("images", [])], entry["outputs"]


def _crs(steps=5, measure="vx", samples=2, points=6, xi=1.5, seed=0, save_as=""):
    return {"class_type": "SL_ConstantRateScheduler", "inputs": {
        "guider": ["guider", 0], "latent_image": ["latent", 0], "steps": steps, "denoise": 1.0, "measure": measure,
        "xi": xi, "samples": samples, "points": points, "seed": seed, "save_as": save_as}}


def _graph(prefix, flow_shift=None, **kw):
    graph = G.custom_advanced({"class_type": "BasicScheduler", "inputs": {
        "model": "_model", "scheduler": "simple", "steps": 4, "denoise": 1.0}}, flow_shift=flow_shift, prefix=prefix)
    graph["sigmas"] = _crs(**kw)
    return graph


def _report(entry):
    text = entry["outputs"]["sigmas"]["text"]
    return text[0] if isinstance(text, list) else text


def test_node_calibrates_into_sampler_custom_advanced_and_reuses_the_cache(comfy):
    calibration = comfy.workdir / "calibration"
    before = set(calibration.glob("*.json"))
    first = comfy.run(_graph("sl_crs_a", steps=5))
    _ok(comfy, first)
    report = _report(first)
    assert "measured now" in report and "model calls" in report, report
    new = set(calibration.glob("*.json")) - before
    assert len(new) == 1, new
    record = json.loads(next(iter(new)).read_text())
    assert record["format"] == "schedule-lab/velocity" and record["velocity"]["measure"] == "vx"
    calls = record["velocity"]["info"]["model_calls"]
    assert calls == 2 * 12 + 6 * 2, calls  # data-free: 2 samples x 12 generation steps, then 6 levels x 2 samples
    # another step count and xi re-runs the node (ComfyUI's own cache would skip it otherwise): a disk-cache hit
    second = comfy.run(_graph("sl_crs_b", steps=7, xi=1.2))
    _ok(comfy, second)
    assert "cached calibration (0 model calls now" in _report(second), _report(second)
    assert set(calibration.glob("*.json")) - before == new


def _ksampler_on(model_ref, name, prefix):
    return {"class_type": "KSampler", "inputs": {
        "model": model_ref, "seed": 1, "steps": 5, "cfg": 2.0, "sampler_name": "euler", "scheduler": "sl_constant_rate",
        "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0], "denoise": 1.0}}, {
        f"{name}_decode": {"class_type": "VAEDecode", "inputs": {"samples": [name, 0], "vae": ["ckpt", 2]}},
        f"{name}_save": {"class_type": "SaveImage", "inputs": {"images": [f"{name}_decode", 0],
                                                               "filename_prefix": prefix}}}


def test_sl_constant_rate_in_ksampler_uses_the_calibration_of_the_model_it_is_fed(comfy):
    """The node's MODEL output carries the calibration; the loaded model itself is not changed, so a KSampler on
    the plain checkpoint in the same graph, and a later prompt without the node, keep the data-free default."""
    graph = _graph("sl_crs_c", steps=4, seed=3)
    for name, model_ref, prefix in (("ks_cal", ["sigmas", 2], "sl_crs_ks"), ("ks_plain", ["ckpt", 0], "sl_crs_pl")):
        graph[name], extra = _ksampler_on(model_ref, name, prefix)
        graph.update(extra)
    start = _log_lines(comfy)
    _ok(comfy, comfy.run(graph))
    log = _new_log(comfy, start)
    assert log.count("sl_constant_rate: using the vx calibration measured on this model") == 1, log[-3000:]
    assert log.count("this model carries no calibration, using the data-free default") == 1, log[-3000:]
    start = _log_lines(comfy)
    _ok(comfy, comfy.run(G.ksampler("euler", "sl_constant_rate", steps=5, seed=77, prefix="sl_crs_later")))
    log = _new_log(comfy, start)
    assert "this model carries no calibration" in log and "using the vx calibration" not in log, log[-3000:]


def _log_lines(comfy) -> int:
    return len(comfy.log_path.read_text(errors="replace").splitlines())


def _new_log(comfy, start: int) -> str:
    return "\n".join(comfy.log_path.read_text(errors="replace").splitlines()[start:])


def test_sl_constant_rate_on_a_flow_model_without_calibration_uses_the_default(comfy):
    _ok(comfy, comfy.run(G.ksampler("euler", "sl_constant_rate", steps=4, flow_shift=3.0, prefix="sl_crs_flow")))
    assert "using the data-free default" in comfy.log_tail(200)


def test_node_on_a_flow_model_and_the_data_free_measure(comfy):
    entry = comfy.run(_graph("sl_crs_flow_node", flow_shift=3.0, steps=4, measure="vx+cos", seed=4))
    _ok(comfy, entry)
    entry = comfy.run(_graph("sl_crs_free", steps=4, measure="data-free", save_as="crs_free"))
    _ok(comfy, entry)
    assert "data-free default (no model calls)" in _report(entry) and "saved" in _report(entry)


def test_cancel_during_calibration_caches_nothing(comfy):
    calibration = comfy.workdir / "calibration"
    before = set(calibration.glob("*.json"))
    entry, events = comfy.run_ws(_graph("sl_crs_cancel", samples=2, points=256, seed=99), interrupt_at_step=3)
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"]), \
        json.dumps(entry["status"]["messages"])[-3000:]
    assert set(calibration.glob("*.json")) == before


def test_bad_measure_is_refused_naming_the_input(comfy):
    status, body = comfy.post("/prompt", {"prompt": _graph("sl_crs_bad", measure="fid")})
    if status == 400:  # refused by the combo's validation
        assert "measure" in str(body), body
        return
    entry = comfy.wait(body["prompt_id"])  # or by the node, before any model call
    message = json.dumps(entry["status"]["messages"])
    assert entry["status"]["status_str"] == "error" and "measure: 'fid' is unknown" in message, message[-2000:]


def test_too_few_samples_for_frechet_fail_before_any_model_call(comfy):
    entry = comfy.run(_graph("sl_crs_fewer", measure="frechet", samples=8, seed=5))
    assert entry["status"]["status_str"] == "error"
    message = json.dumps(entry["status"]["messages"])
    assert "samples: 8 samples are too few for a Fr" in message and "64-dimensional" in message, message[-2000:]
