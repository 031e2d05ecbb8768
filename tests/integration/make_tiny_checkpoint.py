"""Build a tiny random-weight SD2-shaped checkpoint from ComfyUI's own classes (test helper).

Usage: python make_tiny_checkpoint.py <ComfyUI root> <output.safetensors>

The UNet (one level, width 320, context 1024, linear transformer in/out) is detected by ComfyUI as
SD2.x eps-prediction; a TAESD carries its own tiny VAE. Weights are random with a fixed seed, so the
images are noise: the file exists to run real graphs end to end on a CPU in about a second.
"""
from __future__ import annotations

import sys

import torch


def main(comfy_root: str, out: str) -> None:
    sys.path.insert(0, comfy_root)
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.model_detection
    import comfy.utils
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.taesd.taesd import TAESD
    from safetensors.torch import save_file

    torch.manual_seed(0)
    unet = UNetModel(
        image_size=32, in_channels=4, out_channels=4, model_channels=320, channel_mult=[1],
        num_res_blocks=[1], use_spatial_transformer=True, transformer_depth=[1], transformer_depth_output=[1, 1],
        transformer_depth_middle=1, context_dim=1024, use_linear_in_transformer=True, num_head_channels=64,
        legacy=False, adm_in_channels=None,
    )
    vae = TAESD(latent_channels=4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in (unet, vae):
            for name, p in module.named_parameters():
                if p.dim() == 0:  # TAESD vae_scale / vae_shift: keep their defaults (else images go black)
                    continue
                if name.endswith("bias"):
                    p.zero_()
                elif p.dim() == 1:
                    p.fill_(1.0)
                elif p.dim() == 2:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
        unet.out[-1].weight.mul_(0.05)  # keep the eps prediction O(1)
    sd = {f"model.diffusion_model.{k}": v.half().contiguous() for k, v in unet.state_dict().items()}
    sd.update({f"first_stage_model.{k}": v.half().contiguous() for k, v in vae.state_dict().items()})
    save_file(sd, out)
    unet_sd = {k[len("model.diffusion_model."):]: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    config = comfy.model_detection.detect_unet_config(unet_sd, "")
    matched = comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.")
    print(f"tiny checkpoint {out}: detected {type(matched).__name__}, context_dim={config.get('context_dim')}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
