"""ModelKind: the meaning of sigma per model family, conversions through half-log-SNR, serialisation."""
from __future__ import annotations

import ast
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from schedule_lab.schedules import ModelKind, ScheduleError, convert_sigmas
from schedule_lab.schedules.model_kind import RANGE_RTOL

SD1 = ModelKind.vp("eps")
KINDS = {
    "eps": SD1,
    "v": ModelKind.vp("v"),
    "edm": ModelKind.edm(),
    "flow": ModelKind.flow(shift=3.0),
}


def _grid(kind: ModelKind, n: int = 41) -> torch.Tensor:
    """float64 sigmas spread log-uniformly over the kind's range, ends included."""
    return torch.logspace(math.log10(kind.sigma_min), math.log10(kind.sigma_max), n, dtype=torch.float64)


def _sd_table_by_hand(beta_start=0.00085, beta_end=0.012, steps=1000):
    """Independent oracle: the scaled_linear table in plain Python floats."""
    a, b = math.sqrt(beta_start), math.sqrt(beta_end)
    alpha_bar, out = 1.0, []
    for i in range(steps):
        beta = (a + (b - a) * i / (steps - 1)) ** 2
        alpha_bar *= 1.0 - beta
        out.append(math.sqrt((1.0 - alpha_bar) / alpha_bar))
    return out


# -- construction -----------------------------------------------------------------------------------------

def test_unknown_kind_names_the_allowed_kinds():
    with pytest.raises(ScheduleError, match="eps, v, edm, flow"):
        ModelKind("ddpm", 0.1, 10.0)


def test_sd1_table_has_the_known_sigma_range():
    assert SD1.sigma_min == pytest.approx(0.0292, abs=5e-5)
    assert SD1.sigma_max == pytest.approx(14.6146, abs=5e-5)


def test_sd1_table_matches_the_closed_form_betas():
    hand = _sd_table_by_hand()
    assert SD1.sigmas_table.dtype == torch.float64 and len(SD1.sigmas_table) == 1000
    assert max(abs(x - y) / y for x, y in zip(SD1.sigmas_table.tolist(), hand, strict=True)) < 1e-12


def test_flow_kind_range_is_comfyui_discrete_flow_range():
    kind = ModelKind.flow(shift=3.0)
    assert kind.sigma_max == 1.0
    assert kind.sigma_min == pytest.approx(3 * 0.001 / (1 + 2 * 0.001), rel=1e-12)


def test_model_kind_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SD1.sigma_min = 1.0


def test_equal_kinds_are_equal_and_hash_alike():
    assert ModelKind.vp("eps") == SD1 and hash(ModelKind.vp("eps")) == hash(SD1)
    assert ModelKind.vp("v") != SD1
    assert ModelKind.flow(3.0) != ModelKind.flow(1.0)


@pytest.mark.parametrize("bad", [
    dict(kind="eps", sigma_min=1.0, sigma_max=0.5),
    dict(kind="edm", sigma_min=-1.0, sigma_max=80.0),
    dict(kind="edm", sigma_min=0.002, sigma_max=float("inf")),
    dict(kind="flow", sigma_min=0.001, sigma_max=2.0),
    dict(kind="edm", sigma_min=0.002, sigma_max=80.0, sigma_data=0.0),
    dict(kind="edm", sigma_min=0.002, sigma_max=80.0, sigmas_table=torch.ones(3)),
    dict(kind="eps", sigma_min=0.5, sigma_max=14.6, sigmas_table=SD1.sigmas_table),
    dict(kind="eps", sigma_min=0.0292, sigma_max=14.6, sigmas_table=SD1.sigmas_table.flip(0)),
])
def test_inconsistent_kinds_are_refused(bad):
    with pytest.raises(ScheduleError):
        ModelKind(**bad)


def test_bad_vp_and_flow_parameters_are_refused():
    for call in (lambda: ModelKind.vp("x0"), lambda: ModelKind.vp(beta_start=0.02, beta_end=0.01),
                 lambda: ModelKind.vp(timesteps=1), lambda: ModelKind.flow(shift=0.0),
                 lambda: ModelKind.flow(shift="three")):
        with pytest.raises(ScheduleError):
            call()


def test_comfyui_float32_table_is_recognised_as_scaled_linear():
    table32 = SD1.sigmas_table.float()
    host = ModelKind("eps", float(table32[0]), float(table32[-1]), sigmas_table=table32)
    assert host.beta_params == (0.00085, 0.012, 1000)


def test_beta_params_alone_build_the_table():
    kind = ModelKind("v", SD1.sigma_min, SD1.sigma_max, beta_params=(0.00085, 0.012, 1000))
    assert torch.equal(kind.sigmas_table, SD1.sigmas_table)


