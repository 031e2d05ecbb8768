"""Few-Step Preset (V3 schema): a preset's sampler + scheduler as SAMPLER + SIGMAS in one choice.

The socket mapping only; what it does is in :mod:`.preset_ops`. ``node_id`` is permanent workflow identity.
"""
from __future__ import annotations

import torch

from ..schedules.catalogue import SCHEDULES
from ..schedules.resample import truncate_for_denoise
from ..schedules.validate import validate_denoise
from . import host, preset_ops, schedule_ops
from .node_list import node

api = host.v3_api()
io, ui = api.io, api.ui


def preset_sigmas(model, kind, scheduler: str, sampler: str, steps: int, denoise: float) -> torch.Tensor:
    """What KSampler computes for this scheduler, sampler and step count: the pack's list for an ``sl_`` scheduler
    (with whatever the MODEL carries, e.g. a Constant-Rate calibration), ComfyUI's own for a stock one, with
    KSampler's discard-penultimate rule for uni_pc-type samplers and its denoise rule."""
    discard = host.discards_penultimate(sampler)
    if preset_ops.is_pack_name(scheduler, "scheduler"):
        provided = host.host_provided(SCHEDULES[scheduler].needs, model.get_model_object("model_sampling"))

        def raw(n):
            return schedule_ops.pack_schedule(kind, scheduler, n, 1.0, provided)
    else:
        ms = model.get_model_object("model_sampling")

        def raw(n):
            return host.stock_sigmas(ms, scheduler, n).to(torch.float32)

    def ksampler_list(n):
        if not discard:
            return raw(n)
        s = raw(n + 1)
        return torch.cat([s[:-2], s[-1:]])

    validate_denoise(denoise)
    return truncate_for_denoise(ksampler_list, steps, denoise).to(torch.float32)


@node
class FewStepPreset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_FewStepPreset",
            display_name="Few-Step Preset",
            category="sampling/custom_sampling",
            description="The best few-step sampler + scheduler that a Schedule Lab benchmark chose for a model "
                        "family, in one choice: gives SAMPLER and SIGMAS for SamplerCustom / SamplerCustomAdvanced "
                        "(the same pair, steps and denoise as KSampler would run). 'auto' picks the preset chosen "
                        "for the connected model's family (ε, v, EDM or flow); a preset used on a family it was not "
                        "chosen for is refused with an error that names the family and the fix.",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with; its family (ε, v, EDM or flow) picks the "
                               "preset on 'auto' and is checked against the preset's families."),
                io.Combo.Input("preset", options=preset_ops.preset_choices(), default=preset_ops.AUTO,
                               tooltip=preset_ops.preset_tooltip()),
                io.Int.Input("steps", default=0, min=0, max=10000, tooltip="0 uses the preset's own step count (the "
                             "one it was chosen at); any other value runs the same pair at that many steps."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="1.0 for "
                               "text-to-image. Below 1 keeps only the last part of a longer schedule, as KSampler "
                               "does for img2img."),
            ],
            outputs=[io.Sampler.Output("sampler", tooltip="The preset's sampler (ComfyUI's own for a stock name, the "
                                       "pack's for an sl_ name)."),
                     io.Sigmas.Output("sigmas", tooltip="The preset's noise levels for this model and step count.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, preset, steps, denoise) -> io.NodeOutput:
        kind = host.model_kind_of(model)
        name, chosen = preset_ops.resolve_preset(preset, kind.kind, int(steps))
        n = preset_ops.preset_steps(chosen, int(steps))
        if preset_ops.is_pack_name(chosen.sampler, "sampler"):
            sampler = host.sampler_object(chosen.sampler, {})
        else:
            sampler = host.stock_sampler_object(chosen.sampler)
        sigmas = preset_sigmas(model, kind, chosen.scheduler, chosen.sampler, n, float(denoise))
        text = preset_ops.preset_report(name, chosen, kind.kind, n, preset == preset_ops.AUTO)
        return io.NodeOutput(sampler, sigmas, ui=ui.PreviewText(text))
