"""The TPM trained for the natural-image patch UNet (lab/testbeds/weights/tpm_patch_unet) and what it was trained with:
the feature-space endpoint reward, ``--testbed patch-unet``, the testbed → bundled TPM registry (docs/tpdm.md,
"Trained TPMs")."""
import hashlib
import json
import math

import pytest
import torch

from schedule_lab.lab.testbeds.models import BUNDLED_TPMS, WEIGHTS_DIR, bundled_tpm_path, load_edm_mlp
from schedule_lab.lab.testbeds.taps import tap_for
from schedule_lab.lab.testbeds.unet import load_patch_unet
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers.tpdm.official import load_tpm
from schedule_lab.solvers.tpdm.sampler import sample_tpdm
from schedule_lab.solvers.tpdm.tpm import INIT_BIAS, TimePredictor

KIND = ModelKind.edm(0.002, 80.0, 0.5)  # the patch UNet's own range: where its TPM was trained


def _level(sigma: float) -> float:
    return sigma / (1 + sigma)  # where the ratio acts on EDM models (docs/tpdm.md)


def _run(tpm, tap, model, x_T, max_steps=35):
    schedules: list = []
    x0 = sample_tpdm(model, x_T, torch.tensor([KIND.sigma_max, 0.0]), {}, disable=True, tpm=tpm,
                     read_features=tap.read, min_sigma=KIND.sigma_min, max_steps=max_steps, kind=KIND,
                     schedules=schedules)
    return x0, schedules


def test_shipped_patch_tpm_reads_the_unet_tap_and_stops_in_fewer_steps_than_its_initial_policy():
    model = load_patch_unet()
    path = bundled_tpm_path(model)
    assert path.name == "tpm_patch_unet.safetensors"
    tpm, meta = load_tpm(path)
    tpm.eval()
    assert meta["family"] == "testbed:patch-unet"
    tap = tap_for(model)
    x_T = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * KIND.sigma_max
    # the sizes match the UNet's tap at every noise level, and both Beta parameters stay above 1
    for sigma in (80.0, 5.0, 0.3, 0.01):
        with torch.no_grad():
            model(x_T / 80.0 * sigma, torch.full((8,), sigma))
        features = tap.read()
        assert features.h1.shape == (8, 16, 16, 16) and features.h2.shape == (8, 16, 16, 16)
        assert features.temb.shape == (8, 128)
        tpm.check_features(features)
        with torch.no_grad():
            alpha, beta = tpm(features)
        assert bool(torch.isfinite(alpha).all() and (alpha > 1).all() and (beta > 1).all())
    x0, schedules = _run(tpm, tap, model, x_T)
    steps = [len(s) - 1 for s in schedules]
    for s in schedules:  # strictly decreasing positive levels from σ_max, the stopping step landing on 0
        assert float(s[0]) == pytest.approx(KIND.sigma_max) and float(s[-1]) == 0.0
        assert bool((s[:-1] > 0).all() and (s[1:] < s[:-1]).all())
    assert all(1 <= n <= 35 for n in steps)
    # the untrained policy (zero weights, official fc2 bias (2.5, 1.0)): ratio = its mode 12.18/14.90 in level space,
    # so from σ 80 it needs ⌈ln(ℓ(0.002)/ℓ(80)) / ln r⌉ = 31 steps; the trained one must have learnt to take fewer
    r0 = (math.exp(INIT_BIAS[0])) / (math.exp(INIT_BIAS[0]) + math.exp(INIT_BIAS[1]))
    init_steps = math.ceil(math.log(_level(KIND.sigma_min) / _level(KIND.sigma_max)) / math.log(r0))
    untrained = TimePredictor(**tpm.config)
    with torch.no_grad():
        for name, p in untrained.named_parameters():
            if name != "fc2.bias":
                p.zero_()
    _, init_schedules = _run(untrained, tap, model, x_T[:2])
    assert init_steps == 31 and [len(s) - 1 for s in init_schedules] == [31, 31]
    assert sum(steps) / len(steps) < 0.5 * init_steps
    # deterministic (the mode): the same images and schedules again, bit for bit
    x0_again, schedules_again = _run(tpm, tap, model, x_T)
    assert torch.equal(x0, x0_again)
    assert all(torch.equal(a, b) for a, b in zip(schedules, schedules_again, strict=True))
    # a cap below its choice: every image stops at the cap, its last step landing on 0
    _, capped = _run(tpm, tap, model, x_T, max_steps=3)
    assert [len(s) - 1 for s in capped] == [3] * 8 and all(float(s[-1]) == 0.0 for s in capped)
    tap.remove()


