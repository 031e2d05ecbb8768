"""A workflow that names a model file the user does not have: the pack's loaders say which file to put where,
before anything runs (their validation replaces ComfyUI's "Value not in list" for these inputs)."""
from __future__ import annotations

import json

import pytest
from sl_graphs import base, finish, sample_custom_advanced


def _graph(loader: dict) -> dict:
    """A SamplerCustomAdvanced graph whose SIGMAS (or model) come from the loader under test."""
    g = base()
    g.update(loader)
    g["sel"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    model = ["apply", 0] if "apply" in g else ["ckpt", 0]
    sigmas = ["sigmas", 0] if "sigmas" in g else ["basic", 0]
    g["basic"] = {"class_type": "BasicScheduler", "inputs": {"model": ["ckpt", 0], "scheduler": "karras", "steps": 2,
                                                             "denoise": 1.0}}
    return finish(g, sample_custom_advanced(g, model, ["sel", 0], sigmas, seed=1), "sl_missing")


CASES = {
    "SL_LoadTPM": ({"tpm": {"class_type": "SL_LoadTPM", "inputs": {"tpm_name": "tpm_sd3_medium.safetensors"}},
                    "apply": {"class_type": "SL_ApplyTPM", "inputs": {"model": ["ckpt", 0], "tpm": ["tpm", 0],
                                                                      "freeze_as": ""}}},
                   "tpm", "tpm_sd3_medium.safetensors", "schedule-lab tpdm train"),
    "SL_LoadSchedule": ({"sigmas": {"class_type": "SL_LoadSchedule", "inputs": {
        "model": ["ckpt", 0], "schedule": "my_missing_schedule.json", "steps": 0, "denoise": 1.0}}},
        "schedules", "my_missing_schedule.json", "Save Schedule"),
    "SL_SearchedSteps": ({"sigmas": {"class_type": "SL_SearchedSteps", "inputs": {
        "model": ["ckpt", 0], "schedule": "searched_missing_4.json", "steps": 0, "denoise": 1.0}}},
        "schedules", "searched_missing_4.json", "Timestep Search"),
}


@pytest.mark.parametrize("node_type", sorted(CASES))
def test_a_missing_file_is_refused_before_the_run_naming_the_folder_and_the_file(comfy, node_type):
    loader, folder, name, how = CASES[node_type]
    status, body = comfy.post("/prompt", {"prompt": _graph(loader)})
    assert status == 400, body
    errors = [e for node in body["node_errors"].values() for e in node["errors"]]
    text = json.dumps(errors)
    assert "Value not in list" not in text
    (error,) = [e for e in errors if e["type"] == "custom_validation_failed"]
    details = error["details"]
    assert "put the" in details and f"ComfyUI/models/{folder}/{name}" in details, details
    assert str(comfy.workdir / folder / name) in details, details  # the folder this server reads (extra paths)
    assert how in details
    node_id = next(k for k, v in body["node_errors"].items() if v["errors"][0] is not None)
    assert body["node_errors"][node_id]["class_type"] == node_type
