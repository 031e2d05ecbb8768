"""Real ComfyUI classes, no server: tiny random SD3 MMDiT, SD2 UNet and Flux sampled with sl_tpdm via CFGGuider.

Usage: python tpdm_mmdit_probe.py <ComfyUI root> <pack root>; prints one JSON line after '@@' with what the taps saw
next to the same tensors recomputed from independent hooks (x_embedder + pos embed, final_layer input), the CFG
combination the TPM was given, and the hook counts left on the shared module afterwards.
"""
from __future__ import annotations

import importlib.util
import json
import sys

import torch


def main(comfy_root: str, pack_root: str) -> None:
    sys.path.insert(0, comfy_root)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    spec = importlib.util.spec_from_file_location("schedule_lab", f"{pack_root}/__init__.py",
                                                  submodule_search_locations=[pack_root])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["schedule_lab"] = pack
    spec.loader.exec_module(pack)
    import comfy.samplers
    import comfy.supported_models

    from schedule_lab.nodes import host
    from schedule_lab.nodes.host import tpdm as tpdm_host
    from schedule_lab.solvers.tpdm import taps
    from schedule_lab.solvers.tpdm.tpm import TimePredictor

    torch.manual_seed(0)
    hidden, cfg = 128, 3.5
    unet_config = {"in_channels": 16, "pos_embed_scaling_factor": None, "depth": 2, "patch_size": 2,
                   "adm_in_channels": 64, "out_channels": 16, "pos_embed_max_size": 16, "num_patches": 256,
                   "context_embedder_config": {"target": "torch.nn.Linear",
                                               "params": {"in_features": 32, "out_features": hidden}}}
    dm, family, sizes, patched = _tapped(tpdm_host, TimePredictor, comfy.supported_models.SD3(unet_config), 0.05,
                                         "mmdit")

    seen = {"put": [], "read": [], "ref_h1": [], "ref_h2": []}
    put, read = taps.FeatureStash.put, taps.FeatureStash.read

    def spy_put(self, name, value, labels):
        seen["put"].append((name, list(labels or []), value.detach().clone()))
        return put(self, name, value, labels)

    def spy_read(self, w):
        seen.setdefault("context_tokens", self.context_tokens)
        out = read(self, w)
        seen["read"].append((w, out))
        return out

    taps.FeatureStash.put, taps.FeatureStash.read = spy_put, spy_read
    # independent references: x_embedder output + cropped pos embed (h1), modulate(norm_final(x), c) (h2)
    ref = [dm.x_embedder.register_forward_hook(lambda m, a, o: seen["ref_h1"].append(o.detach().clone())),
           dm.final_layer.register_forward_hook(
               lambda m, a, o: seen["ref_h2"].append((a[0].detach().clone(), a[1].detach().clone())))]
    pos = [[torch.randn(1, 8, 32), {"pooled_output": torch.randn(1, 64)}]]
    neg = [[torch.randn(1, 8, 32), {"pooled_output": torch.randn(1, 64)}]]
    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds(pos, neg)
    guider.set_cfg(cfg)
    latent = torch.zeros(1, 16, 16, 24)  # a 8×12 token grid: not square, so the layout's grid matters
    noise = torch.randn(1, 16, 16, 24, generator=torch.Generator().manual_seed(1))
    sigmas = torch.tensor([1.0, 0.0])
    sampler = host.sampler_object("sl_tpdm", {"min_sigma": 0.05, "max_steps": 4, "stochastic": False,
                                              "final_step": "zero"})
    out = guider.sample(noise, latent, sampler, sigmas, seed=1)
    for h in ref:
        h.remove()

    # check the first model call
    with torch.no_grad():
        result = _check(seen, dm, labels_out := {}, cfg)
    result.update({"family": family, "sizes": list(sizes), "steps": len(seen["read"]),
                   "context_tokens": seen.get("context_tokens"),
                   "hooks_left": len(dm.final_layer.linear._forward_pre_hooks) + len(dm.x_embedder._forward_hooks),
                   "finite": bool(torch.isfinite(out).all()), **labels_out})
    result["older_call_shape"] = _older_call_shape(comfy, tpdm_host, host, TimePredictor, seen)
    result["unet"] = _unet(comfy, tpdm_host, host, TimePredictor, seen)
    result["flux"] = _flux(tpdm_host, host, TimePredictor, seen)
    print("@@" + json.dumps(result))


