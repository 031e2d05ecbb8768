"""Refinement with a finite-difference gradient (forward model calls only): what makes it usable inside ComfyUI,
where every node runs under torch.inference_mode() and the model's weights are inference tensors."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from schedule_lab.schedules import ScheduleError, validate_sigmas
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.schedules.search.fitness import EndpointFitness, ReferenceSet
from schedule_lab.schedules.search.genes import GeneSpace, uniform_genes
from schedule_lab.schedules.search.refine import (
    differentiable,
    finite_difference_basis,
    logits_from_sigmas,
    loss_gradient,
    refine,
)
from schedule_lab.solvers.classic import sample_dpmpp_2m, sample_euler, sample_heun

SD = ModelKind.vp()
SPACE = GeneSpace(SD)


@lru_cache(maxsize=1)
def _digits():
    from schedule_lab.lab.testbeds.digits import load_digits_split
    from schedule_lab.lab.testbeds.exact import ExactDenoiser

    model = ExactDenoiser(load_digits_split().train)
    return model, ReferenceSet(model, SD, (64,), n_search=64, n_holdout=64, seed=0, reference_steps=40, nfe=4,
                               reference_sampler=sample_heun)


def _uniform(nfe=4):
    return SPACE.sigmas(uniform_genes(SPACE, nfe))


def test_basis_spans_exactly_the_directions_that_change_the_list():
    b = finite_difference_basis(5)
    assert b.shape == (5, 4)
    assert torch.allclose(b.T @ b, torch.eye(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(b.T @ torch.ones(5, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("sampler", [sample_euler, sample_dpmpp_2m], ids=["euler", "dpmpp_2m"])
@pytest.mark.parametrize("shift", [0.0, 0.5], ids=["uniform", "perturbed"])
def test_finite_difference_gradient_matches_autograd(sampler, shift):
    """Exact digits denoiser, float32 sampler, 64 samples, default step 1e-2 in logit space.

    Bound: central differences err by O(h²) (truncation) plus O(float32 rounding / h). Measured over these four
    cases and the trained MLP (docs/search.md): relative error 3e-4 to 4e-3 at h = 1e-2; 0.03-0.44 at h = 0.1, so
    the 2e-2 bound separates a correct difference quotient from a wrong one (a sign or basis error gives >= 1)."""
    model, ref = _digits()
    w = logits_from_sigmas(_uniform(), SD)
    w = w + shift * torch.randn(len(w), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    idx = torch.arange(64)
    g_ad, loss_ad = loss_gradient(model, differentiable(sampler), ref, w, idx, "autograd")
    g_fd, loss_fd = loss_gradient(model, sampler, ref, w, idx, "finite_difference")
    rel = float((g_fd - g_ad).norm() / g_ad.norm())
    cos = float(g_fd @ g_ad / (g_fd.norm() * g_ad.norm()))
    assert rel < 2e-2 and cos > 0.9998, (rel, cos)
    assert loss_fd == pytest.approx(loss_ad, rel=1e-3)  # the ±h mean is the loss at w up to O(h²)
    g_coarse, _ = loss_gradient(model, sampler, ref, w, idx, "finite_difference", fd_step=1.0)
    assert float((g_coarse - g_ad).norm() / g_ad.norm()) > 2e-2  # the bound can fail


def test_finite_difference_refinement_beats_uniform_stays_decreasing_and_is_deterministic():
    model, ref = _digits()
    fit = EndpointFitness(model, sample_euler, ref)
    kw = dict(iterations=30, lr=0.2, batch=32, eval_every=5)
    r = refine(model, sample_euler, ref, _uniform(), seed=3, gradient="finite_difference", **kw)
    assert fit.holdout(r.sigmas) < 0.95 * fit.holdout(_uniform())
    by_autograd = refine(model, sample_euler, ref, _uniform(), seed=3, **kw)
    assert fit.holdout(r.sigmas) == pytest.approx(fit.holdout(by_autograd.sigmas), rel=0.02)
    kw["gradient"] = "finite_difference"
    validate_sigmas(r.sigmas)
    assert (r.sigmas[1:] < r.sigmas[:-1]).all() and r.sigmas[-1] == 0 and len(r.sigmas) == 5
    again = refine(model, sample_euler, ref, _uniform(), seed=3, **kw)
    assert torch.equal(r.sigmas, again.sigmas) and r.train_rmse == again.train_rmse
    other = refine(model, sample_euler, ref, _uniform(), seed=4, **kw)
    assert other.train_rmse != r.train_rmse  # the seed draws the batches
    assert r.gradient == "finite_difference" and r.backward_samples == 0


def test_finite_difference_counts_every_model_call():
    model, ref = _digits()
    r = refine(model, sample_euler, ref, _uniform(3), iterations=2, batch=16, eval_every=2,
               gradient="finite_difference")
    runs = 2 * 3  # ± along each of the nfe free directions
    assert r.gradient_calls == 2 * runs * 3 and r.gradient_samples == 2 * runs * 3 * 16
    assert r.model_calls == r.gradient_calls + 2 * 3  # held-out scoring at iterations 0 and 2
    assert r.model_samples == r.gradient_samples + 2 * 3 * ref.n_holdout


def test_progress_reports_each_iteration_and_can_cancel():
    model, ref = _digits()
    seen = []

    class Stop(Exception):
        pass

    def progress(info):
        seen.append(info)
        if info["iteration"] == 2:
            raise Stop

    with pytest.raises(Stop):
        refine(model, sample_euler, ref, _uniform(3), iterations=10, batch=8, gradient="finite_difference",
               progress=progress)
    assert [i["iteration"] for i in seen] == [1, 2] and seen[-1]["iterations"] == 10
    assert seen[-1]["model_calls"] == 2 * 6 * 3 + 3 and seen[-1]["gradient"] == "finite_difference"
    with pytest.raises(ScheduleError, match="gradient="):
        refine(model, sample_euler, ref, _uniform(3), gradient="spsa")
    with pytest.raises(ScheduleError, match="fd_step="):
        refine(model, sample_euler, ref, _uniform(3), gradient="finite_difference", fd_step=0.0)


def _inference_mlp():
    """The trained digits MLP with its weights created under inference mode, as ComfyUI loads a checkpoint."""
    from schedule_lab.lab.testbeds.models import load_edm_mlp

    with torch.inference_mode():
        model = load_edm_mlp.__wrapped__()
    assert all(p.is_inference() for p in model.parameters())
    return model


def test_in_comfyuis_inference_mode_autograd_fails_and_finite_differences_work():
    model = _inference_mlp()
    with torch.inference_mode():
        ref = ReferenceSet(model, SD, (64,), n_search=32, n_holdout=32, seed=0, reference_steps=30, nfe=3,
                           reference_sampler=sample_heun)
    # the oracle: backpropagating through these weights really fails (not a guard of ours)
    s = torch.tensor([8.0, 2.0, 0.5, 0.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        differentiable(sample_euler)(model, torch.randn(4, 64) * 8.0, s).sum().backward()
    with pytest.raises(ScheduleError, match="finite_difference"):
        refine(model, sample_euler, ref, _uniform(3), iterations=2)  # outside inference mode: the weights
    with torch.inference_mode(), pytest.raises(ScheduleError, match="finite_difference"):
        refine(model, sample_euler, ref, _uniform(3), iterations=2)
    with torch.inference_mode():
        r = refine(model, sample_euler, ref, _uniform(3), iterations=10, batch=16, eval_every=2,
                   gradient="finite_difference")
        fit = EndpointFitness(model, sample_euler, ref)
        assert fit.holdout(r.sigmas) < 0.95 * fit.holdout(_uniform(3))
    validate_sigmas(r.sigmas)
    assert r.best_iteration > 0 and r.gradient_calls == 10 * 6 * 3
