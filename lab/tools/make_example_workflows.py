"""Write the UI-format example workflows in example_workflows/ (run: python lab/tools/make_example_workflows.py).

ComfyUI's template browser serves these files as they are; they must be in the format the frontend's
"Save" exports (nodes + links), not the API format. Building them here keeps ids and links consistent.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "example_workflows"

# Socket types of the outputs/inputs used below.
OUTPUTS = {
    "CheckpointLoaderSimple": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    "UNETLoader": [("MODEL", "MODEL")],
    "DualCLIPLoader": [("CLIP", "CLIP")],
    "VAELoader": [("VAE", "VAE")],
    "ModelSamplingSD3": [("MODEL", "MODEL")],
    "ModelSamplingFlux": [("MODEL", "MODEL")],
    "FluxGuidance": [("CONDITIONING", "CONDITIONING")],
    "ConditioningZeroOut": [("CONDITIONING", "CONDITIONING")],
    "CLIPTextEncode": [("CONDITIONING", "CONDITIONING")],
    "EmptyLatentImage": [("LATENT", "LATENT")],
    "EmptySD3LatentImage": [("LATENT", "LATENT")],
    "KSampler": [("LATENT", "LATENT")],
    "VAEDecode": [("IMAGE", "IMAGE")],
    "SaveImage": [],
    "SL_Scheduler": [("SIGMAS", "SIGMAS")],
    "SL_ScheduleInfo": [("info", "STRING")],
    "SL_SaveSchedule": [("path", "STRING")],
    "SL_LoadSchedule": [("SIGMAS", "SIGMAS")],
    "KSamplerSelect": [("SAMPLER", "SAMPLER")],
    "RandomNoise": [("NOISE", "NOISE")],
    "CFGGuider": [("GUIDER", "GUIDER")],
    "SamplerCustomAdvanced": [("output", "LATENT"), ("denoised_output", "LATENT")],
    "BasicScheduler": [("SIGMAS", "SIGMAS")],
    "SL_DetailLevel": [("MODEL", "MODEL")],
    "SL_TADASampler": [("SAMPLER", "SAMPLER")],
    "SL_TimestepSearch": [("SIGMAS", "SIGMAS"), ("report", "STRING")],
    "SL_SearchedSteps": [("SIGMAS", "SIGMAS"), ("info", "STRING")],
    "SL_ConstantRateScheduler": [("SIGMAS", "SIGMAS"), ("report", "STRING"), ("model", "MODEL")],
    "SL_ABEntry": [("entries", "SL_AB_ENTRIES")],
    "SL_ABCompare": [("grid", "IMAGE"), ("images", "IMAGE"), ("report", "STRING")],
    "SL_LoadTPM": [("TPM", "SL_TPM")],
    "SL_ApplyTPM": [("MODEL", "MODEL")],
    "SL_AdaptiveStepsSampler": [("SAMPLER", "SAMPLER")],
    "SL_FewStepPreset": [("sampler", "SAMPLER"), ("sigmas", "SIGMAS")],
    "PreviewImage": [],
    "Note": [],
}
INPUTS = {
    "CLIPTextEncode": [("clip", "CLIP")],
    "ModelSamplingSD3": [("model", "MODEL")],
    "ModelSamplingFlux": [("model", "MODEL")],
    "FluxGuidance": [("conditioning", "CONDITIONING")],
    "ConditioningZeroOut": [("conditioning", "CONDITIONING")],
    "KSampler": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                 ("latent_image", "LATENT")],
    "VAEDecode": [("samples", "LATENT"), ("vae", "VAE")],
    "SaveImage": [("images", "IMAGE")],
    "SL_Scheduler": [("model", "MODEL")],
    "SL_ScheduleInfo": [("sigmas", "SIGMAS"), ("model", "MODEL")],
    "SL_SaveSchedule": [("sigmas", "SIGMAS"), ("model", "MODEL")],
    "SL_LoadSchedule": [("model", "MODEL")],
    "CFGGuider": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    "SamplerCustomAdvanced": [("noise", "NOISE"), ("guider", "GUIDER"), ("sampler", "SAMPLER"),
                              ("sigmas", "SIGMAS"), ("latent_image", "LATENT")],
    "BasicScheduler": [("model", "MODEL")],
    "SL_DetailLevel": [("model", "MODEL")],
    "SL_TimestepSearch": [("guider", "GUIDER"), ("latent", "LATENT"), ("sampler", "SAMPLER"),
                          ("target_latent", "LATENT")],
    "SL_SearchedSteps": [("model", "MODEL")],
    "SL_ConstantRateScheduler": [("guider", "GUIDER"), ("latent", "LATENT")],
    "SL_ABEntry": [("sampler", "SAMPLER"), ("sigmas", "SIGMAS"), ("previous", "SL_AB_ENTRIES")],
    "SL_ABCompare": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                     ("latent", "LATENT"), ("vae", "VAE"), ("entries", "SL_AB_ENTRIES")],
    "SL_ApplyTPM": [("model", "MODEL"), ("tpm", "SL_TPM")],
    "SL_FewStepPreset": [("model", "MODEL")],
    "PreviewImage": [("images", "IMAGE")],
}


# ---- model families: the loaders ComfyUI 0.3.64's own templates use, the files they read ---------------------------
@dataclass(frozen=True)
class ModelFile:
    folder: str  # under ComfyUI/models
    name: str
    url: str = ""  # where to download it (the frontend's missing-models dialog offers it)
    how: str = ""  # how to make it when there is nothing to download (pack files)

    def line(self) -> str:
        source = f" — download: {self.url}" if self.url else (f" — {self.how}" if self.how else "")
        return f"• ComfyUI/models/{self.folder}/{self.name}{source}"


SD15 = ModelFile("checkpoints", "v1-5-pruned-emaonly-fp16.safetensors",
                 "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
                 "v1-5-pruned-emaonly-fp16.safetensors?download=true")
SDXL = ModelFile("checkpoints", "sd_xl_base_1.0.safetensors",
                 "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/"
                 "sd_xl_base_1.0.safetensors?download=true")
SD3 = ModelFile("checkpoints", "sd3_medium_incl_clips_t5xxlfp8.safetensors",
                "https://huggingface.co/stabilityai/stable-diffusion-3-medium/resolve/main/"
                "sd3_medium_incl_clips_t5xxlfp8.safetensors")
FLUX_UNET = ModelFile("diffusion_models", "flux1-dev.safetensors",
                      "https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors")
FLUX_CLIP_L = ModelFile("text_encoders", "clip_l.safetensors",
                        "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors")
FLUX_T5 = ModelFile("text_encoders", "t5xxl_fp16.safetensors",
                    "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors")
FLUX_VAE = ModelFile("vae", "ae.safetensors",
                     "https://huggingface.co/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/"
                     "ae.safetensors")
SD3_TPM = ModelFile("tpm", "tpm_sd3_medium.safetensors",
                    how="the SD3-Medium time predictor (TPDM, arXiv 2412.01243) as .safetensors, or one trained for "
                        "your model with `schedule-lab tpdm train` (docs/tpdm.md); Load TPM names this file if missing")
SCHEDULE_FILE = ModelFile("schedules", "constant_rate_sd1_10.json",
                          how="written by the save_and_inspect_schedule workflow (Save Schedule); Load Schedule names "
                              "this file if missing")


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    size: int
    cfg: float
    sampler: str  # a good stock sampler/scheduler pair for the family
    scheduler: str
    latent: str = "EmptyLatentImage"


FAMILIES = {
    "sd15": Family("sd15", "SD1.5", 512, 7.0, "dpmpp_2m", "karras"),
    "sdxl": Family("sdxl", "SDXL", 1024, 7.0, "dpmpp_2m", "karras"),
    "sd3": Family("sd3", "SD3", 1024, 5.0, "euler", "simple", "EmptySD3LatentImage"),
    "flux": Family("flux", "Flux", 1024, 1.0, "euler", "simple", "EmptySD3LatentImage"),
}


@dataclass
class Graph:
    """The family's loaders, prompts and latent: references are (node id, output slot)."""

    family: Family
    model: tuple[int, int]
    vae: tuple[int, int]
    pos: tuple[int, int]
    neg: tuple[int, int]
    lat: tuple[int, int]
    files: list = field(default_factory=list)


