"""TPDM nodes (V3 schema): Load TPM, Apply TPM (MODEL → MODEL with taps) and Adaptive Steps Sampler (SAMPLER).

The stock KSampler runs TPDM with sampler ``sl_tpdm`` on a model from Apply TPM: its ``steps`` is the step cap and
its scheduler gives the start level (so denoise and img2img work). Decisions in docs/tpdm.md.
"""
from __future__ import annotations

from ..solvers.tpdm import sampler as tpdm_sampler
from . import host
from .node_list import node
from .tpdm_ops import adaptive_options, load_tpm_file

api = host.v3_api()
io = api.io
TPM = io.Custom("SL_TPM")
CATEGORY = "sampling/custom_sampling"


@node
class LoadTPM(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_LoadTPM",
            display_name="Load TPM",
            category="loaders",
            description="Load a time predictor (TPDM, arXiv 2412.01243) from models/tpm: the small network that "
                        "picks each image's next noise level. Reads .safetensors only: the official SD3-Medium TPM "
                        "or one trained with `schedule-lab tpdm train`.",
            inputs=[io.Combo.Input("tpm_name", options=host.tpm_files(), tooltip="A .safetensors TPM file in "
                                   "models/tpm (refresh the page after adding files).")],
            outputs=[TPM.Output(display_name="TPM", tooltip="The time predictor, for Apply TPM.")],
        )

    @classmethod
    def validate_inputs(cls, tpm_name) -> bool | str:
        """Before the run: a missing file says which file to put where (instead of ComfyUI's "Value not in list")."""
        return host.tpm_missing(tpm_name) or True

    @classmethod
    def execute(cls, tpm_name) -> io.NodeOutput:
        return io.NodeOutput(load_tpm_file(host.tpm_read_path(tpm_name), tpm_name))


@node
class ApplyTPM(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_ApplyTPM",
            display_name="Apply TPM",
            category=CATEGORY,
            description="Attach a time predictor to the model: the model then reports the features the TPM reads, "
                        "and sampler 'sl_tpdm' (KSampler) or the Adaptive Steps Sampler picks each image's steps. "
                        "After each run the node shows every image's step count and noise levels.",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with (SD1.x/SD2/SDXL UNet, SD3; Flux "
                               "experimental). The TPM must have been trained for this model."),
                TPM.Input("tpm", tooltip="From Load TPM."),
                io.String.Input("freeze_as", default="", optional=True, tooltip="Empty: off. A name: after each run "
                                "the realised schedule is saved to models/schedules/<name>.json (<name>_<i> per "
                                "image of a batch), so Load Schedule + euler reproduces the run without the TPM."),
            ],
            outputs=[io.Model.Output(tooltip="The same model carrying the TPM and its feature taps.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, tpm, freeze_as="") -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        return io.NodeOutput(host.apply_tpm(model, tpm.module, tpm.meta, tpm.name, node_id, freeze_as or ""))


@node
class AdaptiveStepsSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_AdaptiveStepsSampler",
            display_name="Adaptive Steps Sampler",
            category="sampling/custom_sampling/samplers",
            description="TPDM (Ye et al., arXiv 2412.01243): every image picks its own next noise level from the "
                        "model's features and stops when it is clean enough, so easy images take fewer steps. "
                        "Needs a model from Apply TPM. The SIGMAS input gives only the start level.",
            inputs=[
                io.Float.Input("min_sigma", default=tpdm_sampler.DEFAULT_MIN_SIGMA, min=0.0, max=100.0, step=0.0001,
                               tooltip="An image stops once its next noise level would fall below this (on "
                               "SD1/SD2/SDXL raised to the model's smallest level; SD3/Flux keep it). Lower: more "
                               "steps, finer finish. Must be > 0."),
                io.Int.Input("max_steps", default=tpdm_sampler.DEFAULT_MAX_STEPS, min=1, max=1000,
                             tooltip="The most model calls any image may take."),
                io.Boolean.Input("stochastic", default=False, tooltip="Off: the TPM's most likely step (repeatable). "
                                 "On: draw the step from the TPM's distribution, seeded by the sampler's seed."),
                io.Combo.Input("final_step", options=list(tpdm_sampler.FINAL_STEPS), default="zero",
                               tooltip="'zero': the last step lands on noise 0 (clean image, same number of calls). "
                               "'stop': the official loop, ending just below min_sigma."),
            ],
            outputs=[io.Sampler.Output(tooltip="The adaptive-steps sampler.")],
        )

    @classmethod
    def execute(cls, min_sigma, max_steps, stochastic, final_step) -> io.NodeOutput:
        return io.NodeOutput(host.sampler_object("sl_tpdm", adaptive_options(min_sigma, max_steps, stochastic,
                                                                              final_step)))

