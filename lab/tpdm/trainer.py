"""TPDM's trainer: RLOO-PPO on cached features (docs/tpdm.md, "Trainer"; official ``rloo_trainer.py``).

One iteration, per process:

1. **Rollout** — ``groups`` conditions × ``k`` rollouts with the stochastic Beta policy (no grad), by
   ``sample_tpdm``. The model is frozen; the sampler's trace gives, for every step, the features the TPM read (from
   a feature tap). The cache keeps per step the features, the clamped ratio r_n, log π_old(r_n) and the valid-step
   mask, so PPO never re-runs the diffusion model.
2. **Reward** — R = s(x0) · (1 − γ^N) / (N (1 − γ)) with a pluggable per-image score ``scorer(x0, info)`` and N the
   trajectory's own step count.
3. **Advantages** — leave-one-out within each group (``rl.rloo_advantages``).
4. **PPO** — ``ppo_epochs`` full-batch epochs: log π_θ recomputed from the cache (``rl.recompute_log_probs``),
   the clipped sequence-level ratio loss (``rl.ppo_loss``), AdamW, gradient clipping; a batch whose loss or
   gradient norm is not finite is skipped (counted in the log). The TPM stays fp32.

**Data-parallel** under ``torchrun`` (any backend; CPU uses gloo): every rank rolls out its own groups and the TPM
is wrapped in ``DistributedDataParallel``, whose all-reduce averages the ranks' gradients. With equal per-rank
batches that is the gradient of the mean loss over the whole batch, i.e. the update one process makes on the
concatenated batch (``tests/unit/test_tpdm_train.py`` checks it with 2 gloo processes).

**Randomness** is drawn from generators seeded by (seed, iteration, rank), never from global state carried
between iterations, so a run resumed from a checkpoint is bit-identical to an uninterrupted one. Checkpoints are
``.safetensors``: TPM weights (``tpm.*``), AdamW state (``optim.<i>.<name>``), the global torch RNG state
(``rng.torch``), and JSON metadata (iteration, config, optimizer hyper-parameters, the per-iteration log).
No pickle anywhere.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from schedule_lab.schedules.errors import ScheduleError

from . import rl

__all__ = [
    "CHECKPOINT_FORMAT", "Rollout", "TrainConfig", "TrainingDiverged", "load_checkpoint", "ppo_update", "rollout",
    "save_checkpoint",
    "train",
]

CHECKPOINT_FORMAT = "schedule-lab/tpdm-train/v1"
#: TrainConfig fields added after format v1 (their defaults reproduce the earlier runs).
ADDED_OPTIONS = ("cache_device", "cache_dtype", "micro_batch", "kl_coef")
CACHE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: Offsets mixed into the per-(iteration, rank) seeds so noise and policy draws never share a stream.
_NOISE, _POLICY = 0x7D0, 0xBE7A


class TrainingDiverged(RuntimeError):
    """The policy left the Beta's domain during a rollout; the message names the iteration and the kept checkpoint."""


