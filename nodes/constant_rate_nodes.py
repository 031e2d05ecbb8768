"""Constant-Rate Scheduler node (V3 schema): calibrate a constant-rate schedule on the user's model, cached."""
from __future__ import annotations

from ..schedules.constant_rate import calibrate as core
from ..schedules.constant_rate.cache import cached_velocity
from ..schedules.constant_rate.construct import DEFAULT_XI
from . import constant_rate_ops as ops
from . import host, schedule_ops
from .node_list import SEED_MAX, node

api = host.v3_api()
io, ui = api.io, api.ui

_MEASURE_TIP = "What 'change' is measured; steps are spread so each one changes the image equally.\n" + "\n".join(
    f"{name}: {text}" for name, text in core.MEASURES.items())


@node
class ConstantRateScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_ConstantRateScheduler",
            display_name="Constant-Rate Scheduler",
            category="sampling/custom_sampling/schedulers",
            description="Noise levels placed so the image changes at an even pace from step to step (constant-rate "
                        "scheduling, Okada et al. 2024), measured on your model once and cached on disk "
                        "(models/schedule_lab_calibration), so the next run is instant. Its MODEL output carries the "
                        "calibration: a KSampler fed that MODEL with scheduler 'sl_constant_rate' uses it. For EDM-type"
                        " models at 4-8 steps, pair it with sampler 'deis': the pairing Schedule Lab's per-family "
                        "benchmark chose for that family (for SD1/SDXL, v-prediction and SD3 / Flux models it chose "
                        "no calibrated pairing). On EDM models the calibration is used at 4 and 6 steps, where it "
                        "measured better than the data-free list on both of Schedule Lab's EDM models; at other step "
                        "counts, and on SD1/SDXL (eps), v-prediction and SD3 / Flux (flow) models, it measured worse, "
                        "so 'sl_constant_rate' on this MODEL gives the data-free list there (the log says so). The "
                        "Few-Step Preset node holds the benchmark's choice for the other families "
                        "('sl_sd1_few_steps', 'sl_v_few_steps', 'sl_flow_few_steps').",
            inputs=[
                io.Guider.Input("guider", tooltip="The model with its prompt and CFG, e.g. from CFGGuider - the same "
                                "guider you sample with. The calibration calls the model through it, so the schedule "
                                "fits your model, prompt and CFG."),
                io.Latent.Input("latent_image", tooltip="Sets the image size. An empty latent (Empty Latent Image) "
                                "makes the model generate its own sample images first (data-free); a VAE-encoded "
                                "batch of your images is used as the data instead (no generation calls)."),
                io.Int.Input("steps", default=10, min=1, max=10000, tooltip="Number of sampling steps."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="1.0 for text-to-image. "
                               "Below 1 keeps only the last part of a longer schedule, as KSampler does for img2img."),
                io.Combo.Input("measure", options=list(core.MEASURES), default=core.DEFAULT_MEASURE,
                               tooltip=_MEASURE_TIP),
                io.Float.Input("xi", default=DEFAULT_XI, min=core.XI_MIN, max=core.XI_MAX, step=0.05,
                               tooltip="Exponent xi: 1 = exactly equal change per step; higher concentrates steps "
                                       "where the image changes fastest (both ends of the noise range). 1.5 measured "
                                       "best. Changing it re-uses the cached calibration."),
                io.Int.Input("samples", default=core.DEFAULT_SAMPLES, min=2, max=4096, tooltip="Images the "
                             "change is averaged over (rounded up to a multiple of the latent batch). 64 keeps the "
                             "schedule steady across seeds; fewer = cheaper but noisier. The frechet measure needs "
                             "more than channels x 16. A latent batch of 4-8 makes fewer, larger model calls."),
                io.Int.Input("points", default=core.DEFAULT_POINTS, min=4, max=256, tooltip="Noise levels the "
                             "change is measured at. Model calls = points x samples / batch (+ samples x 12 / batch "
                             "to generate data-free samples)."),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX, control_after_generate=False,
                             tooltip="Seed of the calibration noise (and of the data-free samples)."),
                io.String.Input("save_as", default="", optional=True, tooltip="Optional: also save the schedule "
                                "as a schedule file in models/schedules under this name (empty = do not save). An "
                                "existing file of that name is replaced only when overwrite is on."),
                io.Boolean.Input("overwrite", default=False, optional=True, tooltip="With save_as: replace an "
                                 "existing schedule file of the same name. Off: an existing name is an error before "
                                 "any model call, nothing is written."),
            ],
            outputs=[io.Sigmas.Output(tooltip="Descending noise levels ending in 0."),
                     io.String.Output("report", tooltip="Where the schedule came from, model calls, and the sigmas."),
                     io.Model.Output("model", tooltip="The guider's model carrying this calibration: connect it to a "
                                     "KSampler and pick the scheduler 'sl_constant_rate' there (any step count, "
                                     "denoise). Other models are not affected.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, guider, latent_image, steps, denoise, measure, xi, samples, points, seed, save_as="",
                overwrite=False) -> io.NodeOutput:
        core.check_measure(measure)
        core.check_settings(steps, denoise, xi)  # before a calibration that could take minutes
        saving = bool(save_as and save_as.strip())
        if saving:
            schedule_ops.check_save_target(save_as, host.schedule_write_dir(), overwrite)
        model = guider.model_patcher
        kind = host.model_kind_of(model)
        latent = latent_image
        latent_samples = latent["samples"]
        if measure == "data-free":
            velocity, status = ops.calibrate(None, kind, latent_samples, measure), "data-free"
        else:
            def measure_now():
                bar = []

                def progress(done, total):  # a ComfyUI progress bar; raises on Cancel (nothing gets cached)
                    if not bar:
                        bar.append(host.Progress(total))
                    bar[0].step()

                def work(call, kind_in, latent_in):
                    return ops.calibrate(call, kind_in, latent_in, measure, points, samples, seed, progress=progress,
                                         should_stop=host.check_interrupted)

                return host.calibrate_with_guider(guider, latent, work, seed)

            settings = core.settings(measure, points, samples, seed, kind, latent_samples)
            velocity, status = cached_velocity(host.calibration_dir(), host.guider_fingerprint(guider), settings,
                                               measure_now)
        calibrated = host.with_model_setting(model, "velocity", velocity)
        sigmas = core.schedule(velocity, kind, steps, denoise, xi)
        text = ops.report(velocity, status, sigmas)
        if saving:
            params = {"measure": measure, "xi": float(xi), "samples": int(samples), "points": int(points),
                      "seed": int(seed), "model_calls": velocity.info.get("model_calls", 0)}
            path = schedule_ops.save_schedule_file(sigmas, kind, save_as, host.schedule_write_dir(),
                                                   method="constant_rate", params=params, overwrite=overwrite)
            text += f"\nsaved {path}"
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        host.show_text(node_id, text.split("\n")[0])
        return io.NodeOutput(sigmas, text, calibrated, ui=ui.PreviewText(text))

