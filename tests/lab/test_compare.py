"""``schedule-lab compare``, the README's first command: the natural-image UNet at 5 steps by default, the digits model
by option; every cell one catalogue run, the grid the cells themselves (same seed per column), skipped rows said."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from schedule_lab.lab.benchmarks.setups import noise
from schedule_lab.solvers import catalogue


def _need_skimage():
    """The natural-image patches come from scikit-image's photographs (the ``lab`` extra, installed by the README
    and CI). Under CI a missing scikit-image is a failure, not a skip."""
    if os.environ.get("CI"):
        import skimage  # noqa: F401
    else:
        pytest.importorskip("skimage")


def test_compare_cli_runs_the_natural_image_unet_at_5_steps_by_default_with_a_legible_grid(tmp_path):
    _need_skimage()
    from PIL import Image

    from schedule_lab.lab.cli import main
    from schedule_lab.lab.cli.compare import load_bundle, model_kind
    from schedule_lab.lab.testbeds.unet import load_patch_unet

    out = tmp_path / "cmp"
    assert main(["compare", "--samplers", "euler", "dpmpp_2m", "--schedulers", "karras", "sl_constant_rate",
                 "--columns", "3", "--n-samples", "24", "--seed", "5", "--out", str(out)]) == 0
    doc = json.loads((out / "table.json").read_text())
    assert doc["model"] == "patches" and doc["steps"] == 5 and doc["metrics"] == ["fd_patch", "sw2"]
    assert [(r["sampler"], r["schedule"], r["nfe"]) for r in doc["rows"]] == [
        ("euler", "karras", 5), ("euler", "sl_constant_rate", 5), ("dpmpp_2m", "karras", 5),
        ("dpmpp_2m", "sl_constant_rate", 5)]
    stock = doc["rows"][2]
    assert stock["fd_patch_vs_stock"] == 1.0 and stock["sw2_vs_stock"] == 1.0
    for r in doc["rows"]:
        assert r["fd_patch"] > 0 and r["sw2"] > 0 and r["wall_s"] > 0
        assert r["sw2_vs_stock"] == pytest.approx(r["sw2"] / stock["sw2"])
    md = (out / "table.md").read_text()
    assert "FD_patch" in md and "sliced W2" in md and md.count("\n| ") == 1 + 4

    # the grid: row i, column j is the 16×16 sample of seed 5 + j, upscaled 4× nearest-neighbour, exactly the
    # catalogue's run on the batch compare makes (grid noises first, then the metric noises)
    grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))
    bundle, unet = load_bundle("patches"), load_patch_unet()
    kind = model_kind("model", unet.sigma_data)
    batch = torch.cat([noise(1, 5 + j, 768) for j in range(3)] + [noise(24, 5, 768)])
    cell, pad, head = bundle.cell, 4, 20
    label_w = grid.shape[1] - 3 * (cell + pad) - pad
    tiles = {}
    for i, (sampler, schedule) in enumerate([("euler", "karras"), ("dpmpp_2m", "sl_constant_rate")]):
        row = 0 if i == 0 else 3
        x0 = catalogue.run(sampler, schedule, unet, batch, kind=kind, steps=5, seed=5).x0[:3]
        want = bundle.to_pixels(x0)
        for j in range(3):
            y, x = head + row * (cell + pad), label_w + j * (cell + pad)
            tile = grid[y:y + cell, x:x + cell]
            assert np.array_equal(tile[::4, ::4], want[j]), (sampler, schedule, j)
            assert np.array_equal(tile, np.repeat(np.repeat(want[j], 4, 0), 4, 1))  # nearest-neighbour
            tiles[i, j] = tile
    assert not np.array_equal(tiles[0, 0], tiles[0, 1])  # columns are different seeds
    assert not np.array_equal(tiles[0, 0], tiles[1, 0])  # rows are different methods on the same seed


def test_compare_lists_sl_tpdm_as_skipped_with_the_reason_when_the_model_has_no_tpm(tmp_path, monkeypatch):
    _need_skimage()
    from schedule_lab.lab.cli import compare as C

    monkeypatch.setattr(C, "bundled_tpm",
                        lambda model, name, kind=None: ({}, f"no TPM for this model ({name} is missing)"))
    logs = []
    doc = C.compare(2, ["sl_tpdm", "euler"], ["karras"], seed=0, columns=1, n_samples=8, out=tmp_path,
                    log=logs.append)
    assert [(r["sampler"], r["schedule"]) for r in doc["rows"]] == [("euler", "karras")]
    assert doc["skipped"] == ["sl_tpdm (every schedule): no TPM for this model (tpm_patch_unet is missing)"]
    assert "Skipped sl_tpdm (every schedule): no TPM" in (tmp_path / "table.md").read_text()
    assert any("SKIPPED" in line and "tpm_patch_unet" in line for line in logs)


def test_bundled_tpm_says_why_not_when_the_file_is_missing():
    from schedule_lab.lab.cli.compare import bundled_tpm
    from schedule_lab.lab.testbeds.models import load_edm_mlp

    provided, why = bundled_tpm(load_edm_mlp(), "no_such_tpm_file")
    assert provided == {} and "no_such_tpm_file.safetensors is missing" in why and "--model digits" in why
    provided, why = bundled_tpm(load_edm_mlp(), "tpm_edm_digits")
    assert why == "" and "tpdm" in provided


def test_bundled_tpm_is_used_only_on_the_sigma_range_it_was_trained_on():
    """A TPM's policy was trained on one σ range (its .json record): the digits TPM on SD1's 14.61 → 0.0292, the
    patch UNet's on 80 → 0.002. On the other range compare skips sl_tpdm and names the flag that fits."""
    from schedule_lab.lab.cli.compare import bundled_tpm, model_kind, trained_range
    from schedule_lab.lab.testbeds.models import load_edm_mlp
    from schedule_lab.lab.testbeds.unet import load_patch_unet

    sd1, edm = model_kind("sd1", 0.5), model_kind("model", 0.5)
    assert trained_range("tpm_edm_digits") == pytest.approx((sd1.sigma_max, sd1.sigma_min), rel=1e-6)
    assert trained_range("tpm_patch_unet") == pytest.approx((80.0, 0.002))
    assert "tpdm" in bundled_tpm(load_edm_mlp(), "tpm_edm_digits", sd1)[0]
    provided, why = bundled_tpm(load_edm_mlp(), "tpm_edm_digits", edm)
    assert provided == {} and "trained on σ 14.61 → 0.02917" in why and "--sigma-range sd1" in why
    assert "tpdm" in bundled_tpm(load_patch_unet(), "tpm_patch_unet", edm)[0]
    provided, why = bundled_tpm(load_patch_unet(), "tpm_patch_unet", sd1)
    assert provided == {} and "trained on σ 80 → 0.002" in why and "--sigma-range model" in why


