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
    w.dump("ays_in_ksampler", "The stock KSampler with a Schedule Lab scheduler picked from its dropdown.")


def save_and_inspect_schedule():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    sched = w.node("SL_Scheduler", (800, 0), ["sl_ays_sd1", 10, 1.0], size=(315, 130))
    info = w.node("SL_ScheduleInfo", (1150, -250), [], size=(400, 240))
    savesched = w.node("SL_SaveSchedule", (1150, 0), ["ays_sd1_10", "AYS SD1, 10 steps", True], size=(315, 130))
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    w.link(ckpt, 0, sched, "model")
    w.link(sched, 0, info, "sigmas")
    w.link(ckpt, 0, info, "model")
    w.link(sched, 0, savesched, "sigmas")
    w.link(ckpt, 0, savesched, "model")
    _custom_advanced(w, ckpt, pos, neg, lat, sel, sched, "schedule_lab_custom")
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
    w.dump("tada_detail_level_ksampler",
           "The stock KSampler with sampler sl_tada; the Detail Level node sets TADA's detail on the model "
           "(after a run it says whether the graph's sampler used it).")


def tada_sampler_custom_advanced():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    tada = w.node("SL_TADASampler", (800, 0), [1.0, 2, "auto"], size=(315, 106))
    sched = w.node("BasicScheduler", (800, -180), ["sl_ays_sd1", 8, 1.0], size=(315, 106))
    w.link(ckpt, 0, sched, "model")
    _custom_advanced(w, ckpt, pos, neg, lat, tada, sched, "schedule_lab_tada_custom")
    w.dump("tada_sampler_custom_advanced",
           "The TADA Sampler node (detail, n_aug, order) driving SamplerCustomAdvanced on 8 AYS steps.")


def timestep_search():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    search = w.node("SL_TimestepSearch", (800, -400),
                    [4, 16, 8, 50, 4, 4, "endpoint", 0, "fixed", "searched_dpmpp_2m_4", True, "evolution + refine", 20],
                    size=(340, 430))
    guider = _custom_advanced(w, ckpt, pos, neg, lat, sel, search, "schedule_lab_searched")
    w.link(guider, 0, search, "guider")
    w.link(lat, 0, search, "latent")
    w.link(sel, 0, search, "sampler")
    w.dump("timestep_search",
           "Timestep Search finds 4 noise levels for this model, prompt and sampler (evolution, then gradient "
           "refinement by finite differences; progress on the node; Cancel and run again to resume), saves them "
           "to models/schedules, and samples with them. Afterwards "
           "Searched Steps or the sl_searched scheduler reuse the file.")


def constant_rate_calibration():
    w = Workflow()
    ckpt, pos, neg, lat = common(w)
    crs = w.node("SL_ConstantRateScheduler", (800, -350), [10, 1.0, "vx+cos", 1.5, 64, 24, 0, ""], size=(340, 300))
    sel = w.node("KSamplerSelect", (800, 200), ["dpmpp_2m"], size=(315, 58))
    guider = _custom_advanced(w, ckpt, pos, neg, lat, sel, crs, "schedule_lab_constant_rate")
    w.link(guider, 0, crs, "guider")
    w.link(lat, 0, crs, "latent")
    ks = _ksampler(w, (crs, 2), pos, neg, lat, [42, "fixed", 10, 7.0, "dpmpp_2m", "sl_constant_rate", 1.0],
                   (1150, 700), title="KSampler on the calibrated MODEL")
    _decode_and_save(w, ckpt, ks, "schedule_lab_constant_rate_ksampler", at=(1450, 700))
    w.dump("constant_rate_calibration",
           "Constant-Rate Scheduler: the schedule is measured on this model, prompt and CFG (through the same "
           "guider the sampler uses) once, cached in models/schedule_lab_calibration, and fed to "
           "SamplerCustomAdvanced. Its MODEL output carries the calibration, so the stock KSampler with the "
           "'sl_constant_rate' scheduler uses it too.")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    ays_in_ksampler()
    save_and_inspect_schedule()
    tada_detail_level_ksampler()
    tada_sampler_custom_advanced()
    timestep_search()
    constant_rate_calibration()
    print(f"wrote {sorted(p.name for p in OUT.glob('*.json'))}")
