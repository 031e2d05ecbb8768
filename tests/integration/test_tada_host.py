"""TADA in the real host: KSampler dropdown (eps and flow), TADA Sampler in SamplerCustomAdvanced, Detail Level's
effect on the dropdown sampler, previews, the Detail Level message, Cancel."""
from __future__ import annotations

import pytest
import sl_graphs as G


def _ok(comfy, entry):
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    assert [img for out in entry["outputs"].values() for img in out.get("images", [])], entry["outputs"]


@pytest.mark.parametrize("flow_shift", [None, 3.0], ids=["eps", "flow"])
def test_sl_tada_through_the_stock_ksampler(comfy, flow_shift):
    _ok(comfy, comfy.run(G.ksampler("sl_tada", "karras", steps=6, flow_shift=flow_shift,
                                    prefix=f"sl_tada_ks_{flow_shift}")))


@pytest.mark.parametrize("flow_shift", [None, 3.0], ids=["eps", "flow"])
def test_tada_sampler_through_sampler_custom_advanced(comfy, flow_shift):
    sigmas = {"class_type": "BasicScheduler", "inputs": {"model": "_model", "scheduler": "simple", "steps": 6,
                                                         "denoise": 1.0}}
    sampler = {"class_type": "SL_TADASampler", "inputs": {"detail": 2.0, "n_aug": 2, "order": "auto"}}
    _ok(comfy, comfy.run(G.custom_advanced(sigmas, sampler, flow_shift=flow_shift, prefix=f"sl_tada_sca_{flow_shift}")))


def _pixels(comfy, entry):
    import numpy as np
    from PIL import Image

    _ok(comfy, entry)
    img = entry["outputs"]["save"]["images"][0]
    return np.asarray(Image.open(comfy.workdir / "output" / img["subfolder"] / img["filename"]), dtype=np.int16)


def test_detail_level_reaches_sl_tada_in_the_stock_ksampler(comfy):
    """Same seed and schedule: KSampler 'sl_tada' fed Detail Level 3 makes another image than the default detail 1,
    and the same image as the TADA Sampler node with detail 3 in SamplerCustomAdvanced."""
    default = _pixels(comfy, comfy.run(G.ksampler("sl_tada", "karras", steps=6, seed=5, prefix="sl_dl_default")))
    detailed = _pixels(comfy, comfy.run(_with_detail_level(G.ksampler("sl_tada", "karras", steps=6, seed=5,
                                                                      prefix="sl_dl_3"), 3.0)))
    sigmas = {"class_type": "BasicScheduler", "inputs": {"model": "_model", "scheduler": "karras", "steps": 6,
                                                         "denoise": 1.0}}
    sampler = {"class_type": "SL_TADASampler", "inputs": {"detail": 3.0, "n_aug": 2, "order": "auto"}}
    node = _pixels(comfy, comfy.run(G.custom_advanced(sigmas, sampler, seed=5, prefix="sl_dl_node_3")))
    assert abs(detailed - default).max() > 8, "Detail Level 3 changed nothing: the detail did not reach sl_tada"
    assert abs(detailed - node).max() <= 1, abs(detailed - node).max()


def test_sl_tada_in_the_stock_ksampler_without_detail_level_uses_the_per_step_count_default(comfy):
    """KSampler 'sl_tada' without a Detail Level node samples with solvers.tada.default_settings(steps): at 5 steps
    detail 0.5 with the 2m integrator (docs/defaults.md §8), i.e. the TADA Sampler node with detail 0.5, not the node
    widget's detail 1."""
    from schedule_lab.solvers.tada import default_settings

    detail, order = default_settings(5)
    # the table this test is about (docs/defaults.md §8: 2m on karras); if the rule changes it, change the test
    assert (detail, order) == (0.5, 2)
    plain = _pixels(comfy, comfy.run(G.ksampler("sl_tada", "karras", steps=5, seed=5, prefix="sl_pernfe_ks")))
    sigmas = {"class_type": "BasicScheduler", "inputs": {"model": "_model", "scheduler": "karras", "steps": 5,
                                                         "denoise": 1.0}}
    node = {d: _pixels(comfy, comfy.run(G.custom_advanced(
        sigmas, {"class_type": "SL_TADASampler", "inputs": {"detail": d, "n_aug": 2, "order": "auto"}}, seed=5,
        prefix=f"sl_pernfe_node_{d:g}"))) for d in (detail, 1.0)}
    assert abs(plain - node[detail]).max() <= 1, abs(plain - node[detail]).max()
    assert abs(plain - node[1.0]).max() > 8, "sl_tada at 5 steps sampled with detail 1, not the per-NFE default"


def _with_detail_level(graph: dict, detail: float) -> dict:
    graph["detail"] = {"class_type": "SL_DetailLevel", "inputs": {"model": ["ckpt", 0], "detail": detail}}
    graph["ks"]["inputs"]["model"] = ["detail", 0]
    return graph


def test_detail_level_with_sl_tada_says_it_was_used_and_previews_arrive(comfy):
    entry, events = comfy.run_ws(_with_detail_level(G.ksampler("sl_tada", "karras", steps=5, prefix="sl_dl"), 3.0))
    _ok(comfy, entry)
    texts = [e for e in events if e[0] == "text" and e[1] == "detail"]
    assert texts and texts[-1][2] == "Detail Level 3 used by sl_tada.", texts
    progress = [e[2]["value"] for e in events if e[0] == "json" and e[1] == "progress" and e[2].get("node") == "ks"]
    assert progress == [1, 2, 3, 4, 5]
    assert len([e for e in events if e[0] == "preview"]) >= 4


def test_detail_level_with_another_sampler_says_it_had_no_effect(comfy):
    entry, events = comfy.run_ws(_with_detail_level(G.ksampler("euler", "karras", steps=3, prefix="sl_dl_e"), 2.5))
    _ok(comfy, entry)
    texts = [e[2] for e in events if e[0] == "text" and e[1] == "detail"]
    assert texts and "had no effect" in texts[-1] and "'euler'" in texts[-1], texts


def test_cancel_stops_a_tada_run(comfy):
    entry, events = comfy.run_ws(G.ksampler("sl_tada", "karras", steps=400, seed=5, prefix="sl_cancel"),
                                 interrupt_at_step=3)
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"]), entry["status"]
    progress = [e[2]["value"] for e in events if e[0] == "json" and e[1] == "progress"]
    assert progress and max(progress) < 100, progress


def test_bad_detail_is_refused_by_validation_naming_the_input(comfy):
    sigmas = {"class_type": "BasicScheduler", "inputs": {"model": "_model", "scheduler": "simple", "steps": 4,
                                                         "denoise": 1.0}}
    sampler = {"class_type": "SL_TADASampler", "inputs": {"detail": 0.0, "n_aug": 2, "order": "auto"}}
    status, body = comfy.post("/prompt", {"prompt": G.custom_advanced(sigmas, sampler, prefix="sl_bad")})
    assert status == 400
    assert "detail" in str(body["node_errors"]), body
