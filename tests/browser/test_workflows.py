"""Every example workflow through the real frontend: loads like a dropped file, runs from the page twice."""
from __future__ import annotations

import importlib.util
import json
import os
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sl_page import (
    fit_view,
    lacks_model_file,
    load_workflow,
    node_states,
    node_texts,
    pack_console_errors,
    queue_from_page,
    serialize,
    swap_to_tiny_model,
    widget_problems,
)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "lab" / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _structure(image):
    """The picture's layout: grey, blurred and reduced to 32 x 18, so a few pixels of zoom or a changed number in a
    node's text do not count, but nodes elsewhere, another graph or a blank frame do."""
    import numpy as np
    from PIL import Image, ImageFilter

    grey = image.convert("L").filter(ImageFilter.GaussianBlur(6)).resize((32, 18), Image.BILINEAR)
    return np.asarray(grey, dtype=np.float32)


#: Largest mean difference (grey levels) between the committed thumbnail's layout and this run's. Measured
#: (docs/workflows.md): 0.05-2.05 for up-to-date thumbnails over two runs; a blank frame 7.1; a graph of another
#: layout 3-8.6 (the stock-KSampler workflow against an A/B layout: 4.1 as ays_in_ksampler, 5.5-8.6 as
#: constant_rate_in_ksampler against the nine A/B thumbnails). Workflows sharing a layout (an SD1.5/SDXL twin, two A/B
#: graphs) differ by 0.1-1.3, and a thumbnail stale by a small edit (a longer note) by 0.2-2.2: not caught here.
SAME_LAYOUT = 3.0


def check_thumbnail_is_this_run(path: Path, shot: Path) -> None:
    """The committed template thumbnail is a picture of this workflow after its run: the same frame as one made now
    from this run's screenshot (lab/tools/make_workflow_thumbnails.py) and the same layout, outputs included. (Two
    workflows whose graphs are the same after the swap, e.g. an SD1.5 and an SDXL twin, look alike by design.)"""
    from PIL import Image

    fresh = _tool("make_workflow_thumbnails").thumbnail(Image.open(shot))
    committed = Image.open(path.with_suffix(".jpg")).convert("RGB")
    assert committed.size == fresh.size, (committed.size, fresh.size)
    difference = float(abs(_structure(committed) - _structure(fresh)).mean())
    print(f"thumbnail {path.stem}: layout difference {difference:.2f}")
    assert difference < SAME_LAYOUT, (
        f"{path.stem}.jpg does not show this workflow after its run (layout difference {difference:.1f}): run "
        "python lab/tools/make_workflow_thumbnails.py after the browser tests")