def _check(seen, dm, labels_out, cfg):
    first = {name: (labels, v) for name, labels, v in seen["put"][:3]}
    labels, h1 = first["h1"]
    b = h1.shape[0] // len(labels)
    h1_rows = dict(zip(labels, h1.split(b), strict=True))
    ref_h1 = seen["ref_h1"][0] + dm.cropped_pos_embed((16, 24), device=h1.device)  # latent h, w
    x_fin, c_fin = seen["ref_h2"][0]
    shift, scale = dm.final_layer.adaLN_modulation(c_fin).chunk(2, dim=1)
    ref_h2 = dm.final_layer.norm_final(x_fin) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    _, temb = first["temb"]
    temb_rows = dict(zip(labels, temb.split(b), strict=True))
    _, h2 = first["h2"]
    h2_rows = dict(zip(labels, h2.split(b), strict=True))
    w, combined = seen["read"][0]
    labels_out["labels"] = labels
    return {
        "h1_cond_equals_uncond": bool(torch.equal(h1_rows[0], h1_rows[1])),
        "h1_matches_embed_plus_pos": float((h1 - ref_h1).abs().max()),
        "h2_matches_final_norm": float((h2 - ref_h2).abs().max()),
        "temb_matches_c_mod": float((temb - c_fin).abs().max()),
        "cfg_read": w,
        "temb_combination_error": float((combined.temb - (temb_rows[1] + cfg * (temb_rows[0] - temb_rows[1])))
                                        .abs().max()),
        "h2_combination_error": float((combined.h2 - (h2_rows[1] + cfg * (h2_rows[0] - h2_rows[1]))).abs().max()),
        "temb_cond_minus_uncond": float((temb_rows[0] - temb_rows[1]).abs().max()),
        "grid": list(combined.grid),
    }


def _older_call_shape(comfy, tpdm_host, host, TimePredictor, seen):  # noqa: N803
    """A stand-in of MMDiT builds whose block patches get no ``transformer_options`` (so no cond/uncond labels):
    the taps' ("double_block", 0) patch is called with ``args`` without that key. cond and uncond in one batched
    call (contexts of equal length) and in separate calls (8 vs 7 tokens, which ComfyUI does not concatenate); the
    first step's CFG-combined temb against t_embedder(1000σ) + y_embedder(pooled) of each condition, computed here.
    Then a host whose model calls carry no labels at all (an outer APPLY_MODEL wrapper drops ``cond_or_uncond``):
    the run must stop with the error naming the ComfyUI version."""
    import comfy.patcher_extension
    import comfy.samplers
    import comfy.supported_models

    from schedule_lab.schedules.errors import ScheduleError

    hidden, cfg = 128, 3.5
    unet_config = {"in_channels": 16, "pos_embed_scaling_factor": None, "depth": 2, "patch_size": 2,
                   "adm_in_channels": 64, "out_channels": 16, "pos_embed_max_size": 16, "num_patches": 256,
                   "context_embedder_config": {"target": "torch.nn.Linear",
                                               "params": {"in_features": 32, "out_features": hidden}}}
    out = {}
    for shape, neg_tokens in (("batched", 8), ("separate", 7), ("unlabelled", 8)):
        torch.manual_seed(0)
        config = comfy.supported_models.SD3(unet_config)
        strip_labels = shape == "unlabelled"
        dm, _, _, patched = _tapped(tpdm_host, TimePredictor, config, 0.05, "mmdit", strip_labels=strip_labels)
        replace = patched.model_options["transformer_options"]["patches_replace"]["dit"]
        ours = replace[("double_block", 0)]
        calls = []

        def older(args, extra, ours=ours, calls=calls):  # the older call shape: no transformer_options in args
            calls.append(args["img"].shape[0])
            options = args["transformer_options"]

            def block(a):  # this ComfyUI's block needs them back; an older one's did not take them
                return extra["original_block"]({**a, "transformer_options": options})

            return ours({k: v for k, v in args.items() if k != "transformer_options"},
                        {**extra, "original_block": block})

        replace[("double_block", 0)] = older
        seen["put"].clear()
        seen["read"].clear()
        pos_pooled, neg_pooled = torch.randn(1, 64), torch.randn(1, 64)
        guider = comfy.samplers.CFGGuider(patched)
        guider.set_conds([[torch.randn(1, 8, 32), {"pooled_output": pos_pooled}]],
                         [[torch.randn(1, neg_tokens, 32), {"pooled_output": neg_pooled}]])
        guider.set_cfg(cfg)
        noise = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(1))
        sampler = host.sampler_object("sl_tpdm", {"min_sigma": 0.05, "max_steps": 3, "stochastic": False,
                                                  "final_step": "zero"})
        try:
            guider.sample(noise, torch.zeros(1, 16, 16, 16), sampler, torch.tensor([1.0, 0.0]), seed=1)
        except ScheduleError as exc:
            out[shape] = {"error": str(exc), "steps": len(seen["read"])}
            continue
        with torch.no_grad():
            t = dm.t_embedder(torch.tensor([1000.0]), dtype=torch.float32)
            temb_c, temb_u = t + dm.y_embedder(pos_pooled), t + dm.y_embedder(neg_pooled)
        _, combined = seen["read"][0]
        labels = [labels for name, labels, _ in seen["put"] if name == "temb"]
        out[shape] = {
            "block_calls_first_step": calls[:2] if shape == "separate" else calls[:1],
            "temb_labels_first_step": labels[:2] if shape == "separate" else labels[:1],
            "temb_combination_error": float((combined.temb - (temb_u + cfg * (temb_c - temb_u))).abs().max()),
            "temb_cond_minus_uncond": float((temb_c - temb_u).abs().max()),
            "steps": len(seen["read"]),
        }
    return out


