"""Flow models (SD3's ModelSamplingDiscreteFlow with shift, Flux's ModelSamplingFlux with mu): the pack's lists land,
follow the shift in the model's time and start at σ_max; Flux's kind; the calibration grid (docs/defaults.md §7)."""
from __future__ import annotations

import math

import pytest
import torch

from schedule_lab.lab.testbeds.flow import FlowDenoiser, flow_reference_sigmas
from schedule_lab.lab.testbeds.reference import converged_endpoint
from schedule_lab.lab.testbeds.suite import load_part
from schedule_lab.schedules import ModelKind, simple
from schedule_lab.schedules.baseline import AYS_TIMESTEPS
from schedule_lab.schedules.catalogue import schedule_sigmas
from schedule_lab.schedules.constant_rate.calibrate import calibrate, schedule
from schedule_lab.schedules.constant_rate.construct import (
    LAMBDA_CLIP,
    Velocity,
    constant_rate_sigmas,
    cos_velocity,
    default_velocity,
    with_cos_tails,
)
from schedule_lab.schedules.constant_rate.measure import FLOW_GRID_LAMBDA_MIN, measurement_grid
from schedule_lab.schedules.model_kind import flow_shift
from schedule_lab.solvers import catalogue
from schedule_lab.solvers.classic import model_samples

FLOW_KINDS = {"sd3-shift1": ModelKind.flow(1.0), "sd3-shift3": ModelKind.flow(3.0), "flux-1024": ModelKind.flux(1.15),
              "flux-512": ModelKind.flux(0.5 + 0.65 * (1024 - 256) / (4096 - 256))}
FLOW_SCHEDULES = ("sl_constant_rate", "sl_ays_sd1", "sl_ays_sdxl")
STEPS = (2, 4, 5, 6, 8, 10, 15, 20, 30)


def _flux_closed_form(mu: float, t: torch.Tensor) -> torch.Tensor:
    """ComfyUI's flux_time_shift(mu, 1, t) = e^mu / (e^mu + (1/t − 1)), written out."""
    return math.exp(mu) / (math.exp(mu) + (1.0 / t - 1.0))


@pytest.mark.parametrize("name", FLOW_SCHEDULES)
@pytest.mark.parametrize("label", FLOW_KINDS)
def test_flow_lists_start_at_sigma_max_and_land_without_a_step_at_sigma_min(name, label):
    kind = FLOW_KINDS[label]
    for steps in STEPS:
        sigmas = schedule_sigmas(name, kind, steps)
        assert len(sigmas) == steps + 1 and float(sigmas[-1]) == 0.0
        assert float(sigmas[0]) == 1.0
        assert (sigmas[1:] < sigmas[:-1]).all()
        # "hold" ended ..., σ_min, 0: a model call at σ_min, where a flow model's x̂₀ is its input (AYS's own last
        # published level is the table's first entry, so at 30 steps its resampled list comes within 3x of it)
        assert float(sigmas[-2]) > (5 if name == "sl_constant_rate" else 2) * kind.sigma_min, (steps, sigmas)