def _input_names(comfy) -> dict[str, set[str]]:
    info = comfy.get("/object_info")
    return {t: set(d["input"].get("required", {})) | set(d["input"].get("optional", {})) for t, d in info.items()}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_with_every_node_and_widget_in_place_and_runs_twice(page, shots, path, comfy):
    """A shipped workflow, exactly as saved (inputs linked under their earlier names included), loads like a dropped
    file with every node, widget value and link in place, and runs from the page twice."""
    doc = json.loads(path.read_text())
    load_workflow(page, doc)
    states = node_states(page)
    assert sorted(n["id"] for n in states) == sorted(n["id"] for n in doc["nodes"])
    # a loader naming a model file this host lacks is flagged by newer frontends (1.58): that is the user's model,
    # not a broken node (the run swaps in the tiny checkpoint)
    missing = [n["type"] for n in states if not n["registered"] or (n["has_errors"] and not lacks_model_file(n))]
    assert missing == [], f"{path.name}: missing or broken nodes {missing}"
    assert widget_problems(states, doc) == []
    # widget values round-trip through the frontend; the plot and text widgets are not saved
    saved = serialize(page)
    assert {n["id"]: n.get("widgets_values") or [] for n in saved["nodes"]} == \
        {n["id"]: n.get("widgets_values") or [] for n in doc["nodes"]}  # 1.58 leaves out an empty list
    assert "sl_plot" not in json.dumps(saved) and "schedule_lab_plot" not in json.dumps(saved)
    # every linked input carries a name the server knows (a link saved under an earlier name is renamed on load)
    known = _input_names(comfy)
    for n in saved["nodes"]:
        if n["type"] in known:
            stale = [i["name"] for i in n.get("inputs", []) if i.get("link") is not None
                     and i["name"] not in known[n["type"]]]
            assert stale == [], f"{path.name}: {n['type']} #{n['id']} links inputs the server lacks: {stale}"
    assert len(saved["links"]) == len(doc["links"])
    fit_view(page)
    page.screenshot(path=str(shots / f"workflow_{path.stem}.png"))
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
    texts = node_texts(page)
    for text in texts:
        assert text["text"].strip() and text["visible"], text
        assert text["overflowX"] <= 1 and text["insideRight"], f"text runs past the node's edge: {text}"
    # the Detail Level report arrives while KSampler samples (progress text) and stays on the node after the run
    shown = {t["id"]: t["text"] for t in texts}
    for n in doc["nodes"]:
        if n["type"] == "SL_DetailLevel":
            assert shown.get(n["id"], "").startswith("Detail Level "), (n["id"], shown)
    page.screenshot(path=str(shots / f"workflow_{path.stem}_ran.png"))
    assert pack_console_errors(page) == []
    if not os.environ.get("SL_FRONTEND_ROOT"):  # the thumbnails are pictures of the snapshot's frontend
        check_thumbnail_is_this_run(path, shots / f"workflow_{path.stem}_ran.png")


def _doc(name: str) -> dict:
    return json.loads((ROOT / "example_workflows" / f"{name}.json").read_text())


@pytest.mark.parametrize("name, listed", [
    ("sdxl_tada_detail_level", ["checkpoints / sd_xl_base_1.0.safetensors"]),
    ("flux_tada_detail_level", ["diffusion_models / flux1-dev.safetensors", "text_encoders / clip_l.safetensors",
                                "text_encoders / t5xxl_fp16.safetensors", "vae / ae.safetensors"]),
])
def test_a_workflow_with_models_the_user_lacks_lists_them_with_their_folders(fresh_page, shots, name, listed,
                                                                              frontend_version):
    """Dropped on ComfyUI without the models: the frontend names each file and its folder (from the loaders'
    properties.models), with a download button; the note node says the same. 1.27 shows a missing-models dialog;
    1.58 has no such dialog: an error overlay names the first file, and its "View details" opens the Issues panel,
    one row per file (its name, then its folder, then Download). A page of its own: what a first load shows."""
    page = fresh_page
    load_workflow(page, _doc(name), missing_models_dialog=True)
    if frontend_version >= (1, 30):
        page.locator("[data-testid='error-overlay-see-errors']").click(timeout=30_000)
        group = page.locator("[data-testid='error-group-missing-model']")
        group.wait_for(timeout=20_000)
        lines = [line.strip() for line in group.inner_text().split("\n") if line.strip()]
        rows = {lines[i]: lines[i + 1] for i in range(len(lines) - 1) if lines[i].endswith(".safetensors")}
        assert {f"{folder} / {file}" for file, folder in rows.items()} == set(listed), lines
        assert group.locator("[data-testid='missing-model-download']").count() == len(listed), lines
    else:
        dialog = page.locator(".comfy-missing-models")
        dialog.wait_for(timeout=20_000)
        text = dialog.inner_text()
        for label in listed:
            assert label in text, text
    page.screenshot(path=str(shots / f"missing_models_{name}.png"))