class Workflow:
    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, type_: str, pos, widgets=(), size=(315, 130), title=None, models=()) -> int:
        nid = len(self.nodes) + 1
        node = {
            "id": nid, "type": type_, "pos": list(pos), "size": list(size), "flags": {}, "order": nid - 1,
            "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in INPUTS.get(type_, [])],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(OUTPUTS[type_])],
            "properties": {"Node name for S&R": type_},
            "widgets_values": list(widgets),
        }
        if models:  # the frontend's missing-models dialog lists these ("directory / name", a download button)
            node["properties"]["models"] = [{"name": m.name, "url": m.url, "directory": m.folder} for m in models]
        if title:
            node["title"] = title
        self.nodes.append(node)
        return nid

    def link(self, src: int, slot: int, dst: int, input_name: str) -> None:
        lid = len(self.links) + 1
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        inp = next(i for i, x in enumerate(d["inputs"]) if x["name"] == input_name)
        type_ = s["outputs"][slot]["type"]
        assert d["inputs"][inp]["type"] == type_, (s["type"], d["type"], input_name)
        s["outputs"][slot]["links"].append(lid)
        d["inputs"][inp]["link"] = lid
        self.links.append([lid, src, slot, dst, inp, type_])

    def ref(self, ref: tuple[int, int], dst: int, input_name: str) -> None:
        self.link(ref[0], ref[1], dst, input_name)

    def dump(self, name: str, note: str) -> None:
        doc = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
               "links": self.links, "groups": [], "config": {},
               "extra": {"schedule_lab_note": note, "ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        WRITTEN.append(name)


WRITTEN: list[str] = []
PROMPT = "a watercolour fox in a snowy forest, detailed fur"


def setup(w: Workflow, family: str = "sd15") -> Graph:
    """Loaders, prompts and the empty latent of ``family``, as ComfyUI 0.3.64's own templates build them."""
    fam = FAMILIES[family]
    if fam.key == "flux":
        unet = w.node("UNETLoader", (0, 120), [FLUX_UNET.name, "default"], size=(315, 82), models=[FLUX_UNET])
        clip = w.node("DualCLIPLoader", (0, 240), [FLUX_CLIP_L.name, FLUX_T5.name, "flux", "default"],
                      size=(315, 130), models=[FLUX_CLIP_L, FLUX_T5])
        vae_node = w.node("VAELoader", (0, 410), [FLUX_VAE.name], size=(315, 58), models=[FLUX_VAE])
        ms = w.node("ModelSamplingFlux", (0, 510), [1.15, 0.5, fam.size, fam.size], size=(315, 130))
        w.link(unet, 0, ms, "model")
        model, clip_ref, vae = (ms, 0), (clip, 0), (vae_node, 0)
        files = [FLUX_UNET, FLUX_CLIP_L, FLUX_T5, FLUX_VAE]
    else:
        file = {"sd15": SD15, "sdxl": SDXL, "sd3": SD3}[fam.key]
        ckpt = w.node("CheckpointLoaderSimple", (0, 200), [file.name], size=(315, 100), models=[file])
        model, clip_ref, vae, files = (ckpt, 0), (ckpt, 1), (ckpt, 2), [file]
        if fam.key == "sd3":
            ms = w.node("ModelSamplingSD3", (0, 340), [3.0], size=(315, 58))
            w.link(ckpt, 0, ms, "model")
            model = (ms, 0)
    pos = w.node("CLIPTextEncode", (350, 100), [PROMPT], size=(400, 160), title="Positive prompt")
    w.ref(clip_ref, pos, "clip")
    if fam.key == "flux":  # Flux: guidance on the prompt, CFG 1, the negative unused (zeroed)
        guidance = w.node("FluxGuidance", (350, 300), [3.5], size=(315, 58))
        neg = w.node("ConditioningZeroOut", (350, 400), size=(315, 26), title="Negative (unused at CFG 1)")
        w.link(pos, 0, guidance, "conditioning")
        w.link(pos, 0, neg, "conditioning")
        pos_ref = (guidance, 0)
    else:
        neg = w.node("CLIPTextEncode", (350, 300), ["blurry, low quality"], size=(400, 160), title="Negative prompt")
        w.ref(clip_ref, neg, "clip")
        pos_ref = (pos, 0)
    lat = w.node(fam.latent, (350, 500), [fam.size, fam.size, 1], size=(315, 106))
    return Graph(fam, model, vae, pos_ref, (neg, 0), (lat, 0), files)


def _note(w: Workflow, g: Graph, text: str, extra_files=(), at=(0, -300)) -> None:
    """The "What to look at" note: what the workflow shows, then every file it reads and where it goes."""
    files = "\n".join(f.line() for f in [*g.files, *extra_files])
    w.node("Note", at, [f"{text}\n\nFiles this workflow needs (a missing one is named when you queue):\n{files}"],
           size=(460, 230), title="What to look at")


def _ksampler(w: Workflow, g: Graph, widgets, at, model=None, title=None) -> int:
    """A KSampler fed ``model`` (default: the family's), the prompts and the latent."""
    ks = w.node("KSampler", at, widgets, size=(315, 262), title=title)
    w.ref(model or g.model, ks, "model")
    w.ref(g.pos, ks, "positive")
    w.ref(g.neg, ks, "negative")
    w.ref(g.lat, ks, "latent_image")
    return ks


def _decode_and_save(w: Workflow, g: Graph, latent_src: int, prefix: str, at=(1450, 250), gap: int = 250):
    dec = w.node("VAEDecode", at, size=(210, 46))
    save = w.node("SaveImage", (at[0] + gap, at[1]), [prefix], size=(400, 400))
    w.link(latent_src, 0, dec, "samples")
    w.ref(g.vae, dec, "vae")
    w.link(dec, 0, save, "images")


def _guider(w: Workflow, g: Graph, at=(800, 420), model=None) -> int:
    guider = w.node("CFGGuider", at, [g.family.cfg], size=(315, 98))
    w.ref(model or g.model, guider, "model")
    w.ref(g.pos, guider, "positive")
    w.ref(g.neg, guider, "negative")
    return guider


def _custom_advanced(w: Workflow, g: Graph, sampler: int, sigmas: int, prefix: str, model=None,
                     sigmas_slot: int = 0):
    noise = w.node("RandomNoise", (800, 300), [42, "fixed"], size=(315, 82))
    guider = _guider(w, g, model=model)
    sca = w.node("SamplerCustomAdvanced", (1150, 250), size=(272, 106))
    w.link(noise, 0, sca, "noise")
    w.link(guider, 0, sca, "guider")
    w.link(sampler, 0, sca, "sampler")
    w.link(sigmas, sigmas_slot, sca, "sigmas")
    w.ref(g.lat, sca, "latent_image")
    _decode_and_save(w, g, sca, prefix)
    return guider


def _ab_compare(w: Workflow, g: Graph, entry_list: str, sweep="none", values="0.5, 1, 2", at=(800, 150),
                entries: int | None = None, model=None) -> int:
    """A/B Compare on the family's model/VAE, its grid shown by a Preview Image node."""
    ab = w.node("SL_ABCompare", at, [g.family.cfg, 42, "fixed", entry_list, sweep, values, 0], size=(380, 420))
    for ref, name in ((model or g.model, "model"), (g.pos, "positive"), (g.neg, "negative"), (g.lat, "latent"),
                      (g.vae, "vae")):
        w.ref(ref, ab, name)
    if entries is not None:
        w.link(entries, 0, ab, "entries")
    preview = w.node("PreviewImage", (at[0] + 420, at[1]), size=(520, 520))
    w.link(ab, 0, preview, "images")
    return ab


def _timestep_search(w: Workflow, g: Graph, sampler: int, guider: int, widgets, at) -> int:
    search = w.node("SL_TimestepSearch", at, widgets, size=(340, 640))
    w.link(guider, 0, search, "guider")
    w.ref(g.lat, search, "latent")
    w.link(sampler, 0, search, "sampler")
    return search


# ---- SD1.5 -------------------------------------------------------------------------------------------------------
def constant_rate_in_ksampler():
    w = Workflow()
    g = setup(w)
    fam = g.family
    ks = _ksampler(w, g, [42, "fixed", 10, fam.cfg, fam.sampler, "sl_constant_rate", 1.0], (800, 200))
    _decode_and_save(w, g, ks, "schedule_lab_constant_rate_ksampler", at=(1150, 200))
    _note(w, g, f"The KSampler's scheduler list holds sl_constant_rate, the pack's recommended scheduler, without any "
                f"extra node ({fam.sampler}, 10 steps). On a plain checkpoint it gives the constant-rate list chosen "
                "for the model's family (data-free, nothing is measured); fed the Constant-Rate Scheduler's MODEL "
                "output (the constant_rate_calibration workflow) it uses the calibration measured on your model. "
                "With Settings > Schedule Lab > Plots > Stock nodes on, the plot on the KSampler shows its noise "
                "levels against Karras (dashed) as you change steps or scheduler.")
    w.dump("constant_rate_in_ksampler",
           "The stock KSampler with the pack's recommended scheduler, sl_constant_rate, picked from its dropdown.")


def save_and_inspect_schedule():
    w = Workflow()
    g = setup(w)
    sched = w.node("SL_Scheduler", (800, -380), ["sl_constant_rate", 10, 1.0], size=(315, 330))
    info = w.node("SL_ScheduleInfo", (1150, -700), [], size=(400, 500))
    savesched = w.node("SL_SaveSchedule", (1150, -150), [SCHEDULE_FILE.name.removesuffix(".json"),
                                                         "constant-rate (data-free), SD1.5, 10 steps", True],
                       size=(400, 230))
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    w.ref(g.model, sched, "model")
    w.link(sched, 0, info, "sigmas")
    w.ref(g.model, info, "model")
    w.link(sched, 0, savesched, "sigmas")
    w.ref(g.model, savesched, "model")
    _custom_advanced(w, g, sel, sched, "schedule_lab_custom")
    _note(w, g, "The Schedule Lab Scheduler gives sl_constant_rate (the pack's recommended scheduler; on this plain "
                "checkpoint the data-free list for SD1.5) as SIGMAS. Schedule Info reports the step sizes in log-SNR "
                "(look for big jumps) and plots the schedule after a run; Save Schedule writes "
                f"models/schedules/{SCHEDULE_FILE.name} (overwrite is on, so it runs again). The load_schedule "
                "workflow reads that file back.")
    w.dump("save_and_inspect_schedule",
           "SamplerCustomAdvanced driven by a Schedule Lab scheduler; the schedule is plotted by Schedule Info "
           "and saved to models/schedules by Save Schedule.")


def load_schedule():
    w = Workflow()
    g = setup(w)
    load = w.node("SL_LoadSchedule", (800, -420), [SCHEDULE_FILE.name, 0, 1.0, False], size=(340, 360))
    info = w.node("SL_ScheduleInfo", (1200, -700), [], size=(400, 500))
    sel = w.node("KSamplerSelect", (800, 200), ["euler"], size=(315, 58))
    w.ref(g.model, load, "model")
    w.link(load, 0, info, "sigmas")
    w.ref(g.model, info, "model")
    _custom_advanced(w, g, sel, load, "schedule_lab_loaded")
    _note(w, g, "Load Schedule reads a shared schedule file and carries it to this model's kind (at equal "
                "signal-to-noise ratio); steps 0 keeps the saved 10 steps, any other value resamples them. Its plot "
                "shows the file before you queue; Schedule Info shows what reached the sampler.",
          extra_files=[SCHEDULE_FILE])
    w.dump("load_schedule", "Load Schedule: a schedule file from models/schedules as SIGMAS for SamplerCustomAdvanced.")


def searched_steps_preset():
    w = Workflow()
    g = setup(w)
    searched = w.node("SL_SearchedSteps", (800, -420), ["preset: autodiffusion_sd1_dpmpp_2m_4", 0, 1.0],
                      size=(340, 360))
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    w.ref(g.model, searched, "model")
    _custom_advanced(w, g, sel, searched, "schedule_lab_searched_steps")
    _note(w, g, "Searched Steps gives a published searched 4-step list for dpmpp_2m (AutoDiffusion, SD1.x; the node "
                "says where it comes from) or a file Timestep Search saved. Pick a file from the list to use your own "
                "search; steps 0 keeps the searched count.")
    w.dump("searched_steps_preset", "Searched Steps: a published 4-step searched schedule for dpmpp_2m on SD1.5.")


def tada_detail_level_ksampler():
    w = Workflow()
    g = setup(w)
    detail = w.node("SL_DetailLevel", (350, -100), [2.0], size=(315, 82))
    w.ref(g.model, detail, "model")
    ks = _ksampler(w, g, [42, "fixed", 8, 7.0, "sl_tada", "karras", 1.0], (800, 200), model=(detail, 0))
    _decode_and_save(w, g, ks, "schedule_lab_tada")
    _note(w, g, "Detail Level 2 on the MODEL makes sl_tada in the stock KSampler add detail; compare with detail 1 "
                "or with another sampler (the A/B detail-sweep workflow does that side by side).")
    w.dump("tada_detail_level_ksampler",
           "The stock KSampler with sampler sl_tada; the Detail Level node sets TADA's detail on the model "
           "(after a run it says whether the graph's sampler used it).")


def tada_sampler_custom_advanced():
    w = Workflow()
    g = setup(w)
    tada = w.node("SL_TADASampler", (800, 0), [1.0, 2, "auto"], size=(315, 106))
    sched = w.node("BasicScheduler", (800, -420), [g.family.scheduler, 8, 1.0], size=(315, 320))
    w.ref(g.model, sched, "model")
    _custom_advanced(w, g, tada, sched, "schedule_lab_tada_custom")
    _note(w, g, "The TADA Sampler node sets detail, n_aug and order explicitly for SamplerCustomAdvanced, on 8 steps "
                f"of the family's stock scheduler ({g.family.scheduler}) from BasicScheduler. With Settings > Schedule "
                "Lab > Plots > Stock nodes on, BasicScheduler plots the steps it gives.")
    w.dump("tada_sampler_custom_advanced",
           f"The TADA Sampler node (detail, n_aug, order) driving SamplerCustomAdvanced on 8 {g.family.scheduler} "
           "steps.")


def few_step_preset():
    w = Workflow()
    g = setup(w)
    preset = w.node("SL_FewStepPreset", (800, -230), ["auto", 0, 1.0], size=(340, 200))
    w.ref(g.model, preset, "model")
    _custom_advanced(w, g, preset, preset, "schedule_lab_few_step_preset", sigmas_slot=1)
    _note(w, g, "Few-Step Preset gives the best few-step sampler + scheduler chosen for this model's family in one "
                "choice ('auto'; the dropdown's tooltip names the family and the benchmark command of each preset). "
                "Here an SD1.5 (ε) model gets the preset sl_few_steps (sl_tada on sl_constant_rate at 5 steps). A "
                "preset picked on "
                "a model family it was not chosen for is refused with an error naming the family.")
    w.dump("few_step_preset", "Few-Step Preset: the family's best few-step sampler + scheduler for "
                              "SamplerCustomAdvanced in one choice.")


def timestep_search():
    w = Workflow()
    g = setup(w)
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    guider = _guider(w, g)
    search = _timestep_search(w, g, sel, guider, [4, 16, 8, 50, 4, 4, "endpoint", 0, "fixed", "searched_dpmpp_2m_4",
                                                  True, "evolution + refine", 20, True], (800, -780))
    noise = w.node("RandomNoise", (800, 300), [42, "fixed"], size=(315, 82))
    sca = w.node("SamplerCustomAdvanced", (1150, 250), size=(272, 106))
    for src, name in ((noise, "noise"), (guider, "guider"), (sel, "sampler"), (search, "sigmas")):
        w.link(src, 0, sca, name)
    w.ref(g.lat, sca, "latent_image")
    _decode_and_save(w, g, sca, "schedule_lab_searched")
    _note(w, g, "Timestep Search is expensive: it runs the model many times (the count is on the node before you "
                "queue; progress while it runs). Its seed is on 'fixed', so a second queue reuses the saved result "
                "instead of searching again.")
    w.dump("timestep_search",
           "Timestep Search finds 4 noise levels for this model, prompt and sampler (evolution, then gradient "
           "refinement by finite differences; progress on the node; Cancel and run again to resume), saves them "
           "to models/schedules, and samples with them. Afterwards "
           "Searched Steps or the sl_searched scheduler reuse the file.")


def _constant_rate(w: Workflow, g: Graph, name: str, steps: int = 10):
    crs = w.node("SL_ConstantRateScheduler", (800, -620), [steps, 1.0, "vx+cos", 1.5, 64, 24, 0, "", False],
                 size=(340, 560))
    sel = w.node("KSamplerSelect", (800, 200), [g.family.sampler if g.family.key != "sd15" else "dpmpp_2m"],
                 size=(315, 58))
    guider = _custom_advanced(w, g, sel, crs, f"schedule_lab_{name}")
    w.link(guider, 0, crs, "guider")
    w.ref(g.lat, crs, "latent")
    sampler = "dpmpp_2m" if g.family.key in ("sd15", "sdxl") else "euler"
    ks = _ksampler(w, g, [42, "fixed", steps, g.family.cfg, sampler, "sl_constant_rate", 1.0], (1150, 700),
                   model=(crs, 2), title="KSampler on the calibrated MODEL")
    _decode_and_save(w, g, ks, f"schedule_lab_{name}_ksampler", at=(1450, 700))


def constant_rate_calibration():
    w = Workflow()
    g = setup(w)
    _constant_rate(w, g, "constant_rate")
    _note(w, g, "The Constant-Rate Scheduler measures the model once (cached); before the run its plot shows the "
                "data-free default and the model-call count. The KSampler below uses the calibration through the "
                "MODEL output.")
    w.dump("constant_rate_calibration",
           "Constant-Rate Scheduler: the schedule is measured on this model, prompt and CFG (through the same "
           "guider the sampler uses) once, cached in models/schedule_lab_calibration, and fed to "
           "SamplerCustomAdvanced. Its MODEL output carries the calibration, so the stock KSampler with the "
           "'sl_constant_rate' scheduler uses it too.")


def ab_tada_detail_sweep():
    w = Workflow()
    g = setup(w)
    _ab_compare(w, g, "sl_tada, karras, 8, TADA\ndpmpp_2m, karras, 8, dpmpp_2m", "detail", "0.5, 1, 2")
    _note(w, g, "A/B Compare: TADA at detail 0.5, 1 and 2 next to dpmpp_2m, same seed, 8 karras steps each. Look at "
                "fine texture (fur, snow) across the TADA cells; every cell shows its model calls and time.")
    w.dump("ab_tada_vs_dpmpp_2m_detail_sweep", "A/B grid: TADA detail sweep (0.5, 1, 2) against dpmpp_2m, 8 steps.")


def ab_constant_rate_vs_karras():
    w = Workflow()
    g = setup(w)
    _ab_compare(w, g, "dpmpp_2m, sl_constant_rate, 10, constant-rate\ndpmpp_2m, karras, 10, karras")
    _note(w, g, "A/B Compare: the constant-rate schedule (data-free default; feed the Constant-Rate Scheduler's "
                "MODEL to use a measured one) against karras, dpmpp_2m, 10 steps each, same seed.")
    w.dump("ab_constant_rate_vs_karras", "A/B grid: constant-rate schedule against karras (dpmpp_2m, 10 steps).")


def _ab_searched_vs_stock(w: Workflow, g: Graph, filename: str):
    """A/B: the family's stock default (sampler + scheduler, 4 steps) against a Timestep Search result for the same
    sampler."""
    sampler, scheduler = g.family.sampler, g.family.scheduler
    sel = w.node("KSamplerSelect", (800, 650), [sampler], size=(315, 58))
    guider = _guider(w, g, at=(800, 750))
    search = _timestep_search(w, g, sel, guider, [4, 8, 2, 20, 2, 0, "endpoint", 0, "fixed", filename, True,
                                                  "evolution", 20, True], (1150, 650))
    first = w.node("SL_ABEntry", (800, -200), [scheduler, sampler, scheduler, 4, 1.0], size=(315, 200))
    found = w.node("SL_ABEntry", (1150, -200), ["searched", sampler, scheduler, 4, 1.0], size=(315, 200))
    w.link(search, 0, found, "sigmas")
    w.link(first, 0, found, "previous")
    _ab_compare(w, g, "", at=(1550, 150), entries=found)


def ab_searched_vs_karras():
    w = Workflow()
    g = setup(w)
    _ab_searched_vs_stock(w, g, "searched_ab_dpmpp_2m_4")
    _note(w, g, "A/B Compare of two 4-step schedules for dpmpp_2m: karras (with dpmpp_2m, SD1.5's stock default) "
                "and the one Timestep Search finds for this model and prompt (a small search: 8 candidates x 2 "
                "generations). Entries are chained: A/B Entry 'karras' feeds A/B Entry 'searched', which takes the "
                "searched SIGMAS.")
    w.dump("ab_searched_vs_karras",
           "A/B grid: a Timestep Search schedule against karras (the stock default with dpmpp_2m), 4 steps.")


# ---- SDXL, SD3, Flux ----------------------------------------------------------------------------------------------
def family_tada_detail_level(family: str):
    w = Workflow()
    g = setup(w, family)
    fam = g.family
    detail = w.node("SL_DetailLevel", (350, -150), [1.5], size=(315, 82))
    w.ref(g.model, detail, "model")
    steps = 10 if family == "sdxl" else 12
    ks = _ksampler(w, g, [42, "fixed", steps, fam.cfg, "sl_tada", fam.scheduler, 1.0], (800, 200),
                   model=(detail, 0))
    _decode_and_save(w, g, ks, f"schedule_lab_{family}_tada")
    where = {"sdxl": "on SDXL's stock scheduler ('karras')",
             "sd3": "on SD3's flow schedule (ModelSamplingSD3 shift 3, 'simple')",
             "flux": "on Flux's shifted flow schedule (ModelSamplingFlux, 'simple'; CFG 1 with FluxGuidance 3.5)"}
    _note(w, g, f"{fam.label}: sl_tada in the stock KSampler {where[family]}, detail 1.5 from the Detail Level node "
                f"(TADA reads the model kind itself: eps/v for SDXL, flow for SD3 and Flux). Set detail to 1 to "
                "compare; after a run Detail Level says whether the sampler used it.")
    w.dump(f"{family}_tada_detail_level",
           f"{fam.label}: TADA (sl_tada) in the stock KSampler with the Detail Level node.")


def family_constant_rate(family: str):
    w = Workflow()
    g = setup(w, family)
    _constant_rate(w, g, f"{family}_constant_rate", steps=10)
    _note(w, g, f"{g.family.label}: the Constant-Rate Scheduler measures this model (once, cached; the model-call "
                "count is on the node before you queue) and spreads the 10 steps evenly over how fast the image "
                "changes. The KSampler below gets the calibration through the MODEL output (scheduler "
                "sl_constant_rate).")
    w.dump(f"{family}_constant_rate_calibration",
           f"{g.family.label}: Constant-Rate Scheduler calibrated on the model, into SamplerCustomAdvanced and, "
           "through its MODEL output, the stock KSampler.")


def family_ab_xi_sweep(family: str):
    w = Workflow()
    g = setup(w, family)
    fam = g.family
    sampler = "dpmpp_2m" if family in ("sd15", "sdxl") else "euler"
    _ab_compare(w, g, f"{sampler}, sl_constant_rate, 10, constant-rate\n{sampler}, {fam.scheduler}, 10, "
                      f"{fam.scheduler}", "xi", "1, 1.5, 2.5")
    _note(w, g, f"{fam.label} A/B Compare: the constant-rate schedule at ξ = 1, 1.5 and 2.5 (ξ > 1 puts more steps "
                f"where the image changes fastest) next to the stock '{fam.scheduler}' schedule, {sampler}, 10 steps, "
                "same seed. Feed A/B Compare the Constant-Rate Scheduler's MODEL output to sweep ξ on a measured "
                "calibration instead of the data-free default.")
    w.dump(f"{family}_ab_constant_rate_xi_sweep",
           f"{fam.label} A/B grid: constant-rate ξ sweep (1, 1.5, 2.5) against {fam.scheduler}, 10 steps.")


def sdxl_ab_searched_vs_karras():
    w = Workflow()
    g = setup(w, "sdxl")
    _ab_searched_vs_stock(w, g, "searched_sdxl_dpmpp_2m_4")
    _note(w, g, "SDXL A/B Compare of two 4-step schedules for dpmpp_2m: karras (with dpmpp_2m, SDXL's stock default) "
                "and a Timestep Search result for this model and prompt (a small search: 8 candidates x 2 "
                "generations; the model-call count is on the node before you queue).")
    w.dump("sdxl_ab_searched_vs_karras",
           "SDXL A/B grid: a Timestep Search schedule against karras (the stock default with dpmpp_2m), 4 steps.")


def _tpm(w: Workflow, g: Graph, at=(500, -330)) -> int:
    load = w.node("SL_LoadTPM", at, [SD3_TPM.name], size=(315, 58))
    apply = w.node("SL_ApplyTPM", (at[0], at[1] + 100), [""], size=(340, 200))
    w.ref(g.model, apply, "model")
    w.link(load, 0, apply, "tpm")
    return apply


def sd3_tpdm_ksampler():
    w = Workflow()
    g = setup(w, "sd3")
    apply = _tpm(w, g)
    ks = _ksampler(w, g, [42, "fixed", 35, 7.0, "sl_tpdm", "simple", 1.0], (800, 200), model=(apply, 0))
    _decode_and_save(w, g, ks, "schedule_lab_sd3_tpdm")
    _note(w, g, "TPDM in the stock KSampler: Load TPM -> Apply TPM -> KSampler with sampler sl_tpdm. The time "
                "predictor picks each image's next noise level and stops when it is clean; steps (35) is only the "
                "cap. After a run Apply TPM shows the steps taken and the noise levels. Trained at CFG 7 and "
                "1024x1024 (other values are named on the node).", extra_files=[SD3_TPM])
    w.dump("sd3_tpdm_ksampler", "SD3: TPDM adaptive steps (Load TPM, Apply TPM) in the stock KSampler (sl_tpdm).")


def sd3_tpdm_adaptive_steps_sampler():
    w = Workflow()
    g = setup(w, "sd3")
    apply = _tpm(w, g)
    sampler = w.node("SL_AdaptiveStepsSampler", (800, 0), [0.001, 35, False, "zero"], size=(315, 130))
    sched = w.node("BasicScheduler", (800, -420), ["simple", 35, 1.0], size=(315, 320))
    w.link(apply, 0, sched, "model")
    _custom_advanced(w, g, sampler, sched, "schedule_lab_sd3_adaptive", model=(apply, 0))
    _note(w, g, "The Adaptive Steps Sampler runs TPDM in SamplerCustomAdvanced: min_sigma (where an image stops), "
                "max_steps (the cap), stochastic (off: repeatable) and final_step are explicit; the SIGMAS input "
                "only gives the start level. Apply TPM shows each image's steps after the run; set freeze_as to save "
                "them as a schedule file.", extra_files=[SD3_TPM])
    w.dump("sd3_tpdm_adaptive_steps_sampler",
           "SD3: TPDM through the Adaptive Steps Sampler in SamplerCustomAdvanced.")


def sd3_ab_tpdm_vs_fixed():
    w = Workflow()
    g = setup(w, "sd3")
    apply = _tpm(w, g)
    _ab_compare(w, g, "sl_tpdm, simple, 35, TPDM (adaptive)\neuler, simple, 28, euler 28 steps\n"
                      "euler, simple, 12, euler 12 steps", model=(apply, 0))
    _note(w, g, "A/B Compare: TPDM against fixed euler schedules (28 and 12 steps) from the same seed, CFG 7. Each "
                "cell states its model calls: TPDM's are what the predictor actually used (the 35 is its cap).",
          extra_files=[SD3_TPM])
    w.dump("sd3_ab_tpdm_vs_fixed", "SD3 A/B grid: TPDM adaptive steps against fixed euler at 28 and 12 steps.")


def sd3_ab_tada_detail_sweep():
    w = Workflow()
    g = setup(w, "sd3")
    _ab_compare(w, g, "sl_tada, simple, 12, TADA\neuler, simple, 12, euler", "detail", "0.5, 1, 2")
    _note(w, g, "SD3 A/B Compare: TADA at detail 0.5, 1 and 2 next to euler, 12 steps on SD3's flow schedule, same "
                "seed. TADA uses its flow defaults for this model.")
    w.dump("sd3_ab_tada_vs_euler_detail_sweep", "SD3 A/B grid: TADA detail sweep (0.5, 1, 2) against euler, 12 steps.")


def build_all() -> list[str]:
    """Write every example workflow into OUT; returns their names."""
    WRITTEN.clear()
    OUT.mkdir(exist_ok=True)
    constant_rate_in_ksampler()
    save_and_inspect_schedule()
    load_schedule()
    searched_steps_preset()
    tada_detail_level_ksampler()
    tada_sampler_custom_advanced()
    few_step_preset()
    timestep_search()
    constant_rate_calibration()
    ab_tada_detail_sweep()
    ab_constant_rate_vs_karras()
    ab_searched_vs_karras()
    for fam in ("sdxl", "sd3", "flux"):
        family_tada_detail_level(fam)
        family_constant_rate(fam)
        family_ab_xi_sweep(fam)
    sdxl_ab_searched_vs_karras()
    sd3_tpdm_ksampler()
    sd3_tpdm_adaptive_steps_sampler()
    sd3_ab_tpdm_vs_fixed()
    sd3_ab_tada_detail_sweep()
    return list(WRITTEN)


if __name__ == "__main__":
    names = build_all()
    stale = sorted(p.stem for p in OUT.glob("*.json") if p.stem not in names)
    assert not stale, f"example_workflows/ holds workflows this script does not write: {stale}"
    print(f"wrote {len(names)}: {names}")
