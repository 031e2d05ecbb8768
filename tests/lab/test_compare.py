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
                 "--columns", "3", "--n-samples", "24", "--seed", "5", "--no-menu", "--out", str(out)]) == 0
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
                    log=logs.append, menu=False)
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
    assert main(["compare", "--preset", "sl_few_steps", "--columns", "1", "--n-samples", "8", "--no-menu", "--out",
                 str(out)]) == 0
    doc = json.loads((out / "table.json").read_text())
    assert doc["steps"] == 5 and [(r["sampler"], r["schedule"]) for r in doc["rows"]] == [
        ("sl_tada", "sl_constant_rate"), ("sl_tada", "karras"), ("dpmpp_2m", "sl_constant_rate"),
        ("dpmpp_2m", "karras")]
    with pytest.raises(SystemExit):
        main(["compare", "--preset", "no_such_preset"])


# -- the flow model and the menu's best pair (docs/menu.md) ----------------------------------------------------------

_HOST_REASON = ("needs ComfyUI's code: eval \"$(../shared/host/comfyui-host.sh)\" sets COMFYUI_PATH / COMFYUI_PYTHON "
                "(under CI the host is prepared first, so this never skips there)")


def test_compare_flow_model_is_the_zoo_flow_unet_sampled_as_sd3_against_euler_simple(tmp_path):
    """--model flow: zoo_flow_768 at ModelKind.flow(3.0), 5 steps by default, FD_patch and sliced W2 like patches,
    ratios to the flow family's stock euler + simple; a grid cell is the catalogue's own run on that model."""
    _need_skimage()
    from PIL import Image

    from schedule_lab.lab.benchmarks.setups import load_model
    from schedule_lab.lab.cli import main
    from schedule_lab.lab.cli.compare import load_bundle
    from schedule_lab.schedules.model_kind import ModelKind

    out = tmp_path / "flow"
    assert main(["compare", "--model", "flow", "--samplers", "euler", "dpmpp_2m", "--schedulers", "simple",
                 "sl_constant_rate", "--columns", "2", "--n-samples", "16", "--seed", "3", "--no-menu",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "table.json").read_text())
    assert doc["model"] == "flow" and doc["steps"] == 5 and doc["stock"] == ["euler", "simple"]
    assert doc["metrics"] == ["fd_patch", "sw2"] and doc["kind"] == ModelKind.flow(3.0).describe()
    rows = {(r["sampler"], r["schedule"]): r for r in doc["rows"]}
    assert rows["euler", "simple"]["sw2_vs_stock"] == 1.0 and rows["euler", "simple"]["fd_patch_vs_stock"] == 1.0
    assert rows["dpmpp_2m", "simple"]["sw2_vs_stock"] == pytest.approx(
        rows["dpmpp_2m", "simple"]["sw2"] / rows["euler", "simple"]["sw2"])
    assert rows["euler", "simple"]["sigmas"][0] == 1.0  # a flow list starts at pure noise
    assert "stock default euler / simple" in (out / "table.md").read_text()
    grid = np.asarray(Image.open(out / "grid.png").convert("RGB"))
    bundle = load_bundle("flow")
    batch = torch.cat([noise(1, 3 + j, 768) for j in range(2)] + [noise(16, 3, 768)])
    x0 = catalogue.run("euler", "simple", load_model("zoo-flow-768"), batch, kind=ModelKind.flow(3.0), steps=5,
                       seed=3).x0[:2]
    want = bundle.to_pixels(x0)
    cell, pad, head = bundle.cell, 4, 20
    label_w = grid.shape[1] - 2 * (cell + pad) - pad
    for j in range(2):
        x = label_w + j * (cell + pad)
        assert np.array_equal(grid[head:head + cell, x:x + cell][::4, ::4], want[j]), j


def test_every_default_sampler_and_schedule_of_compare_runs_on_the_flow_kind(tmp_path):
    """The flow model's defaults (euler, dpmpp_2m and the pack's samplers × simple, karras and the pack's
    self-contained schedules) all run on ModelKind.flow(3.0): nothing is skipped, every list starts at σ = 1."""
    _need_skimage()
    from schedule_lab.lab.cli.compare import compare, default_samplers, default_schedules

    samplers, schedules = default_samplers("flow"), default_schedules("flow")
    assert "simple" in schedules and "ays" not in schedules  # SD1's published list is not a flow schedule
    doc = compare(2, samplers, schedules, seed=0, columns=1, n_samples=4, out=tmp_path, log=lambda *_: None,
                  model="flow", menu=False)
    assert doc["skipped"] == []
    assert len(doc["rows"]) == len(samplers) * len(schedules)
    for r in doc["rows"]:
        assert r["sigmas"][0] == pytest.approx(1.0) and r["sigmas"][-1] == 0.0, (r["sampler"], r["schedule"])
        assert np.isfinite(r["sw2"]) and np.isfinite(r["fd_patch"])


