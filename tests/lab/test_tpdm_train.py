"""TPDM trainer (lab/tpdm/trainer.py): cached-feature PPO, checkpoints, resume, DDP (docs/tpdm.md, "Trainer")."""
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from schedule_lab.lab.testbeds.metrics import NFECounter
from schedule_lab.lab.testbeds.models import load_edm_mlp
from schedule_lab.lab.testbeds.taps import tap_for
from schedule_lab.lab.tpdm import rl
from schedule_lab.lab.tpdm import trainer as T
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
    counted = NFECounter(model)
    ro = _rollout(counted, tap, tpm)
    calls = counted.nfe
    assert calls == int(ro.steps.max())  # one batched call per step
    adv = rl.rloo_advantages(torch.tensor([1.0, 0.5, 0.2, 0.9]), ro.groups)
    params = list(tpm.parameters())
    out = T.ppo_update(tpm, params, T.make_optimizer(tpm, CFG), ro, adv, replace(CFG, ppo_epochs=3))
    assert counted.nfe == calls
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


def one_update(rank: int = 0, world: int = 1) -> dict:
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
    T.ppo_update(policy, list(tpm.parameters()), T.make_optimizer(tpm, DDP_CFG), ro, adv, DDP_CFG)
    return {k: v.detach().clone() for k, v in tpm.state_dict().items()}


@pytest.mark.slow
def test_ddp_two_gloo_processes_make_the_single_process_update(tmp_path):
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
        weights = case.one_update(dist.get_rank(), dist.get_world_size())
        save_file(weights, {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.safetensors")
        dist.destroy_process_group()
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    single = one_update()
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
