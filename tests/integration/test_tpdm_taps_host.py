"""TPDM feature taps on ComfyUI's own model classes (no server): a tiny random SD3 MMDiT, Flux and the SD2-shaped UNet
sampled with sl_tpdm through CFGGuider; the captured features against independently recomputed tensors (the
CFG feature oracle of docs/tpdm.md, "Tests"). The work runs in tpdm_mmdit_probe.py under ComfyUI's python."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sl_env import COMFYUI_PATH, COMFYUI_PYTHON

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def probe() -> dict:
    done = subprocess.run([COMFYUI_PYTHON, str(HERE / "tpdm_mmdit_probe.py"), COMFYUI_PATH, str(HERE.parents[1])],
                          cwd=COMFYUI_PATH, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0 and "@@" in done.stdout, done.stderr[-3000:]
    return json.loads(done.stdout.split("@@", 1)[1])


def test_mmdit_h1_is_patch_embed_plus_pos_embed_identical_for_cond_and_uncond(probe):
    assert probe["family"] == "mmdit" and probe["sizes"] == [128, 128, 128]
    assert probe["h1_matches_embed_plus_pos"] == 0.0 and probe["h1_cond_equals_uncond"] is True


def test_mmdit_text_context_length_is_seen_for_the_t5_padding_warning(probe):
    assert probe["context_tokens"] == 8  # the tiny model's 8-token contexts (SD3 in ComfyUI: 77 + 77)


def test_mmdit_h2_is_the_final_adaptive_norm_and_temb_is_c_mod(probe):
    assert probe["h2_matches_final_norm"] < 1e-6
    assert probe["temb_matches_c_mod"] == 0.0


def test_cfg_combination_uses_the_guider_scale_and_cond_or_uncond(probe):
    assert probe["cfg_read"] == 3.5 and sorted(probe["labels"]) == [0, 1]
    assert probe["temb_cond_minus_uncond"] > 0.01  # the conditions differ, so the combination is tested
    assert probe["temb_combination_error"] < 1e-6 and probe["h2_combination_error"] < 1e-5


def test_dit_token_grid_follows_the_latent_and_hooks_do_not_outlive_the_call(probe):
    assert probe["grid"] == [8, 12] and probe["steps"] == 4 and probe["finite"] is True
    assert probe["hooks_left"] == 0 and probe["unet"]["hooks_left"] == 0


def test_unet_taps_are_conv_in_output_final_norm_act_and_time_embed(probe):
    unet = probe["unet"]
    assert unet["family"] == "unet" and unet["sizes"] == [320, 320, 1280]
    assert unet["h1_error"] == 0.0 and unet["h2_error"] == 0.0 and unet["temb_error"] == 0.0


def test_flux_taps_img_in_output_vec_and_final_norm_cond_only_at_cfg_1(probe):
    flux = probe["flux"]
    assert flux["family"] == "flux" and flux["sizes"] == [64, 64, 64] and flux["labels"] == [0]
    assert flux["h1_error"] == 0.0 and flux["temb_error"] == 0.0 and flux["h2_error"] < 1e-6
    assert flux["grid"] == [6, 4] and flux["steps"] == 3 and flux["finite"] and flux["hooks_left"] == 0


@pytest.mark.parametrize("shape", ["batched", "separate"])
def test_older_mmdit_call_shape_takes_the_labels_from_the_model_call(probe, shape):
    """Block patches called without transformer_options (older MMDiT builds): the labels come from the model call the
    APPLY_MODEL wrapper saw, in one batched call ([cond; uncond] rows) and in separate calls alike."""
    run = probe["older_call_shape"][shape]
    assert "error" not in run, run
    if shape == "batched":
        assert run["block_calls_first_step"] == [2] and sorted(run["temb_labels_first_step"][0]) == [0, 1]
    else:
        assert run["block_calls_first_step"] == [1, 1]
        assert sorted(lab for labels in run["temb_labels_first_step"] for lab in labels) == [0, 1]
    assert run["temb_cond_minus_uncond"] > 0.01  # the conditions differ, so the combination is tested
    assert run["temb_combination_error"] < 1e-5 and run["steps"] == 3


def test_a_host_without_cond_or_uncond_is_refused_naming_its_version(probe):
    run = probe["older_call_shape"]["unlabelled"]
    assert "cond_or_uncond" in run.get("error", "") and "0.3.64" in run["error"] and run["steps"] == 0
    assert "this ComfyUI (0.3.64)" in run["error"]  # the host's own version, from comfyui_version
