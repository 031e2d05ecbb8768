"""Few-Step Preset in the real host: for every preset, on a model of a family it was chosen for, the node's SAMPLER +
SIGMAS in SamplerCustomAdvanced give the image KSampler gives with the preset's sampler, scheduler and steps (so the
one choice is exactly the documented pairing); on a family it was not chosen for the run stops with the error naming
the input; the node says which preset it ran and for which family."""
from __future__ import annotations

import numpy as np
import pytest
import sl_graphs as G

from schedule_lab.solvers.presets import PRESETS

#: How a graph makes the tiny checkpoint's MODEL a model of each family (ComfyUI's own ModelSampling* nodes).
FAMILY_NODES = {
    "eps": None,
    "v": {"class_type": "ModelSamplingDiscrete", "inputs": {"sampling": "v_prediction", "zsnr": False}},
    "edm": {"class_type": "ModelSamplingContinuousEDM", "inputs": {"sampling": "edm", "sigma_max": 120.0,
                                                                   "sigma_min": 0.002}},
    "flow": {"class_type": "ModelSamplingSD3", "inputs": {"shift": 3.0}},
}


def _family_graph(family: str) -> dict:
    g = G.base()
    node = FAMILY_NODES[family]
    if node is not None:
        g["family"] = {"class_type": node["class_type"], "inputs": {**node["inputs"], "model": g["_model"]}}
        g["_model"] = ["family", 0]
    return g


def _preset_graph(family: str, preset: str, steps: int = 0, seed: int = 4, prefix: str = "sl_preset") -> dict:
    g = _family_graph(family)
    g["preset"] = {"class_type": "SL_FewStepPreset", "inputs": {"model": g["_model"], "preset": preset,
                                                               "steps": steps, "denoise": 1.0}}
    latent = G.sample_custom_advanced(g, g["_model"], ["preset", 0], ["preset", 1], seed)
    G.save_latent(g, latent, prefix)
    return G.finish(g, latent, prefix)


def _ksampler_graph(family: str, sampler: str, scheduler: str, steps: int, seed: int = 4,
                    prefix: str = "sl_preset_ks") -> dict:
    g = _family_graph(family)
    g["ks"] = {"class_type": "KSampler", "inputs": {
        "model": g["_model"], "seed": seed, "steps": steps, "cfg": 2.0, "sampler_name": sampler,
        "scheduler": scheduler, "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
        "denoise": 1.0}}
    G.save_latent(g, ["ks", 0], prefix)
    return G.finish(g, ["ks", 0], prefix)


def _pixels(comfy, entry):
    from PIL import Image

    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())
    img = entry["outputs"]["save"]["images"][0]
    return np.asarray(Image.open(comfy.workdir / "output" / img["subfolder"] / img["filename"]), dtype=np.int16)


def _error(entry) -> str:
    assert entry["status"]["status_str"] == "error", entry["status"]
    return next(m[1]["exception_message"] for m in entry["status"]["messages"] if m[0] == "execution_error")


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_is_the_ksampler_pairing_on_a_family_it_was_chosen_for(comfy, name):
    preset = PRESETS[name]
    family = preset.families[0]
    node = _pixels(comfy, comfy.run(_preset_graph(family, name, prefix=f"sl_preset_{name}")))
    stock = _pixels(comfy, comfy.run(_ksampler_graph(family, preset.sampler, preset.scheduler, preset.steps,
                                                     prefix=f"sl_preset_ks_{name}")))
    assert np.abs(node - stock).max() <= 1, np.abs(node - stock).max()
    other = _pixels(comfy, comfy.run(_ksampler_graph(family, "euler", "normal", preset.steps,
                                                     prefix=f"sl_preset_euler_{name}")))
    # the oracle on the latents too: the tiny checkpoint's SD3-type runs barely depend on the sampler (its velocity
    # is small), so its decoded images cannot tell two pairings apart, its latents can (the same pairing is bit-equal)
    lat = {k: G.read_latent(comfy.workdir, f"sl_preset{k}_{name}") for k in ("", "_ks", "_euler")}
    same, apart = (lat[""] - lat["_ks"]).abs().max(), (lat[""] - lat["_euler"]).abs().max()
    tol = 1e-6 * float(lat["_ks"].abs().max())
    assert same <= tol, (same, apart)
    assert apart > 100 * tol, "the preset sampled like plain euler: the oracle cannot tell them apart"
    assert np.abs(node - other).max() > 8 or family == "flow", np.abs(node - other).max()


def test_auto_picks_the_preset_of_the_models_family_and_says_so_on_the_node(comfy):
    family = "eps"
    name = next(n for n, p in PRESETS.items() if p.families == (family,))  # the family's own preset wins 'auto'
    assert any(family in p.families and n != name for n, p in PRESETS.items())  # over one chosen across families
    entry, events = comfy.run_ws(_preset_graph(family, "auto", prefix="sl_preset_auto"))
    auto = _pixels(comfy, entry)
    named = _pixels(comfy, comfy.run(_preset_graph(family, name, prefix="sl_preset_named")))
    assert np.abs(auto - named).max() <= 1
    texts = [e for e in events if e[0] == "json" and e[1] == "executed" and e[2].get("node") == "preset"]
    shown = " ".join(str(t[2]["output"]) for t in texts)
    assert f"auto picked {name}" in shown and "ε-prediction" in shown, texts


#: (family, a preset not chosen for it) for every family some preset was not chosen for.
WRONG = [(f, next(n for n, p in PRESETS.items() if f not in p.families)) for f in FAMILY_NODES
         if any(f not in p.families for p in PRESETS.values())]


@pytest.mark.parametrize("family, name", WRONG)
def test_a_preset_on_a_family_it_was_not_chosen_for_stops_with_an_error_naming_the_input(comfy, family, name):
    message = _error(comfy.run(_preset_graph(family, name, prefix=f"sl_preset_wrong_{family}")))
    assert message.startswith(f"preset: {name} was chosen for "), message
    assert "connected model is" in message and PRESETS[name].sampler in message, message
