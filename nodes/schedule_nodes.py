"""Schedule nodes (V3 schema): pack schedulers as SIGMAS, Save / Load Schedule, Schedule Info.

Each class only maps sockets to a function of :mod:`.schedule_ops`. ``node_id`` values are permanent
workflow identity; display names may change.
"""
from __future__ import annotations

from ..schedules.catalogue import SCHEDULES
from ..schedules.model_kind import ModelKind
from . import host, registry, schedule_ops
from .node_list import node
from .plot_image import schedule_image
from .plot_route import plot_axes
from .preset_ops import with_presets

api = host.v3_api()
io, ui = api.io, api.ui

CATEGORY = "sampling/custom_sampling/schedulers"
SIGMAS_CATEGORY = "sampling/custom_sampling/sigmas"

_STEPS_TIP = "Number of sampling steps (model calls for first-order samplers)."
_DENOISE_TIP = ("1.0 for text-to-image. Below 1 keeps only the last part of a longer schedule, as KSampler "
                "does for img2img; 0 returns an empty schedule.")


@node
class PackScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_Scheduler",
            display_name="Schedule Lab Scheduler",
            category=CATEGORY,
            description="Noise levels (SIGMAS) from a Schedule Lab scheduler, computed for the connected "
                        "model's kind (eps, v, EDM or flow). The same names are also in KSampler's "
                        "scheduler list.",
            inputs=[
                io.Model.Input("model", tooltip="The model the schedule is made for; its kind and noise range "
                               "set the sigma values."),
                io.Combo.Input("scheduler", options=list(registry.DROPDOWN_SCHEDULERS), tooltip="\n".join(
                    f"{name}: {with_presets(name, SCHEDULES[name].description)}"
                    for name in registry.DROPDOWN_SCHEDULERS)),
                io.Int.Input("steps", default=10, min=1, max=10000, tooltip=_STEPS_TIP),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=_DENOISE_TIP),
            ],
            outputs=[io.Sigmas.Output(tooltip="Descending noise levels ending in 0.")],
        )

    @classmethod
    def execute(cls, model, scheduler, steps, denoise) -> io.NodeOutput:
        kind = host.model_kind_of(model)
        # what KSampler's dropdown gets for this name: the MODEL's settings, the saved files if the entry needs them
        needs = SCHEDULES[scheduler].needs if scheduler in SCHEDULES else ()
        provided = host.host_provided(needs, model.get_model_object("model_sampling"))
        return io.NodeOutput(schedule_ops.pack_schedule(kind, scheduler, steps, denoise, provided))


@node
class SaveSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_SaveSchedule",
            display_name="Save Schedule",
            category=SIGMAS_CATEGORY,
            description="Save SIGMAS as a shareable schedule file (JSON with the model kind, provenance and a "
                        "checksum) in models/schedules. Load it anywhere with Load Schedule.",
            is_output_node=True,
            inputs=[
                io.Sigmas.Input("sigmas", tooltip="The schedule to save (descending noise levels)."),
                io.Model.Input("model", tooltip="The model the schedule was made for; its kind (eps, v, EDM, "
                               "flow) is stored so the file can be carried to other model kinds."),
                io.String.Input("filename", default="my_schedule", tooltip="File name inside models/schedules "
                                "('.json' is added). Letters, digits, '-', '_' and '.'; no folders."),
                io.String.Input("note", default="", multiline=False, tooltip="Free text stored in the file's "
                                "provenance (e.g. where the schedule came from)."),
                io.Boolean.Input("overwrite", default=False, tooltip="Replace an existing file of the same "
                                 "name. Off: an existing name is an error, nothing is written."),
            ],
            outputs=[io.String.Output("path", tooltip="Where the file was written.")],
        )

    @classmethod
    def execute(cls, sigmas, model, filename, note, overwrite) -> io.NodeOutput:
        kind = host.model_kind_of(model)
        path = schedule_ops.save_schedule_file(sigmas, kind, filename, host.schedule_write_dir(),
                                               method="saved", params={"note": note}, overwrite=overwrite)
        return io.NodeOutput(path, ui=ui.PreviewText(f"saved {path}"))


@node
class LoadSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_LoadSchedule",
            display_name="Load Schedule",
            category=CATEGORY,
            description="Load a schedule file from models/schedules as SIGMAS for the connected model, "
                        "converting it at equal signal-to-noise ratio if it was made for another model kind.",
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with; the schedule is carried to its kind "
                               "and checked against its noise range."),
                io.Combo.Input("schedule", options=host.schedule_files(), tooltip="A .json file in "
                               "models/schedules (refresh the page after adding files)."),
                io.Int.Input("steps", default=0, min=0, max=10000, tooltip="0 keeps the saved step count; "
                             "any other value resamples the schedule log-linearly to that many steps."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=_DENOISE_TIP),
                io.Boolean.Input("clamp_to_model", default=False, optional=True, tooltip="Off: a schedule with "
                                 "noise levels outside this model's range is refused with an error. On: such levels "
                                 "are moved onto the range (e.g. a flow schedule starting at pure noise, on SD1.5)."),
            ],
            outputs=[io.Sigmas.Output(tooltip="Descending noise levels ending in 0.")],
        )

    @classmethod
    def validate_inputs(cls, schedule) -> bool | str:
        """Before the run: a missing file says which file to put where (instead of ComfyUI's "Value not in list")."""
        return host.schedule_missing(schedule) or True

    @classmethod
    def fingerprint_inputs(cls, schedule=None, **_) -> str:
        """The file's content hash (as LoadImage hashes its image): a rewritten file is read again."""
        return schedule_ops.file_fingerprint(schedule, host.schedule_read_path)

    @classmethod
    def execute(cls, model, schedule, steps, denoise, clamp_to_model=False) -> io.NodeOutput:
        kind = host.model_kind_of(model)
        return io.NodeOutput(schedule_ops.load_schedule_file(host.schedule_read_path(schedule), kind,
                                                             steps, denoise, clamp_to_model))


@node
class ScheduleInfo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_ScheduleInfo",
            display_name="Schedule Info",
            category=SIGMAS_CATEGORY,
            description="Describe SIGMAS: step count, noise range and the log-SNR step sizes (a good schedule "
                        "has no huge jumps). Shown on the node, plotted by the Schedule Lab web extension and "
                        "given as an IMAGE (for Save Image or API runs).",
            is_output_node=True,
            inputs=[
                io.Sigmas.Input("sigmas", tooltip="The schedule to describe."),
                io.Model.Input("model", optional=True, tooltip="Optional: the model, so log-SNR is computed in "
                               "its own parametrisation (needed for flow models)."),
            ],
            # new outputs go last: saved workflows link outputs by slot index
            outputs=[io.String.Output("info", tooltip="The same report as text."),
                     io.Image.Output("plot", tooltip="The schedule's plot (log σ per step) as an image, drawn on "
                                     "the server: connect Save Image or Preview Image.")],
        )

    @classmethod
    def execute(cls, sigmas, model=None) -> io.NodeOutput:
        kind = host.model_kind_of(model) if model is not None else None
        text = schedule_ops.schedule_info(sigmas, kind)
        axes = plot_axes(sigmas, kind or ModelKind.vp())  # no model: log-SNR of the sigma itself
        plot = {"label": "this schedule", "kind": (kind or ModelKind.vp()).kind, **axes}
        image = schedule_image(axes, f"Schedule Info ({plot['kind']})")
        return io.NodeOutput(text, image, ui={"text": (text,), "schedule_lab_sigmas": [plot]})

