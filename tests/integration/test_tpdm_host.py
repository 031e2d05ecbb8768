"""TPDM in the real host: Load TPM + Apply TPM with the Adaptive Steps Sampler and with sl_tpdm in
the stock KSampler on the tiny SD2-shaped checkpoint, per-image step counts in a batch of 2, Cancel, freezing a run
to a schedule file that Load Schedule + euler reproduces bit for bit, and the bad inputs."""
from __future__ import annotations

import re

import pytest
import sl_graphs as G
import torch

# The tiny checkpoint's UNet: conv_in gives 320 channels, the output norm 320, time_embed 1280.
UNET_SIZES = (320, 320, 1280)
_tpm = G.write_tpm


@pytest.fixture(scope="module")
def tpms(comfy):
    folder = comfy.workdir / "tpm"
    return {
        # random init with a large fc2 gain: the predicted ratio follows each image's own features
        "busy": _tpm(folder / "sl_tiny_busy.safetensors", bias=(1.0, 1.0), gain=400.0, seed=3),
        "init": _tpm(folder / "sl_tiny_init.safetensors", start_sigma=14.6146),
        "slow": _tpm(folder / "sl_tiny_slow.safetensors", bias=(9.0, -6.0)),  # ratio clamped at 0.999: long runs
        "sd3": _tpm(folder / "sl_wrong_size.safetensors", sizes=(1536, 1536, 1536), family="mmdit"),
    }


def _apply(g: dict, tpm: str, freeze_as: str = "") -> list:
    g["loadtpm"] = {"class_type": "SL_LoadTPM", "inputs": {"tpm_name": tpm}}
    g["apply"] = {"class_type": "SL_ApplyTPM", "inputs": {"model": g["_model"], "tpm": ["loadtpm", 0],
                                                          "freeze_as": freeze_as}}
    return ["apply", 0]


def _adaptive_graph(tpm: str, batch: int = 1, min_sigma: float = 0.001, max_steps: int = 35, seed: int = 1,
                    stochastic: bool = False, freeze_as: str = "", prefix: str = "sl_tpdm_sca") -> dict:
    g = G.base()
    g["latent"]["inputs"]["batch_size"] = batch
    model = _apply(g, tpm, freeze_as)
    g["sigmas"] = {"class_type": "BasicScheduler", "inputs": {"model": g["_model"], "scheduler": "simple",
                                                              "steps": max_steps, "denoise": 1.0}}
    g["sampler"] = {"class_type": "SL_AdaptiveStepsSampler", "inputs": {
        "min_sigma": min_sigma, "max_steps": max_steps, "stochastic": stochastic, "final_step": "zero"}}
    latent = G.sample_custom_advanced(g, model, ["sampler", 0], ["sigmas", 0], seed)
    g["savelatent"] = {"class_type": "SaveLatent", "inputs": {"samples": latent, "filename_prefix": prefix}}
    return G.finish(g, latent, prefix)


def _ksampler_graph(tpm: str | None, steps: int, denoise: float = 1.0, seed: int = 1, prefix: str = "sl_tpdm_ks"):
    g = G.ksampler("sl_tpdm", "karras", steps=steps, seed=seed, prefix=prefix, denoise=denoise)
    if tpm is not None:
        g["_model"] = ["ckpt", 0]
        g["ks"]["inputs"]["model"] = _apply(g, tpm)
        g.pop("_model")
    return g


def _ok(comfy, entry):
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())