def test_menu_best_reads_the_cached_menu_benchmark_and_says_what_is_missing(tmp_path):
    from schedule_lab.lab.cli.compare import menu_best

    summary = tmp_path / "menu_summary.json"
    summary.write_text(json.dumps({"flow-768/shift3": {"tuning": {
        "4": {"menu_best_E": ["gradient_estimation", "simple", 0.11], "menu_best_FD": ["res_multistep", "simple", 194]},
        "5": {"menu_best_E": ["dpmpp_2m", "simple", 0.1], "menu_best_FD": ["dpmpp_2m", "simple", 200]}}}}))
    four = menu_best("flow", 4, summary_path=summary)
    assert [(p["sampler"], p["schedule"], p["by"]) for p in four["pairs"]] == [
        ("gradient_estimation", "simple", "E"), ("res_multistep", "simple", "FD")]
    assert four["setting"] == "flow-768/shift3" and four["part"] == "tuning" and four["note"] == ""
    five = menu_best("flow", 5, summary_path=summary)
    assert [(p["sampler"], p["by"]) for p in five["pairs"]] == [("dpmpp_2m", "E+FD")]  # one pair, listed once
    seven = menu_best("flow", 7, summary_path=summary)
    assert seven["pairs"] == [] and "NFE 7" in seven["note"] and "NFE 4, 5" in seven["note"]
    assert "menu_bench --setting flow-768/shift3 --part tuning --nfe 7" in seven["note"]
    digits = menu_best("digits", 10, summary_path=summary)
    assert digits["pairs"] == [] and "no menu benchmark for the digits model" in digits["note"]
    sd1 = menu_best("patches", 5, sigma_range="sd1", summary_path=summary)
    assert sd1["pairs"] == [] and "--sigma-range sd1" in sd1["note"]


@pytest.mark.parametrize("model, steps", [("flow", 5), ("patches", 5), ("flow", 4)])
def test_the_menus_best_pair_in_compare_is_the_lowest_error_row_of_the_cached_menu_benchmark(model, steps):
    """The pair compare shows is the cached menu row with the lowest E at NFE = steps (the benchmark's own rows), and
    its plotted list is that row's sigmas."""
    from schedule_lab.lab.cli.compare import MENU_SUMMARY, menu_best

    menu = menu_best(model, steps)
    rows = json.loads((MENU_SUMMARY.parent / "menu_rows" / f"{menu['setting'].replace('/', '_')}__{menu['part']}"
                       f".json").read_text())
    menu_e = {tuple(k.split("|")[2:4]): v for k, v in rows.items()
              if k.startswith("E|menu|") and k.split("|")[4] == str(steps)}
    best = min(menu_e, key=lambda p: menu_e[p]["E"])
    e_pair = next(p for p in menu["pairs"] if "E" in p["by"].split("+"))
    assert (e_pair["sampler"], e_pair["schedule"]) == best
    assert menu["cached_sigmas"][best] == menu_e[best]["sigmas"]


def test_compare_without_the_host_says_the_menu_row_needs_it_and_how(tmp_path, monkeypatch):
    """No COMFYUI_PATH: no menu row is faked; the log, the grid footer's note, table.md and table.json say which pair
    it is and the command that sets the host up."""
    _need_skimage()
    from schedule_lab.lab.cli.compare import compare

    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    logs = []
    doc = compare(5, ["euler"], ["simple"], seed=0, columns=1, n_samples=8, out=tmp_path, log=logs.append,
                  model="flow")
    assert [(r["sampler"], r["schedule"]) for r in doc["rows"]] == [("euler", "simple")]
    assert not any(r.get("menu") for r in doc["rows"])
    note = doc["menu"]["note"]
    assert doc["menu"]["sampled"] is False and doc["menu"]["pairs"]
    pair = doc["menu"]["pairs"][0]
    assert f"{pair['sampler']} + {pair['schedule']}" in note
    assert 'eval "$(../shared/host/comfyui-host.sh)"' in note and "needs the host" in note
    assert f"Menu row: {note}" in (tmp_path / "table.md").read_text()
    assert any(line.strip() == f"NOTE: {note}" for line in logs)


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH") and not os.environ.get("CI"), reason=_HOST_REASON)
def test_compare_samples_the_menus_best_pair_with_comfyuis_own_code(tmp_path):
    """With the host, the menu's best pair at 5 steps on the flow model (dpmpp_2m + simple in the cached benchmark)
    is sampled by ComfyUI's own dpmpp_2m on ComfyUI's own simple list: the same images as the pack's DPM++(2M) on
    the pack's simple list (both follow k-diffusion), a row of the grid and the table with its ratio columns."""
    _need_skimage()
    from PIL import Image

    from schedule_lab.lab.cli.compare import compare, menu_best

    pair = next(p for p in menu_best("flow", 5)["pairs"] if "E" in p["by"])
    assert (pair["sampler"], pair["schedule"]) == ("dpmpp_2m", "simple")  # the oracle below needs this pair
    doc = compare(5, ["euler", "dpmpp_2m"], ["simple"], seed=1, columns=2, n_samples=16, out=tmp_path,
                  log=lambda *_: None, model="flow")
    assert doc["menu"]["sampled"] is True and doc["menu"]["note"] == ""
    menu = [r for r in doc["rows"] if r.get("menu")]
    assert len(menu) == 1 and menu[0]["source"].startswith("ComfyUI menu's best by E")
    ours = next(r for r in doc["rows"] if (r["sampler"], r["schedule"]) == ("dpmpp_2m", "simple")
                and not r.get("menu"))
    assert menu[0]["nfe"] == 5 and menu[0]["steps"] == 5
    assert menu[0]["sigmas"] == pytest.approx(ours["sigmas"], abs=1e-5)
    assert menu[0]["sw2"] == pytest.approx(ours["sw2"], rel=1e-3)
    assert menu[0]["fd_patch"] == pytest.approx(ours["fd_patch"], rel=1e-3)
    assert menu[0]["sw2_vs_menu"] == 1.0
    euler = next(r for r in doc["rows"] if r["sampler"] == "euler")
    assert euler["sw2_vs_menu"] == pytest.approx(euler["sw2"] / menu[0]["sw2"])
    md = (tmp_path / "table.md").read_text()
    assert "| ComfyUI menu's best by E" in md and "÷ menu best" in md
    grid = Image.open(tmp_path / "grid.png")
    assert grid.height >= 20 + 3 * (64 + 4)  # three rows: euler, dpmpp_2m, the menu's pair