@pytest.mark.parametrize("name", FLOW_SCHEDULES)
def test_a_shifted_flow_list_is_the_unshifted_list_mapped_through_the_shift(name):
    for steps in STEPS:
        base = schedule_sigmas(name, ModelKind.flow(1.0), steps).double()
        shifted = schedule_sigmas(name, ModelKind.flow(3.0), steps).double()
        torch.testing.assert_close(shifted, flow_shift(base, 3.0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", FLOW_SCHEDULES)
def test_a_flux_list_is_the_unshifted_list_of_its_table_mapped_through_e_to_the_mu(name):
    mu = 1.15
    for steps in STEPS:
        base = schedule_sigmas(name, ModelKind.flow(1.0, timesteps=10000), steps).double()
        flux = schedule_sigmas(name, ModelKind.flux(mu), steps).double()
        expected = torch.where(base > 0, _flux_closed_form(mu, base.clamp_min(1e-12)), base)
        torch.testing.assert_close(flux, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("table", ["sd1", "sdxl"])
def test_ays_on_an_unshifted_flow_model_is_the_published_timesteps_as_times(table):
    sigmas = schedule_sigmas(f"sl_ays_{table}", ModelKind.flow(1.0), 10).double()
    expected = torch.tensor([(t + 1) / 1000 for t in AYS_TIMESTEPS[table][:-1]] + [0.0], dtype=torch.float64)
    torch.testing.assert_close(sigmas, expected, rtol=1e-6, atol=1e-6)


def test_ays_on_eps_models_is_comfyuis_table_with_its_lowest_level_kept():
    """ComfyUI's AYS at N - 1 steps resamples to N levels and drops the lowest for 0; the dropdown keeps all N as
    its positive levels (docs/defaults.md §10), so the flow changes did not touch eps models beyond that."""
    kind = ModelKind.vp("eps")
    sigmas = schedule_sigmas("sl_ays_sd1", kind, 10).double()
    torch.testing.assert_close(sigmas[:-2], schedule_sigmas("ays", kind, 9).double()[:-1])
    assert float(sigmas[-2]) == pytest.approx(kind.sigma_min, rel=1e-6)


def test_the_data_free_constant_rate_list_moves_with_the_shift():
    """Before, it 'barely moved' (the shift only changed σ_min); now every interior level moves up."""
    a = schedule_sigmas("sl_constant_rate", ModelKind.flow(1.0), 5)
    b = schedule_sigmas("sl_constant_rate", ModelKind.flow(3.0), 5)
    assert (b[1:-1] > a[1:-1] + 0.05).all(), (a, b)


# ---------------------------------------------------------------------------------------------------------------
# Flux's kind
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mu", [0.5, 0.63, 1.15, 2.0])
def test_flux_kind_table_is_comfyuis_flux_time_shift_on_10000_entries(mu):
    kind = ModelKind.flux(mu)
    t = torch.arange(1, 10001, dtype=torch.float64) / 10000
    assert kind.flow_timesteps == 10000 and kind.multiplier == 1.0
    torch.testing.assert_close(kind.comfy_table(), _flux_closed_form(mu, t), rtol=1e-12, atol=1e-12)
    assert kind.sigma_min == pytest.approx(float(_flux_closed_form(mu, torch.tensor(1e-4, dtype=torch.float64))))
    # the model's timestep is sigma itself
    assert float(kind.to_timestep(torch.tensor(0.37))) == pytest.approx(0.37)


@pytest.mark.parametrize("kind", [ModelKind.flux(1.15), ModelKind.flow(3.0)])
def test_simple_on_a_flow_kind_follows_comfyuis_rule_on_its_own_table(kind):
    table = kind.comfy_table()
    for steps in (4, 7, 20):
        stride = len(table) / steps
        expected = [float(table[-(1 + int(x * stride))]) for x in range(steps)] + [0.0]
        torch.testing.assert_close(simple(kind, steps).double(), torch.tensor(expected, dtype=torch.float64))


def test_a_flow_kind_from_comfyuis_float32_sigma_min_knows_its_table_size():
    for timesteps, shift in ((1000, 3.0), (10000, math.exp(1.15))):
        s_min = float(torch.tensor(flow_shift(1.0 / timesteps, shift), dtype=torch.float32))
        assert ModelKind("flow", s_min, 1.0, shift=shift).flow_timesteps == timesteps


# ---------------------------------------------------------------------------------------------------------------
# calibration on flow: where the grid and the generated samples spend their budget
# ---------------------------------------------------------------------------------------------------------------
def test_the_flow_grid_measures_below_sigma_099_and_other_kinds_keep_theirs():
    for kind in (ModelKind.flow(1.0), ModelKind.flow(3.0), ModelKind.flux(1.15)):
        grid = measurement_grid(kind, 24)
        sig = kind.from_lambda(grid)
        assert float(grid[0]) == FLOW_GRID_LAMBDA_MIN
        assert int((sig > 0.93).sum()) <= 5  # was 11 of 24
        assert torch.allclose(grid[1:] - grid[:-1], (grid[1] - grid[0]).expand(23))
    for kind in (ModelKind.vp("eps"), ModelKind.edm()):
        grid = measurement_grid(kind, 24)
        assert float(grid[0]) == pytest.approx(-math.log(kind.sigma_max))


def test_flow_model_samples_are_drawn_on_the_models_simple_schedule():
    kind = ModelKind.flow(3.0)
    seen = []

    def model(x, sigma):
        seen.append(float(sigma[0]))
        return torch.zeros_like(x)

    _, calls = model_samples(model, kind, (4, 3), steps=6, batch=4)
    assert calls == 6
    torch.testing.assert_close(torch.tensor(seen, dtype=torch.float64),
                               simple(kind, 6, dtype=torch.float64)[:-1].to(torch.float32).double())


def test_cos_tails_follow_the_cosine_shape_beyond_the_measured_nodes():
    cos = cos_velocity()
    inner = (cos.lam > -4.0) & (cos.lam < 5.0)
    measured = Velocity(cos.lam[inner], 3.0 * cos.values[inner], "vx")
    out = with_cos_tails(measured, LAMBDA_CLIP)
    assert float(out.lam[0]) == LAMBDA_CLIP[0] and float(out.lam[-1]) == LAMBDA_CLIP[1]
    expected = 3.0 / torch.cosh(out.lam)  # v_cos = 1/cosh λ
    torch.testing.assert_close(out.values, expected, rtol=1e-9, atol=0.0)


# ---------------------------------------------------------------------------------------------------------------
# behaviour on an exact flow testbed
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flow_testbed():
    part = load_part("gmm-16", "tuning", 256)
    model = FlowDenoiser(part.model, part.model.weights @ part.model.means)
    noise = part.noise.double()
    ref = converged_endpoint(model, noise, sigmas=flow_reference_sigmas(300))
    return model, noise, ref


def _error(testbed, sampler, sigmas, kind):
    model, noise, ref = testbed
    x = catalogue.run(sampler, sigmas.double(), model, noise, kind=kind).x0
    return float((x - ref).square().mean().sqrt())


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_landing_beats_holding_for_dpmpp_2m_on_a_flow_model(flow_testbed, shift):
    kind = ModelKind.flow(shift)
    for steps in (4, 5, 6, 8):
        hold = constant_rate_sigmas(default_velocity(), kind.unshifted(), steps, xi=1.5, end="hold",
                                    dtype=torch.float64)
        hold = kind.from_flow_time(hold)
        land = schedule_sigmas("sl_constant_rate", kind, steps)
        assert _error(flow_testbed, "dpmpp_2m", land, kind) < 0.5 * _error(flow_testbed, "dpmpp_2m", hold, kind)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler"])
def test_a_flow_calibration_is_not_worse_than_the_data_free_list(flow_testbed, sampler):
    """The Constant-Rate Scheduler's calibrated MODEL on a flow model (vx+cos, node settings) against sl_constant_rate
    without it, on an exact SD3-type testbed at shift 3: before, the calibrated list was up to 2.3x worse."""
    model, _, _ = flow_testbed
    kind = ModelKind.flow(3.0)
    vel = calibrate(model, kind, torch.zeros(64, 16), "vx+cos", samples=64, generate=model_samples)
    for steps in (4, 5, 6, 8):
        calibrated = _error(flow_testbed, sampler, schedule(vel, kind, steps), kind)
        data_free = _error(flow_testbed, sampler, schedule_sigmas("sl_constant_rate", kind, steps), kind)
        assert calibrated <= data_free, (steps, calibrated, data_free)


def test_a_flow_calibration_spends_no_step_above_sigma_095(flow_testbed):
    model, _, _ = flow_testbed
    kind = ModelKind.flow(1.0)
    vel = calibrate(model, kind, torch.zeros(32, 16), "vx+cos", samples=64, generate=model_samples)
    for steps in (4, 5, 8):
        sigmas = schedule(vel, kind, steps)
        assert float(sigmas[0]) == 1.0 and float(sigmas[1]) < 0.95, sigmas
        assert float(sigmas[-2]) > 5 * kind.sigma_min


# ---------------------------------------------------------------------------------------------------------------
# sl_tada's per-step-count defaults on flow kinds
# ---------------------------------------------------------------------------------------------------------------
def test_sl_tada_on_flow_kinds_reads_the_flow_table_and_other_kinds_their_own():
    from schedule_lab.solvers.tada import FLOW_SETTINGS_BY_NFE, SETTINGS_2M_BY_NFE, SETTINGS_BY_NFE, default_settings

    for kind in (ModelKind.flow(1.0), ModelKind.flow(3.0), ModelKind.flux(1.15)):
        for nfe, settings in FLOW_SETTINGS_BY_NFE.items():
            assert default_settings(nfe, kind) == settings
        assert default_settings(7, kind) == FLOW_SETTINGS_BY_NFE[6]  # between grid points: the grid NFE below
        assert default_settings(40, kind) == FLOW_SETTINGS_BY_NFE[max(FLOW_SETTINGS_BY_NFE)]
        assert default_settings(2, kind) == FLOW_SETTINGS_BY_NFE[min(FLOW_SETTINGS_BY_NFE)]
    for nfe, settings in SETTINGS_BY_NFE.items():  # eps/v/EDM on any list but karras, and "ab" explicitly
        assert default_settings(nfe, ModelKind.vp("eps"), karras=False) == settings
        assert default_settings(nfe, ModelKind.vp("eps"), "ab") == settings
    for nfe, settings in SETTINGS_2M_BY_NFE.items():  # on karras: the 2m table (docs/defaults.md §8)
        assert default_settings(nfe, ModelKind.vp("eps")) == settings


def test_sl_tada_without_options_on_flow_samples_with_the_tables_settings(flow_testbed):
    from schedule_lab.solvers.tada import FLOW_SETTINGS_BY_NFE

    model, noise, _ = flow_testbed
    kind = ModelKind.flow(3.0)
    for nfe, (detail, order) in FLOW_SETTINGS_BY_NFE.items():
        sigmas = simple(kind, nfe)
        auto = catalogue.run("sl_tada", sigmas, model, noise[:16], kind=kind, seed=3).x0
        explicit = catalogue.run(f"sl_tada(detail={detail:g},order={order})", sigmas, model, noise[:16], kind=kind,
                                 seed=3).x0
        assert torch.equal(auto, explicit), nfe
