"""The live-plot route and the A/B Compare node on the real host (README, "In the graph")."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sl_graphs import base, finish, sample_custom_advanced


def _plot(comfy, **query):
    url = f"{comfy.base}/schedule_lab/plot?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_plot_route_gives_karras_in_closed_form(comfy):
    status, body = _plot(comfy, scheduler="karras", steps=6, family="sd1")
    assert status == 200, body
    s = body["sigmas"]
    lo, hi, n = s[-2], s[0], 6
    expected = [(hi ** (1 / 7) + i / (n - 1) * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7 for i in range(n)] + [0.0]
    assert s == pytest.approx(expected, rel=1e-5)
    assert body["log_sigma"][-1] is None and body["log_sigma"][0] == pytest.approx(__import__("math").log(hi))
    assert body["flow_t"][0] == pytest.approx(hi / (1 + hi))


def test_plot_route_denoise_keeps_the_tail_like_basic_scheduler(comfy):
    _, full = _plot(comfy, scheduler="normal", steps=10, family="sdxl")
    _, half = _plot(comfy, scheduler="normal", steps=5, denoise=0.5, family="sdxl")
    assert half["sigmas"] == pytest.approx(full["sigmas"][-6:])


def test_plot_route_serves_pack_schedulers_on_flow_families(comfy):
    status, body = _plot(comfy, scheduler="sl_ays_sd1", steps=4, family="sd3")
    assert status == 200 and body["kind"] == "flow" and max(body["sigmas"]) <= 1.0


@pytest.mark.parametrize("query, needle", [
    ({"scheduler": "karras", "steps": "abc"}, "steps"), ({"scheduler": "karras", "steps": 0}, "steps"),
    ({"scheduler": "karras", "denoise": 1.5}, "denoise"), ({"scheduler": "karras", "denoise": "nan"}, "denoise"),
    ({"scheduler": "karras", "family": "sd9"}, "family"), ({"scheduler": "nope"}, "scheduler"),
    ({"schedule": "../../../etc/passwd"}, "schedule"), ({"schedule": "/etc/passwd"}, "schedule"),
    ({"scheduler": "karras", "schedule": "x.json"}, "exactly one"), ({}, "exactly one"),
    ({"searched": "nope"}, "searched"),
])
def test_plot_route_refuses_bad_values_with_400_and_a_message(comfy, query, needle):
    status, body = _plot(comfy, **query)
    assert status == 400 and needle in body["error"] and "Traceback" not in body["error"], body


def _ab_graph(entry_list: str, sweep: str = "none", values: str = "1", seed: int = 3) -> dict:
    g = base()
    g["ab"] = {"class_type": "SL_ABCompare", "inputs": {
        "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "cfg": 2.0, "latent_image": ["latent", 0],
        "vae": ["ckpt", 2], "seed": seed, "entry_list": entry_list, "sweep": sweep, "sweep_values": values,
        "columns": 0}}
    g["save_ab"] = {"class_type": "SaveImage", "inputs": {"images": ["ab", 1], "filename_prefix": "sl_ab_cells"}}
    g.pop("_model")
    return g


def _images(comfy, entry: dict, node: str):
    from PIL import Image

    files = entry["outputs"][node]["images"]
    return [Image.open(comfy.workdir / "output" / f.get("subfolder", "") / f["filename"]) for f in files]


def test_ab_compare_cells_equal_sampler_custom_advanced_from_the_same_seed(comfy):
    import numpy as np

    g = _ab_graph("euler, karras, 4, E\nheun, karras, 4, H")
    g["sched"] = {"class_type": "BasicScheduler", "inputs": {"model": ["ckpt", 0], "scheduler": "karras", "steps": 4,
                                                             "denoise": 1.0}}
    g["sel"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    latent = sample_custom_advanced(g, ["ckpt", 0], ["sel", 0], ["sched", 0], seed=3)
    g["_model"] = ["ckpt", 0]
    g = finish(g, latent, "sl_ab_reference")
    entry = comfy.run(g)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:2000]
    cells, reference = _images(comfy, entry, "save_ab"), _images(comfy, entry, "save")
    assert len(cells) == 2
    assert np.array_equal(np.asarray(cells[0]), np.asarray(reference[0]))
    assert not np.array_equal(np.asarray(cells[1]), np.asarray(reference[0]))
    report = entry["outputs"]["ab"]["text"][0]
    # euler: one model call per step; heun: two per step except the last (k-diffusion's final Euler step)
    assert "E: 4 steps, NFE 4," in report and "H: 4 steps, NFE 7," in report, report


def test_ab_compare_sweep_labels_cells_and_grid_is_produced(comfy):
    g = _ab_graph("dpmpp_2m, karras, 3, 2M", sweep="steps", values="2, 3")
    g["save_grid"] = {"class_type": "SaveImage", "inputs": {"images": ["ab", 0], "filename_prefix": "sl_ab_grid"}}
    entry = comfy.run(g)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:2000]
    report = entry["outputs"]["ab"]["text"][0].splitlines()
    assert report[0].startswith("2M · 2 steps: 2 steps") and report[1].startswith("2M · 3 steps: 3 steps")
    grid = _images(comfy, entry, "save_grid")[0]
    assert grid.size[0] == 2 * 192  # two 64-px cells, enlarged so captions fit


def test_ab_compare_refuses_a_bad_entry_naming_it(comfy):
    entry = comfy.run(_ab_graph("euler, karras, 4, A\neuler, karras, 4, A"))
    assert entry["status"]["status_str"] == "error"
    message = json.dumps(entry["status"]["messages"])
    assert "entry 'A'" in message and "labels must tell cells apart" in message


def test_ab_compare_xi_sweep_cell_at_the_default_xi_equals_ksampler_sl_constant_rate(comfy):
    """Oracle: KSampler's sl_constant_rate (no calibration on the MODEL: the data-free default) uses the per-step
    default ξ; the ξ-sweep cell at that ξ gives the same image from the same seed, another ξ does not."""
    import numpy as np

    from schedule_lab.schedules.constant_rate.construct import default_schedule_settings
    from schedule_lab.schedules.model_kind import ModelKind

    xi = default_schedule_settings(4, ModelKind.vp())["xi"]  # the tiny checkpoint is an SD2 eps (VP) model
    g = _ab_graph("euler, sl_constant_rate, 4, CR\neuler, karras, 4, K", sweep="xi", values=f"{xi}, 3")
    g["ks"] = {"class_type": "KSampler", "inputs": {
        "model": ["ckpt", 0], "seed": 3, "steps": 4, "cfg": 2.0, "sampler_name": "euler",
        "scheduler": "sl_constant_rate", "positive": ["pos", 0], "negative": ["neg", 0],
        "latent_image": ["latent", 0], "denoise": 1.0}}
    g["_model"] = ["ckpt", 0]
    g = finish(g, ["ks", 0], "sl_ab_xi_reference")
    entry = comfy.run(g)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:2000]
    report = entry["outputs"]["ab"]["text"][0].splitlines()
    assert [line.split(":")[0] for line in report] == [f"CR · xi {xi:g}", "CR · xi 3", "K"], report
    cells, reference = _images(comfy, entry, "save_ab"), _images(comfy, entry, "save")
    assert np.array_equal(np.asarray(cells[0]), np.asarray(reference[0]))
    assert not np.array_equal(np.asarray(cells[1]), np.asarray(reference[0]))


def test_ab_compare_refuses_a_xi_sweep_on_another_scheduler_naming_the_entry(comfy):
    entry = comfy.run(_ab_graph("euler, karras, 4, K", sweep="xi", values="1, 2"))
    assert entry["status"]["status_str"] == "error"
    message = json.dumps(entry["status"]["messages"])
    assert "entry 'K'" in message and "sl_constant_rate" in message


def test_plot_route_gives_valid_json_at_a_flow_models_pure_noise_level(comfy):
    """SD3/Flux schedules start at σ = 1 (t = 1), where log-SNR is -inf: sent as null (JSON has no -Infinity, the
    browser's JSON.parse refused the whole answer), like the final 0."""
    query = urllib.parse.urlencode({"scheduler": "simple", "steps": 4, "family": "sd3"})
    url = f"{comfy.base}/schedule_lab/plot?{query}"
    with urllib.request.urlopen(url, timeout=60) as r:
        text = r.read().decode()
    body = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in {text[:200]}"))
    assert body["sigmas"][0] == pytest.approx(1.0) and body["log_snr"][0] is None and body["log_snr"][-1] is None
    assert all(v is not None for v in body["log_snr"][1:-1])
