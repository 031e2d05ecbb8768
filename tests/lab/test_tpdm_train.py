"""TPDM trainer (lab/tpdm/trainer.py): cached-feature PPO, checkpoints, resume, DDP (docs/tpdm.md, "Trainer")."""
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from schedule_lab.lab.testbeds.models import load_edm_mlp
from schedule_lab.lab.testbeds.taps import tap_for
from schedule_lab.lab.tpdm import rl
from schedule_lab.lab.tpdm import trainer as T
from schedule_lab.schedules.model_calls import CountedModel
from schedule_lab.schedules.model_kind import ModelKind
from schedule_lab.solvers.tpdm.tpm import TPMFeatures, tpm_for_features

ROOT = Path(__file__).resolve().parents[2]
KIND = ModelKind.vp("eps")
CFG = T.TrainConfig(iterations=3, groups=2, k=2, ppo_epochs=2, lr=1e-3, sigma_start=KIND.sigma_max,
                    min_sigma=KIND.sigma_min, max_steps=12, save_every=1, seed=3)


def _setup(width=8, seed=0):
    model = load_edm_mlp()
    tap = tap_for(model)
    model(torch.zeros(1, 64), torch.ones(1))
    torch.manual_seed(seed)
    return model, tap, tpm_for_features(tap.read(), width=width)


def _score(x0, info):  # positive, image-dependent, cheap
    return torch.exp(-x0.double().square().mean(dim=1))


