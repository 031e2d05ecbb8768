"""docs/menu.md §5's rule (lab/benchmarks/menu_rule.py) on hand-made cells, and the presets it wrote."""
import json

import pytest

from schedule_lab.lab.benchmarks import menu_bench as mb
from schedule_lab.lab.benchmarks import menu_rule as mr


def test_the_candidates_are_every_menu_and_pack_sampler_on_every_pack_schedule():
    cands = mr.candidates()
    assert len(cands) == 12 * 2 == len(set(cands))
    assert {a for a, _ in cands} == set(mb.MENU_SAMPLERS) | {"sl_tada"}
    # the deprecated AYS entries stay in the tables, never among the rule's candidates (docs/defaults.md §15)
    assert {sc for _, sc in cands} == {"sl_constant_rate", "calibrated"}
    assert mb.DEPRECATED == ("sl_ays_sd1", "sl_ays_sdxl")


def test_never_lose_allows_the_paired_seed_noise_and_no_more():
    stock = {"E": 0.10, "E_halves": [0.10, 0.10]}
    assert mr.never_lose(0.1019, [0.1019, 0.1019], stock)[0]  # within the 2 % floor
    ok, r, s = mr.never_lose(0.103, [0.103, 0.103], stock)
    assert not ok and r == pytest.approx(1.03) and s == 0.02
    # halves that disagree widen the noise: r1 = 1.00, r2 = 1.08 -> s = 0.04
    ok, r, s = mr.never_lose(0.104, [0.100, 0.108], stock)
    assert ok and s == pytest.approx(0.04)


def _cell(best_e, rows, stock_e=0.2):
    return {"best": (("ipndm", "simple"), {"E": best_e}), "stock": {"E": stock_e, "E_halves": [stock_e, stock_e]},
            "rows": {p: (e, [e, e]) for p, e in rows.items()}}


def test_the_score_is_the_worst_ratio_to_the_menus_best_over_the_cells_and_needs_every_cell():
    a, b = ("ipndm", "sl_ays_sd1"), ("euler", "sl_constant_rate")
    cells = {("s1", 4): _cell(0.1, {a: 0.09, b: 0.2}), ("s1", 5): _cell(0.05, {a: 0.06})}
    assert mr.score(cells, a) == pytest.approx(1.2)
    assert mr.score(cells, b) is None  # missing at NFE 5


def test_the_tie_rule_prefers_data_free_then_comfyuis_samplers_then_the_menu_order():
    pairs = [("sl_tada", "sl_ays_sd1"), ("ipndm", "calibrated"), ("deis", "sl_ays_sdxl"), ("heun", "sl_ays_sdxl"),
             ("heun", "sl_constant_rate")]
    assert sorted(pairs, key=mr._tie_key) == [("heun", "sl_constant_rate"), ("heun", "sl_ays_sdxl"),
                                              ("deis", "sl_ays_sdxl"), ("sl_tada", "sl_ays_sd1"),
                                              ("ipndm", "calibrated")]


def test_the_presets_are_the_rules_choices_and_name_their_family():
    """Each per-family preset in solvers/presets.py is the pair results/menu_rule.json chose for that family."""
    from schedule_lab.solvers.presets import PRESETS

    path = mb.RESULTS / "menu_rule.json"
    chosen = json.loads(path.read_text())["families"]
    named = [f for f, r in chosen.items() if r.get("preset")]
    for fam, r in chosen.items():  # a calibrated choice is not a preset (a Preset cannot carry the calibration)
        if r.get("calibrated"):
            assert r["preset"] is None and r["not_shipped"] and mr.PRESET_NAMES[fam] not in PRESETS
    for fam in named:
        r = chosen[fam]
        preset = PRESETS[r["preset"]]
        assert (preset.sampler, preset.scheduler) == (r["sampler"], r["scheduler"])
        assert preset.families == (fam,) and "menu_rule" in preset.source
        assert preset.sampler in (*mb.MENU_SAMPLERS, *mb.PACK_SAMPLERS)
    assert PRESETS["sl_few_steps"].entry_line() == "sl_tada, sl_constant_rate, 5"  # saved in workflows: unchanged


@pytest.mark.skipif(not __import__("os").environ.get("COMFYUI_PATH") and not __import__("os").environ.get("CI"),
                    reason="needs ComfyUI's code: eval \"$(../shared/host/comfyui-host.sh)\" sets COMFYUI_PATH / "
                    "COMFYUI_PYTHON")
def test_every_preset_is_a_pair_the_stock_ksampler_offers():
    """A preset is what to pick in the stock KSampler: its sampler is in ComfyUI's KSampler.SAMPLERS (read from the
    host's code) or one the pack registers there; its scheduler in KSampler.SCHEDULERS or the pack's."""
    import os
    import subprocess
    import sys

    from schedule_lab.nodes.registry import DROPDOWN_SAMPLERS, DROPDOWN_SCHEDULERS
    from schedule_lab.solvers.presets import PRESETS

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import comfy.cli_args; comfy.cli_args.args.cpu = True; "
            "import comfy.samplers as s; print(json.dumps([list(s.KSampler.SAMPLERS), list(s.KSampler.SCHEDULERS)]))")
    out = subprocess.run([os.environ.get("COMFYUI_PYTHON", sys.executable), "-c", code, os.environ["COMFYUI_PATH"]],
                         capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    samplers, schedulers = json.loads(out.stdout.strip().splitlines()[-1])
    assert "gradient_estimation" in samplers and "sl_tada" not in samplers  # the host's own list, unpatched
    for name, preset in PRESETS.items():
        assert preset.sampler in samplers or preset.sampler in DROPDOWN_SAMPLERS, name
        assert preset.scheduler in schedulers or preset.scheduler in DROPDOWN_SCHEDULERS, name
