"""The guard on held-out learned models (lab/benchmarks/guard_learned.py; docs/defaults.md §9), in the unit stage.

Cached rows (results/guard_rows/) hold, per bundled learned model, the family's stock default (from ComfyUI's code)
and every shipped default at NFE 4-30 on held-out noise sets. These tests fail when
* a shipped default loses beyond seed noise to the stock default (or a calibrated list to the data-free one);
* the code no longer ships what the rows measured (a default's sampler spec or sigma list changed, a preset or a
  bundled model was added) without the rows being recomputed;
* a small fresh subset, recomputed here on 32 noises, does not reproduce the cached endpoints' fingerprints.
"""
import json

import pytest
import torch

from schedule_lab.lab.benchmarks import guard_learned as gl
from schedule_lab.schedules.constant_rate.construct import Velocity

GUARDED = [name for name in gl.SETTINGS if gl.bundled(name)]


def test_compare_flags_a_loss_only_beyond_two_standard_errors_of_the_difference():
    stock = [1.00, 1.02, 0.98, 1.00]
    assert not gl.compare([1.01, 1.03, 0.99, 1.01], stock)["lost"]  # 1 % worse, inside the seed spread
    assert gl.compare([1.10, 1.12, 1.08, 1.10], stock)["lost"]      # 10 % worse, spread 2 %
    assert not gl.compare([0.80, 0.82, 0.78, 0.80], stock)["lost"]  # better never loses
    noisy = gl.compare([1.10, 1.40, 0.80, 1.10], stock)              # 10 % worse but the row's spread is 25 %
    assert not noisy["lost"] and noisy["ratio"] == pytest.approx(1.1, abs=1e-9)


def test_judge_uses_tadas_own_endpoint_for_its_error_and_lists_missing_rows():
    setting = gl.SETTINGS["patch-unet/edm"][0]
    rows = {}
    for r in gl.rows_for(setting):
        runs = [{"seed": s, "E": 0.1, "SW2": 0.2} for s in gl.SEEDS]
        if r.sampler == "sl_tada":  # far from the standard ODE, close to its own
            runs = [{**x, "E": 0.5, "E_own": 0.1} for x in runs]
        rows[f"{r.label}|4"] = {"runs": runs}
    got, missing = gl.judge(rows, "patch-unet/edm", [4, 5])
    assert not any(c["lost"] for c in got) and {c["nfe"] for c in got} == {4}
    assert any("NFE 5" in m for m in missing)
    rows["sl_tada + karras|4"]["runs"][0]["E_own"] = 0.3
    got, _ = gl.judge(rows, "patch-unet/edm", [4])
    assert [c["metric"] for c in got if c["row"] == "sl_tada + karras"] == ["E", "SW2"]


def test_every_preset_is_guarded_on_the_families_it_names():
    from schedule_lab.solvers.presets import PRESETS

    for name, preset in PRESETS.items():
        for setting_name, (setting, _) in gl.SETTINGS.items():
            labels = [r.label for r in gl.rows_for(setting)]
            assert (f"preset {name}" in labels) == (setting.family in preset.families), (name, setting_name)


@pytest.mark.parametrize("name", GUARDED)
def test_the_cached_rows_are_what_the_code_ships(name):
    """Every row at every NFE is cached for the sampler spec and sigma list the current code resolves it to."""
    setting = gl.SETTINGS[name][0]
    rows = gl.load(name)
    assert "calibration" in rows, f"no rows for {name}: run `{gl.COMMAND} --settings {name}`"
    velocity = Velocity.from_dict(rows["calibration"])
    stale = []
    for nfe in gl.NFES:
        for row in gl.rows_for(setting):
            cell = rows.get(f"{row.label}|{nfe}")
            want = gl.what_ships(row, setting, nfe, velocity)
            if cell is None or any(cell.get(k) != v for k, v in want.items()):
                stale.append(f"{row.label} NFE {nfe}")
    assert not stale, f"rows missing or stale for {name}: {stale}; run `{gl.COMMAND} --settings {name}`"


@pytest.mark.parametrize("name", GUARDED)
def test_no_shipped_default_loses_beyond_seed_noise_outside_the_ledger_of_open_defects(name):
    """A lost cell fails CI unless it is one of the open defects listed when the guard was first run
    (results/guard_known_losses.json, docs/defaults.md §9b): a new loss fails, and so does a listed cell that no longer
    loses (a fixed default leaves the ledger, which only shrinks). ``guard_learned`` itself exits 1 on any loss."""
    got, missing = gl.judge(gl.load(name), name)
    assert not missing, missing
    known = {k for k in gl.ledger() if k.startswith(f"{name} |")}
    lost = {gl.loss_key(c): c for c in got if c["lost"] and not c["deprecated"]}
    new = [f"{k}: ratio {c['ratio']:.3f} (2 SE {gl.Z_SE * c['se'] / c['ref']:.3f})" for k, c in lost.items()
           if k not in known]
    assert not new, "a shipped default newly loses beyond seed noise:\n" + "\n".join(new)
    fixed = sorted(known - set(lost))
    assert not fixed, ("no longer lost; remove from the ledger (python -m schedule_lab.lab.benchmarks.guard_learned "
                       "--write-ledger):\n" + "\n".join(fixed))