@dataclass
class TrainConfig:
    """Hyper-parameters: the official launch script's where they transfer; a small fp32 TPM tolerates a larger lr
    (docs/tpdm.md, "Decisions")."""

    iterations: int = 100
    groups: int = 8              # conditions per rollout batch, per process
    k: int = 4                   # rollouts per condition (>= 2)
    ppo_epochs: int = 4
    clip: float = 0.2
    lr: float = 3e-4
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    gamma: float = 0.97
    sigma_start: float = 14.614642
    min_sigma: float = 0.0291675
    max_steps: int = 35
    final_step: str = "zero"     # sampler option: the stopping step lands on σ = 0 (no extra model call)
    share_noise: bool = True     # a group's k rollouts start from the same x_T (unconditional models)
    seed: int = 0
    save_every: int = 10
    # memory (docs/tpdm.md, "Trainer"): the rollout's features are kept on ``cache_device`` in ``cache_dtype``
    # ("float16" halves them, as the official cache); ``micro_batch`` > 0 recomputes the log-probs in TPM calls of
    # at most that many valid row-steps (two passes, the exact gradient), 0 = one call over all T·B rows
    cache_device: str = "cpu"
    cache_dtype: str = "float32"
    micro_batch: int = 0
    # stability (docs/tpdm.md, "Trainer"): the official reward term −kl_coef · Σ_n KL(Beta(α_n, β_n) ‖ prior(σ_n))
    kl_coef: float = 0.0

    def __post_init__(self):
        self.adam_betas = tuple(self.adam_betas)
        if self.k < 2:
            raise ValueError(f"k={self.k}: leave-one-out advantages need k >= 2 rollouts per condition")
        if self.groups < 1 or self.iterations < 0 or self.ppo_epochs < 1:
            raise ValueError("groups >= 1, iterations >= 0 and ppo_epochs >= 1 are required")
        if not 0 < self.min_sigma < self.sigma_start:
            raise ValueError(f"min_sigma={self.min_sigma} must be in (0, sigma_start={self.sigma_start})")
        if self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps} must be >= 1")
        if self.final_step not in ("zero", "stop"):
            raise ValueError(f"final_step={self.final_step!r} must be 'zero' or 'stop'")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype={self.cache_dtype!r} must be one of {', '.join(CACHE_DTYPES)}")
        if self.micro_batch < 0 or self.kl_coef < 0:
            raise ValueError("micro_batch >= 0 and kl_coef >= 0 are required")


