"""Timestep search nodes (V3 schema): Timestep Search (AutoDiffusion-style evolutionary search) and Searched Steps.

The classes only map sockets to :mod:`.search_ops`; ComfyUI is reached through :mod:`.host` only.
"""
from __future__ import annotations

import torch

from . import host, registry, search_ops
from .node_list import SEED_MAX, node

api = host.v3_api()
io = api.io

CATEGORY = "sampling/custom_sampling/schedulers"


@node
class TimestepSearch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_TimestepSearch",
            display_name="Timestep Search",
            category=CATEGORY,
            description="Search the best few-step schedule for this model, sampler and step count (AutoDiffusion, "
                        "Li et al. 2023): an evolutionary search that compares each candidate's images with a "
                        "many-step reference made by the same model from the same noise. Saves the result (with its "
                        "fitness history) in models/schedules for Searched Steps and the 'sl_searched' scheduler. "
                        "Shows progress on the node; Cancel stops it and the next run resumes where it stopped. "
                        "The optimiser input adds gradient refinement (LD3, Tong et al. 2025) by finite "
                        "differences, alone or after the evolution.",
            is_output_node=True,
            inputs=[
                io.Guider.Input("guider", tooltip="The model with its prompt and CFG (e.g. from CFGGuider). The "
                                "schedule is searched for exactly this guidance: re-search for another CFG scale."),
                io.Latent.Input("latent_image", tooltip="An empty latent of the size you will generate at; only its "
                                "shape is used (smaller is faster, the schedule mostly transfers to other sizes)."),
                io.Sampler.Input("sampler", tooltip="The sampler the schedule is tuned for (e.g. KSamplerSelect "
                                 "euler or dpmpp_2m). Deterministic samplers give the cleanest search."),
                io.Int.Input("nfe", default=4, min=2, max=50, tooltip="Steps of the searched schedule (= model calls "
                             "for one-call-per-step samplers such as euler and dpmpp_2m). Searching pays off at 4-8 "
                             "steps (at 15-20 it did not beat dpmpp_2m + karras in the defaults study)."),
                io.Int.Input("population", default=16, min=4, max=256, tooltip="Candidates per generation. More "
                             "explores better but each costs samples x nfe model calls."),
                io.Int.Input("generations", default=8, min=1, max=100, tooltip="How many rounds of selection, "
                             "mutation and crossover. The best candidate never gets worse from one to the next."),
                io.Int.Input("reference_steps", default=50, min=2, max=1000, tooltip="Steps of the Heun reference "
                             "that candidates are compared with (made once; costs about 2x this many model calls "
                             "per sample). Must be at least nfe; 10x nfe or more is advised."),
                io.Int.Input("samples", default=4, min=2, max=64, tooltip="Noise samples each candidate is scored "
                             "on (the same for all candidates: a fair comparison). More is steadier and slower."),
                io.Int.Input("holdout", default=4, min=0, max=64, tooltip="Extra noise samples never used by the "
                             "search, to report how well the result generalises (0 = skip)."),
                io.Combo.Input("fitness", options=list(search_ops.FITNESSES), default="endpoint", tooltip="endpoint: "
                               "distance of each candidate's result to the reference result from the same noise "
                               "(fidelity to the model). frechet_pooled: distance between the two sets' statistics "
                               "of pooled latents (distribution-level)."),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX, tooltip="Seeds the noise and the search; the "
                             "same seed and settings give the same schedule."),
                io.String.Input("filename", default="searched_schedule", tooltip="Schedule file written to "
                                "models/schedules ('.json' added); its search state is kept beside it as "
                                "'.searchstate' for resuming."),
                io.Boolean.Input("resume", default=True, tooltip="On: continue an interrupted search with the same "
                                 "name and settings (a finished one returns its result at once; a refinement is "
                                 "re-run, it is deterministic). Off: start over."),
                io.Latent.Input("target_latent", optional=True, tooltip="Optional, with fitness frechet_pooled: "
                                "your reference images through VAE Encode (at least 2). The search then matches "
                                "their statistics instead of the model's many-step results."),
                io.Combo.Input("optimiser", options=list(search_ops.OPTIMISERS), default="evolution",
                               optional=True, tooltip="evolution: the evolutionary search (population x generations "
                               "candidates, nfe model calls each; steps are points of the model's own table). "
                               "refine: gradient refinement of the uniform list (LD3): moves the noise levels "
                               "freely, the gradient measured by finite differences with forward model calls only: "
                               "2 x nfe sampler runs per iteration (euler/dpmpp_2m at nfe 4: 32 model calls); "
                               "keeps the list with the best held-out error; needs fitness endpoint and holdout >= 2. "
                               "evolution + refine: refines the evolution's result (both costs; usually the best "
                               "list). refine from sl_constant_rate: refines the data-free constant-rate list "
                               "(the rule's choice at some step counts: docs/defaults.md). evolution + polish: "
                               "the evolution starts from ComfyUI's own schedulers' lists for this model at nfe steps "
                               "(simple, karras, beta, ...), then a Nelder-Mead polish moves its best list's noise "
                               "levels freely (4 x refine_iterations sampler runs; the lists of docs/search.md's "
                               "comparison with ComfyUI's menu were found this way)."),
                io.Int.Input("refine_iterations", default=20, min=1, max=500, optional=True, tooltip="Refinement "
                             "steps for optimiser refine or evolution + refine (ignored by evolution). Each costs "
                             "2 x nfe sampler runs on the search samples plus a held-out check every 2 steps. "
                             "20 is a quick polish after evolution; from uniform 40-60 reach more. With evolution "
                             "+ polish: the polish makes 4 sampler runs per iteration."),
                io.Boolean.Input("overwrite", default=False, optional=True, tooltip="Replace an existing schedule "
                                 "file of the same name. Off: an existing name is an error before any model call, "
                                 "nothing is written (a cancelled search has written no file yet and resumes)."),
            ],
            outputs=[io.Sigmas.Output(tooltip="The searched schedule (descending noise levels ending in 0)."),
                     io.String.Output("report", tooltip="Generations, refinement iterations, fitness, model "
                                                        "calls per stage and the saved path.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, guider, latent_image, sampler, nfe, population, generations, reference_steps, samples, holdout,
                fitness, seed, filename, resume, target_latent=None, optimiser="evolution",
                refine_iterations=20, overwrite=False) -> io.NodeOutput:
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        kind = host.model_kind_of(guider.model_patcher)
        fn = host.sampler_function(sampler)
        # one tick per new candidate evaluated, then one per refinement iteration
        polishing = optimiser == "evolution + polish"
        bar = host.Progress((population * generations if not optimiser.startswith("refine") else 0)
                            + (0 if optimiser == "evolution" else search_ops.POLISH_PER_ITERATION * refine_iterations
                               if polishing else refine_iterations))
        initial = stock_lists(guider.model_patcher, nfe) if polishing else []

        def progress(info):
            bar.step()  # raises on Cancel; the evolution saves its state first
            if info.get("stage") == "polish":
                host.show_text(node_id, f"polish evaluation {info['evaluation']}/{info['evaluations']}, best "
                                        f"{fitness} {info['best_fitness']:.4g}")
                return
            if info.get("stage") == "refine":
                host.show_text(node_id, f"refine iteration {info['iteration']}/{info['iterations']}, held-out "
                                        f"{fitness} {info['holdout_rmse']:.4g} (best {info['best_holdout_rmse']:.4g}),"
                                        f" {info['model_calls']} model calls")
                return
            host.show_text(node_id, f"generation {info['generation'] + 1}/{info['generations']}, evaluation "
                                    f"{info['evaluations']}, best {fitness} {info['best_fitness']:.4g}")

        target = None
        if target_latent is not None:
            target = host.latent_to_model_space(guider.model_patcher, target_latent["samples"])

        def work(model, x, extra_args):
            return search_ops.run_search(
                model, kind, tuple(x.shape[1:]), fn, sampler_name=host.sampler_name(sampler), nfe=nfe,
                population=population, generations=generations, reference_steps=reference_steps, seed=seed,
                fitness=fitness, samples=samples, holdout=holdout, directory=host.schedule_write_dir(),
                filename=filename, resume=resume, progress=progress, extra_args=extra_args, device=x.device,
                target=target, optimiser=optimiser, refine_iterations=refine_iterations,
                should_stop=host.check_interrupted, overwrite=overwrite, initial=initial)

        sigmas, _, report = host.run_with_guider(guider, latent_image, work, seed)
        host.show_text(node_id, report)
        return io.NodeOutput(sigmas, report)


def stock_lists(model_patcher, nfe: int) -> list:
    """ComfyUI's own schedulers' lists for this model at ``nfe`` steps (what KSampler computes; the pack's ``sl_``
    entries left out), those with ``nfe`` distinct positive sigmas then 0: the seeds of "evolution + polish"."""
    ms = model_patcher.get_model_object("model_sampling")
    out = []
    for name in host.scheduler_names():
        if name in registry.DROPDOWN_SCHEDULERS:
            continue
        try:
            s = host.stock_sigmas(ms, name, nfe)
        except Exception:  # noqa: BLE001  (a scheduler that cannot make this list is no seed)
            continue
        if len(s) == nfe + 1 and float(s[-1]) == 0.0 and bool((s[:-1] > 0).all()) and bool((s[:-1] > s[1:]).all()) \
                and not any(torch.equal(s, o) for o in out):
            out.append(s)
    return out


@node
class SearchedSteps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SL_SearchedSteps",
            display_name="Searched Steps",
            category=CATEGORY,
            description="Load a searched schedule (saved by Timestep Search) or a published preset as SIGMAS. "
                        "Resampling to another step count happens only when you ask, and is reported as such.",
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with; the saved search must be for this model "
                               "family (a preset: for its family, e.g. SD1.x)."),
                io.Combo.Input("schedule", options=search_ops.schedule_choices(host.schedule_files()),
                               tooltip="'preset: ...' are published searched lists (source in the report); the "
                                       "others are files in models/schedules (refresh after a new search)."),
                io.Int.Input("steps", default=0, min=0, max=10000, tooltip="0 keeps the searched step count (the "
                             "point of a search). Another value resamples log-linearly: no longer a searched list."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="1.0 for text-to-image; "
                               "below 1 keeps only the last part of the schedule, as KSampler does for img2img."),
            ],
            outputs=[io.Sigmas.Output(tooltip="Descending noise levels ending in 0."),
                     io.String.Output("info", tooltip="Where the schedule comes from, and whether it was resampled.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, schedule) -> bool | str:
        """Before the run: a missing file says which file to put where (instead of ComfyUI's "Value not in list");
        an unknown preset lists the presets."""
        return search_ops.choice_missing(schedule, host.schedule_missing) or True

    @classmethod
    def fingerprint_inputs(cls, schedule=None, **_) -> str:
        """A file's content hash, so a rewritten file (a new search under the same name) is read again."""
        return search_ops.choice_fingerprint(schedule, host.schedule_read_path)

    @classmethod
    def execute(cls, model, schedule, steps, denoise) -> io.NodeOutput:
        kind = host.model_kind_of(model)
        sigmas, note = search_ops.searched_steps(schedule, kind, host.schedule_read_path, steps, denoise)
        host.show_text(cls.hidden.unique_id if cls.hidden is not None else None, note)
        return io.NodeOutput(sigmas, note)

