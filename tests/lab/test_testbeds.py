"""lab/testbeds/: closed forms, the exact denoiser's limits, metrics on known cases, the reference cache, and the
shipped weights (they load, denoise better than the identity, classify, and give FD_cls ≈ 0 on themselves)."""
from __future__ import annotations

import json

import pytest
import torch

from schedule_lab.lab.testbeds import metrics
from schedule_lab.lab.testbeds.digits import from_images, load_digits_split, to_images
from schedule_lab.lab.testbeds.exact import ExactDenoiser
from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
from schedule_lab.lab.testbeds.models import (
    CLASSIFIER_FILE,
    EDM_MLP_FILE,
    WEIGHTS_DIR,
    load_classifier,
    load_edm_mlp,
    read_sidecar,
)
from schedule_lab.lab.testbeds.reference import converged_endpoint, karras_sigmas
from schedule_lab.lab.testbeds.train import main as train_main
from schedule_lab.schedules.model_calls import CountedModel
from schedule_lab.solvers.classic import sample_heun


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- digits

def test_digits_split_is_80_20_in_minus_one_one(split):
    assert split.train.shape == (1437, 64) and split.test.shape == (360, 64)
    assert split.train_labels.shape == (1437,) and split.test_labels.shape == (360,)
    assert split.train.min() == -1 and split.train.max() == 1


def test_digits_split_is_deterministic_for_a_seed(split):
    assert torch.equal(load_digits_split(seed=0).train, split.train)
    assert not torch.equal(load_digits_split(seed=1).train, split.train)


def test_digits_image_reshape_round_trips(split):
    images = to_images(split.test)
    assert images.shape == (360, 1, 8, 8)
    assert torch.equal(from_images(images), split.test)


# ---------------------------------------------------------------- Gaussian closed form

def test_gaussian_denoiser_is_tweedie_posterior_mean():
    # Tweedie: D(x, σ) = x + σ² ∇ log p_σ(x), with p_σ = N(μ, (s² + σ²) I) the noisy marginal.
    bed = GaussianTestbed(dim=5, mean=torch.linspace(-1, 1, 5), std=0.6)
    x = torch.randn(4, 5, generator=_gen(), dtype=torch.float64).requires_grad_(True)
    sigma = torch.tensor([0.1, 0.5, 2.0, 30.0], dtype=torch.float64)
    var = 0.36 + sigma[:, None] ** 2
    log_p = (-(x - bed.mean).square() / (2 * var)).sum()
    (score,) = torch.autograd.grad(log_p, x)
    torch.testing.assert_close(bed.denoiser(x.detach(), sigma), x.detach() + sigma[:, None] ** 2 * score)


def test_gaussian_ode_solution_solves_the_probability_flow_ode():
    bed = GaussianTestbed(dim=3, mean=0.4, std=0.8)
    x = torch.randn(2, 3, generator=_gen(), dtype=torch.float64)
    sigma, h = 1.7, 1e-5
    dx = (bed.ode_solution(x, 2.0, sigma + h) - bed.ode_solution(x, 2.0, sigma - h)) / (2 * h)
    x_sigma = bed.ode_solution(x, 2.0, sigma)
    torch.testing.assert_close(dx, (x_sigma - bed.denoiser(x_sigma, sigma)) / sigma, rtol=1e-7, atol=1e-9)


def test_gaussian_ode_endpoint_is_closed_form():
    bed = GaussianTestbed(dim=2, mean=1.0, std=0.5)
    x_T = torch.tensor([[81.0, -79.0]], dtype=torch.float64)
    expected = 1.0 + (x_T - 1.0) * 0.5 / (0.25 + 80.0 ** 2) ** 0.5
    torch.testing.assert_close(bed.ode_endpoint(x_T, 80.0), expected)


# ---------------------------------------------------------------- exact denoiser

def test_exact_denoiser_small_sigma_returns_nearest_training_point(split):
    model = ExactDenoiser(split.train)
    x = split.train[:8] + 0.002 * torch.randn(8, 64, generator=_gen())
    torch.testing.assert_close(model(x, torch.full((8,), 0.002)), split.train[:8], rtol=0, atol=1e-5)


def test_exact_denoiser_huge_sigma_returns_data_mean(split):
    model = ExactDenoiser(split.train.double())
    x = torch.randn(4, 64, generator=_gen(), dtype=torch.float64)  # fixed x, σ → ∞
    out = model(x, torch.full((4,), 1e4, dtype=torch.float64))
    torch.testing.assert_close(out, split.train.double().mean(0).expand(4, 64), rtol=0, atol=1e-6)


def test_exact_denoiser_accepts_images_and_keeps_shape_and_dtype(split):
    model = ExactDenoiser(split.train)
    x = to_images(split.test[:3]).double()
    out = model(x, torch.full((3,), 0.5, dtype=torch.float64), cond="ignored")
    assert out.shape == (3, 1, 8, 8) and out.dtype == torch.float64
    torch.testing.assert_close(from_images(out), model(from_images(x), torch.full((3,), 0.5)))


def test_exact_denoiser_cache_key_depends_on_data(split):
    assert ExactDenoiser(split.train).cache_key == ExactDenoiser(split.train.clone()).cache_key
    assert ExactDenoiser(split.train).cache_key != ExactDenoiser(split.test).cache_key


# ---------------------------------------------------------------- metrics

def test_nfe_counter_counts_model_calls():
    bed = GaussianTestbed(dim=4)
    counter = CountedModel(bed.denoiser)
    sample_heun(counter, bed.sample_prior(2, 80.0), karras_sigmas(6, 0.002, 80.0, dtype=torch.float64))
    assert counter.calls == 2 * 6 - 1
    counter.reset()
    assert counter.calls == 0


