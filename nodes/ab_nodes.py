"""A/B Compare nodes (V3 schema): entries chained with A/B Entry or written as a list, one grid.

Every cell starts from the same noise (seed) with the same model, conditioning, CFG and latent, and runs through
the public method catalogue's ``run`` (solvers/catalogue.py), as ``schedule-lab compare`` does; the grid labels
each cell with its steps, realised model calls (NFE, counted by ``run``, so adaptive samplers report what they
used) and wall time (sampling and decoding). ``node_id`` values are permanent workflow identity.
"""
from __future__ import annotations

import time

import torch

from . import ab_ops, host
from .node_list import SEED_MAX, node

api = host.v3_api()
io, ui = api.io, api.ui

CATEGORY = "sampling/custom_sampling/schedule_lab"


def _entries():
    """The A/B entries socket (built when a schema is, so a host without ``io.Custom`` disables only these nodes)."""
    return io.Custom("SL_AB_ENTRIES")


@node
class ABEntryNode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_ABEntry",
            display_name="A/B Entry",
            category=CATEGORY,
            description="One cell of an A/B Compare: a sampler and a schedule with a label. Chain entries through "
                        "'previous'. A connected SAMPLER / SIGMAS wins over the names (pack and stock alike).",
            inputs=[
                io.String.Input("label", default="A", tooltip="Shown above the cell; labels must differ."),
                io.Combo.Input("sampler_name", options=host.sampler_names(), default="euler",
                               tooltip="Used when no SAMPLER is connected."),
                io.Combo.Input("scheduler", options=host.scheduler_names(), default="karras",
                               tooltip="Used when no SIGMAS are connected."),
                io.Int.Input("steps", default=10, min=1, max=1000, tooltip="Steps for the scheduler name."),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01,
                               tooltip="Denoise for the scheduler name (KSampler's rule)."),
                io.Sampler.Input("sampler", optional=True, tooltip="Optional: any SAMPLER (e.g. TADA Sampler)."),
                io.Sigmas.Input("sigmas", optional=True, tooltip="Optional: any SIGMAS (e.g. a Schedule Lab "
                                "scheduler, Timestep Search, AYS)."),
                _entries().Input("previous", optional=True, tooltip="Optional: earlier entries of the chain."),
            ],
            outputs=[_entries().Output("entries", display_name="entries",
                                    tooltip="The chain so far, for A/B Compare or the next entry.")],
        )

    @classmethod
    def execute(cls, label, sampler_name, scheduler, steps, denoise, sampler=None, sigmas=None,
                previous=None) -> io.NodeOutput:
        entry = ab_ops.ABEntry(label=label, sampler_name=sampler_name, scheduler=scheduler, steps=steps,
                               denoise=denoise, sampler=sampler, sigmas=sigmas)
        return io.NodeOutput([*(previous or []), entry])


@node
class ABCompare(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_ABCompare",
            display_name="A/B Compare",
            category=CATEGORY,
            description="Sample every entry from the same noise and lay the results out in one labelled grid "
                        "(label, steps, model calls, wall time per cell). Cost: the sum of the cells' model calls "
                        "(about steps x calls-per-step each; shown on the node before sampling starts).",
            is_output_node=True,
            hidden=[io.Hidden.unique_id],
            inputs=[
                io.Model.Input("model", tooltip="The model every cell samples."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning, shared by all cells."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, shared by all cells."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, tooltip="CFG for every cell."),
                io.Latent.Input("latent_image", tooltip="Start latent (empty for text-to-image)."),
                io.Vae.Input("vae", tooltip="Decodes every cell for the grid."),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX, tooltip="One noise for every cell."),
                io.String.Input("entry_list", default="", multiline=True, tooltip="Entries as lines "
                                "'sampler, scheduler, steps[, label]', after any chained entries."),
                io.Combo.Input("sweep", options=list(ab_ops.SWEEPS), default="none", tooltip="none: one cell per "
                               "entry. Otherwise one cell per value of sweep_values, varying this setting of the "
                               "first entry (detail needs sl_tada by name; xi, the constant-rate exponent ξ, "
                               "needs scheduler sl_constant_rate by name and uses the calibration the MODEL carries, "
                               "else the data-free default)."),
                io.String.Input("sweep_values", default="0.5, 1, 2", tooltip="Comma-separated values for the sweep."),
                io.Int.Input("columns", default=0, min=0, max=16, tooltip="Grid columns; 0 = as square as possible."),
                _entries().Input("entries", optional=True, tooltip="A chain of A/B Entry nodes."),
            ],
            outputs=[io.Image.Output("grid", display_name="grid", tooltip="All cells in one labelled image."),
                     io.Image.Output("images", display_name="images",
                                     tooltip="The cells as an image batch, in grid order."),
                     io.String.Output("report", display_name="report",
                                      tooltip="One line per cell: label, steps, NFE, seconds.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, cfg, latent_image, vae, seed, entry_list, sweep, sweep_values, columns,
                entries=None) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden else None
        listed = ab_ops.parse_entry_list(entry_list, host.sampler_names(), host.scheduler_names())
        cells = ab_ops.expand_sweep([*(entries or []), *listed], sweep, sweep_values)
        ab_ops.check_labels(cells)
        plans = []
        for cell in cells:
            try:
                if cell.xi is not None:  # a ξ-sweep cell: sl_constant_rate with this exponent
                    sigmas = ab_ops.constant_rate_cell_sigmas(host.model_kind_of(model), cell.steps, cell.denoise,
                                                              cell.xi, host.model_velocity(model))
                else:
                    sigmas = cell.sigmas if cell.sigmas is not None else host.scheduler_sigmas_for(
                        model, cell.scheduler, cell.steps, cell.denoise)
                sampler = host.cell_sampler(cell.sampler_name, cell.options, cell.sampler)
            except Exception as e:  # noqa: BLE001 - name the entry whose recipe failed
                raise ab_ops.ScheduleError(f"{cell.describe()}: {e}") from e
            plans.append((cell, sampler, sigmas))
        steps_total = sum(len(s) - 1 for _, _, s in plans)
        host.show_text(node_id, f"A/B Compare: {len(plans)} cells, {steps_total} steps in all (model calls = steps "
                                "for one-call-per-step samplers, about twice for second-order ones)")
        bar = host.Progress(steps_total)
        images, captions, lines = [], [], []
        for cell, sampler, sigmas in plans:
            host.check_interrupted()
            t0 = time.perf_counter()
            samples, result = host.sample_cell(model, positive, negative, cfg, latent_image, sampler, sigmas, seed,
                                               callback=lambda *_: bar.step())
            decoded = vae.decode(samples)
            seconds, nfe = time.perf_counter() - t0, result.nfe  # NFE counted: adaptive samplers report theirs
            images.append(decoded.reshape(-1, *decoded.shape[-3:])[:1].float().cpu())
            steps = len(result.schedules[0]) - 1 if result.schedules else len(sigmas) - 1
            captions.append(ab_ops.cell_caption(cell.label, steps, nfe, seconds))
            lines.append(f"{cell.label}: {steps} steps, NFE {nfe}, {seconds:.2f} s (sampler {result.wall_s:.2f} s)")
            host.show_text(node_id, f"A/B Compare: cell {len(lines)}/{len(plans)} done ({lines[-1]})")
        batch = torch.cat(images)
        grid = ab_ops.draw_grid(batch, captions, columns)
        report = "\n".join(lines)
        return io.NodeOutput(grid, batch, report, ui={"text": (report,), **ui.PreviewImage(grid, cls=cls).as_dict()})

