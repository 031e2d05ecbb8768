"""Live schedule plots in the real frontend: drawn before queueing, redrawn on a widget change, hover read-out,
not saved into the workflow; screenshots of every pack node."""
from __future__ import annotations

import json

import pytest
from sl_page import STOCK_PLOTS, drop_nulls, node_screenshot, pack_console_errors, plot_ink, serialize, set_setting

# Nodes whose widgets alone describe a schedule the route can compute (the rest draw a note until they run).
COMPUTED = ["SL_Scheduler", "BasicScheduler", "KSampler", "KSamplerAdvanced", "SL_ConstantRateScheduler"]
NOTE_ONLY = ["SL_TimestepSearch", "SL_LoadSchedule", "SL_SearchedSteps"]
STOCK = {"BasicScheduler", "KSampler", "KSamplerAdvanced"}  # plotted only with the pack's setting on

ADD_JS = """type => { window.app.graph.clear(); const n = window.LiteGraph.createNode(type);
  n.pos = [120, 120]; window.app.graph.add(n); window.app.canvas.ds.scale = 1; window.app.canvas.ds.offset = [0, 0];
  window.app.canvas.setDirty(true, true); return n.id; }"""
PLOT_JS = """id => { const p = window.app.graph.getNodeById(id).slPlot;
  return p ? {draws: p.state.draws, steps: p.state.data ? p.state.data.steps : null,
              label: p.state.data && p.state.data.label,
              ghost: p.state.ghost ? p.state.ghost.label : null, error: p.state.error, note: p.state.note,
              hover: p.state.hoverText} : null; }"""


def _add(page, node_type: str) -> int:
    if node_type in STOCK:
        set_setting(page, STOCK_PLOTS, True)
    node_id = int(page.evaluate(ADD_JS, node_type))
    page.wait_for_function(f"() => {{ const p = window.app.graph.getNodeById({node_id}).slPlot;"
                           " return p && p.state.draws > 0 && (p.state.data || p.state.note || p.state.error); }",
                           timeout=20_000)
    page.wait_for_timeout(300)
    return node_id


def _plot(page, node_id: int) -> dict:
    return page.evaluate(PLOT_JS, node_id)


def _set_widget(page, node_id: int, name: str, value) -> None:
    page.evaluate("([id, name, v]) => { const w = window.app.graph.getNodeById(id).widgets.find(w => w.name === name);"
                  " w.value = v; w.callback && w.callback(v); }", [node_id, name, value])


@pytest.mark.parametrize("node_type", COMPUTED)
def test_plot_draws_before_queueing_and_redraws_on_a_widget_change(page, shots, node_type):
    node_id = _add(page, node_type)
    first = _plot(page, node_id)
    assert first["error"] == "" and first["steps"] and first["ghost"] == "karras", first
    assert plot_ink(page, node_id) > 300, "the plot canvas is blank"
    node_screenshot(page, node_id, shots / f"node_{node_type}.png")
    _set_widget(page, node_id, "steps", first["steps"] + 3)
    page.wait_for_function(f"() => window.app.graph.getNodeById({node_id}).slPlot.state.data.steps === "
                           f"{first['steps'] + 3}", timeout=20_000)
    after = _plot(page, node_id)
    assert after["draws"] > first["draws"], (first, after)
    assert plot_ink(page, node_id) > 300, "the plot canvas is blank after the change"
    assert pack_console_errors(page) == []


def test_hover_shows_the_value_of_the_step_under_the_mouse(page):
    node_id = _add(page, "SL_Scheduler")
    box = page.evaluate("id => { const r = window.app.graph.getNodeById(id).slPlot.canvas.getBoundingClientRect();"
                        " return [r.left, r.top, r.width, r.height]; }", node_id)
    page.mouse.move(box[0] + 36, box[1] + box[3] / 2)  # the left edge of the plot area: step 0
    page.wait_for_timeout(200)
    hover = _plot(page, node_id)["hover"]
    sigma0 = page.evaluate(f"() => window.app.graph.getNodeById({node_id}).slPlot.state.data.sigmas[0]")
    assert hover.startswith("step 0: σ=") and f"{sigma0:.3f}"[:4] in hover, hover


def test_axis_and_reference_change_the_drawing(page):
    node_id = _add(page, "BasicScheduler")
    before = _plot(page, node_id)["draws"]
    page.evaluate("id => { const s = window.app.graph.getNodeById(id).slPlot.root.querySelectorAll('select')[1];"
                  " s.value = 'log-SNR'; s.dispatchEvent(new Event('change')); }", node_id)
    page.wait_for_timeout(200)
    assert _plot(page, node_id)["draws"] > before
    page.evaluate("id => { const s = window.app.graph.getNodeById(id).slPlot.root.querySelectorAll('select')[2];"
                  " s.value = 'none'; s.dispatchEvent(new Event('change')); }", node_id)
    page.wait_for_function(f"() => window.app.graph.getNodeById({node_id}).slPlot.state.ghost === null",
                           timeout=10_000)
    assert plot_ink(page, node_id) > 300


@pytest.mark.parametrize("node_type", NOTE_ONLY)
def test_nodes_without_a_schedule_yet_say_so_on_the_plot(page, shots, node_type):
    node_id = _add(page, node_type)
    plot = _plot(page, node_id)
    assert plot["note"] or plot["steps"], plot
    assert plot_ink(page, node_id) > 50
    node_screenshot(page, node_id, shots / f"node_{node_type}.png")
    assert pack_console_errors(page) == []