def _error(entry) -> str:
    msgs = [m for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert msgs, entry["status"]
    return msgs[0][1]["exception_message"]


def _report(events) -> str:
    texts = [e[2] for e in events if e[0] == "text" and e[1] == "apply"]
    assert texts, [e for e in events if e[0] == "text"]
    return texts[-1]


def _steps(report: str) -> list[int]:
    return [int(n) for n in re.findall(r"image \d+: (\d+) steps", report)]


def test_apply_tpm_and_adaptive_steps_sampler_batch_of_2_stop_on_their_own(comfy, tpms):
    entry, events = comfy.run_ws(_adaptive_graph(tpms["busy"], batch=2, max_steps=30))
    _ok(comfy, entry)
    steps = _steps(_report(events))
    print(_report(events))  # noqa: T201 - the realised schedules, for the record with -s
    assert len(steps) == 2 and steps[0] != steps[1] and max(steps) <= 30, _report(events)
    progress = [e[2]["value"] for e in events if e[0] == "json" and e[1] == "progress" and e[2].get("node") == "sca"]
    assert len(progress) == max(steps)  # one batched model call per step, a callback each


def test_sl_tpdm_through_the_stock_ksampler_steps_is_the_cap(comfy, tpms):
    entry, events = comfy.run_ws(_ksampler_graph(tpms["init"], steps=12))
    _ok(comfy, entry)
    report = _report(events)
    steps = _steps(report)
    assert steps and all(1 <= n <= 12 for n in steps), report
    assert [img for out in entry["outputs"].values() for img in out.get("images", [])]


def test_apply_tpm_with_another_sampler_says_it_had_no_effect(comfy, tpms):
    g = _ksampler_graph(tpms["init"], steps=3, prefix="sl_tpdm_euler")
    g["ks"]["inputs"]["sampler_name"] = "euler"
    entry, events = comfy.run_ws(g)
    _ok(comfy, entry)
    report = _report(events)
    assert "had no effect" in report and "'euler'" in report, report


def test_sl_tpdm_img2img_start_below_the_trained_level_warns_and_runs(comfy, tpms):
    entry, events = comfy.run_ws(_ksampler_graph(tpms["init"], steps=12, denoise=0.5, prefix="sl_tpdm_i2i"))
    _ok(comfy, entry)
    assert "below the level this TPM was trained from" in _report(events)


def test_sl_tpdm_without_apply_tpm_names_the_node(comfy):
    entry = comfy.run(_ksampler_graph(None, steps=4, prefix="sl_tpdm_none"))
    assert entry["status"]["status_str"] == "error"
    assert "Apply TPM" in _error(entry)


def test_cancel_stops_a_tpdm_run(comfy, tpms):
    entry, events = comfy.run_ws(_ksampler_graph(tpms["slow"], steps=400, prefix="sl_tpdm_cancel"),
                                 interrupt_at_step=3)
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"]), entry["status"]
    progress = [e[2]["value"] for e in events if e[0] == "json" and e[1] == "progress"]
    assert progress and max(progress) < 100, progress


def _latent(comfy, prefix: str) -> torch.Tensor:
    return G.read_latent(comfy.workdir, prefix)


def test_freeze_a_run_and_load_schedule_reproduces_it_exactly(comfy, tpms):
    entry, events = comfy.run_ws(_adaptive_graph(tpms["busy"], freeze_as="tpdm_frozen", seed=7,
                                                 prefix="sl_tpdm_freeze"))
    _ok(comfy, entry)
    assert "frozen to tpdm_frozen.json" in _report(events)
    assert (comfy.workdir / "schedules" / "tpdm_frozen.json").is_file()
    steps = _steps(_report(events))[0]
    sigmas = {"class_type": "SL_LoadSchedule", "inputs": {"model": "_model", "schedule": "tpdm_frozen.json",
                                                          "steps": 0, "denoise": 1.0}}
    g = G.custom_advanced(sigmas, seed=7, prefix="sl_tpdm_replay")
    g["savelatent"] = {"class_type": "SaveLatent", "inputs": {"samples": ["sca", 0],
                                                              "filename_prefix": "sl_tpdm_replay"}}
    _ok(comfy, comfy.run(g))
    a, b = _latent(comfy, "sl_tpdm_freeze"), _latent(comfy, "sl_tpdm_replay")
    assert steps >= 2 and torch.equal(a, b)


def test_a_tpm_of_another_size_is_refused_naming_the_tpm(comfy, tpms):
    entry = comfy.run(_ksampler_graph(tpms["sd3"], steps=4, prefix="sl_tpdm_wrong"))
    assert entry["status"]["status_str"] == "error"
    message = _error(entry)
    assert message.startswith("tpm:") and "mmdit" in message, message


def test_min_sigma_zero_is_refused_naming_the_input(comfy, tpms):
    entry = comfy.run(_adaptive_graph(tpms["init"], min_sigma=0.0, prefix="sl_tpdm_ms0"))
    assert entry["status"]["status_str"] == "error"
    assert "min_sigma" in _error(entry)


def test_a_pickle_renamed_to_safetensors_is_refused(comfy, tpms):
    torch.save({"time_predictor.fc2.bias": torch.zeros(2)}, comfy.workdir / "tpm" / "sl_pickle.safetensors")
    entry = comfy.run(_ksampler_graph("sl_pickle.safetensors", steps=4, prefix="sl_tpdm_pickle"))
    assert entry["status"]["status_str"] == "error"
    message = _error(entry)
    assert "tpm_name" in message and "safetensors" in message, message
