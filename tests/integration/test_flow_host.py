"""SD3 and Flux in the real host: every `sl_` scheduler entry and every `sl_` sampler gives a finite
latent through each family's sampling graph on the tiny checkpoint, and the pack reads ModelSamplingFlux's mu for
both image shapes (its lists inside ComfyUI equal ``ModelKind.flux(mu)``'s, ``simple`` equals ComfyUI's own).

* SD3: ModelSamplingSD3 (shift 3) → the stock KSampler.
* Flux: ModelSamplingFlux (width, height) → BasicScheduler + KSamplerSelect + BasicGuider + SamplerCustomAdvanced.
"""
from __future__ import annotations

import pytest
import sl_graphs as G
import torch

from schedule_lab.nodes.registry import DROPDOWN_SAMPLERS, DROPDOWN_SCHEDULERS
from schedule_lab.schedules.catalogue import schedule_sigmas
from schedule_lab.schedules.model_kind import ModelKind

FLUX_SHAPES = [(1024, 1024), (512, 768)]
STEPS = 4


def _ok(comfy, entry):
    assert entry["status"]["status_str"] == "success", (entry["status"], comfy.log_tail())


def _assert_finite(comfy, prefix):
    latent = G.read_latent(comfy.workdir, prefix)
    assert torch.isfinite(latent).all(), prefix
    assert float(latent.std()) > 0, prefix


@pytest.fixture(scope="module")
def prepared(comfy):
    """What two entries need first, on each family's model: a saved search (sl_searched) and a TPM (sl_tpdm)."""
    folder = comfy.workdir / "tpm"
    tpm = G.write_tpm(folder / "sl_flow_busy.safetensors", bias=(1.0, 1.0), gain=400.0, seed=3)
    for family, extra in (("sd3", {"flow_shift": 3.0}), ("flux", {"flux": FLUX_SHAPES[0]})):
        g = G.base(**extra)
        g["guider"] = {"class_type": "CFGGuider", "inputs": {"model": g["_model"], "positive": ["pos", 0],
                                                             "negative": ["neg", 0], "cfg": 2.0}}
        g["sampler"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
        g["search"] = {"class_type": "SL_TimestepSearch", "inputs": {
            "guider": ["guider", 0], "latent_image": ["latent", 0], "sampler": ["sampler", 0], "nfe": STEPS,
            "population": 4, "generations": 1, "reference_steps": 8, "samples": 2, "holdout": 2,
            "fitness": "endpoint", "seed": 0, "filename": f"sl_flow_search_{family}", "resume": True}}
        g["info"] = {"class_type": "SL_ScheduleInfo", "inputs": {"sigmas": ["search", 0]}}
        g.pop("_model")
        _ok(comfy, comfy.run(g, timeout=600))
    return {"tpm": tpm}


def _model_with_extras(g: dict, scheduler: str, sampler: str, tpm: str) -> list:
    """The MODEL link for an entry: Apply TPM for sl_tpdm, the Constant-Rate Scheduler's calibrated MODEL for the
    calibrated sl_constant_rate row, else the family's model."""
    model = g.pop("_model")
    if sampler == "sl_tpdm":
        g["loadtpm"] = {"class_type": "SL_LoadTPM", "inputs": {"tpm_name": tpm}}
        g["apply"] = {"class_type": "SL_ApplyTPM", "inputs": {"model": model, "tpm": ["loadtpm", 0],
                                                              "freeze_as": ""}}
        model = ["apply", 0]
    if scheduler == "sl_constant_rate(calibrated)":
        g["guider0"] = {"class_type": "CFGGuider", "inputs": {"model": model, "positive": ["pos", 0],
                                                              "negative": ["neg", 0], "cfg": 2.0}}
        g["crs"] = {"class_type": "SL_ConstantRateScheduler", "inputs": {
            "guider": ["guider0", 0], "latent_image": ["latent", 0], "steps": STEPS, "denoise": 1.0, "xi": 1.5,
            "measure": "vx+cos", "samples": 4, "points": 8, "seed": 0}}
        model = ["crs", 2]
    return model


ROWS = ([(s, "euler") for s in DROPDOWN_SCHEDULERS] + [("sl_constant_rate(calibrated)", "euler")]
        + [("simple", s) for s in DROPDOWN_SAMPLERS] + [("sl_constant_rate", "dpmpp_2m"), ("sl_ays_sdxl", "sl_tada")])


@pytest.mark.parametrize("scheduler,sampler", ROWS)
def test_every_sl_entry_gives_a_finite_latent_on_sd3_through_ksampler(comfy, prepared, scheduler, sampler):
    prefix = f"sl_sd3_{scheduler}_{sampler}".replace("(", "_").replace(")", "")
    g = G.base(flow_shift=3.0)
    model = _model_with_extras(g, scheduler, sampler, prepared["tpm"])
    g["ks"] = {"class_type": "KSampler", "inputs": {
        "model": model, "seed": 1, "steps": STEPS, "cfg": 2.0, "sampler_name": sampler,
        "scheduler": scheduler.split("(")[0], "positive": ["pos", 0], "negative": ["neg", 0],
        "latent_image": ["latent", 0], "denoise": 1.0}}
    G.save_latent(g, ["ks", 0], prefix)
    _ok(comfy, comfy.run(G.finish(g, ["ks", 0], prefix), timeout=300))
    _assert_finite(comfy, prefix)


@pytest.mark.parametrize("scheduler,sampler", ROWS)
def test_every_sl_entry_gives_a_finite_latent_on_flux_through_sampler_custom_advanced(comfy, prepared, scheduler,
                                                                                      sampler):
    prefix = f"sl_flux_{scheduler}_{sampler}".replace("(", "_").replace(")", "")
    g = G.base(flux=FLUX_SHAPES[0])
    model = _model_with_extras(g, scheduler, sampler, prepared["tpm"])
    g["sigmas"] = {"class_type": "BasicScheduler", "inputs": {"model": model, "scheduler": scheduler.split("(")[0],
                                                              "steps": STEPS, "denoise": 1.0}}
    g["sampler"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler}}
    g["guider"] = {"class_type": "BasicGuider", "inputs": {"model": model, "conditioning": ["pos", 0]}}
    g["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}}
    g["sca"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["noise", 0], "guider": ["guider", 0], "sampler": ["sampler", 0], "sigmas": ["sigmas", 0],
        "latent_image": ["latent", 0]}}
    G.save_latent(g, ["sca", 0], prefix)
    _ok(comfy, comfy.run(G.finish(g, ["sca", 0], prefix), timeout=300))
    _assert_finite(comfy, prefix)