def _rollout(model, tap, tpm, b=4, seed=1):
    x_T = torch.randn(b, 64, generator=torch.Generator().manual_seed(seed)) * CFG.sigma_start
    return T.rollout(model, tap.read, tpm, x_T, CFG, seed=seed, groups=torch.arange(b // 2).repeat(2), kind=KIND)


def test_tap_reads_the_same_call_as_the_prediction():
    model, tap, _ = _setup()
    x, s = torch.randn(3, 64), torch.tensor([5.0, 1.0, 0.1])
    model(x, s)
    f = tap.read()
    assert f.h1.shape == (3, 256, 1, 1) and f.h2.shape == (3, 256, 1, 1) and f.temb.shape == (3, 64)
    _, _, c_in, c_noise = model.preconditioning(s)
    assert torch.equal(f.temb, model.emb_mlp(model.fourier(c_noise)))
    assert torch.equal(f.h1.flatten(1), model.inp(c_in[:, None] * x))
    tap.clear()
    with pytest.raises(RuntimeError, match="run the model"):
        tap.read()


def test_cached_log_probs_equal_rollout():
    model, tap, tpm = _setup()
    ro = _rollout(model, tap, tpm)
    assert bool((ro.steps > 1).all()) and ro.mask.shape[0] == int(ro.steps.max())
    with torch.no_grad():
        step_lp = rl.recompute_log_probs(tpm, ro.features, ro.ratios, ro.mask)
        seq = T.sequence_log_probs(tpm, ro)
    # the same fp32 TPM on the same rows; only the batch arrangement (B rows vs T·B rows) may change round-off
    torch.testing.assert_close(step_lp, ro.log_probs, rtol=0, atol=1e-5)
    torch.testing.assert_close(seq, rl.sequence_log_prob(ro.log_probs, ro.mask), rtol=0, atol=1e-4)


def test_ppo_epochs_never_run_the_diffusion_model_and_first_ratio_is_one():
    model, tap, tpm = _setup()
    counted = CountedModel(model)
    ro = _rollout(counted, tap, tpm)
    calls = counted.calls
    assert calls == int(ro.steps.max())  # one batched call per step
    adv = rl.rloo_advantages(torch.tensor([1.0, 0.5, 0.2, 0.9]), ro.groups)
    params = list(tpm.parameters())
    out = T.ppo_update(tpm, params, T.make_optimizer(tpm, CFG), ro, adv, replace(CFG, ppo_epochs=3))
    assert counted.calls == calls
    first = out["epochs"][0]
    assert first["ratio"] == 1.0 and first["clipfrac"] == 0.0 and first["approx_kl"] == 0.0
    assert out["epochs"][-1]["ratio"] != 1.0  # the later epochs see the updated TPM


def test_a_non_finite_batch_is_skipped_without_touching_the_weights():
    model, tap, tpm = _setup()
    ro = _rollout(model, tap, tpm)
    before = {k: v.clone() for k, v in tpm.state_dict().items()}
    adv = torch.tensor([float("nan"), 0.0, 0.0, 0.0], dtype=torch.float64)
    out = T.ppo_update(tpm, list(tpm.parameters()), T.make_optimizer(tpm, CFG), ro, adv, CFG)
    assert out["skipped"] == CFG.ppo_epochs
    for k, v in tpm.state_dict().items():
        assert torch.equal(v, before[k])


def _train(tmp, **kw):
    model, tap, tpm = _setup()
    hist = T.train(model, tap.read, tpm, _score, CFG, (64,), kind=KIND, out=tmp, progress=False, **kw)
    return tpm, hist


def _strip(history):
    return [{k: v for k, v in e.items() if k not in ("seconds", "cpu_seconds")} for e in history]


def test_resume_gives_the_uninterrupted_result(tmp_path):
    full, hist_full = _train(tmp_path / "full")
    _, hist_a = _train(tmp_path / "cut", stop_after=2)
    assert len(hist_a) == 2
    # a fresh TPM (other init) and optimizer: everything must come from the checkpoint
    model, tap, tpm = _setup(seed=99)
    hist = T.train(model, tap.read, tpm, _score, CFG, (64,), kind=KIND, out=tmp_path / "cut", progress=False,
                   resume=tmp_path / "cut" / "checkpoint.safetensors")
    for k, v in full.state_dict().items():
        assert torch.equal(tpm.state_dict()[k], v), k
    assert _strip(hist) == _strip(hist_full)
    a = load_file(str(tmp_path / "full" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoint.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # weights, AdamW moments and steps, RNG state


def test_checkpoint_is_plain_safetensors_with_json_metadata(tmp_path):
    tpm, _ = _train(tmp_path, stop_after=1)
    path = tmp_path / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["format"] == T.CHECKPOINT_FORMAT and meta["iteration"] == "1"
    assert json.loads(meta["config"])["k"] == CFG.k and len(json.loads(meta["history"])) == 1
    assert {f"tpm.{k}" for k in tpm.state_dict()} <= keys
    assert any(k.startswith("optim.") and k.endswith("exp_avg_sq") for k in keys) and "rng.torch" in keys
    assert path.read_bytes()[:2] != b"\x80\x04"  # not a pickle


def test_extending_a_finished_run_gives_the_longer_run(tmp_path):
    longer, hist_long = _train(tmp_path / "long")  # CFG.iterations = 3
    model, tap, tpm = _setup()
    T.train(model, tap.read, tpm, _score, replace(CFG, iterations=2), (64,), kind=KIND, out=tmp_path / "short",
            progress=False)
    hist = T.train(model, tap.read, tpm, _score, CFG, (64,), kind=KIND, out=tmp_path / "short", progress=False,
                   resume=tmp_path / "short" / "checkpoint.safetensors")
    for k, v in longer.state_dict().items():
        assert torch.equal(tpm.state_dict()[k], v), k
    assert _strip(hist) == _strip(hist_long)


def test_resume_refuses_another_configuration(tmp_path):
    _train(tmp_path, stop_after=1)
    model, tap, tpm = _setup()
    with pytest.raises(ValueError, match="same options"):
        T.train(model, tap.read, tpm, _score, replace(CFG, lr=0.5), (64,), kind=KIND, progress=False,
                resume=tmp_path / "checkpoint.safetensors")


# ---------------------------------------------------------------------------------------------------------- DDP
def synthetic_rollout(t=5, groups=4, k=2, seed=0) -> T.Rollout:
    """A fixed batch of trajectories (features, ratios, masks) — what a rollout caches — without a model."""
    g = torch.Generator().manual_seed(seed)
    b = groups * k
    feats = [TPMFeatures(torch.randn(b, 6, 1, 1, generator=g), torch.randn(b, 6, 1, 1, generator=g),
                         torch.randn(b, 5, generator=g)) for _ in range(t)]
    steps = torch.randint(2, t + 1, (b,), generator=g)
    mask = torch.arange(t)[:, None] < steps[None, :]
    ratios = torch.where(mask, torch.rand(t, b, generator=g) * 0.8 + 0.1, torch.ones(t, b))
    return T.Rollout(feats, ratios, torch.zeros(t, b), mask, steps, torch.zeros(b, 1), torch.zeros(b, 1),
                     torch.arange(groups).repeat(k))


DDP_CFG = replace(CFG, ppo_epochs=1, lr=1e-3)


def one_update(rank: int = 0, world: int = 1, micro_batch: int = 0) -> dict:
    """Rank ``rank``'s share (whole groups) of the synthetic batch, one PPO update; returns the TPM weights."""
    ro = synthetic_rollout()
    rewards = torch.linspace(0.2, 1.0, ro.groups.numel(), dtype=torch.float64).flip(0)
    adv = rl.rloo_advantages(rewards, ro.groups)
    groups_per_rank = int(ro.groups.max()) // world + 1
    mine = (ro.groups // groups_per_rank) == rank
    ro, adv = ro.select(mine), adv[mine]
    torch.manual_seed(0)
    tpm = tpm_for_features(ro.features[0], width=8)
    policy = tpm
    if world > 1:
        policy = torch.nn.parallel.DistributedDataParallel(tpm)
    cfg = replace(DDP_CFG, micro_batch=micro_batch)
    T.ppo_update(policy, list(tpm.parameters()), T.make_optimizer(tpm, cfg), ro, adv, cfg)
    return {k: v.detach().clone() for k, v in tpm.state_dict().items()}


@pytest.mark.parametrize("micro_batch", [1, 3, 7, 1000])
def test_micro_batched_log_probs_give_the_one_call_update(micro_batch):
    """PPO with the log-probs recomputed in TPM calls of ≤ micro_batch valid row-steps (two passes, the chained
    gradient) makes the update of the one call over all T·B rows, to fp32 round-off (bound as in the DDP test)."""
    whole = one_update()
    chunked = one_update(micro_batch=micro_batch)
    for name, want in whole.items():
        torch.testing.assert_close(chunked[name], want, rtol=0, atol=1e-6, msg=name)
    assert max(float((whole[k] - v).abs().max()) for k, v in _initial().items()) > 1e-4


def test_chunks_visit_every_valid_row_step_once_and_no_masked_one():
    ro = synthetic_rollout()
    seen = torch.zeros_like(ro.mask, dtype=torch.long)
    for steps, rows in T._valid_chunks(ro, 3):
        assert len(steps) <= 3
        seen[steps, rows] += 1
    assert torch.equal(seen, ro.mask.long())


def test_rollout_cache_on_the_cpu_in_fp16_gives_the_same_log_probs_to_fp16_precision():
    model, tap, tpm = _setup()
    x_T = torch.randn(4, 64, generator=torch.Generator().manual_seed(1)) * CFG.sigma_start
    kw = {"seed": 1, "groups": torch.arange(2).repeat(2), "kind": KIND}
    full = T.rollout(model, tap.read, tpm, x_T, CFG, **kw)
    half = T.rollout(model, tap.read, tpm, x_T, replace(CFG, cache_dtype="float16", micro_batch=5), **kw)
    assert all(f.h1.dtype == torch.float16 and f.h1.device.type == "cpu" for f in half.features)
    assert torch.equal(full.ratios, half.ratios) and torch.equal(full.mask, half.mask)  # the rollout is the same
    a = T.sequence_log_probs(tpm, full)
    b = T.chunked_sequence_log_probs(tpm, half, 5)
    assert float((a - b).abs().max()) < 2e-2 * float(full.steps.max())  # fp16 features: ~1e-3 per step
    assert float((a - b).abs().max()) > 0  # the fp16 cache is really used


@pytest.mark.slow
@pytest.mark.parametrize("micro_batch", [0, 3])
def test_ddp_two_gloo_processes_make_the_single_process_update(tmp_path, micro_batch):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import importlib.util, sys
        import torch, torch.distributed as dist
        from safetensors.torch import save_file
        torch.set_num_threads(1)
        spec = importlib.util.spec_from_file_location("schedule_lab", {str(ROOT / '__init__.py')!r},
                                                      submodule_search_locations=[{str(ROOT)!r}])
        mod = importlib.util.module_from_spec(spec); sys.modules["schedule_lab"] = mod; spec.loader.exec_module(mod)
        spec = importlib.util.spec_from_file_location("ddp_case", {str(Path(__file__))!r})
        case = importlib.util.module_from_spec(spec); spec.loader.exec_module(case)
        dist.init_process_group("gloo")
        weights = case.one_update(dist.get_rank(), dist.get_world_size(), {micro_batch})
        save_file(weights, {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.safetensors")
        dist.destroy_process_group()
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    single = one_update(micro_batch=micro_batch)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    for name, want in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # DDP keeps the replicas identical
        # Tolerance: the all-reduce sums the two half-batch gradients in another order than one backward over the
        # whole batch (fp32 round-off, ~1e-7 relative). AdamW's first step moves each weight by lr·g/(|g| + eps),
        # whose sensitivity to g is at most lr/eps = 100 per unit of g; with |g| round-off ≲ 1e-9 that is ≲ 1e-7.
        torch.testing.assert_close(ranks[0][name], want, rtol=0, atol=1e-6, msg=name)
    moved = max(float((single[k] - v).abs().max()) for k, v in _initial().items())
    assert moved > 1e-4  # the update is not a no-op, so the comparison means something


def _initial() -> dict:
    ro = synthetic_rollout()
    torch.manual_seed(0)
    return {k: v.detach().clone() for k, v in tpm_for_features(ro.features[0], width=8).state_dict().items()}


def test_tap_for_a_conv_testbed_gives_maps_and_refuses_unknown_models():
    from torch import nn

    from schedule_lab.lab.testbeds.taps import tap_for

    class TinyConv(nn.Module):  # the patch UNet's names: inp (conv), out_norm (GroupNorm), emb_mlp
        def __init__(self):
            super().__init__()
            self.inp, self.out_norm = nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8)
            self.emb_mlp, self.out = nn.Linear(4, 6), nn.Conv2d(8, 3, 3, padding=1)

        def forward(self, x, sigma):
            self.emb_mlp(sigma[:, None].expand(-1, 4))
            return self.out(self.out_norm(self.inp(x)))

    m = TinyConv()
    tap = tap_for(m)
    m(torch.randn(2, 3, 8, 8), torch.ones(2))
    f = tap.read()
    assert f.h1.shape == (2, 8, 8, 8) and f.h2.shape == (2, 8, 8, 8) and f.temb.shape == (2, 6)
    tpm = tpm_for_features(f, width=4)
    alpha, beta = tpm(f)
    assert bool((alpha > 1).all() and (beta > 1).all())
    with pytest.raises(TypeError, match="out_norm"):
        tap_for(nn.Linear(2, 2))


def test_cli_trains_exports_a_loadable_tpm_and_takes_a_user_scorer(tmp_path, monkeypatch):
    from schedule_lab.lab.cli import main as cli
    from schedule_lab.solvers.tpdm.official import load_tpm

    (tmp_path / "my_score.py").write_text("import torch\n\ndef score(x0, info):\n"
                                          "    return torch.exp(-x0.double().square().mean(dim=1))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "tpm.safetensors"
    assert cli(["tpdm", "train", "--iterations", "1", "--groups", "2", "--k", "2", "--reward", "my_score:score",
                "--out", str(tmp_path / "ck"), "--export", str(out), "--no-progress"]) == 0
    tpm, meta = load_tpm(out)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["command"].startswith("schedule-lab tpdm train --iterations 1")
    assert record["parameters"] == sum(p.numel() for p in tpm.parameters()) and len(record["history"]) == 1
    assert meta["family"] == "testbed:edm-digits"
    with pytest.raises(SystemExit, match="cannot import"):
        cli(["tpdm", "train", "--iterations", "1", "--reward", "no_such_module:f", "--out", str(tmp_path / "x")])


# ---------------------------------------------------------------------------------------------- stability
def test_reference_prior_is_the_next_level_of_the_official_28_step_e_shifted_schedule():
    # the official prior's schedule: t_k = k/28, σ_k = e / (e + 1/t_k − 1); its mode at σ_k is σ_{k−1}/σ_k
    t = torch.arange(1, 29, dtype=torch.float64) / 28
    sigma = math.e / (math.e + 1 / t - 1)
    a, b = rl.reference_beta(sigma[1:])
    mode = (a - 1) / (a + b - 2)
    torch.testing.assert_close(mode, sigma[:-1] / sigma[1:], rtol=1e-12, atol=0)
    torch.testing.assert_close(a + b, torch.full_like(a, 20.0))  # concentration 20
    a0, b0 = rl.reference_beta(torch.tensor([1e-4, 2e-3]))  # below ℓ ≈ 0.0027 the mode is clamped, α, β stay > 1
    assert bool(((a0 > 1) & (b0 > 1)).all())


def test_kl_to_reference_is_zero_at_the_prior_and_masked_steps_add_nothing():
    level = torch.tensor([[0.9, 0.5], [0.4, 0.1]], dtype=torch.float64)
    a_ref, b_ref = rl.reference_beta(level)
    mask = torch.tensor([[True, True], [True, False]])
    assert rl.kl_to_reference(a_ref, b_ref, level, mask).abs().max() < 1e-12
    kl = rl.kl_to_reference(a_ref * 2, b_ref, level, mask)
    assert bool((kl > 0).all())
    only_first = rl.kl_to_reference(a_ref * 2, b_ref, level, torch.tensor([[True, True], [False, False]]))
    assert kl[1] == only_first[1] and kl[0] > only_first[0]


def test_kl_coef_lowers_the_reward_by_kl_coef_times_the_logged_kl(tmp_path):
    model, tap, tpm = _setup()
    plain = T.train(model, tap.read, tpm, _score, replace(CFG, iterations=1), (64,), kind=KIND, progress=False)
    model, tap, tpm = _setup()
    with_kl = T.train(model, tap.read, tpm, _score, replace(CFG, iterations=1, kl_coef=0.05), (64,), kind=KIND,
                      progress=False)
    (p,), (q,) = plain, with_kl
    assert p["kl_mean"] == q["kl_mean"] > 0 and p["steps_mean"] == q["steps_mean"]  # the same rollout
    assert q["reward_mean"] == pytest.approx(p["reward_mean"] - 0.05 * p["kl_mean"], rel=1e-12, abs=1e-12)
    assert 1 < p["alpha_min"] <= p["alpha_max"] and 1 < p["beta_min"] <= p["beta_max"]


def test_divergence_is_reported_with_the_iteration_and_the_last_checkpoint_kept(tmp_path):
    model, tap, tpm = _setup()

    class Breaks(torch.nn.Module):  # the TPM of the run, whose α reaches 1.0 in the third iteration's rollout
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, features):
            a, b = self.inner(features)
            if not torch.is_grad_enabled():
                self.calls += 1
            if self.calls > 2 * CFG.max_steps + 40:
                a = torch.ones_like(a)
            return a, b

    broken = Breaks(tpm)
    with pytest.raises(T.TrainingDiverged, match=r"iteration (\d+): the TPM diverged .*alpha=.*\(iteration \d+\) "
                                                 r"is kept") as err:
        T.train(model, tap.read, broken, _score, replace(CFG, iterations=6), (64,), kind=KIND, out=tmp_path,
                progress=False)
    failed = int(re.search(r"^iteration (\d+)", str(err.value)).group(1))
    kept = int(re.search(r"\(iteration (\d+)\) is kept", str(err.value)).group(1))
    assert kept == failed - 1 >= 1
    with safe_open(str(tmp_path / "checkpoint.safetensors"), framework="pt") as f:
        assert int(f.metadata()["iteration"]) == kept


def test_a_wall_time_budget_stops_after_the_iteration_past_it_and_the_record_retrains_that_count(tmp_path):
    model, tap, tpm = _setup()
    hist = T.train(model, tap.read, tpm, _score, CFG, (64,), kind=KIND, out=tmp_path, progress=False, max_seconds=0)
    assert len(hist) == 1  # the first iteration ends past a 0 s budget
    with safe_open(str(tmp_path / "checkpoint.safetensors"), framework="pt") as f:
        assert int(f.metadata()["iteration"]) == 1
    from schedule_lab.lab.tpdm.train import retrain_command

    argv = ["--testbed", "zoo-flow", "--iterations", "400", "--max-minutes", "20", "--head", "bounded"]
    assert retrain_command(argv, 137) == "schedule-lab tpdm train --testbed zoo-flow --head bounded --iterations 137"