# -- lambda, alpha_bar, flow time --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(KINDS))
def test_lambda_round_trip_is_exact(name):
    kind = KINDS[name]
    s = _grid(kind)
    assert torch.allclose(kind.from_lambda(kind.to_lambda(s)), s, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", list(KINDS))
def test_lambda_decreases_with_sigma(name):
    kind = KINDS[name]
    lam = kind.to_lambda(_grid(kind, 200))
    assert bool((lam[1:] < lam[:-1]).all())


def test_lambda_is_minus_log_sigma_for_vp_and_edm_and_logit_for_flow():
    s = torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64)
    for name in ("eps", "v", "edm"):
        assert torch.allclose(KINDS[name].to_lambda(s), -s.log(), rtol=1e-14)
    f = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(KINDS["flow"].to_lambda(f), torch.log((1 - f) / f), rtol=1e-14)


def test_zero_sigma_is_infinite_lambda_and_back():
    for kind in KINDS.values():
        assert kind.to_lambda(torch.tensor(0.0, dtype=torch.float64)).item() == math.inf
        assert kind.from_lambda(torch.tensor(math.inf, dtype=torch.float64)).item() == 0.0


@pytest.mark.parametrize("name", list(KINDS))
def test_alpha_bar_is_snr_over_one_plus_snr(name):
    kind = KINDS[name]
    s = _grid(kind)
    snr = torch.exp(2 * kind.to_lambda(s))
    assert torch.allclose(kind.to_alpha_bar(s), snr / (1 + snr), rtol=1e-12)


def test_alpha_bar_closed_forms():
    s = torch.tensor([0.5, 2.0], dtype=torch.float64)
    assert torch.allclose(SD1.to_alpha_bar(s), 1 / (1 + s**2), rtol=1e-14)
    f = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert torch.allclose(KINDS["flow"].to_alpha_bar(f), (1 - f) ** 2 / ((1 - f) ** 2 + f**2), rtol=1e-14)


@pytest.mark.parametrize("name", list(KINDS))
def test_flow_time_round_trip_is_exact(name):
    kind = KINDS[name]
    s = _grid(kind)
    assert torch.allclose(kind.from_flow_time(kind.to_flow_time(s)), s, rtol=1e-10, atol=0)


def test_flow_shift_3_matches_the_closed_form():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(KINDS["flow"].from_flow_time(t), 3 * t / (1 + 2 * t), rtol=1e-14, atol=0)


def test_flow_time_of_vp_kinds_is_the_unshifted_flow_sigma_with_equal_lambda():
    s = _grid(SD1)
    t = SD1.to_flow_time(s)
    assert torch.allclose(ModelKind.flow(1.0).to_lambda(t), SD1.to_lambda(s), rtol=1e-12)


# -- timesteps ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(KINDS))
def test_timestep_round_trip_is_exact(name):
    kind = KINDS[name]
    s = _grid(kind)
    assert torch.allclose(kind.from_timestep(kind.to_timestep(s)), s, rtol=1e-10, atol=0)


def test_discrete_timestep_of_a_table_entry_is_its_index():
    idx = torch.tensor([0, 1, 250, 998, 999])
    assert torch.allclose(SD1.to_timestep(SD1.sigmas_table[idx]), idx.double(), atol=1e-9)


def test_discrete_timestep_rounds_to_comfyui_nearest_log_sigma_index():
    s = _grid(SD1, 300)
    nearest = (s.log()[None, :] - SD1.sigmas_table.log()[:, None]).abs().argmin(dim=0)
    assert torch.equal(SD1.to_timestep(s).round().long(), nearest)


def test_discrete_sigma_of_a_half_timestep_is_the_geometric_mean():
    table = SD1.sigmas_table
    got = SD1.from_timestep(torch.tensor([10.5], dtype=torch.float64))
    assert got.item() == pytest.approx(math.sqrt(table[10].item() * table[11].item()), rel=1e-12)