@dataclass
class Rollout:
    """What PPO needs from one batch of trajectories (T = longest trajectory, B = batch)."""

    features: list              # T TPMFeatures, each of the whole batch (B rows): the TPM's input at step n
                                # (on cfg.cache_device in cfg.cache_dtype; the TPM casts each call to fp32)
    ratios: torch.Tensor        # (T, B) clamped r_n (1 where masked)
    log_probs: torch.Tensor     # (T, B) log π_old(r_n) as the sampler computed it, 0 where masked
    mask: torch.Tensor          # (T, B) bool, image b took step n
    steps: torch.Tensor         # (B,) model calls N per image
    x0: torch.Tensor            # final images
    x_T: torch.Tensor           # starting points (scaled noise)
    groups: torch.Tensor        # (B,) condition index
    schedules: list = field(default_factory=list)  # realised σ per image
    levels: torch.Tensor | None = None  # (T, B) the level the ratio acted on at step n (σ, or ℓ = σ/(1+σ))
    alphas: torch.Tensor | None = None  # (T, B) the rollout policy's α, β (for the KL term)
    betas: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> Rollout:
        """The trajectories ``index`` (a bool mask or indices over B), e.g. one rank's share of a batch."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = torch.nonzero(index).flatten()
        idx = index.tolist()
        def cols(t):
            return None if t is None else t[:, index]

        return Rollout([f.rows(index) for f in self.features], self.ratios[:, index], self.log_probs[:, index],
                       self.mask[:, index], self.steps[index], self.x0[index], self.x_T[index], self.groups[index],
                       [self.schedules[i] for i in idx] if self.schedules else [], cols(self.levels),
                       cols(self.alphas), cols(self.betas))


def derived_seed(seed: int, iteration: int, rank: int, offset: int) -> int:
    """The seed of one (iteration, rank) stream: resuming never depends on RNG state carried over."""
    return (((seed * 1_000_003 + iteration) * 1009 + rank) * 31 + offset) % 2**62


@torch.no_grad()
def rollout(model, read_features: Callable, tpm, x_T: torch.Tensor, cfg: TrainConfig, seed: int,
            groups: torch.Tensor | None = None, extra_args: dict | None = None, kind=None,
            stochastic: bool = True) -> Rollout:
    """Sample a batch with ``sample_tpdm`` (seeded Beta policy) and cache what PPO needs from its trace.

    ``x_T`` is already σ_start · noise; ``read_features()`` returns the TPMFeatures of the last model call;
    ``kind`` (a ModelKind) says where the ratio acts (sampler docstring).
    """
    from schedule_lab.solvers.tpdm.sampler import sample_tpdm

    trace: list[dict] = []
    schedules: list = []
    x0 = sample_tpdm(model, x_T, torch.tensor([cfg.sigma_start, 0.0]), extra_args or {}, disable=True, tpm=tpm,
                     read_features=read_features, min_sigma=cfg.min_sigma, max_steps=cfg.max_steps,
                     stochastic=stochastic, seed=seed, final_step=cfg.final_step, kind=kind, trace=trace,
                     schedules=schedules, trace_cache=(cfg.cache_device, CACHE_DTYPES[cfg.cache_dtype]))
    from schedule_lab.solvers.tpdm.sampler import to_level

    mask = torch.stack([t["active"].cpu() for t in trace])
    ratios = torch.stack([t["ratio"].detach().float().cpu() for t in trace])
    log_probs = torch.stack([t["log_prob"].detach().float().cpu() for t in trace])

    def stack(key):
        return torch.stack([t[key].detach().double().cpu() for t in trace])

    return Rollout(
        features=[t["features"] for t in trace],
        ratios=torch.where(mask, ratios, torch.ones_like(ratios)),
        log_probs=torch.where(mask, log_probs, torch.zeros_like(log_probs)),
        mask=mask, steps=mask.sum(dim=0), x0=x0, x_T=x_T,
        groups=groups if groups is not None else torch.arange(x_T.shape[0]), schedules=schedules,
        levels=to_level(stack("sigma"), kind), alphas=stack("alpha"), betas=stack("beta"),
    )


def sequence_log_probs(policy, ro: Rollout) -> torch.Tensor:
    """Σ_n log π_θ(r_n) per trajectory, recomputed from the cached features in one TPM call over all T·B rows
    (the diffusion model is not run)."""
    from schedule_lab.solvers.tpdm.tpm import TPMFeatures

    t, b = ro.ratios.shape
    alpha, beta = policy(TPMFeatures.cat(ro.features))
    lp = rl.beta_log_prob(alpha.float().reshape(t, b), beta.float().reshape(t, b), ro.ratios.float())
    return rl.sequence_log_prob(lp, ro.mask)


def _valid_chunks(ro: Rollout, size: int):
    """The valid (step, row) pairs of a rollout in chunks of at most ``size``: (steps, rows) index tensors."""
    steps, rows = torch.nonzero(ro.mask, as_tuple=True)  # step-major: one chunk spans few steps
    for i in range(0, len(steps), size):
        yield steps[i:i + size], rows[i:i + size]


def _chunk_log_probs(policy, ro: Rollout, steps: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """log π_θ of the stored ratios at the (step, row) pairs of one chunk, in one TPM call."""
    from schedule_lab.solvers.tpdm.tpm import TPMFeatures

    parts = []
    for n in torch.unique_consecutive(steps).tolist():
        parts.append(ro.features[n].rows(rows[steps == n]))
    alpha, beta = policy(TPMFeatures.cat(parts))
    return rl.beta_log_prob(alpha.float().reshape(-1), beta.float().reshape(-1), ro.ratios[steps, rows].float())


def chunked_sequence_log_probs(policy, ro: Rollout, size: int) -> torch.Tensor:
    """Σ_n log π_θ(r_n) per trajectory from TPM calls of at most ``size`` valid row-steps (no gradient)."""
    out = torch.zeros(ro.ratios.shape[1], dtype=torch.float32)
    with torch.no_grad():
        for steps, rows in _valid_chunks(ro, size):
            out.index_add_(0, rows, _chunk_log_probs(policy, ro, steps, rows).float().cpu())
    return out


def _chunked_backward(policy, ro: Rollout, size: int, weights: torch.Tensor) -> None:
    """Accumulate ∇_θ Σ_b w_b Σ_n log π_θ(r_{n,b}) chunk by chunk; with ``w = ∂L/∂(Σ_n log π)`` this is ∇_θ L
    exactly (L depends on θ only through the per-trajectory sums). Under DDP only the last backward all-reduces."""
    import contextlib

    chunks = list(_valid_chunks(ro, size))
    no_sync = getattr(policy, "no_sync", None)
    for i, (steps, rows) in enumerate(chunks):
        # DDP: forward and backward of every chunk but the last inside no_sync (the last one all-reduces the sum)
        with no_sync() if no_sync is not None and i < len(chunks) - 1 else contextlib.nullcontext():
            lp = _chunk_log_probs(policy, ro, steps, rows)
            (weights.to(lp.device, lp.dtype)[rows.to(lp.device)] * lp).sum().backward()


def ppo_update(policy, params, optimizer, ro: Rollout, advantages: torch.Tensor, cfg: TrainConfig) -> dict:
    """``cfg.ppo_epochs`` clipped-PPO steps on one rollout batch; returns the per-epoch statistics.

    ``policy`` is the TPM (or its DDP wrapper). The old log-probs are recomputed from the cache with the rollout's
    weights before the first step (equal to the sampler's to round-off, ``test_cached_log_probs_equal_rollout``), so
    the first epoch's ratio is exactly 1. A step whose loss or total
    gradient norm (after the DDP all-reduce, so every rank agrees) is not finite is skipped.
    """
    micro = cfg.micro_batch
    with torch.no_grad():  # π_old = the weights that made the rollout, on the same cached path as π_θ: ρ ≡ 1 at first
        old = chunked_sequence_log_probs(policy, ro, micro) if micro else sequence_log_probs(policy, ro)
    epochs = []
    for _ in range(cfg.ppo_epochs):
        optimizer.zero_grad(set_to_none=True)
        if micro:  # pass 1: the sums without a graph; ∂L/∂sums on (B,) scalars; pass 2: chunked backward
            new = chunked_sequence_log_probs(policy, ro, micro).requires_grad_(True)
            loss, stats = rl.ppo_loss(new, old, advantages, cfg.clip)
            (weights,) = torch.autograd.grad(loss, new)
            _chunked_backward(policy, ro, micro, weights)  # always: under DDP every rank joins the all-reduce
        else:
            new = sequence_log_probs(policy, ro)
            loss, stats = rl.ppo_loss(new, old, advantages, cfg.clip)
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        skipped = not (math.isfinite(float(loss.detach())) and math.isfinite(float(norm)))
        if skipped:
            optimizer.zero_grad(set_to_none=True)
        else:
            optimizer.step()
        epochs.append({**stats, "loss": float(loss.detach()), "grad_norm": float(norm), "skipped": skipped})
    return {"epochs": epochs, "skipped": sum(e["skipped"] for e in epochs)}


def make_optimizer(tpm: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(tpm.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
                             weight_decay=cfg.weight_decay)


# --------------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, tpm: torch.nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                    cfg: TrainConfig, history: list, meta: dict | None = None) -> Path:
    """TPM weights, AdamW state, global RNG state and the log in one ``.safetensors`` (atomic replace)."""
    path = Path(path)
    tensors = {f"tpm.{k}": v.detach().contiguous().clone() for k, v in tpm.state_dict().items()}
    state = optimizer.state_dict()
    for idx, pstate in state["state"].items():
        for name, value in pstate.items():
            tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value).detach().contiguous().clone()
    tensors["rng.torch"] = torch.get_rng_state()
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in state["param_groups"]]
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "iteration": str(iteration),
        "config": json.dumps(asdict(cfg)),
        "param_groups": json.dumps(groups),
        "history": json.dumps(history),
        "meta": json.dumps(meta or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_checkpoint(path, tpm: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load a ``save_checkpoint`` file into ``tpm`` (and ``optimizer``); restores the RNG state.

    Returns ``{"iteration", "config", "history", "meta"}``. Missing or unexpected TPM keys are named.
    """
    from safetensors import safe_open

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a TPDM training checkpoint (format {metadata.get('format')!r}, expected "
                         f"{CHECKPOINT_FORMAT!r}); pass a file written by `schedule-lab tpdm train`")
    tensors = load_file(str(path))
    weights = {k[4:]: v for k, v in tensors.items() if k.startswith("tpm.")}
    own = tpm.state_dict()
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or unexpected:
        raise ValueError(f"{path}: TPM keys do not match (missing {missing}, unexpected {unexpected}); the "
                         "checkpoint was made for another TPM configuration")
    tpm.load_state_dict(weights)
    if optimizer is not None:
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return {"iteration": int(metadata["iteration"]), "config": json.loads(metadata["config"]),
            "history": json.loads(metadata["history"]), "meta": json.loads(metadata.get("meta", "{}"))}


# ----------------------------------------------------------------------------------------------------- the loop
def _dist():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def train(model, read_features: Callable, tpm: torch.nn.Module, scorer: Callable, cfg: TrainConfig,
          sample_shape: tuple[int, ...], kind=None, out: str | Path | None = None, resume: str | Path | None = None,
          conditions: Callable | None = None, progress: bool = True, log: Callable | None = None,
          stop_after: int | None = None, max_seconds: float | None = None) -> list[dict]:
    """Train ``tpm`` in place; returns the per-iteration log (statistics averaged over ranks).

    Args:
        model: frozen k-diffusion denoiser ``model(x, sigma_vec, **extra_args)``.
        read_features: returns the TPMFeatures of the last model call (a feature tap's ``read``, e.g.
            ``testbeds.taps.tap_for(model).read``).
        tpm: the time predictor, ``tpm(TPMFeatures) -> (alpha, beta)``; trained in fp32.
        scorer: ``scorer(x0, info) -> (B,)`` positive quality per image; ``info`` has ``x_T``, ``sigma_start``,
            ``groups`` (condition ids) and ``extra_args``.
        sample_shape: shape of one sample (e.g. (64,)).
        kind: the model's ModelKind (where the ratio acts, see the sampler); None = on σ itself.
        out: folder for ``checkpoint.safetensors`` (every ``save_every`` iterations and at the end).
        resume: a checkpoint to continue from (same config; ``iterations`` may grow to extend a finished run): the
            result equals the uninterrupted run.
        conditions: ``conditions(group_ids) -> extra_args`` for conditional models (prompts); None = unconditional.
        stop_after: stop (after saving) once this many iterations ran in this call — an interruption, for tests.
        max_seconds: stop (after saving) after the first iteration that ends past this wall-time budget of the call;
            the log's length says how many ran (the same iterations, from the start, give the same weights).
    """
    dist, rank, world = _dist()
    tpm.float().train()
    params = [p for p in tpm.parameters() if p.requires_grad]
    optimizer = make_optimizer(tpm, cfg)
    history: list[dict] = []
    start = 0
    if resume is not None:
        state = load_checkpoint(resume, tpm, optimizer)
        start, history = state["iteration"], state["history"]
        # only the length may change: every iteration's randomness depends on (seed, iteration, rank) alone, so
        # extending a finished run gives the run that was that long from the start
        def same(c):
            return {k: v for k, v in c.items() if k not in ("iterations", "save_every")}

        # options added later take their defaults in checkpoints written before them (same results as then)
        written = {**{k: v for k, v in asdict(TrainConfig()).items() if k in ADDED_OPTIONS}, **state["config"]}
        if same(written) != same(json.loads(json.dumps(asdict(cfg)))):
            raise ValueError(f"{resume} was written with another configuration; resume with the same options "
                             f"(only --iterations may grow; checkpoint: {state['config']})")
    policy = tpm
    if dist is not None and world > 1:
        policy = torch.nn.parallel.DistributedDataParallel(tpm)
    ckpt = Path(out) / "checkpoint.safetensors" if out is not None else None
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.iterations, initial=start, desc="tpdm train", unit="it")
    done = 0
    last_saved = start
    t_call = time.perf_counter()
    for it in range(start, cfg.iterations):
        t0, c0 = time.perf_counter(), time.process_time()
        b = cfg.groups * cfg.k
        # list repetition [c1..cG, c1..cG, ...] as the official trainer; ids are global (rank-major)
        gids = torch.arange(cfg.groups).repeat(cfg.k) + rank * cfg.groups
        noise_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, it, rank, _NOISE))
        if cfg.share_noise:
            noise = torch.randn((cfg.groups, *sample_shape), generator=noise_gen)
            noise = noise.repeat(cfg.k, *([1] * len(sample_shape)))
        else:
            noise = torch.randn((b, *sample_shape), generator=noise_gen)
        x_T = noise * cfg.sigma_start
        extra_args = conditions(gids) if conditions is not None else {}
        try:
            ro = rollout(model, read_features, tpm, x_T, cfg, seed=derived_seed(cfg.seed, it, rank, _POLICY),
                         groups=gids, extra_args=extra_args, kind=kind)
        except ScheduleError as exc:  # the policy left the Beta's domain (α or β ≤ 1, or not finite)
            kept = (f"the last checkpoint {ckpt} (iteration {last_saved}) is kept" if ckpt is not None and
                    last_saved else "no checkpoint was written")
            raise TrainingDiverged(f"iteration {it + 1}: the TPM diverged ({exc}); {kept}. Lower --lr, add "
                                   "--kl-coef or use --head bounded (docs/tpdm.md, 'Stability').") from exc
        score = torch.as_tensor(scorer(ro.x0, {"x_T": x_T, "sigma_start": cfg.sigma_start, "groups": gids,
                                               "extra_args": extra_args}), dtype=torch.float64).reshape(-1)
        reward = rl.discounted_reward(score, ro.steps, cfg.gamma)
        kl = rl.kl_to_reference(ro.alphas, ro.betas, ro.levels, ro.mask)  # (B,) Σ_n over the valid steps
        if cfg.kl_coef > 0:  # the official non-score reward: R − kl_coef · Σ_n KL(π_n ‖ prior_n)
            reward = reward - cfg.kl_coef * kl
        adv = rl.rloo_advantages(reward, gids)
        upd = ppo_update(policy, params, optimizer, ro, adv, cfg)
        stats = torch.tensor([float(ro.steps.double().mean()), float(score.mean()), float(reward.mean()),
                              float(kl.mean())], dtype=torch.float64)
        # the sharpest Beta of the batch: α → 1 or β → ∞ is where the exp head leaves float32 (docs: "Stability")
        extremes = torch.tensor([-float(ro.alphas[ro.mask].min()), float(ro.betas[ro.mask].max()),
                                 -float(ro.betas[ro.mask].min()), float(ro.alphas[ro.mask].max())],
                                dtype=torch.float64)
        if dist is not None and world > 1:
            dist.all_reduce(stats)
            stats /= world
            dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
        entry = {
            "iteration": it + 1, "steps_mean": stats[0].item(), "score_mean": stats[1].item(),
            "reward_mean": stats[2].item(), "kl_mean": stats[3].item(), "alpha_min": -extremes[0].item(),
            "beta_max": extremes[1].item(), "beta_min": -extremes[2].item(), "alpha_max": extremes[3].item(),
            "skipped": upd["skipped"],
            "clipfrac_last": upd["epochs"][-1]["clipfrac"], "approx_kl_last": upd["epochs"][-1]["approx_kl"],
            "ratio_first": upd["epochs"][0]["ratio"], "seconds": round(time.perf_counter() - t0, 3),
            "cpu_seconds": round(time.process_time() - c0, 3),
        }
        history.append(entry)
        done += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(steps=f"{entry['steps_mean']:.2f}", score=f"{entry['score_mean']:.3f}")
        if log is not None and rank == 0:
            log(entry)
        over = max_seconds is not None and time.perf_counter() - t_call > max_seconds
        if over and dist is not None and world > 1:  # every rank stops at the same iteration
            flag = torch.tensor([1.0 if over else 0.0])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            over = bool(flag.item())
        last = it + 1 == cfg.iterations or (stop_after is not None and done >= stop_after) or over
        if ckpt is not None and rank == 0 and ((it + 1) % cfg.save_every == 0 or last):
            save_checkpoint(ckpt, tpm, optimizer, it + 1, cfg, history)
            last_saved = it + 1
        if last:
            break
    if bar is not None:
        bar.close()
    return history