def _strip_labels(executor, *args, **kwargs):
    """An outer APPLY_MODEL wrapper standing in for a host whose model calls carry no cond/uncond labels."""
    if len(args) > 5:
        args = (*args[:5], {k: v for k, v in args[5].items() if k != "cond_or_uncond"}, *args[6:])
    elif "transformer_options" in kwargs:
        kwargs["transformer_options"] = {k: v for k, v in kwargs["transformer_options"].items()
                                         if k != "cond_or_uncond"}
    return executor(*args, **kwargs)


def _tapped(tpdm_host, TimePredictor, config, std: float, family_name: str, strip_labels: bool = False):  # noqa: N803
    """A random-weight model of ``config`` (a comfy.supported_models entry) on CPU in fp32, with Apply TPM's taps and
    an 8-wide TPM sized from it: (diffusion_model, family, sizes, patched ModelPatcher)."""
    import comfy.model_patcher

    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    dm = model.diffusion_model
    with torch.no_grad():
        for p in [*dm.parameters(), *dm.buffers()]:  # SD3's pos_embed is an empty buffer
            if p.dtype.is_floating_point:
                torch.nn.init.normal_(p, std=std)
    patcher = comfy.model_patcher.ModelPatcher(model, torch.device("cpu"), torch.device("cpu"))
    if strip_labels:  # added first, so it runs outside the taps' wrapper
        import comfy.patcher_extension

        patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "strip_labels", _strip_labels)
    family, sizes = tpdm_host.family_of(patcher)
    patched = tpdm_host.apply_tpm(patcher, TimePredictor(sizes[0] + sizes[1], sizes[2], width=8),
                                  {"schedule_lab.tpm": "{}", "family": family_name}, f"{family_name}.safetensors",
                                  None)
    return dm, family, sizes, patched


def _keep(store: dict, key: str, value) -> None:
    """Record the first value (a forward hook must return None, or it replaces the module's output)."""
    store.setdefault(key, value)


