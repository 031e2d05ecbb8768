"""Shipped assets: example workflows are well-formed UI-format graphs; the web extension parses."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from schedule_lab.nodes.registry import DROPDOWN_SAMPLERS as SAMPLERS
from schedule_lab.nodes.registry import DROPDOWN_SCHEDULERS as SCHEDULERS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))
PACK_NODES = set(re.findall(r'node_id="(SL_[A-Za-z0-9_]+)"',
                            "".join(p.read_text() for p in (ROOT / "nodes").glob("*.py"))))
# Core ComfyUI nodes the examples may use (checked against the real host in tests/integration).
CORE_NODES = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "KSamplerAdvanced",
              "VAEDecode", "SaveImage", "KSamplerSelect", "RandomNoise", "CFGGuider", "SamplerCustomAdvanced",
              "SamplerCustom", "BasicScheduler", "ModelSamplingSD3", "PreviewImage", "Note",
              # the SD3 / Flux loaders of ComfyUI 0.3.64's own templates
              "UNETLoader", "DualCLIPLoader", "VAELoader", "ModelSamplingFlux", "FluxGuidance", "ConditioningZeroOut",
              "EmptySD3LatentImage"}
# Widgets that name a file the user must have: (node type, widget index) -> folder under ComfyUI/models.
FILE_WIDGETS = {("CheckpointLoaderSimple", 0): "checkpoints", ("UNETLoader", 0): "diffusion_models",
                ("DualCLIPLoader", 0): "text_encoders", ("DualCLIPLoader", 1): "text_encoders", ("VAELoader", 0): "vae",
                ("SL_LoadTPM", 0): "tpm", ("SL_LoadSchedule", 0): "schedules", ("SL_SearchedSteps", 0): "schedules"}


def model_files(doc: dict) -> list[tuple[int, str, str]]:
    """(node id, folder, file name) of every file the workflow's loaders read (a Searched Steps preset is none)."""
    out = []
    for n in doc["nodes"]:
        for (node_type, index), folder in FILE_WIDGETS.items():
            if n["type"] == node_type:
                name = n["widgets_values"][index]
                if not name.startswith("preset: "):
                    out.append((n["id"], folder, name))
    return out


def test_there_are_example_workflows():
    assert WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_links_are_consistent(path):
    doc = json.loads(path.read_text())
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert doc["last_node_id"] == max(nodes) and doc["last_link_id"] == len(doc["links"])
    for lid, src, slot, dst, dst_slot, type_ in doc["links"]:
        assert nodes[src]["outputs"][slot]["type"] == type_ and lid in nodes[src]["outputs"][slot]["links"]
        assert nodes[dst]["inputs"][dst_slot]["type"] == type_ and nodes[dst]["inputs"][dst_slot]["link"] == lid


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_uses_only_pack_and_core_nodes_and_real_names(path):
    doc = json.loads(path.read_text())
    used = {n["type"] for n in doc["nodes"]}
    assert used <= PACK_NODES | CORE_NODES, used - PACK_NODES - CORE_NODES
    assert used & PACK_NODES or any(
        set(n.get("widgets_values", [])) & (set(SCHEDULERS) | set(SAMPLERS)) for n in doc["nodes"]
    ), "an example must show something of the pack"
    for n in doc["nodes"]:
        for v in n.get("widgets_values", []):
            # an A/B Compare entry_list holds 'sampler, scheduler, steps[, label]' lines: check each name in it
            names = [f.strip() for line in v.splitlines() for f in line.split(",")[:2]] if isinstance(v, str) else []
            for name in names:
                if name.startswith("sl_"):
                    assert name in SCHEDULERS or name in SAMPLERS, f"{path.name}: unknown pack name {name}"


def test_workflows_are_up_to_date_with_their_builder(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mkwf", ROOT / "lab" / "tools" / "make_example_workflows.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path)
    names = mod.build_all()
    assert sorted(names) == sorted(p.stem for p in WORKFLOWS), "run python lab/tools/make_example_workflows.py"
    for built in tmp_path.glob("*.json"):
        assert built.read_text() == (ROOT / "example_workflows" / built.name).read_text(), built.name


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_the_note_says_which_file_to_put_where(path):
    """A missing model must be named with its place: every file a loader reads is in the note as
    ComfyUI/models/<folder>/<name>; downloadable ones also in the node's properties.models, which ComfyUI's
    frontend turns into its missing-models dialog ("<folder> / <name>" with a download button)."""
    doc = json.loads(path.read_text())
    note = next(n["widgets_values"][0] for n in doc["nodes"] if n["type"] == "Note")
    files = model_files(doc)
    assert files, "every example reads at least its model"
    nodes = {n["id"]: n for n in doc["nodes"]}
    for node_id, folder, name in files:
        assert f"ComfyUI/models/{folder}/{name}" in note, f"{path.name}: the note does not place {folder}/{name}"
        if folder in ("checkpoints", "diffusion_models", "text_encoders", "vae"):
            listed = {(m["directory"], m["name"]) for m in nodes[node_id]["properties"].get("models", [])}
            assert (folder, name) in listed, f"{path.name}: {nodes[node_id]['type']} lacks properties.models"
            url = next(m["url"] for m in nodes[node_id]["properties"]["models"] if m["name"] == name)
            assert url.startswith("https://huggingface.co/") and name in url  # the frontend downloads only these


