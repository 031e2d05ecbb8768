"""Write the UI-format example workflows in example_workflows/ (run: python tools/make_example_workflows.py).

ComfyUI's template browser serves these files as they are; they must be in the format the frontend's
"Save" exports (nodes + links), not the API format. Building them here keeps ids and links consistent.
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "example_workflows"

# Socket types of the outputs/inputs used below.
OUTPUTS = {
    "CheckpointLoaderSimple": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    "CLIPTextEncode": [("CONDITIONING", "CONDITIONING")],
    "EmptyLatentImage": [("LATENT", "LATENT")],
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
    "PreviewImage": [],
    "Note": [],
}
INPUTS = {
    "CLIPTextEncode": [("clip", "CLIP")],
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
    "PreviewImage": [("images", "IMAGE")],
}


class Workflow:
    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, type_: str, pos, widgets=(), size=(315, 130), title=None) -> int:
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

    def dump(self, name: str, note: str) -> None:
        doc = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
               "links": self.links, "groups": [], "config": {},
               "extra": {"schedule_lab_note": note, "ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


def common(w: Workflow):
    ckpt = w.node("CheckpointLoaderSimple", (0, 200), ["v1-5-pruned-emaonly.safetensors"], size=(315, 100))
    pos = w.node("CLIPTextEncode", (350, 100), ["a watercolour fox in a snowy forest, detailed fur"],
                 size=(400, 160), title="Positive prompt")
    neg = w.node("CLIPTextEncode", (350, 300), ["blurry, low quality"], size=(400, 160), title="Negative prompt")
    lat = w.node("EmptyLatentImage", (350, 500), [512, 512, 1], size=(315, 106))
    w.link(ckpt, 1, pos, "clip")
    w.link(ckpt, 1, neg, "clip")
    return ckpt, pos, neg, lat


def ays_in_ksampler():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    ks = _ksampler(w, (ckpt, 0), pos, neg, lat, [42, "fixed", 10, 7.0, "euler", "sl_ays_sd1", 1.0], (800, 200))
    _decode_and_save(w, ckpt, ks, "schedule_lab_ays", at=(1150, 200), gap=250)
    _note(w, "The KSampler's scheduler list holds sl_ays_sd1: Align Your Steps without any extra node. The plot on "
             "the KSampler shows its 10 noise levels against Karras (dashed) as you change steps or scheduler.")
    w.dump("ays_in_ksampler", "The stock KSampler with a Schedule Lab scheduler picked from its dropdown.")


def save_and_inspect_schedule():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    sched = w.node("SL_Scheduler", (800, -380), ["sl_ays_sd1", 10, 1.0], size=(315, 330))
    info = w.node("SL_ScheduleInfo", (1150, -700), [], size=(400, 500))
    savesched = w.node("SL_SaveSchedule", (1150, -150), ["ays_sd1_10", "AYS SD1, 10 steps", True], size=(400, 230))
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    w.link(ckpt, 0, sched, "model")
    w.link(sched, 0, info, "sigmas")
    w.link(ckpt, 0, info, "model")
    w.link(sched, 0, savesched, "sigmas")
    w.link(ckpt, 0, savesched, "model")
    _custom_advanced(w, ckpt, pos, neg, lat, sel, sched, "schedule_lab_custom")
    _note(w, "Schedule Info reports the step sizes in log-SNR (look for big jumps) and plots the schedule after a "
             "run; Save Schedule writes models/schedules/ays_sd1_10.json (overwrite is on, so it runs again).")
    w.dump("save_and_inspect_schedule",
           "SamplerCustomAdvanced driven by a Schedule Lab scheduler; the schedule is plotted by Schedule Info "
           "and saved to models/schedules by Save Schedule.")


def _ksampler(w: Workflow, model: tuple[int, int], pos, neg, lat, widgets, at, title=None) -> int:
    """A KSampler fed ``model`` = (node, output slot), the prompts and the latent."""
    ks = w.node("KSampler", at, widgets, size=(315, 262), title=title)
    w.link(model[0], model[1], ks, "model")
    w.link(pos, 0, ks, "positive")
    w.link(neg, 0, ks, "negative")
    w.link(lat, 0, ks, "latent_image")
    return ks


def _decode_and_save(w: Workflow, ckpt: int, latent_src: int, prefix: str, at=(1450, 250), gap: int = 250):
    dec = w.node("VAEDecode", at, size=(210, 46))
    save = w.node("SaveImage", (at[0] + gap, at[1]), [prefix], size=(400, 400))
    w.link(latent_src, 0, dec, "samples")
    w.link(ckpt, 2, dec, "vae")
    w.link(dec, 0, save, "images")


def _custom_advanced(w: Workflow, ckpt, pos, neg, lat, sampler: int, sigmas: int, prefix: str):
    noise = w.node("RandomNoise", (800, 300), [42, "fixed"], size=(315, 82))
    guider = w.node("CFGGuider", (800, 420), [7.0], size=(315, 98))
    sca = w.node("SamplerCustomAdvanced", (1150, 250), size=(272, 106))
    w.link(ckpt, 0, guider, "model")
    w.link(pos, 0, guider, "positive")
    w.link(neg, 0, guider, "negative")
    w.link(noise, 0, sca, "noise")
    w.link(guider, 0, sca, "guider")
    w.link(sampler, 0, sca, "sampler")
    w.link(sigmas, 0, sca, "sigmas")
    w.link(lat, 0, sca, "latent_image")
    _decode_and_save(w, ckpt, sca, prefix)
    return guider


def tada_detail_level_ksampler():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    detail = w.node("SL_DetailLevel", (350, -100), [2.0], size=(315, 82))
    w.link(ckpt, 0, detail, "model")
    ks = _ksampler(w, (detail, 0), pos, neg, lat, [42, "fixed", 8, 7.0, "sl_tada", "karras", 1.0], (800, 200))
    _decode_and_save(w, ckpt, ks, "schedule_lab_tada")
    _note(w, "Detail Level 2 on the MODEL makes sl_tada in the stock KSampler add detail; compare with detail 1 "
             "or with another sampler (the A/B detail-sweep workflow does that side by side).")
    w.dump("tada_detail_level_ksampler",
           "The stock KSampler with sampler sl_tada; the Detail Level node sets TADA's detail on the model "
           "(after a run it says whether the graph's sampler used it).")


def tada_sampler_custom_advanced():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    tada = w.node("SL_TADASampler", (800, 0), [1.0, 2, "auto"], size=(315, 106))
    sched = w.node("BasicScheduler", (800, -420), ["sl_ays_sd1", 8, 1.0], size=(315, 320))
    w.link(ckpt, 0, sched, "model")
    _custom_advanced(w, ckpt, pos, neg, lat, tada, sched, "schedule_lab_tada_custom")
    _note(w, "The TADA Sampler node sets detail, n_aug and order explicitly for SamplerCustomAdvanced; the "
             "scheduler plot shows the 8 AYS steps it samples.")
    w.dump("tada_sampler_custom_advanced",
           "The TADA Sampler node (detail, n_aug, order) driving SamplerCustomAdvanced on 8 AYS steps.")


def timestep_search():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    search = w.node("SL_TimestepSearch", (800, -780),
                    [4, 16, 8, 50, 4, 4, "endpoint", 0, "fixed", "searched_dpmpp_2m_4", True, "evolution + refine", 20,
                     True],
                    size=(340, 640))
    guider = _custom_advanced(w, ckpt, pos, neg, lat, sel, search, "schedule_lab_searched")
    w.link(guider, 0, search, "guider")
    w.link(lat, 0, search, "latent")
    w.link(sel, 0, search, "sampler")
    _note(w, "Timestep Search is expensive: it runs the model many times (see its progress text). Its seed is on "
             "'fixed', so a second queue reuses the saved result instead of searching again.")
    w.dump("timestep_search",
           "Timestep Search finds 4 noise levels for this model, prompt and sampler (evolution, then gradient "
           "refinement by finite differences; progress on the node; Cancel and run again to resume), saves them "
           "to models/schedules, and samples with them. Afterwards "
           "Searched Steps or the sl_searched scheduler reuse the file.")


def constant_rate_calibration():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    crs = w.node("SL_ConstantRateScheduler", (800, -620), [10, 1.0, "vx+cos", 1.5, 64, 24, 0, "", False],
                 size=(340, 560))
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    guider = _custom_advanced(w, ckpt, pos, neg, lat, sel, crs, "schedule_lab_constant_rate")
    w.link(guider, 0, crs, "guider")
    w.link(lat, 0, crs, "latent")
    ks = _ksampler(w, (crs, 2), pos, neg, lat, [42, "fixed", 10, 7.0, "dpmpp_2m", "sl_constant_rate", 1.0],
                   (1150, 700), title="KSampler on the calibrated MODEL")
    _decode_and_save(w, ckpt, ks, "schedule_lab_constant_rate_ksampler", at=(1450, 700))
    _note(w, "The Constant-Rate Scheduler measures the model once (cached); before the run its plot shows the "
             "data-free default. The KSampler below uses the calibration through the MODEL output.")
    w.dump("constant_rate_calibration",
           "Constant-Rate Scheduler: the schedule is measured on this model, prompt and CFG (through the same "
           "guider the sampler uses) once, cached in models/schedule_lab_calibration, and fed to "
           "SamplerCustomAdvanced. Its MODEL output carries the calibration, so the stock KSampler with the "
           "'sl_constant_rate' scheduler uses it too.")


def _ab_compare(w: Workflow, ckpt, pos, neg, lat, widgets, at=(800, 150), entries: int | None = None) -> int:
    """A/B Compare on the checkpoint's model/VAE, its grid shown by a Preview Image node."""
    ab = w.node("SL_ABCompare", at, widgets, size=(380, 420))
    for src, slot, name in ((ckpt, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"), (lat, 0, "latent"),
                            (ckpt, 2, "vae")):
        w.link(src, slot, ab, name)
    if entries is not None:
        w.link(entries, 0, ab, "entries")
    preview = w.node("PreviewImage", (at[0] + 420, at[1]), size=(520, 520))
    w.link(ab, 0, preview, "images")
    return ab


def _note(w: Workflow, text: str, at=(0, -250)) -> None:
    w.node("Note", at, [text], size=(420, 160), title="What to look at")


def ab_tada_detail_sweep():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    _ab_compare(w, ckpt, pos, neg, lat, [7.0, 42, "fixed", "sl_tada, karras, 8, TADA\ndpmpp_2m, karras, 8, dpmpp_2m",
                                         "detail", "0.5, 1, 2", 0])
    _note(w, "A/B Compare: TADA at detail 0.5, 1 and 2 next to dpmpp_2m, same seed, 8 karras steps each. Look at "
             "fine texture (fur, snow) across the TADA cells; every cell shows its model calls and time.")
    w.dump("ab_tada_vs_dpmpp_2m_detail_sweep", "A/B grid: TADA detail sweep (0.5, 1, 2) against dpmpp_2m, 8 steps.")


def ab_constant_rate_vs_karras():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    _ab_compare(w, ckpt, pos, neg, lat, [7.0, 42, "fixed",
                                         "dpmpp_2m, sl_constant_rate, 10, constant-rate\ndpmpp_2m, karras, 10, karras",
                                         "none", "0.5, 1, 2", 0])
    _note(w, "A/B Compare: the constant-rate schedule (data-free default; feed the Constant-Rate Scheduler's MODEL "
             "to use a measured one) against karras, dpmpp_2m, 10 steps each, same seed.")
    w.dump("ab_constant_rate_vs_karras", "A/B grid: constant-rate schedule against karras (dpmpp_2m, 10 steps).")


def ab_searched_vs_ays():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    sel = w.node("KSamplerSelect", (800, 650), ["dpmpp_2m"], size=(315, 58))
    guider = w.node("CFGGuider", (800, 750), [7.0], size=(315, 98))
    w.link(ckpt, 0, guider, "model")
    w.link(pos, 0, guider, "positive")
    w.link(neg, 0, guider, "negative")
    search = w.node("SL_TimestepSearch", (1150, 650),
                    [4, 8, 2, 20, 2, 0, "endpoint", 0, "fixed", "searched_ab_dpmpp_2m_4", True, "evolution", 20, True],
                    size=(340, 430))
    w.link(guider, 0, search, "guider")
    w.link(lat, 0, search, "latent")
    w.link(sel, 0, search, "sampler")
    ays = w.node("SL_ABEntry", (800, -200), ["AYS", "dpmpp_2m", "sl_ays_sd1", 4, 1.0], size=(315, 200))
    found = w.node("SL_ABEntry", (1150, -200), ["searched", "dpmpp_2m", "karras", 4, 1.0], size=(315, 200))
    w.link(search, 0, found, "sigmas")
    w.link(ays, 0, found, "previous")
    _ab_compare(w, ckpt, pos, neg, lat, [7.0, 42, "fixed", "", "none", "0.5, 1, 2", 0], at=(1550, 150),
                entries=found)
    _note(w, "A/B Compare of two 4-step schedules for dpmpp_2m: Align Your Steps (SD1 table) and the one Timestep "
             "Search finds for this model and prompt (a small search: 8 candidates x 2 generations). Entries are "
             "chained: A/B Entry 'AYS' feeds A/B Entry 'searched', which takes the searched SIGMAS.")
    w.dump("ab_searched_vs_ays", "A/B grid: a Timestep Search schedule against Align Your Steps, 4 steps.")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    ays_in_ksampler()
    save_and_inspect_schedule()
    tada_detail_level_ksampler()
    tada_sampler_custom_advanced()
    timestep_search()
    constant_rate_calibration()
    ab_tada_detail_sweep()
    ab_constant_rate_vs_karras()
    ab_searched_vs_ays()
    print(f"wrote {sorted(p.name for p in OUT.glob('*.json'))}")