def test_edm_and_flow_timesteps_follow_comfyui():
    s = torch.tensor([0.002, 1.0, 80.0], dtype=torch.float64)
    assert torch.allclose(KINDS["edm"].to_timestep(s), 0.25 * s.log(), rtol=1e-14)
    f = torch.tensor([0.01, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(KINDS["flow"].to_timestep(f), f * 1000, rtol=1e-14)


def test_timestep_without_a_table_is_an_error_naming_the_fix():
    with pytest.raises(ScheduleError, match="ModelKind.vp"):
        ModelKind("eps", 0.03, 14.6).to_timestep(torch.tensor(1.0))


def test_out_of_domain_sigmas_are_refused():
    with pytest.raises(ScheduleError, match="negative"):
        SD1.to_lambda(torch.tensor([-1.0]))
    with pytest.raises(ScheduleError, match="above 1"):
        KINDS["flow"].to_lambda(torch.tensor([1.5]))
    with pytest.raises(ScheduleError, match="NaN"):
        SD1.to_lambda(torch.tensor([math.nan]))


def test_conversions_keep_float32_and_give_float64_for_python_numbers():
    assert SD1.to_lambda(torch.tensor([1.0])).dtype == torch.float32
    assert SD1.to_lambda(1.0).dtype == torch.float64


# -- convert_sigmas ----------------------------------------------------------------------------------------

def test_eps_to_flow_to_eps_is_the_identity():
    flow = ModelKind.flow(1.0)
    s = torch.cat([_grid(SD1, 20).flip(0), torch.zeros(1, dtype=torch.float64)])
    there = convert_sigmas(s, SD1, flow)
    assert torch.allclose(convert_sigmas(there, flow, SD1), s, rtol=1e-10, atol=0)


def test_conversion_preserves_lambda():
    s = _grid(SD1, 20)
    out = convert_sigmas(s, SD1, KINDS["flow"])
    assert torch.allclose(KINDS["flow"].to_lambda(out), SD1.to_lambda(s), rtol=1e-10)


def test_eps_to_v_and_edm_leaves_values_unchanged():
    s = _grid(SD1, 20)
    assert torch.allclose(convert_sigmas(s, SD1, KINDS["v"]), s, rtol=1e-14)
    assert torch.allclose(convert_sigmas(s, SD1, KINDS["edm"]), s, rtol=1e-14)


def test_trailing_zero_stays_zero():
    s = torch.tensor([10.0, 1.0, 0.0], dtype=torch.float64)
    assert convert_sigmas(s, SD1, KINDS["flow"])[-1].item() == 0.0


def test_values_outside_the_destination_range_are_refused():
    with pytest.raises(ScheduleError, match="clamp=True"):
        convert_sigmas(torch.tensor([80.0, 1.0, 0.0]), KINDS["edm"], SD1)


def test_flow_pure_noise_has_no_vp_equivalent_unless_clamped():
    s = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    with pytest.raises(ScheduleError):
        convert_sigmas(s, KINDS["flow"], SD1)
    out = convert_sigmas(s, KINDS["flow"], SD1, clamp=True)
    assert out.tolist() == pytest.approx([SD1.sigma_max, 1.0, 0.0], rel=1e-12)


def test_round_off_just_outside_the_range_is_moved_onto_it():
    s = torch.tensor([SD1.sigma_max * (1 + RANGE_RTOL / 2), 1.0], dtype=torch.float64)
    assert convert_sigmas(s, SD1, KINDS["v"])[0].item() == SD1.sigma_max


# -- serialisation -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(KINDS))
def test_dict_round_trip_gives_an_equal_kind(name):
    kind = KINDS[name]
    d = json.loads(json.dumps(kind.to_dict()))
    assert ModelKind.from_dict(d) == kind


def test_vp_dict_stores_betas_not_the_table():
    d = SD1.to_dict()
    assert d["table"] == {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "timesteps": 1000}
    assert len(json.dumps(d)) < 400


def test_custom_table_is_stored_in_full_and_round_trips():
    table = torch.linspace(math.log(0.03), math.log(20.0), 50, dtype=torch.float64).exp()
    kind = ModelKind("v", 0.03, 20.0, sigmas_table=table)
    assert kind.beta_params is None
    assert ModelKind.from_dict(json.loads(json.dumps(kind.to_dict()))) == kind


@pytest.mark.parametrize("bad", [
    [], {"kind": "x", "sigma_min": 1, "sigma_max": 2}, {"kind": "edm", "sigma_min": 1},
    {"kind": "eps", "sigma_min": 0.03, "sigma_max": 14.6, "table": {"type": "cosine"}},
    {"kind": "eps", "sigma_min": 0.5, "sigma_max": 14.6,
     "table": {"type": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "timesteps": 1000}},
])
def test_malformed_dicts_are_refused(bad):
    with pytest.raises(ScheduleError):
        ModelKind.from_dict(bad)


def test_describe_names_family_parameters_and_range():
    assert "eps-prediction" in SD1.describe() and "0.00085" in SD1.describe() and "14.61" in SD1.describe()
    assert "EDM" in KINDS["edm"].describe() and "sigma_data 0.5" in KINDS["edm"].describe()
    assert "rectified-flow" in KINDS["flow"].describe() and "shift 3" in KINDS["flow"].describe()


# -- import rule -------------------------------------------------------------------------------------------

def test_schedule_core_never_imports_comfyui():
    forbidden = {"comfy", "comfy_extras", "comfy_api", "folder_paths", "server", "nodes"}
    root = Path(__file__).resolve().parents[2] / "schedules"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level == 1 else [(node.module or "").split(".")[0]]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & forbidden, f"{path.name} imports {names}"