@pytest.mark.parametrize("name", sorted(BUNDLED_TPMS.values()))
def test_bundled_tpm_sidecar_matches_its_file(name):
    path = WEIGHTS_DIR / f"{name}.safetensors"
    from schedule_lab.lab.tpdm.train import tensors_sha256

    record = json.loads(path.with_suffix(".json").read_text())
    data = path.read_bytes()
    assert record["file"] == path.name and record["bytes"] == len(data) < 5_000_000
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["tensors_sha256"] == tensors_sha256(path)  # what a retrain reproduces (metadata order varies)
    tpm, _ = load_tpm(path)
    assert record["parameters"] == sum(p.numel() for p in tpm.parameters())
    assert record["tpm_config"] == tpm.config
    testbed = record["testbed"]
    assert record["command"].startswith("schedule-lab tpdm train")
    assert ("--testbed patch-unet" in record["command"]) == (testbed == "patch-unet")
    history = record["history"]
    assert len(history) == record["train_config"]["iterations"]
    first, last = history[:10], history[-10:]
    assert record["summary"]["first10_steps_mean"] == pytest.approx(sum(e["steps_mean"] for e in first) / len(first))
    assert record["summary"]["last10_steps_mean"] == pytest.approx(sum(e["steps_mean"] for e in last) / len(last))
    assert record["seconds_total"] == pytest.approx(sum(e["seconds"] for e in history), abs=0.1)
    assert record["seconds_total"] <= 30 * 60  # the CPU budget per trained TPM


def test_bundled_tpm_registry_maps_each_bundled_model_to_the_tpm_trained_for_it():
    assert bundled_tpm_path(load_edm_mlp()).name == "tpm_edm_digits.safetensors"
    assert bundled_tpm_path(load_patch_unet()).name == "tpm_patch_unet.safetensors"
    for name in BUNDLED_TPMS.values():  # each record names the testbed whose model the registry maps to it
        record = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        assert {"tpm_edm_digits": "edm-digits", "tpm_patch_unet": "patch-unet"}[name] == record["testbed"]
    with pytest.raises(KeyError, match="PatchUNet"):
        bundled_tpm_path(torch.nn.Linear(2, 2))


def test_endpoint_score_solves_each_shared_start_once_and_measures_the_error_in_feature_space():
    from schedule_lab.lab.testbeds.gaussian import GaussianTestbed
    from schedule_lab.lab.testbeds.rewards import EndpointScore, testbed_scorer

    bed = GaussianTestbed(6, mean=0.3, std=0.5)
    calls = []

    def model(x, sigma, **kw):
        calls.append(x.shape[0])
        return bed.denoiser(x, sigma, **kw)

    x_T = (torch.randn(3, 6, generator=torch.Generator().manual_seed(0)) * 80.0).repeat(2, 1)  # k = 2 per group
    score = EndpointScore(model, tau=0.5, steps=200)
    ends = score.endpoint(x_T, 80.0)
    assert set(calls) == {3}  # the 3 distinct starts, not the 6 rows
    assert torch.equal(ends[:3], ends[3:])
    exact = bed.ode_solution(x_T.double(), 80.0, 0.0).float()  # the closed-form probability-flow ODE
    assert float((ends - exact).abs().max()) < 1e-3  # Heun-200 (Heun-60: 3.9e-3, second order)
    x0 = exact + 0.1 * torch.randn(6, 6, generator=torch.Generator().manual_seed(1))
    err = (x0 - ends).double().square().mean(dim=1).sqrt()
    assert torch.allclose(score(x0, {"x_T": x_T, "sigma_start": 80.0}), torch.exp(-err / 0.5))
    doubled = EndpointScore(model, tau=0.5, steps=200, features=lambda x: 2 * x.double())
    assert torch.allclose(doubled(x0, {"x_T": x_T, "sigma_start": 80.0}), torch.exp(-2 * err / 0.5))

    class Features(torch.nn.Module):  # a classifier stand-in: features(x) = 3x
        def features(self, x):
            return 3 * x

    feat = testbed_scorer("endpoint-features", model, tau=0.5, classifier=Features())  # Heun-60 endpoints
    err60 = (x0 - EndpointScore(model, steps=60).endpoint(x_T, 80.0)).double().square().mean(dim=1).sqrt()
    assert torch.allclose(feat(x0, {"x_T": x_T, "sigma_start": 80.0}), torch.exp(-3 * err60 / 0.5))
    with pytest.raises(ValueError, match="endpoint-features"):
        testbed_scorer("nope", model)


