"""Stock nodes stay stock by default: KSampler, KSamplerAdvanced and BasicScheduler get no pack widget, no resize and
no plot-route request unless the user turns on the pack's setting (Settings > Schedule Lab); with it on they plot, and
the size saved into the workflow is still the node's own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sl_page import NODE_ID_JS, STOCK_PLOTS, load_workflow, pack_console_errors, plot_ink, serialize, set_setting

ROOT = Path(__file__).resolve().parents[2]
STOCK = ["KSampler", "KSamplerAdvanced", "BasicScheduler"]
#: A workflow of stock nodes only (no pack node): the pack's recommended scheduler, sl_constant_rate, in KSampler.
STOCK_WORKFLOW = "constant_rate_in_ksampler"

STATE_JS = """() => { """ + NODE_ID_JS + """ return window.app.graph._nodes.map(n => ({id: NODE_ID(n.id), type: n.type,
  size: [...n.size], plot: !!n.slPlot, widgets: (n.widgets || []).map(w => w.name)})); }"""


def _plot_requests(page) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/schedule_lab/plot" in r.url else None)
    return requests


def _set_steps(page, node_id: int, value: int) -> None:
    page.evaluate("([id, v]) => { const w = window.app.graph.getNodeById(id).widgets.find(w => w.name === 'steps');"
                  " w.value = v; w.callback && w.callback(v); }", [node_id, value])


def _doc() -> dict:
    return json.loads((ROOT / "example_workflows" / f"{STOCK_WORKFLOW}.json").read_text())


def test_the_setting_is_registered_under_schedule_lab_and_off_by_default(page):
    setting = page.evaluate(f"() => window.app.extensionManager.setting.get('{STOCK_PLOTS}')")
    assert setting is False
    params = page.evaluate(f"""() => {{ const s = window.app.extensionManager.setting;
      const p = (s.settingsById || {{}})['{STOCK_PLOTS}'] || null;
      return p && {{category: p.category, type: p.type}}; }}""")
    if params is not None:  # the store exposes the definitions on this frontend
        assert params["category"][0] == "Schedule Lab" and params["type"] == "boolean", params


def test_stock_nodes_are_left_alone_when_the_setting_is_off(page):
    requests = _plot_requests(page)
    doc = _doc()
    assert {n["type"] for n in doc["nodes"]}.isdisjoint({"SL_" + t for t in STOCK})
    load_workflow(page, doc)
    page.wait_for_timeout(500)
    states = {n["id"]: n for n in page.evaluate(STATE_JS)}
    for node in doc["nodes"]:
        if node["type"] in STOCK:
            state = states[node["id"]]
            assert not state["plot"] and "sl_plot" not in state["widgets"], state
            assert state["size"] == pytest.approx(node["size"], abs=0.5), (state, node["size"])
    ks = next(n["id"] for n in doc["nodes"] if n["type"] == "KSampler")
    _set_steps(page, ks, 13)
    for node_type in STOCK:  # a new stock node too
        page.evaluate("t => { const n = window.LiteGraph.createNode(t); n.pos = [40, 40]; window.app.graph.add(n); }",
                      node_type)
    page.wait_for_timeout(600)
    assert not any(n["plot"] for n in page.evaluate(STATE_JS))
    saved = serialize(page)
    sizes = {n["id"]: n["size"] for n in saved["nodes"]}
    for node in doc["nodes"]:
        assert sizes[node["id"]] == pytest.approx(node["size"], abs=0.5), node["type"]
    assert requests == [], requests
    assert pack_console_errors(page) == []


def test_with_the_setting_on_stock_nodes_plot_and_keep_their_saved_size(page, shots):
    set_setting(page, STOCK_PLOTS, True)
    requests = _plot_requests(page)
    doc = _doc()
    load_workflow(page, doc)
    ks = next(n for n in doc["nodes"] if n["type"] == "KSampler")
    page.wait_for_function(f"() => {{ const p = window.app.graph.getNodeById({ks['id']}).slPlot;"
                           " return p && p.state.data && p.state.draws > 0; }", timeout=20_000)
    state = next(n for n in page.evaluate(STATE_JS) if n["id"] == ks["id"])
    assert state["plot"] and state["size"][1] > ks["size"][1], (state, ks["size"])  # grown to show the plot
    page.wait_for_timeout(300)
    assert plot_ink(page, ks["id"]) > 300
    assert any("/schedule_lab/plot" in r for r in requests)
    saved = serialize(page)
    sizes = {n["id"]: n["size"] for n in saved["nodes"]}
    for node in doc["nodes"]:
        assert sizes[node["id"]] == pytest.approx(node["size"], abs=0.5), node["type"]  # the saved size: its own
    assert "sl_plot" not in json.dumps(saved)
    # a stock node added now plots as well; turning the setting off removes the plots and restores the size
    bs = int(page.evaluate("() => { const n = window.LiteGraph.createNode('BasicScheduler'); n.pos = [40, 40];"
                           " window.app.graph.add(n); return n.id; }"))
    page.wait_for_function(f"() => !!window.app.graph.getNodeById({bs}).slPlot", timeout=10_000)
    set_setting(page, STOCK_PLOTS, False)
    page.wait_for_timeout(300)
    after = {n["id"]: n for n in page.evaluate(STATE_JS)}
    assert not after[ks["id"]]["plot"] and not after[bs]["plot"]
    assert after[ks["id"]]["size"] == pytest.approx(ks["size"], abs=0.5)
    assert pack_console_errors(page) == []
