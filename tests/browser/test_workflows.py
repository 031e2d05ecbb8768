"""Every example workflow through the real frontend: loads like a dropped file, runs from the page twice."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sl_page import (
    fit_view,
    load_workflow,
    node_states,
    node_texts,
    pack_console_errors,
    queue_from_page,
    swap_to_tiny_model,
    widget_problems,
)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_with_every_node_and_widget_in_place(page, shots, path):
    doc = json.loads(path.read_text())
    load_workflow(page, doc)
    states = node_states(page)
    assert sorted(n["id"] for n in states) == sorted(n["id"] for n in doc["nodes"])
    missing = [n["type"] for n in states if not n["registered"] or n["has_errors"]]
    assert missing == [], f"{path.name}: missing or broken nodes {missing}"
    assert widget_problems(states, doc) == []
    # widget values round-trip through the frontend; the plot and text widgets are not saved
    saved = page.evaluate("() => window.app.graph.serialize()")
    assert {n["id"]: n.get("widgets_values") for n in saved["nodes"]} == \
        {n["id"]: n.get("widgets_values") for n in doc["nodes"]}
    assert "sl_plot" not in json.dumps(saved) and "schedule_lab_plot" not in json.dumps(saved)
    fit_view(page)
    page.screenshot(path=str(shots / f"workflow_{path.stem}.png"))
    assert pack_console_errors(page) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_from_the_page_twice(page, shots, path, comfy):
    doc = json.loads(path.read_text())
    load_workflow(page, doc)
    swap_to_tiny_model(page)
    for run in (1, 2):
        out = queue_from_page(page)
        assert out["kind"] == "success", f"{path.name} run {run}: {json.dumps(out['detail'])[:1500]}"
    page.wait_for_timeout(500)
    ab_nodes = [n["id"] for n in doc["nodes"] if n["type"] == "SL_ABCompare"]
    if ab_nodes:  # the A/B grid is produced; keep it as an artefact
        outputs = comfy.get(f"/history/{out['detail']['prompt_id']}")[out["detail"]["prompt_id"]]["outputs"]
        (image,) = outputs[str(ab_nodes[0])]["images"]
        query = urllib.parse.urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(f"{comfy.base}/view?{query}", timeout=60) as r:
            png = r.read()
        assert png[:4] == b"\x89PNG" and len(png) > 1000
        (shots / f"ab_grid_{path.stem}.png").write_bytes(png)
    fit_view(page)  # DOM widgets of nodes outside the view are hidden by the frontend
    for text in node_texts(page):
        assert text["text"].strip() and text["visible"], text
        assert text["overflowX"] <= 1 and text["insideRight"], f"text runs past the node's edge: {text}"
    page.screenshot(path=str(shots / f"workflow_{path.stem}_ran.png"))
    assert pack_console_errors(page) == []