def test_train_cli_on_the_patch_unet_records_its_range_reward_and_testbed(tmp_path):
    from schedule_lab.lab.cli import main as cli

    out = tmp_path / "tpm.safetensors"
    assert cli(["tpdm", "train", "--testbed", "patch-unet", "--iterations", "1", "--groups", "2", "--k", "2",
                "--max-steps", "6", "--out", str(tmp_path / "ck"), "--export", str(out), "--no-progress"]) == 0
    tpm, meta = load_tpm(out)
    record = json.loads(out.with_suffix(".json").read_text())
    assert meta["family"] == "testbed:patch-unet" and record["testbed"] == "patch-unet"
    assert record["reward"] == "endpoint-features" and record["tau"] == 1.0
    assert record["sampler"]["sigma_start"] == 80.0 and record["sampler"]["min_sigma"] == 0.002
    assert tpm.config == {"in_channels": 32, "temb_dim": 128, "width": 16, "h1_channels": 16}
    assert 1 <= record["history"][0]["steps_mean"] <= 6


def test_patch_testbed_enters_the_shared_harness_with_its_classifier_and_768_values():
    pytest.importorskip("skimage")  # the photographs' crops (the pack's [lab] extra)
    from schedule_lab.kernels.frechet import frechet_distance, gaussian_stats
    from schedule_lab.lab.benchmarks import methods as M
    from schedule_lab.lab.benchmarks.evaluate import evaluate
    from schedule_lab.lab.benchmarks.setups import load_testbed, noise
    from schedule_lab.lab.testbeds.reference import converged_endpoint
    from schedule_lab.lab.testbeds.unet import load_patch_classifier
    from schedule_lab.schedules.baseline import karras
    from schedule_lab.solvers.classic import sample_euler

    bed = load_testbed("patch-unet", "edm")
    assert bed.dim == 768 and bed.target.shape == (1000, 768) and bed.kind.sigma_max == 80.0
    assert bed.classifier is load_patch_classifier()
    (row,) = evaluate(M.sampler_methods(bed.kind, ["euler"], ["karras"]), bed, [3], [0], n_samples=8, ref_steps=4,
                      log=lambda *_: None)["rows"]
    # recomputed by hand: Euler on 3 Karras steps from 80·noise, against Heun-4 from the same x_T, FD in the patch
    # classifier's features against the held-out crops
    x_T = noise(8, 0, 768) * 80.0
    x0 = sample_euler(bed.model, x_T, karras(3, 0.002, 80.0), disable=True)
    ref = converged_endpoint(bed.model, x_T, 0.002, 80.0, steps=4)
    assert row["rmse"][0] == pytest.approx(float((x0 - ref).double().square().mean().sqrt()), rel=1e-6)
    clf = load_patch_classifier()
    with torch.no_grad():
        fd = frechet_distance(*gaussian_stats(clf.features(x0).double()),
                              *gaussian_stats(clf.features(bed.target).double()))
    assert row["fd_cls"][0] == pytest.approx(fd, rel=1e-6)


