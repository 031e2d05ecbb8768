"""API-format graphs for the real-host tests (node ids are strings; links are [node_id, output_index])."""
from __future__ import annotations

CHECKPOINT = "sl_tiny_sd2.safetensors"  # written by make_tiny_checkpoint.py in the fixture


def base(width: int = 64, flow_shift: float | None = None, flux: tuple[int, int] | None = None) -> dict:
    """Checkpoint, text-encoder-free conditioning (LotusConditioning) and an empty latent; ``flow_shift`` patches the
    model with ModelSamplingSD3 (SD3's shift), ``flux=(width, height)`` with ModelSamplingFlux (Flux's mu from the
    image size, stock max_shift 1.15 and base_shift 0.5)."""
    g = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "LotusConditioning", "inputs": {}},
        "neg": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["pos", 0]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": width, "batch_size": 1}},
    }
    model = ["ckpt", 0]
    if flow_shift is not None:
        g["flow"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": model, "shift": flow_shift}}
        model = ["flow", 0]
    if flux is not None:
        g["flux"] = {"class_type": "ModelSamplingFlux", "inputs": {"model": model, "max_shift": 1.15,
                                                                  "base_shift": 0.5, "width": flux[0],
                                                                  "height": flux[1]}}
        model = ["flux", 0]
    g["_model"] = model
    return g


def sample_custom_advanced(g: dict, model: list, sampler: list, sigmas: list, seed: int = 1) -> list:
    """RandomNoise + CFGGuider (cfg 2 on ``pos``/``neg``) + SamplerCustomAdvanced on ``latent``, added to ``g`` as
    "noise", "guider" and "sca"; returns the sampled latent's link."""
    g["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}}
    g["guider"] = {"class_type": "CFGGuider", "inputs": {"model": model, "positive": ["pos", 0],
                                                         "negative": ["neg", 0], "cfg": 2.0}}
    g["sca"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["noise", 0], "guider": ["guider", 0], "sampler": sampler, "sigmas": sigmas,
        "latent_image": ["latent", 0]}}
    return ["sca", 0]


def finish(g: dict, latent_ref: list, prefix: str) -> dict:
    g["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": latent_ref, "vae": ["ckpt", 2]}}
    g["save"] = {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}}
    g.pop("_model", None)
    return g


def ksampler(sampler: str, scheduler: str, steps: int = 4, seed: int = 1, flow_shift: float | None = None,
             prefix: str = "sl_ksampler", denoise: float = 1.0) -> dict:
    g = base(flow_shift=flow_shift)
    g["ks"] = {"class_type": "KSampler", "inputs": {
        "model": g["_model"], "seed": seed, "steps": steps, "cfg": 2.0, "sampler_name": sampler,
        "scheduler": scheduler, "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
        "denoise": denoise}}
    return finish(g, ["ks", 0], prefix)


def custom_advanced(sigmas_node: dict, sampler_node: dict | None = None, seed: int = 1,
                    flow_shift: float | None = None, prefix: str = "sl_custom", extra: dict | None = None) -> dict:
    """SamplerCustomAdvanced with the given SIGMAS node (inputs may reference "_model")."""
    g = base(flow_shift=flow_shift)
    model = g["_model"]

    def bind(node):
        node = {"class_type": node["class_type"], "inputs": dict(node["inputs"])}
        for k, v in node["inputs"].items():
            if v == "_model":
                node["inputs"][k] = model
        return node

    g["sigmas"] = bind(sigmas_node)
    g["sampler"] = bind(sampler_node or {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}})
    latent = sample_custom_advanced(g, model, ["sampler", 0], ["sigmas", 0], seed)
    for name, node in (extra or {}).items():
        g[name] = bind(node)
    return finish(g, latent, prefix)


def flux_mu(width: int, height: int, max_shift: float = 1.15, base_shift: float = 0.5) -> float:
    """ModelSamplingFlux's mu for an image size (comfy_extras/nodes_model_advanced.py): linear in the token count
    width·height/256, base_shift at 256 tokens and max_shift at 4096."""
    return base_shift + (max_shift - base_shift) * (width * height / 256 - 256) / (4096 - 256)


def save_latent(g: dict, latent_ref: list, prefix: str) -> dict:
    """Add a SaveLatent of ``latent_ref`` (output/<prefix>_00001_.latent, a safetensors file; ``read_latent``)."""
    g[f"savelatent_{prefix}"] = {"class_type": "SaveLatent", "inputs": {"samples": latent_ref,
                                                                      "filename_prefix": prefix}}
    return g


def write_tpm(path, bias=(2.5, 1.0), gain=1.0, seed=0, start_sigma=None, sizes=(320, 320, 1280), family="unet"):
    """A random TPDM time predictor for the tiny checkpoint's UNet (conv_in 320 channels, output norm 320,
    time_embed 1280) saved at ``path``; returns its file name."""
    import torch

    from schedule_lab.solvers.tpdm.official import save_tpm
    from schedule_lab.solvers.tpdm.tpm import TimePredictor

    torch.manual_seed(seed)
    tpm = TimePredictor(sizes[0] + sizes[1], sizes[2], width=8, init_bias=bias, h1_channels=sizes[0])
    with torch.no_grad():
        tpm.fc2.weight.mul_(gain)
    extra = {} if start_sigma is None else {"start_sigma": start_sigma}
    save_tpm(path, tpm, family=family, extra=extra)
    return path.name


def read_latent(workdir, prefix: str):
    """The latest latent SaveLatent wrote under ``prefix`` in the server's output folder (a torch tensor)."""
    from safetensors.torch import load_file

    files = sorted((workdir / "output").rglob(f"{prefix}_*.latent"))
    assert files, list((workdir / "output").rglob("*.latent"))
    return load_file(str(files[-1]))["latent_tensor"]