def _unet(comfy, tpdm_host, host, TimePredictor, seen):  # noqa: N803
    """The tiny SD2-shaped UNet of make_tiny_checkpoint.py: the taps against independent module hooks."""
    import comfy.samplers
    import comfy.supported_models

    unet_config = {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
                   "in_channels": 4, "out_channels": 4, "model_channels": 320, "channel_mult": [1],
                   "num_res_blocks": [1], "transformer_depth": [1], "transformer_depth_output": [1, 1],
                   "transformer_depth_middle": 1, "context_dim": 1024, "use_linear_in_transformer": True,
                   "num_head_channels": 64, "adm_in_channels": None}
    dm, family, sizes, patched = _tapped(tpdm_host, TimePredictor, comfy.supported_models.SD20(unet_config), 0.02,
                                         "unet")
    seen["put"].clear()
    refs = {}
    handles = [dm.input_blocks[0][0].register_forward_hook(lambda m, a, o: _keep(refs, "h1", o.clone())),
               dm.out[1].register_forward_hook(lambda m, a, o: _keep(refs, "h2", o.clone())),
               dm.time_embed.register_forward_hook(lambda m, a, o: _keep(refs, "temb", o.clone()))]
    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds([[torch.randn(1, 4, 1024), {}]], [[torch.randn(1, 4, 1024), {}]])
    guider.set_cfg(2.0)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    sampler = host.sampler_object("sl_tpdm", {"min_sigma": 0.5, "max_steps": 2, "stochastic": False,
                                              "final_step": "zero"})
    ms = patched.get_model_object("model_sampling")
    guider.sample(noise, torch.zeros(1, 4, 8, 8), sampler, torch.tensor([float(ms.sigma_max), 0.0]), seed=2)
    for h in handles:
        h.remove()
    first = {name: v for name, _, v in seen["put"][:3]}
    return {"family": family, "sizes": list(sizes),
            **{f"{k}_error": float((first[k] - refs[k]).abs().max()) for k in ("h1", "h2", "temb")},
            "hooks_left": len(dm.out[2]._forward_pre_hooks) + len(dm.time_embed._forward_hooks)}


def _flux(tpdm_host, host, TimePredictor, seen):  # noqa: N803
    """A tiny random Flux (guidance-distilled, CFG 1: cond only): the experimental taps against independent hooks."""
    import comfy.samplers
    import comfy.supported_models

    unet_config = {"image_model": "flux", "guidance_embed": True, "in_channels": 16, "patch_size": 2,
                   "out_channels": 16, "vec_in_dim": 32, "context_in_dim": 32, "hidden_size": 64, "mlp_ratio": 2.0,
                   "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12], "theta": 10000,
                   "qkv_bias": True}
    dm, family, sizes, patched = _tapped(tpdm_host, TimePredictor, comfy.supported_models.Flux(unet_config), 0.05,
                                         "flux")
    seen["put"].clear()
    seen["read"].clear()
    refs = {}
    handles = [dm.img_in.register_forward_hook(lambda m, a, o: _keep(refs, "h1", o.clone())),
               dm.final_layer.register_forward_hook(lambda m, a, o: _keep(refs, "final", (a[0].clone(),
                                                                                           a[1].clone())))]
    guider = comfy.samplers.CFGGuider(patched)
    cond = [[torch.randn(1, 6, 32), {"pooled_output": torch.randn(1, 32), "guidance": 3.5}]]
    guider.set_conds(cond, cond)
    guider.set_cfg(1.0)
    noise = torch.randn(1, 16, 12, 8, generator=torch.Generator().manual_seed(3))
    sampler = host.sampler_object("sl_tpdm", {"min_sigma": 0.05, "max_steps": 3, "stochastic": False,
                                              "final_step": "zero"})
    out = guider.sample(noise, torch.zeros(1, 16, 12, 8), sampler, torch.tensor([1.0, 0.0]), seed=3)
    for h in handles:
        h.remove()
    with torch.no_grad():
        first = {name: (labels, v) for name, labels, v in seen["put"][:3]}
        x_fin, vec = refs["final"]
        shift, scale = dm.final_layer.adaLN_modulation(vec[:, None, :]).chunk(2, dim=-1)
        ref_h2 = dm.final_layer.norm_final(x_fin) * (1 + scale) + shift
        _, combined = seen["read"][0]
        return {"family": family, "sizes": list(sizes), "labels": first["h1"][0], "steps": len(seen["read"]),
                "h1_error": float((first["h1"][1] - refs["h1"]).abs().max()),
                "h2_error": float((first["h2"][1] - ref_h2).abs().max()),
                "temb_error": float((first["temb"][1] - vec).abs().max()),
                "grid": list(combined.grid), "finite": bool(torch.isfinite(out).all()),
                "hooks_left": len(dm.final_layer.linear._forward_pre_hooks)}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
