"""API-format graphs for the real-host tests (node ids are strings; links are [node_id, output_index])."""
from __future__ import annotations

CHECKPOINT = "sl_tiny_sd2.safetensors"  # written by make_tiny_checkpoint.py in the fixture


def base(width: int = 64, flow_shift: float | None = None) -> dict:
    """Checkpoint, text-encoder-free conditioning (LotusConditioning) and an empty latent."""
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
