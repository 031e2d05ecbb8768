"""The shipped UI-format example workflows against the real host's node definitions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "example_workflows").glob("*.json"))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # drawn by the frontend, never sent to the server
# Inputs naming the user's own model files (not on the test host; the browser tests swap or provide them).
FILE_INPUTS = {"ckpt_name", "unet_name", "clip_name1", "clip_name2", "vae_name", "tpm_name"}
FILE_LISTS = {("SL_LoadSchedule", "schedule"), ("SL_SearchedSteps", "schedule")}


def _widget_specs(node_def: dict) -> list[tuple[str, list]]:
    """The widget inputs of a node, in the order the frontend stores their values."""
    specs = []
    for section in ("required", "optional"):
        for name, spec in node_def["input"].get(section, {}).items():
            kind = spec[0]
            if isinstance(kind, list) or kind in WIDGET_TYPES or kind == "COMBO":
                specs.append((name, spec))
                # The frontend adds a "control after generate" widget to an input that asks for one, and to any
                # input named seed/noise_seed that does not refuse it (control_after_generate=False).
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if options.get("control_after_generate", name in ("seed", "noise_seed")):
                    specs.append(("control_after_generate", [["fixed", "increment", "decrement", "randomize"]]))
    return specs


def test_served_by_the_template_route(comfy):
    listed = comfy.get("/workflow_templates")
    assert sorted(listed.get("schedule_lab", [])) == sorted(p.stem for p in WORKFLOWS)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_node_and_widget_value_is_valid_on_the_host(comfy, path):
    info = comfy.get("/object_info")
    for node in json.loads(path.read_text())["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        assert node["type"] in info, f"{path.name}: unknown node type {node['type']}"
        specs = _widget_specs(info[node["type"]])
        values = node.get("widgets_values", [])
        assert len(values) == len(specs), (node["type"], values, [n for n, _ in specs])
        for (name, spec), value in zip(specs, values, strict=True):
            options = spec[0] if isinstance(spec[0], list) else spec[1].get("options") if spec[0] == "COMBO" else None
            users_file = name in FILE_INPUTS or ((node["type"], name) in FILE_LISTS and not value.startswith("preset"))
            if options is not None and not users_file:
                assert value in options, f"{path.name}: {node['type']}.{name}={value!r} not in {options[:12]}..."