def test_compare_digits_option_writes_grid_plot_and_a_table_row_per_combination(tmp_path):
    from schedule_lab.lab.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "--model", "digits", "--steps", "2", "--samplers", "euler", "heun", "--schedulers",
                 "karras", "ays", "--columns", "2", "--n-samples", "16", "--out", str(out)]) == 0
    for png in ("grid.png", "schedules.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((out / "table.json").read_text())
    assert table["model"] == "digits" and table["metrics"] == ["fd_cls", "swd"]
    assert [(r["sampler"], r["schedule"]) for r in table["rows"]] == [
        ("euler", "karras"), ("euler", "ays"), ("heun", "karras"), ("heun", "ays")]
    assert (out / "table.md").read_text().count("\n| ") == 1 + 4  # header + one line per combination


def test_compare_digits_default_steps_stay_10_and_patches_5():
    from schedule_lab.lab.cli.compare import default_steps

    assert default_steps("patches") == 5 and default_steps("digits") == 10


def test_compare_runs_sl_tpdm_to_its_own_stopping_rule_and_reports_the_nfe_it_used(tmp_path):
    """The main job shows TPDM on the model and σ range its bundled TPM was trained for (the digits TPM: SD1's
    0.0292–14.61): no SKIPPED row; each image stops on its own within the TPM's own cap (its record's max_steps, 35),
    not the grid's step count (5 here); the row reports the mean steps the images took (the catalogue's run of
    sl_tpdm with that TPM, tap and cap gives the same per-image step counts), in the table and the grid's label."""
    from schedule_lab.lab.cli.compare import adaptive_cap, bundled_tpm, compare, model_kind
    from schedule_lab.lab.testbeds.models import load_edm_mlp, read_sidecar

    cap = adaptive_cap("tpm_edm_digits")
    assert cap == read_sidecar("tpm_edm_digits")["sampler"]["max_steps"] == 35
    doc = compare(5, ["sl_tpdm"], ["karras"], seed=3, columns=2, n_samples=16, out=tmp_path, log=lambda *_: None,
                  model="digits", sigma_range="sd1")
    assert doc["skipped"] == [] and [(r["sampler"], r["schedule"]) for r in doc["rows"]] == [("sl_tpdm", "karras")]
    row = doc["rows"][0]
    model = load_edm_mlp()
    kind = model_kind("sd1", model.sigma_data)  # the range the digits TPM was trained on
    batch = torch.cat([noise(1, 3), noise(1, 4), noise(16, 3)])
    res = catalogue.run(f"sl_tpdm(min_sigma={kind.sigma_min}, max_steps={cap})", "karras", model, batch, kind=kind,
                        steps=5, seed=3, provided=bundled_tpm(model)[0])
    used = [len(s) - 1 for s in res.schedules[2:]]
    assert all(1 <= n <= cap for n in used) and len(set(used)) > 1  # images stop on their own
    assert row["adaptive"] and row["nfe"] == pytest.approx(sum(used) / len(used), abs=0.01)
    assert row["nfe_max"] == res.nfe and row["cap"] == cap and row["steps"] == f"cap {cap}"
    assert max(used) > 5, "capped at the grid's step count"
    shown = f"{row['nfe']:.1f} (≤{res.nfe}, cap {cap})"
    assert f"| {shown} |" in (tmp_path / "table.md").read_text()


def test_compare_defaults_include_every_registered_sampler_and_scheduler():
    from schedule_lab.lab.cli.compare import default_samplers, default_schedules
    from schedule_lab.nodes.registry import DROPDOWN_SAMPLERS, DROPDOWN_SCHEDULERS
    from schedule_lab.schedules.catalogue import SCHEDULES

    assert set(DROPDOWN_SAMPLERS) | {"euler", "dpmpp_2m"} <= set(default_samplers())
    # sl_searched needs the user's saved searches
    fixed = {n for n in DROPDOWN_SCHEDULERS if SCHEDULES[n].self_contained}
    assert fixed | {"karras", "ays"} <= set(default_schedules())


def test_compare_cli_rejects_an_unknown_name_listing_the_valid_ones(capsys):
    from schedule_lab.lab.cli import main

    with pytest.raises(SystemExit):
        main(["compare", "--samplers", "no_such_sampler"])
    err = capsys.readouterr().err
    assert "no_such_sampler" in err and "dpmpp_2m" in err
    with pytest.raises(SystemExit):
        main(["compare", "--model", "no_such_model"])
    assert "patches" in capsys.readouterr().err


def test_compare_preset_runs_the_pair_beside_the_stock_default_at_its_steps(tmp_path):
    _need_skimage()
    from schedule_lab.lab.cli import main

    out = tmp_path / "preset"
    assert main(["compare", "--preset", "sl_few_steps", "--columns", "1", "--n-samples", "8", "--out", str(out)]) == 0
    doc = json.loads((out / "table.json").read_text())
    assert doc["steps"] == 5 and [(r["sampler"], r["schedule"]) for r in doc["rows"]] == [
        ("sl_tada", "sl_constant_rate"), ("sl_tada", "karras"), ("dpmpp_2m", "sl_constant_rate"),
        ("dpmpp_2m", "karras")]
    with pytest.raises(SystemExit):
        main(["compare", "--preset", "no_such_preset"])


def test_compare_preset_with_one_of_comfyuis_own_samplers_says_where_to_pick_it(monkeypatch, capsys):
    """A per-family preset may pair a ComfyUI sampler the standalone compare cannot run: a clear error naming the
    pair to pick in the stock KSampler, before any work."""
    from schedule_lab.lab.cli import main
    from schedule_lab.solvers import presets

    fake = presets.Preset("gradient_estimation", "sl_ays_sd1", 5, "test", "test", ("flow",))
    monkeypatch.setitem(presets.PRESETS, "sl_test_menu_pair", fake)
    with pytest.raises(SystemExit):
        main(["compare", "--preset", "sl_test_menu_pair"])
    err = capsys.readouterr().err
    assert "gradient_estimation + sl_ays_sd1 in the stock KSampler" in err