def test_compare_runs_sl_tpdm_on_the_patch_unet_with_the_tpm_trained_for_it(tmp_path):
    pytest.importorskip("skimage")  # compare's patch metrics use the photographs' crops
    from schedule_lab.lab.benchmarks.setups import noise
    from schedule_lab.lab.cli.compare import adaptive_cap, bundled_tpm, compare, model_kind
    from schedule_lab.solvers import catalogue

    model = load_patch_unet()
    provided, why = bundled_tpm(model)
    record = json.loads((WEIGHTS_DIR / "tpm_patch_unet.json").read_text())
    assert why == "" and provided["tpdm"][0].config == record["tpm_config"]
    doc = compare(5, ["sl_tpdm"], ["karras"], seed=3, columns=2, n_samples=16, out=tmp_path, log=lambda *_: None,
                  model="patches", menu=False)  # the menu's row (with the host) is not what this test is about
    assert doc["skipped"] == [] and [(r["sampler"], r["schedule"]) for r in doc["rows"]] == [("sl_tpdm", "karras")]
    kind = model_kind("model", model.sigma_data)  # compare's: the model's own EDM range, where the TPM was trained
    assert (kind.sigma_min, kind.sigma_max) == (record["sampler"]["min_sigma"], record["sampler"]["sigma_start"])
    batch = torch.cat([noise(1, 3, 768), noise(1, 4, 768), noise(16, 3, 768)])
    cap = adaptive_cap("tpm_patch_unet")  # compare runs sl_tpdm to its own stopping rule within its TPM's cap
    res = catalogue.run(f"sl_tpdm(min_sigma={kind.sigma_min}, max_steps={cap})", "karras", model, batch, kind=kind,
                        steps=5, seed=3, provided=provided)
    used = [len(s) - 1 for s in res.schedules[2:]]
    assert all(1 <= n <= cap for n in used) and max(used) > 5, "capped at the grid's step count"
    assert doc["rows"][0]["nfe"] == pytest.approx(sum(used) / len(used), abs=0.01)


@pytest.mark.slow
def test_tau_rule_gives_the_patch_unet_its_recorded_tau():
    """`schedule-lab tpdm train --tau-rule`: the stock schedule's reward peaks nearest 10 steps at τ = 1.0 on the
    patch UNet, the τ its TPM was trained with (chosen by the same rule by hand before; docs/tpdm.md)."""
    from schedule_lab.lab.tpdm.train import tau_by_rule, testbed_model

    model, kind, _, classifier = testbed_model("patch-unet")
    table, tau = tau_by_rule(model, kind, classifier, kind.sigma_max, 0.85)
    assert tau == 1.0 and table["peak_steps"][1.0] == 10 and table["schedule"] == "karras"
    assert table["feature_error"][8] > table["feature_error"][10] > table["feature_error"][20]


def test_the_flow_tpm_fits_the_zoo_flow_model_and_its_record_retrains_it():
    from schedule_lab.lab.tpdm.train import TESTBED_MIN_SIGMA, testbed_model

    model, kind, shape, _ = testbed_model("zoo-flow")
    assert kind.kind == "flow" and shape == (3, 16, 16) and TESTBED_MIN_SIGMA["zoo-flow"] == 1e-3
    tpm, meta = load_tpm(WEIGHTS_DIR / "tpm_zoo_flow.safetensors")
    record = json.loads((WEIGHTS_DIR / "tpm_zoo_flow.json").read_text())
    assert tpm.head == "bounded" and tpm.config == record["tpm_config"] and float(meta["min_sigma"]) == 1e-3
    assert record["retrain_command"].endswith(f"--iterations {record['iterations_done']}")
    assert "--max-minutes" not in record["retrain_command"] and len(record["history"]) == record["iterations_done"]
    tap = tap_for(model)
    with torch.no_grad():
        model(torch.randn(4, 768), torch.full((4,), 0.5))
        a, b = tpm(tap.read())
    assert bool(((a > 1) & (b > 1)).all())