@pytest.mark.parametrize("name, node_type, missing, folder", [
    ("sd3_tpdm_ksampler", "SL_LoadTPM", "tpm_not_here.safetensors", "tpm"),
    ("load_schedule", "SL_LoadSchedule", "schedule_not_here.json", "schedules"),
])
def test_a_missing_pack_file_is_named_with_its_folder_when_queued(page, shots, name, node_type, missing, folder,
                                                                   frontend_version):
    """Queued without the pack file: the error the frontend shows names models/<folder>/<file> (the pack's
    validation), before any model runs."""
    doc = _doc(name)
    for node in doc["nodes"]:
        if node["type"] == node_type:
            node["widgets_values"][0] = missing
    load_workflow(page, doc)
    swap_to_tiny_model(page)
    page.evaluate("() => window.app.queuePrompt(0, 1)")
    want = f"ComfyUI/models/{folder}/{missing}"
    if frontend_version >= (1, 30):
        # newer frontends list the rejected input in an error panel ("View details") and show the node's message
        # when its entry's info button is opened
        page.locator("[data-testid='error-overlay-see-errors']").click(timeout=30_000)
        page.locator("button[aria-label^='Info for ']").first.click(timeout=30_000)
    page.wait_for_function(f"() => document.body.innerText.includes({json.dumps(want)})", timeout=30_000)
    page.screenshot(path=str(shots / f"missing_file_{name}.png"))


def _scroll_to_settled(card, attempts=5):
    """Scroll to a template card once the grid has stopped replacing it. 1.58's grid re-renders its cards a few times
    after a search, so the element a scroll resolved can be detached before the scroll lands; the locator then
    resolves the new card on the next attempt. A card that never appears still fails through ``wait_for``."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(attempts):
        card.wait_for(timeout=20_000)
        try:
            card.scroll_into_view_if_needed(timeout=5_000)
            return
        except PlaywrightError as error:
            if "not attached" not in str(error) or attempt == attempts - 1:
                raise
            card.page.wait_for_timeout(300)


def test_template_browser_shows_every_workflow_with_its_thumbnail(page, shots, frontend_version):
    """The template browser: the pack's category (named by locales/en/main.json), one card per workflow with its
    thumbnail loaded; a card's title is its file name (1.27 reads no other field for custom-node templates,
    docs/workflows.md; 1.58 shows the name as it is). Clicking a card loads that workflow."""
    new = frontend_version >= (1, 30)
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    if new:  # 1.58: the custom-node categories are buttons in the dialog's side bar, the search box says "Search ..."
        page.get_by_role("button", name="Schedule Lab", exact=True).click()
        search = page.locator("[role=dialog] input[placeholder='Search ...']")
    else:
        page.get_by_role("option", name="Schedule Lab").click()
        search = page.get_by_placeholder("Search templates...")
    for path in WORKFLOWS:  # the grid renders a window of cards: find each through the dialog's own search box
        search.fill(path.stem)
        page.wait_for_timeout(300)  # the grid re-renders its cards after a search (1.58: a detached card otherwise)
        card = page.locator(f"[data-testid='template-workflow-{path.stem}']")
        _scroll_to_settled(card)
        image = card.locator("img")
        image.wait_for(timeout=20_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                               timeout=20_000)
        assert image.evaluate("img => img.naturalWidth") == 480, path.stem
        if new:
            assert path.stem in card.inner_text().split("\n"), card.inner_text()
        else:
            assert card.locator("p").inner_text() == path.stem.replace("_", " ")
    search.fill("tada")  # the case: searching TADA finds the Detail Level workflows
    page.locator("[data-testid='template-workflow-sdxl_tada_detail_level']").wait_for(timeout=20_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "template_browser.png"))
    search.fill("sd3_tpdm_ksampler")
    page.locator("[data-testid='template-workflow-sd3_tpdm_ksampler']").click()
    page.wait_for_function("() => window.app.graph._nodes.some(n => n.type === 'SL_LoadTPM')", timeout=20_000)
    assert sorted(n["type"] for n in node_states(page)) == sorted(n["type"] for n in _doc("sd3_tpdm_ksampler")["nodes"])