def test_plot_is_not_saved_and_widgets_round_trip(page):
    node_id = _add(page, "SL_Scheduler")
    _set_widget(page, node_id, "steps", 17)
    _set_widget(page, node_id, "scheduler", "sl_ays_sdxl")
    saved = serialize(page)
    node = next(n for n in saved["nodes"] if n["id"] == node_id)
    assert node["widgets_values"] == ["sl_ays_sdxl", 17, 1]
    assert "sl_plot" not in json.dumps(saved)
    page.evaluate("doc => window.app.loadGraphData(doc, true, true, 'roundtrip')", drop_nulls(saved))
    page.wait_for_timeout(500)
    assert "Invalid workflow" not in page.evaluate("() => document.body.innerText")
    again = serialize(page)
    assert [n["widgets_values"] for n in again["nodes"]] == [n["widgets_values"] for n in saved["nodes"]]


def test_every_pack_node_can_be_placed_and_is_photographed(page, shots):
    types = page.evaluate("() => Object.keys(window.LiteGraph.registered_node_types).filter(t => t.startsWith('SL_'))")
    assert len(types) >= 11, types
    ks = page.evaluate(ADD_JS, "KSampler")
    stock_control = page.evaluate(f"() => window.app.graph.getNodeById({ks}).widgets"
                                  ".find(w => w.name === 'control_after_generate').value")
    for node_type in types:
        node_id = page.evaluate(ADD_JS, node_type)
        page.wait_for_timeout(400)
        node_screenshot(page, node_id, shots / f"node_{node_type}.png")
        controls = page.evaluate(f"() => window.app.graph.getNodeById({node_id}).widgets"
                                 ".filter(w => w.name === 'control_after_generate').map(w => w.value)")
        # the pack leaves control_after_generate to the frontend (the user's choice), as on a new KSampler
        assert all(v == stock_control for v in controls), (node_type, controls, stock_control)
    assert pack_console_errors(page) == []


@pytest.mark.parametrize("node_type, calls", [
    ("SL_ConstantRateScheduler", 2304),  # 24 points x 64 samples + 64 x 12 (the defaults)
    ("SL_TimestepSearch", 2148),  # 16 x 8 x 4 samples x 4 steps + 2 x 50 reference steps
])
def test_costly_nodes_show_their_model_calls_before_they_start(page, node_type, calls):
    node_id = _add(page, node_type)
    assert f"≈ {calls} model calls" in _plot(page, node_id)["note"]


@pytest.mark.parametrize("name, family, kind", [
    ("tada_detail_level_ksampler", "sd1", "eps"), ("sdxl_tada_detail_level", "sdxl", "eps"),
    ("sd3_tada_detail_level", "sd3", "flow"), ("flux_tada_detail_level", "flux", "flow"),
])
def test_the_plot_assumes_the_family_of_the_graphs_loaders_until_chosen_by_hand(page, name, family, kind):
    """A loaded SD3/Flux/SDXL workflow plots its KSampler's schedule for that family (flow sigmas for SD3/Flux), from
    the graph's loaders; picking a family in the menu wins from then on."""
    from pathlib import Path

    from sl_page import load_workflow

    doc = json.loads((Path(__file__).resolve().parents[2] / "example_workflows" / f"{name}.json").read_text())
    set_setting(page, STOCK_PLOTS, True)  # the plot on a stock KSampler: the pack's setting on
    load_workflow(page, doc)
    (ks,) = [n["id"] for n in doc["nodes"] if n["type"] == "KSampler"]
    page.wait_for_function(f"() => {{ const p = window.app.graph.getNodeById({ks}).slPlot;"
                           f" return p && p.state.data && p.state.family === '{family}'; }}", timeout=20_000)
    assert page.evaluate(f"() => window.app.graph.getNodeById({ks}).slPlot.state.data.kind") == kind
    page.evaluate(f"""() => {{ const s = window.app.graph.getNodeById({ks}).slPlot.root.querySelector('select');
                   s.value = 'sd2v'; s.dispatchEvent(new Event('change')); }}""")
    _set_widget(page, ks, "steps", 7)
    page.wait_for_function(f"() => window.app.graph.getNodeById({ks}).slPlot.state.data.steps === 7", timeout=20_000)
    assert page.evaluate(f"() => window.app.graph.getNodeById({ks}).slPlot.state.family") == "sd2v"
    assert pack_console_errors(page) == []


def test_a_schedule_file_not_saved_yet_is_a_note_not_a_refused_request(page):
    """load_schedule.json opened before its schedule exists (a shared workflow, a fresh install): the plot says
    which file is missing; the plot route is not asked for it (its 400 would be logged in the console)."""
    from pathlib import Path

    from sl_page import load_workflow

    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if "/schedule_lab/" in r.url and r.status >= 400 else None)
    doc = json.loads((Path(__file__).resolve().parents[2] / "example_workflows" / "load_schedule.json").read_text())
    for node in doc["nodes"]:
        if node["type"] == "SL_LoadSchedule":
            node["widgets_values"][0] = "not_saved_yet.json"
    load_workflow(page, doc)
    (ls,) = [n["id"] for n in doc["nodes"] if n["type"] == "SL_LoadSchedule"]
    page.wait_for_function(f"() => {{ const p = window.app.graph.getNodeById({ls}).slPlot;"
                           " return p && p.state.draws > 0 && p.state.note; }", timeout=20_000)
    plot = _plot(page, ls)
    assert "not_saved_yet.json is not in models/schedules yet" in plot["note"] and plot["error"] == "", plot
    _set_widget(page, ls, "steps", 7)
    page.wait_for_timeout(800)
    assert refused == [] and pack_console_errors(page) == []