def _sigmas(comfy, scheduler: str, steps: int, **family) -> list[float]:
    g = G.base(**family)
    g["s"] = {"class_type": "BasicScheduler", "inputs": {"model": g.pop("_model"), "scheduler": scheduler,
                                                         "steps": steps, "denoise": 1.0}}
    g["info"] = {"class_type": "SL_ScheduleInfo", "inputs": {"sigmas": ["s", 0]}}
    for unused in ("pos", "neg", "latent"):
        g.pop(unused)
    entry = comfy.run(g)
    _ok(comfy, entry)
    return entry["outputs"]["info"]["schedule_lab_sigmas"][0]["sigmas"]


@pytest.mark.parametrize("shape", FLUX_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_pack_reads_flux_mu_from_the_image_size(comfy, shape):
    kind = ModelKind.flux(G.flux_mu(*shape))
    for steps in (5, 8):
        # ComfyUI's own simple on ModelSamplingFlux equals the pack's simple on the kind (its 10000-entry table)
        stock = _sigmas(comfy, "simple", steps, flux=shape)
        ours = schedule_sigmas("simple", kind, steps)
        torch.testing.assert_close(torch.tensor(stock), ours, rtol=1e-5, atol=1e-6)
        for name in ("sl_constant_rate", "sl_ays_sd1", "sl_ays_sdxl"):
            got = torch.tensor(_sigmas(comfy, name, steps, flux=shape))
            torch.testing.assert_close(got, schedule_sigmas(name, kind, steps), rtol=1e-5, atol=1e-6)
            assert float(got[0]) == pytest.approx(1.0) and float(got[-1]) == 0.0


def test_sd3_lists_in_the_host_follow_the_shift(comfy):
    for name in ("sl_constant_rate", "sl_ays_sd1", "sl_ays_sdxl"):
        one = torch.tensor(_sigmas(comfy, name, 5, flow_shift=1.0), dtype=torch.float64)
        three = torch.tensor(_sigmas(comfy, name, 5, flow_shift=3.0), dtype=torch.float64)
        assert float(three[0]) == pytest.approx(1.0)
        torch.testing.assert_close(three, 3 * one / (1 + 2 * one), rtol=1e-5, atol=1e-6)
