"""sl_tada on the family's stock scheduler (docs/defaults.md §8): the shipped integrator table is the rule's output
(lab/benchmarks/results/tada_stock_chosen.json) and it applies to Karras-spaced lists only."""
import json

import pytest
import torch

from schedule_lab.lab.benchmarks import tada_stock
from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.schedules.catalogue import schedule_sigmas
from schedule_lab.schedules.constant_rate.construct import default_schedule_settings
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers import tada

KINDS = [ModelKind.edm(0.002, 80.0, 0.5), ModelKind.vp("eps"), ModelKind.vp("v")]


def test_the_shipped_integrator_tables_are_the_rules_choice():
    chosen = json.loads(tada_stock.CHOSEN.read_text())
    assert sorted(int(n) for n in chosen) == list(tada_stock.RULE_NFES)
    assert tada.INTEGRATOR_BY_NFE == {int(n): v["setting"][0] for n, v in chosen.items()}
    best_2m = {}
    for n, v in chosen.items():
        scores = {k: s[0] for k, s in v["scores"].items() if k.startswith("2m")}
        pick = min(scores, key=lambda k: (scores[k], tada_stock.candidates(int(n))[k][1]))
        best_2m[int(n)] = tuple(tada_stock.candidates(int(n))[pick][1:])
    assert tada.SETTINGS_2M_BY_NFE == best_2m
    for n, v in chosen.items():  # where ab is chosen it is today's table, unchanged
        if v["setting"][0] == "ab":
            assert tuple(v["setting"][1:]) == tada.default_settings(int(n), KINDS[0], "ab")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [3, 4, 5, 8, 20, 30])
def test_karras_lists_are_detected_and_the_other_stock_lists_are_not(kind, steps):
    assert tada.is_karras_spaced(schedule_sigmas("karras", kind, steps))
    for other in ("simple", "exponential", "sl_ays_sd1"):
        assert not tada.is_karras_spaced(schedule_sigmas(other, kind, steps)), other
    # KSampler's denoise < 1 keeps the tail of a longer Karras list: still Karras-spaced
    assert tada.is_karras_spaced(schedule_sigmas("karras", kind, 2 * steps)[steps:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [3, 4, 5, 8, 20, 30])
def test_sl_constant_rate_is_karras_spaced_exactly_where_its_table_takes_karras_spacing(kind, steps):
    # docs/defaults.md §10b: where the family's data-free table takes the "karras" measure, sl_constant_rate is
    # Karras's spacing (its own end), so sl_tada treats it as a Karras list; a cosine-based measure is not
    settings = default_schedule_settings(steps, kind)
    sig = schedule_sigmas("sl_constant_rate", kind, steps)
    assert tada.is_karras_spaced(sig) == (settings["measure"] == "karras"), settings


@pytest.mark.parametrize("steps", [4, 6, 10, 30])
def test_sl_tada_without_options_uses_the_rules_integrator_on_karras_and_ab_elsewhere(steps):
    bed = GaussianTestbed(8)
    x = bed.sample_prior(4, 80.0, seed=1, dtype=torch.float64)
    rule = tada.INTEGRATOR_BY_NFE[max(n for n in tada.INTEGRATOR_BY_NFE if n <= steps)]
    eps_karras = default_schedule_settings(steps, KINDS[1])["measure"] == "karras"  # ε: Karras's list at 5-30 (§16)
    cases = [("karras", KINDS[0], rule), ("exponential", KINDS[0], "ab"),
             ("sl_constant_rate", KINDS[1], rule if eps_karras else "ab"),
             ("sl_constant_rate", KINDS[0], rule)]  # EDM's constant-rate table is Karras-spaced (§10b)
    for name, kind, want in cases:
        sig = schedule_sigmas(name, kind, steps).to(torch.float64)
        d, o = tada.default_settings(steps, kind, want)
        auto = tada.sample_tada(bed.denoiser, x, sig, extra_args={"seed": 2}, kind=kind)
        explicit = tada.sample_tada(bed.denoiser, x, sig, extra_args={"seed": 2}, kind=kind, detail=d, order=o,
                                    integrator=want)
        assert torch.equal(auto, explicit), (name, kind.kind, want)
        if want != "ab":  # the test can fail: the other integrator gives another sample
            d2, o2 = tada.default_settings(steps, kind, "ab")
            other = tada.sample_tada(bed.denoiser, x, sig, extra_args={"seed": 2}, kind=kind, detail=d2, order=o2,
                                     integrator="ab")
            assert not torch.equal(auto, other), (name, kind.kind)
