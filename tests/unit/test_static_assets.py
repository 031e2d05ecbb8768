"""Shipped assets: example workflows are well-formed UI-format graphs; the web extension parses."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from schedule_lab.nodes.registry import SAMPLERS, SCHEDULERS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))
PACK_NODES = set(re.findall(r'node_id="(SL_[A-Za-z0-9_]+)"',
                            "".join(p.read_text() for p in (ROOT / "nodes").glob("*.py"))))
# Core ComfyUI nodes the examples may use (checked against the real host in tests/integration).
CORE_NODES = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "KSamplerAdvanced",
              "VAEDecode", "SaveImage", "KSamplerSelect", "RandomNoise", "CFGGuider", "SamplerCustomAdvanced",
              "SamplerCustom", "BasicScheduler", "ModelSamplingSD3", "PreviewImage", "Note"}


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

    spec = importlib.util.spec_from_file_location("mkwf", ROOT / "tools" / "make_example_workflows.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path)
    mod.ays_in_ksampler()
    mod.save_and_inspect_schedule()
    mod.constant_rate_calibration()
    for built in tmp_path.glob("*.json"):
        assert built.read_text() == (ROOT / "example_workflows" / built.name).read_text(), built.name


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
    rows = [line for line in (ROOT / "benchmarks" / "results" / generated).read_text().splitlines()
            if line.startswith("| ")]
    assert rows
    missing = [row for row in rows if row not in readme]
    assert not missing, f"README rows differ from benchmarks/results/{generated}: {missing[:2]}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_has_a_template_thumbnail_and_a_note(path):
    """ComfyUI 0.3.64's template browser shows <name>.jpg beside <name>.json (tools/make_workflow_thumbnails.py)."""
    thumb = path.with_suffix(".jpg")
    assert thumb.exists() and thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb.name} missing or not a JPEG"
    doc = json.loads(path.read_text())
    notes = [n["widgets_values"][0] for n in doc["nodes"] if n["type"] == "Note"]
    assert notes and notes[0].strip(), "a note node says what to look at"