FAMILY_LOADERS = {"sd15": "v1-5", "sdxl": "sd_xl_base", "sd3": "sd3_medium", "flux": "flux1-dev"}


def test_every_family_has_tada_constant_rate_and_an_ab_comparison():
    by_family: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        doc = json.loads(path.read_text())
        names = " ".join(name for _, _, name in model_files(doc))
        family = next(f for f, key in FAMILY_LOADERS.items() if key in names)
        values = json.dumps([n.get("widgets_values") for n in doc["nodes"]])
        types = {n["type"] for n in doc["nodes"]}
        by_family.setdefault(family, set()).update(
            {"tada"} if "sl_tada" in values or "SL_TADASampler" in types else set())
        by_family[family].update({"constant-rate"} if "SL_ConstantRateScheduler" in types else set())
        by_family[family].update({"ab"} if "SL_ABCompare" in types else set())
    for family in FAMILY_LOADERS:
        assert by_family.get(family, set()) >= {"tada", "constant-rate", "ab"}, (family, by_family.get(family))


def test_every_pack_node_has_an_example_workflow():
    used = {n["type"] for p in WORKFLOWS for n in json.loads(p.read_text())["nodes"]}
    assert PACK_NODES - used == set()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("path", sorted((ROOT / "web").rglob("*.js")), ids=lambda p: p.name)
def test_web_extension_parses(path):
    out = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("generated", ["readme_table.md", "tada_table_summary.md", "search_bench_summary.md",
                                       "constant_rate_summary.md", "tpdm_bench_summary.md",
                                       "tpdm_bench_patch_unet_summary.md"])
def test_readme_tables_are_the_generated_ones(generated):
    """Every number in the README's benchmark tables comes from a committed benchmark output, row for row."""
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in (ROOT / "lab" / "benchmarks" / "results" / generated).read_text().splitlines()
            if line.startswith("| ")]
    assert rows
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README rows differ from lab/benchmarks/results/{generated}: {missing[:2]}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_has_a_template_thumbnail_and_a_note(path):
    """ComfyUI 0.3.64's template browser shows <name>.jpg beside <name>.json (lab/tools/make_workflow_thumbnails.py):
    a real picture (the browser tests' screenshot of the graph after its run), not a blank or a stub."""
    import numpy as np
    from PIL import Image

    thumb = path.with_suffix(".jpg")
    assert thumb.exists() and thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb.name} missing or not a JPEG"
    image = Image.open(thumb)
    assert image.format == "JPEG" and image.mode == "RGB"
    assert image.width == 480 and 200 <= image.height <= 480, image.size  # the card's 4:3-ish frame
    pixels = np.asarray(image, dtype=np.float32)
    assert pixels.std() > 12, f"{thumb.name} is (nearly) blank"
    colours = len(np.unique((pixels // 16).reshape(-1, 3), axis=0))
    assert colours > 40, f"{thumb.name} has only {colours} colour bins: not a screenshot of a graph"
    doc = json.loads(path.read_text())
    notes = [n["widgets_values"][0] for n in doc["nodes"] if n["type"] == "Note"]
    assert notes and notes[0].strip(), "a note node says what to look at"


def test_the_model_families_are_one_list_the_web_extension_reads_from_the_route(comfy, monkeypatch):
    """nodes/host/plots.py FAMILY_PRESETS is the one list: the plot route refuses other names, the listing route
    serves it, and web/js holds no copy of its own."""
    import asyncio

    from schedule_lab.nodes import host, plot_route
    from schedule_lab.schedules import ScheduleError

    with pytest.raises(ScheduleError, match="sd1, sdxl, sd2v, sd3, flux"):
        plot_route.plot_data({"family": "sd15", "scheduler": "karras", "steps": "4"})
    for name, value in {"json_response": lambda data, status=200: data, "schedule_files": lambda: [],
                        "scheduler_names": lambda: []}.items():
        monkeypatch.setattr(host, name, value)
    served = asyncio.run(plot_route.schedules_handler(None))["families"]
    assert served == list(host.FAMILIES) == ["sd1", "sdxl", "sd2v", "sd3", "flux"]
    js = (ROOT / "web" / "js" / "schedule_plot.js").read_text()
    assert "/schedule_lab/schedules" in js and "body.families" in js
    assert not any(f'"{f}", "{g}"' in js for f, g in zip(host.FAMILIES, host.FAMILIES[1:], strict=False))