def test_rmse_of_known_difference():
    a = torch.zeros(2, 1, 2, 2)
    assert metrics.rmse(a, a + 3.0) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        metrics.rmse(a, torch.zeros(2, 4))


def test_nearest_distance_and_index_on_known_points():
    data = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[1.0, 0.0], [7.0, 4.0]])
    assert metrics.nearest_index(x, data).tolist() == [0, 1]
    assert metrics.nearest_distance(x, data, reduce="none").tolist() == [1.0, 5.0]
    assert metrics.nearest_distance(x, data) == pytest.approx(3.0)


def test_mode_agreement_counts_same_nearest_training_point():
    train = torch.tensor([[0.0], [10.0], [20.0]])
    reference = torch.tensor([[0.1], [10.2], [19.0], [1.0]])
    samples = torch.tensor([[-0.5], [14.0], [13.0], [6.0]])  # same, same, different, different
    assert metrics.mode_agreement(samples, reference, train) == pytest.approx(0.5)
    assert metrics.mode_agreement(reference, reference, train) == 1.0


def test_swd_of_identical_sets_is_zero_and_positive_for_shift(split):
    assert metrics.swd(split.test, split.test.clone()) == 0.0
    assert metrics.swd(split.test, split.test + 0.5) > 0.05


# ---------------------------------------------------------------- reference endpoint and its cache

def test_converged_endpoint_matches_gaussian_closed_form(tmp_path):
    bed = GaussianTestbed(dim=8, mean=0.2, std=0.9)
    x_T = bed.sample_prior(16, 80.0)
    x0 = converged_endpoint(bed.denoiser, x_T, steps=200, cache_dir=tmp_path)
    assert metrics.rmse(x0, bed.ode_endpoint(x_T, 80.0)) < 1e-3
    assert list(tmp_path.iterdir()) == []  # no key and no model.cache_key: nothing cached


def test_converged_endpoint_is_cached_by_inputs(tmp_path, split):
    model = CountedModel(ExactDenoiser(split.train))
    x_T = 80.0 * torch.randn(4, 64, generator=_gen())
    first = converged_endpoint(model, x_T, steps=10, cache_dir=tmp_path)
    assert model.calls == 19 and len(list(tmp_path.glob("*.safetensors"))) == 1
    again = converged_endpoint(model, x_T, steps=10, cache_dir=tmp_path)
    assert model.calls == 19 and torch.equal(first, again)
    converged_endpoint(model, x_T + 1.0, steps=10, cache_dir=tmp_path)
    converged_endpoint(model, x_T, steps=11, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3


def test_converged_endpoint_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDULE_LAB_CACHE", str(tmp_path))
    bed = GaussianTestbed(dim=2)
    converged_endpoint(bed.denoiser, bed.sample_prior(2, 80.0), steps=5, key="gaussian-d2")
    assert len(list(tmp_path.glob("endpoint-*.safetensors"))) == 1


# ---------------------------------------------------------------- shipped weights

def test_shipped_weights_have_sidecars_with_provenance():
    for name in (EDM_MLP_FILE, CLASSIFIER_FILE):
        sidecar = read_sidecar(name)
        for field in ("config", "command", "hyper_parameters", "torch_version", "train_seconds",
                      "final_train_loss", "evaluation"):
            assert field in sidecar, f"{name}.json lacks {field}"
        assert (WEIGHTS_DIR / f"{name}.safetensors").stat().st_size < 3_200_000


def test_edm_mlp_beats_identity_and_zero_at_sigma_one(split):
    model = load_edm_mlp()
    noisy = split.test + torch.randn(split.test.shape, generator=_gen())
    mse = float((model(noisy, torch.ones(360)) - split.test).square().mean())
    assert mse < float((noisy - split.test).square().mean())
    assert mse < float(split.test.square().mean())


def test_edm_mlp_is_in_distribution_at_sigma_max(split):
    # Trained over the whole [0.002, 80]: at σ = 80 it must predict about the data mean, not extrapolate.
    model = load_edm_mlp()
    noisy = split.test + 80.0 * torch.randn(split.test.shape, generator=_gen())
    mse = float((model(noisy, torch.full((360,), 80.0)) - split.test).square().mean())
    assert mse < 1.1 * float((split.train.mean(0) - split.test).square().mean())


def test_edm_mlp_accepts_images_in_float64(split):
    out = load_edm_mlp()(to_images(split.test[:2]).double(), torch.tensor([0.5, 2.0], dtype=torch.float64))
    assert out.shape == (2, 1, 8, 8) and out.dtype == torch.float64


def test_classifier_test_accuracy_at_least_095(split):
    logits = load_classifier()(split.test)
    assert float((logits.argmax(1) == split.test_labels).double().mean()) >= 0.95


def test_fd_cls_of_train_against_itself_is_zero_and_below_train_vs_test(split):
    assert metrics.fd_cls(split.train, split.train) == pytest.approx(0.0, abs=1e-6)
    floor = metrics.fd_cls(split.train, split.test)
    assert 0.1 < floor < 10.0


# ---------------------------------------------------------------- training is reproducible

def test_training_cli_is_reproducible_and_loadable(tmp_path):
    for out in (tmp_path / "a", tmp_path / "b"):
        train_main(["--which", "all", "--iters", "3", "--out", str(out), "--eval-samples", "64",
                    "--eval-steps", "3"])
    for name in (EDM_MLP_FILE, CLASSIFIER_FILE):
        a = (tmp_path / "a" / f"{name}.safetensors").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.safetensors").read_bytes()
        assert json.loads((tmp_path / "a" / f"{name}.json").read_text())["iterations_done"] == 3
    model = load_edm_mlp.__wrapped__(tmp_path / "a")
    assert model(torch.zeros(2, 64), torch.ones(2)).shape == (2, 64)