def test_the_ledger_holds_only_real_cells_of_guarded_settings():
    keys = gl.ledger()
    assert keys == sorted(set(keys))
    every = {gl.loss_key(c) for name in GUARDED for c in gl.judge(gl.load(name), name)[0]}
    assert set(keys) <= every, sorted(set(keys) - every)[:3]


FRESH = [("flow-768/shift3", "sl_tada + simple", 4), ("patch-unet/edm", "sl_tada + karras", 5),
         ("patch-unet/edm", "dpmpp_2m + sl_constant_rate", 6), ("patch-unet/edm", "dpmpp_2m + karras", 8)]


@pytest.mark.parametrize("name,label,nfe", [f for f in FRESH if f[0] in GUARDED])
def test_a_fresh_subset_reproduces_the_cached_endpoints(name, label, nfe):
    torch.set_num_threads(1)
    setting = gl.SETTINGS[name][0]
    rows = gl.load(name)
    row = next(r for r in gl.rows_for(setting) if r.label == label)
    fresh = gl.fresh_fingerprint(row, setting, nfe, velocity=Velocity.from_dict(rows["calibration"]))
    cached = rows[f"{label}|{nfe}"]["fingerprint"]
    assert fresh == pytest.approx(cached, abs=2e-4), (fresh, cached)


def test_deprecated_entries_are_still_computed_and_reported_but_neither_judged_nor_in_the_ledger():
    """docs/defaults.md §15: the Align Your Steps entries are deprecated; the guard keeps their rows and prints their
    lost cells, outside the ledger and outside the exit status."""
    from schedule_lab.schedules.catalogue import SCHEDULES

    name = GUARDED[0]
    setting = gl.SETTINGS[name][0]
    deprecated = {r.label for r in gl.rows_for(setting) if r.role == "deprecated"}
    assert deprecated == {f"{gl.STOCK[setting.family][0]} + {x}" for x in ("sl_ays_sd1", "sl_ays_sdxl")}
    assert all(SCHEDULES[x].deprecated for x in ("sl_ays_sd1", "sl_ays_sdxl"))
    assert not SCHEDULES["sl_constant_rate"].deprecated
    got, _ = gl.judge(gl.load(name), name)
    assert {c["row"] for c in got if c["deprecated"]} == deprecated
    assert not any(any(d in k for d in deprecated) for k in gl.ledger())
    text, failures, _ = gl.report([name])
    assert not any(c["deprecated"] for c in failures)
    assert "(deprecated: reported, not judged)" in text


def test_eps_per_nfe_table_is_what_the_fresh_noise_sets_said(monkeypatch):
    """docs/defaults.md §13 / §13a / §16 from the cached rows of ``guard_learned --confirm`` (seeds 2501-2504): the
    cells whose list §13 changed (to Karras's own list) hold on both ε sizes, which is what lets §13's table ship
    (``EPS_PER_NFE_CONFIRMED``); the NFE §16 moved to Karras's own list are exactly those where a shipped row with the
    pack's list lost there."""
    from schedule_lab.lab.benchmarks import list_ends as le

    monkeypatch.setattr(gl, "SEEDS", gl.CONFIRM_SEEDS)
    monkeypatch.setattr(gl, "ROWS_DIR", gl.RESULTS / "guard_rows_confirm")
    chosen = json.loads((gl.RESULTS / "list_ends_eps.json").read_text())["free"]
    changed = {int(n) for n, lab in chosen.items() if lab != le.EPS_CURRENT[int(n)]} - set(le.EPS_BOTH_VETOED_NFES)
    assert changed == {5, 10, 15, 20, 30}
    rows = ("dpmpp_2m + sl_constant_rate", "dpmpp_2m + calibrated", "preset sl_few_steps")
    lost_at = set()
    for name in ("eps-768/sd1", "eps-3072/sd1"):
        got, missing = gl.judge(gl.load(name), name)
        assert not [m for m in missing if any(r in m for r in rows)], missing  # rows added after §13a are not here
        lost_at |= {c["nfe"] for c in got if c["lost"] and c["row"] in rows}
    assert le.EPS_PER_NFE_CONFIRMED and not lost_at & changed
    assert lost_at == set(le.EPS_STOCK_NFES)
