"""TADA nodes (V3 schema): TADA Sampler (SAMPLER for SamplerCustom[Advanced]) and the Detail Level slider."""
from __future__ import annotations

from ..solvers import tada
from . import host
from .node_list import node
from .preset_ops import with_presets

api = host.v3_api()
io = api.io

_DETAIL_TIP = (
    "How much fine detail and variety TADA adds. It is the variance of the extra 'momentum' noise (k in the paper): "
    "1 is the neutral setting; higher gives busier texture and more variation between seeds at the same step count, "
    "lower gives smoother, more conservative images. Costs no extra steps. "
    f"Range {tada.DETAIL_MIN:g}-{tada.DETAIL_MAX:g}."
)


def detail_report(detail: float, sampler_name: str, explicit: dict) -> str:
    """What the Detail Level node shows after a run."""
    if sampler_name != "sl_tada":
        return (f"Detail Level {detail:g} had no effect: this graph sampled with '{sampler_name}', not TADA. "
                "Pick 'sl_tada' in KSampler or use the TADA Sampler node.")
    if "detail" in explicit:
        return (f"Detail Level {detail:g} had no effect: the TADA Sampler node's own detail "
                f"{explicit['detail']:g} wins.")
    return f"Detail Level {detail:g} used by sl_tada."


@node
class TADASampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_TADASampler",
            display_name="TADA Sampler",
            category="sampling/custom_sampling/samplers",
            description="TADA (Chen et al. 2025, arXiv 2506.21757): a training-free ODE sampler that integrates the "
                        "image together with extra momentum noise, giving more detail at low step counts for the "
                        "same number of model calls. Connect to SamplerCustom / SamplerCustomAdvanced. "
                        + with_presets("sl_tada", "Its defaults are per model kind (docs/tada.md)."),
            inputs=[
                io.Float.Input("detail", default=tada.DEFAULT_DETAIL, min=tada.DETAIL_MIN, max=tada.DETAIL_MAX,
                               step=tada.DETAIL_STEP, tooltip=_DETAIL_TIP + " This input wins over a Detail Level "
                               "node on the model."),
                io.Int.Input("n_aug", default=tada.DEFAULT_N_AUG, min=1, max=3, tooltip="How many image-sized "
                             "variables TADA tracks (image, velocity, acceleration). 2 is the paper's setting; 1 is "
                             "plain Euler (detail has no effect); 3 adds even more variation."),
                io.Combo.Input("order", options=["auto", "1", "2", "3"], default="auto", tooltip="Multistep order "
                               "of the solver. 'auto' picks the measured best for the model kind (see docs/tada.md); "
                               "higher orders are more accurate at many steps, lower ones steadier at very few."),
            ],
            outputs=[io.Sampler.Output(tooltip="The TADA sampler with these settings.")],
        )

    @classmethod
    def execute(cls, detail, n_aug, order) -> io.NodeOutput:
        options = {"detail": float(detail), "n_aug": int(n_aug), "order": None if order == "auto" else int(order)}
        tada.check_options(options["detail"], options["n_aug"], options["order"], None)  # clear errors up front
        return io.NodeOutput(host.sampler_object("sl_tada", options))


@node
class DetailLevel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_DetailLevel",
            display_name="Detail Level",
            category="sampling/custom_sampling",
            description="Set TADA's detail level on the model, so the stock KSampler with sampler 'sl_tada' uses it. "
                        "After each run the node says whether the setting was used (with another sampler it has "
                        "no effect).",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with."),
                io.Float.Input("detail", default=tada.DEFAULT_DETAIL, min=tada.DETAIL_MIN, max=tada.DETAIL_MAX,
                               step=tada.DETAIL_STEP, display_mode=io.NumberDisplay.slider, tooltip=_DETAIL_TIP),
            ],
            outputs=[io.Model.Output(tooltip="The same model carrying the detail level.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, detail) -> io.NodeOutput:
        detail = float(detail)
        tada.check_options(detail, tada.DEFAULT_N_AUG, None, None)
        node_id = cls.hidden.unique_id if cls.hidden is not None else None

        def watch(sampler_name: str, explicit: dict) -> None:
            host.show_text(node_id, detail_report(detail, sampler_name, explicit))

        return io.NodeOutput(host.with_settings(model, "schedule_lab_detail_level", watch, detail=detail))