@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH") and not os.environ.get("CI"), reason=_HOST_REASON)
def test_a_preset_naming_a_comfyui_sampler_runs_it_from_comfyuis_code_on_the_packs_list(tmp_path, monkeypatch):
    """--preset whose sampler is ComfyUI's (ipndm, gradient_estimation, ... as per-family presets name them) on an
    sl_ schedule: the row is ComfyUI's sampler on the catalogue's list. Oracle: ComfyUI's euler on the pack's
    sl_constant_rate list gives the pack's euler row on it."""
    _need_skimage()
    from schedule_lab.lab.cli import main
    from schedule_lab.lab.cli.compare import compare
    from schedule_lab.schedules.catalogue import schedule_sigmas
    from schedule_lab.schedules.model_kind import ModelKind
    from schedule_lab.solvers.presets import PRESETS, Preset

    doc = compare(5, ["euler"], ["sl_constant_rate"], seed=2, columns=1, n_samples=12, out=tmp_path / "a",
                  log=lambda *_: None, model="flow", menu=False,
                  comfy_pairs=[("euler", "sl_constant_rate", "check"), ("ipndm", "sl_constant_rate", "preset t")])
    assert doc["skipped"] == []
    ours, comfy_euler, ipndm = doc["rows"]
    assert comfy_euler["source"] == "ComfyUI's euler (check)" and ipndm["source"] == "ComfyUI's ipndm (preset t)"
    want = schedule_sigmas("sl_constant_rate", ModelKind.flow(3.0), 5)
    for r in (comfy_euler, ipndm):
        assert r["sigmas"] == pytest.approx(want.tolist(), abs=1e-6) and r["nfe"] == 5 and r["steps"] == 5
    assert comfy_euler["sw2"] == pytest.approx(ours["sw2"], rel=1e-4)
    assert comfy_euler["fd_patch"] == pytest.approx(ours["fd_patch"], rel=1e-3)
    assert ipndm["sw2"] != pytest.approx(ours["sw2"], rel=1e-3)  # another sampler on the same list

    monkeypatch.setitem(PRESETS, "flow_t", Preset("ipndm", "sl_constant_rate", 4, "t", "cmd", families=("flow",)))
    out = tmp_path / "cli"
    assert main(["compare", "--model", "flow", "--preset", "flow_t", "--columns", "1", "--n-samples", "8",
                 "--no-menu", "--out", str(out)]) == 0
    cli = json.loads((out / "table.json").read_text())
    assert cli["steps"] == 4 and [(r["sampler"], r["schedule"], r["source"]) for r in cli["rows"]] == [
        ("euler", "simple", "ours"), ("ipndm", "sl_constant_rate", "ComfyUI's ipndm (preset flow_t)")]


def test_a_preset_naming_a_comfyui_sampler_without_the_host_is_listed_as_needing_it(tmp_path, monkeypatch):
    _need_skimage()
    from schedule_lab.lab.cli import main
    from schedule_lab.solvers.presets import PRESETS, Preset

    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.setitem(PRESETS, "flow_t", Preset("ipndm", "sl_constant_rate", 4, "t", "cmd", families=("flow",)))
    out = tmp_path / "cli"
    assert main(["compare", "--model", "flow", "--preset", "flow_t", "--columns", "1", "--n-samples", "8",
                 "--no-menu", "--out", str(out)]) == 0
    doc = json.loads((out / "table.json").read_text())
    assert [(r["sampler"], r["schedule"]) for r in doc["rows"]] == [("euler", "simple")]
    assert doc["skipped"] == ["preset flow_t (ipndm + sl_constant_rate): runs ComfyUI's own sampler and needs the "
                              "host: eval \"$(../shared/host/comfyui-host.sh)\", then rerun"]
