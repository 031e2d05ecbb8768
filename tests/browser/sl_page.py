"""Page helpers for the browser tests: open the frontend, load a workflow the way drag-and-drop does, queue it."""
from __future__ import annotations

import json
import time

PACK_URL = "/extensions/schedule_lab/"
CHECKPOINT = "sl_tiny_sd2.safetensors"  # the integration fixture writes it (tests/integration/sl_graphs.py)


SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}
# Widgets naming the user's model files, which the test host does not have (the run swaps them for the tiny model).
MODEL_FILE_WIDGETS = {"ckpt_name", "unet_name", "clip_name1", "clip_name2", "vae_name"}


def open_comfy(page, base: str) -> None:
    page.sl_console = []
    page.on("console", lambda m: page.sl_console.append((m.type, m.text + " @ " + str(m.location.get("url", "")))))
    page.on("pageerror", lambda e: page.sl_console.append(("pageerror", f"{e} @ {e.stack or ''}")))
    # A first visit shows the template browser and tutorial; a returning user does not.
    page.request.post(f"{base}/api/settings", data=json.dumps(SETTINGS),
                      headers={"Content-Type": "application/json"})
    page.goto(base + "/", wait_until="domcontentloaded")
    # Node definitions are registered after every extension has been imported (or has failed to).
    page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph"
                           " && window.LiteGraph.registered_node_types['SL_Scheduler']", timeout=120_000)
    page.wait_for_timeout(500)


RESET_JS = """() => {
  const app = window.app;
  // toasts (alerts) stay until closed: one test's must not show in the next one's screenshots
  document.querySelectorAll('.p-toast-close-button, .p-toast-icon-close, [data-pc-section=closebutton]')
    .forEach((b) => b.click());
  for (let i = 0; i < 3; i++)  // dialogs (template browser, missing models, errors) close on Escape
    document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
  app.graph.clear();
  app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0];
  app.canvas.setDirty(true, true);
}"""


def reset_page(page, base: str) -> None:
    """What one test leaves for the next on the shared page: dialogs closed, an empty graph, the pack's settings at
    their defaults, the console log emptied. A page that has crashed or lost the frontend is opened again."""
    try:
        alive = page.evaluate("() => !!(window.app && window.app.graph)")
    except Exception:  # noqa: BLE001 - a crashed page
        alive = False
    if not alive:
        open_comfy(page, base)
    page.keyboard.press("Escape")
    set_setting(page, STOCK_PLOTS, False)
    page.evaluate(RESET_JS)
    page.wait_for_timeout(100)
    page.sl_console.clear()


STOCK_PLOTS = "ScheduleLab.Plots.StockNodes"


def set_setting(page, setting_id: str, value) -> None:
    """Change a setting as the settings dialog does (the frontend's setting store: saved, onChange called)."""
    page.evaluate("""async ([id, v]) => { const s = window.app.extensionManager.setting;
      if (s.get(id) !== v) await s.set(id, v); }""", [setting_id, value])


def frontend_version(page) -> tuple[int, ...]:
    text = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || ''")
    return tuple(int(x) for x in text.split(".") if x.isdigit()) or (0,)


def pack_console_errors(page) -> list[str]:
    """Console errors and page errors that come from the pack (its URL or its extension name)."""
    return [text for kind, text in page.sl_console
            if kind in ("error", "pageerror") and ("schedule_lab" in text or "Schedule Lab" in text)]


def load_workflow(page, doc: dict, missing_models_dialog: bool = False) -> None:
    """``app.loadGraphData``: what the frontend does with a dropped or template workflow file. The missing-models
    dialog (from the loaders' ``properties.models``) is shown only when asked: the test host has none of the models,
    and the dialog would cover the screenshots."""
    page.evaluate("([doc, dialog]) => window.app.loadGraphData(doc, true, true, 'test', "
                  "{showMissingModelsDialog: dialog})", [doc, missing_models_dialog])
    page.wait_for_timeout(300)


#: Frontend 1.58 keeps node ids as strings ("5"), 1.27 as numbers: the tests compare numbers.
NODE_ID_JS = "const NODE_ID = (id) => (Number.isFinite(+id) ? +id : id);"

NODE_STATE_JS = """
() => { """ + NODE_ID_JS + """ return window.app.graph._nodes.map(n => ({
  id: NODE_ID(n.id), type: n.type, has_errors: !!n.has_errors,
  registered: !!window.LiteGraph.registered_node_types[n.type],
  widgets: (n.widgets || []).filter(w => w.serialize !== false)
    .map(w => ({name: w.name, type: w.type, value: w.value,
                values: (w.options && Array.isArray(w.options.values)) ? w.options.values : null,
                min: w.options ? w.options.min : null, max: w.options ? w.options.max : null})),
})); }
"""


def node_states(page) -> list[dict]:
    return page.evaluate(NODE_STATE_JS)


def lacks_model_file(state: dict) -> bool:
    """A node (from :func:`node_states`) whose model-file widget names a file this host does not list."""
    return any(w["name"] in MODEL_FILE_WIDGETS and w["values"] is not None and w["value"] not in w["values"]
               for w in state["widgets"])


def widget_problems(states: list[dict], doc: dict) -> list[str]:
    """Values that landed on a widget which cannot hold them (a shifted widget list), or a count mismatch."""
    saved = {n["id"]: n.get("widgets_values", []) for n in doc["nodes"]}
    problems = []
    for n in states:
        want = saved.get(n["id"], [])
        if isinstance(want, list) and len(want) != len(n["widgets"]):
            problems.append(f"{n['type']} #{n['id']}: {len(want)} saved values for {len(n['widgets'])} widgets "
                            f"{[w['name'] for w in n['widgets']]}")
        for w in n["widgets"]:
            v = w["value"]
            if w["values"] is not None and v not in w["values"] and w["name"] not in MODEL_FILE_WIDGETS:
                problems.append(f"{n['type']} #{n['id']}: {w['name']}={v!r} is not one of its options")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and w["min"] is not None \
                    and not (w["min"] <= v <= (w["max"] if w["max"] is not None else float("inf"))):
                problems.append(f"{n['type']} #{n['id']}: {w['name']}={v!r} outside [{w['min']}, {w['max']}]")
            if w["type"] in ("number", "slider") and not isinstance(v, (int, float)):
                problems.append(f"{n['type']} #{n['id']}: number widget {w['name']} holds {v!r}")
    return problems


SWAP_JS = """
([ckpt, size]) => {
  const g = window.app.graph;
  const linkOf = (id) => g.links[id] ?? g.links.get?.(id);
  // Every link leaving `node`: [output slot, target node, target slot].
  const outgoing = (node) => (node.outputs || []).flatMap((o, slot) => (o.links || []).map(linkOf).filter(Boolean)
    .map(l => [slot, g.getNodeById(l.target_id), l.target_slot]));
  // Put a new node of `type` in place of `node`; its output slotMap[s] takes over the links of output s.
  const replace = (node, type, slotMap, target = null) => {
    const links = outgoing(node);
    const fresh = target || window.LiteGraph.createNode(type);
    if (!target) { fresh.pos = [...node.pos]; g.add(fresh); }
    g.remove(node);
    for (const [slot, dst, dstSlot] of links) fresh.connect(slotMap[slot], dst, dstSlot);
    return fresh;
  };
  let tiny = null;  // one tiny checkpoint for a family's separate model and VAE loaders
  const tinyCheckpoint = (at) => {
    if (!tiny) {
      tiny = window.LiteGraph.createNode('CheckpointLoaderSimple');
      tiny.pos = [...at]; g.add(tiny);
      tiny.widgets.find(w => w.name === 'ckpt_name').value = ckpt;
    }
    return tiny;
  };
  for (const n of [...g._nodes]) {
    if (n.type === 'CheckpointLoaderSimple' && n !== tiny) n.widgets.find(w => w.name === 'ckpt_name').value = ckpt;
    // Flux: the diffusion model and the VAE from separate loaders -> the tiny checkpoint's MODEL and VAE
    if (n.type === 'UNETLoader') replace(n, null, {0: 0}, tinyCheckpoint(n.pos));
    if (n.type === 'VAELoader') replace(n, null, {0: 2}, tinyCheckpoint(n.pos));
    // SD3 / Flux latents have 16 channels, the tiny SD2-shaped model 4: the SD1/SD2 empty latent instead
    if (n.type === 'EmptySD3LatentImage') replace(n, 'EmptyLatentImage', {0: 0});
    // the test budget: the expensive nodes' own work made small (the page still queues them as a user would)
    const budget = {SL_TimestepSearch: {population: 4, generations: 1, reference_steps: 8, samples: 2, holdout: 2,
                                        refine_iterations: 1},
                    SL_ConstantRateScheduler: {samples: 4, points: 8}}[n.type] || {};
    for (const [name, v] of Object.entries(budget)) {
      const w = n.widgets.find(w => w.name === name);
      if (w) w.value = v;
    }
    if (n.type === 'CLIPTextEncode') replace(n, 'LotusConditioning', {0: 0});
  }
  for (const n of [...g._nodes]) {
    if (n.type === 'DualCLIPLoader') g.remove(n);  // its only users were the text encoders
    if (n.type === 'EmptyLatentImage') {
      n.widgets.find(w => w.name === 'width').value = size;
      n.widgets.find(w => w.name === 'height').value = size;
    }
  }
  g.setDirtyCanvas(true, true);
}
"""


def swap_to_tiny_model(page, size: int = 64) -> None:
    """Point every model loader at the tiny SD2-shaped checkpoint (CheckpointLoaderSimple by name; Flux's UNETLoader
    and VAELoader replaced by one tiny CheckpointLoaderSimple, its DualCLIPLoader removed), replace the text encoders
    (the tiny checkpoint has none) by ``LotusConditioning``, the 16-channel SD3/Flux empty latent by a 4-channel
    one, make latents small and give Timestep Search / Constant-Rate a small budget. ModelSamplingSD3/Flux and
    FluxGuidance stay: the pack's nodes then run on a flow-kind model as they would on SD3/Flux."""
    page.evaluate(SWAP_JS, [CHECKPOINT, size])


QUEUE_JS = """
async () => {
  const api = window.comfyAPI.api.api;
  const done = new Promise((resolve) => {
    const finish = (kind) => (e) => resolve({kind, detail: e.detail});
    api.addEventListener('execution_success', finish('success'), {once: true});
    api.addEventListener('execution_error', finish('error'), {once: true});
    api.addEventListener('execution_interrupted', finish('interrupted'), {once: true});
  });
  const res = await window.app.queuePrompt(0, 1);
  return await done;
}
"""


def queue_from_page(page, timeout_s: float = 600) -> dict:
    """Queue the graph as the Run button does and wait for the end of that prompt."""
    t0 = time.time()
    page.set_default_timeout(timeout_s * 1000)
    out = page.evaluate(QUEUE_JS)
    out["seconds"] = time.time() - t0
    return out


def fit_view(page) -> None:
    """Zoom the canvas so the whole graph is visible (for screenshots)."""
    page.evaluate("""() => { const c = window.app.canvas;
      const ns = window.app.graph._nodes; if (!ns.length) return;
      const xs = ns.flatMap(n => [n.pos[0], n.pos[0] + n.size[0]]);
      const ys = ns.flatMap(n => [n.pos[1] - 30, n.pos[1] + n.size[1]]);
      const b = [Math.min(...xs) - 20, Math.min(...ys) - 20, Math.max(...xs) - Math.min(...xs) + 40,
                 Math.max(...ys) - Math.min(...ys) + 40];
      c.ds.fitToBounds ? c.ds.fitToBounds(b, {zoom: 0.95}) : null; c.setDirty(true, true); }""")
    page.wait_for_timeout(600)


def node_screenshot(page, node_id: int, path) -> None:
    """A screenshot of one node (its bounds on the page, title included)."""
    box = page.evaluate("""id => { const c = window.app.canvas, n = window.app.graph.getNodeById(id);
      const s = c.ds.scale, o = c.ds.offset, r = c.canvas.getBoundingClientRect();
      return {x: r.left + (n.pos[0] + o[0]) * s - 4, y: r.top + (n.pos[1] - 32 + o[1]) * s - 4,
              width: n.size[0] * s + 8, height: (n.size[1] + 32) * s + 8}; }""", node_id)
    page.screenshot(path=str(path), clip=box)


CANVAS_INK_JS = """id => { const n = window.app.graph.getNodeById(id); const c = n.slPlot && n.slPlot.canvas;
  if (!c || !c.width) return -1;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let ink = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i] - 24) + Math.abs(d[i+1] - 24) + Math.abs(d[i+2] - 24) > 60) ink++;
  return ink; }"""


def plot_ink(page, node_id: int) -> int:
    """Pixels of the node's plot canvas that differ clearly from its background (-1: no plot)."""
    return page.evaluate(CANVAS_INK_JS, node_id)


TEXTS_JS = """() => { """ + NODE_ID_JS + """ return window.app.graph._nodes.filter(n => n.slText).map(n => {
  const el = n.slText.el, r = el.getBoundingClientRect(), c = window.app.canvas, s = c.ds.scale, o = c.ds.offset,
        cr = c.canvas.getBoundingClientRect();
  const right = cr.left + (n.pos[0] + o[0] + n.size[0]) * s;
  return {id: NODE_ID(n.id), type: n.type, text: el.textContent, overflowX: el.scrollWidth - el.clientWidth,
          visible: r.width > 0 && r.height > 0, insideRight: r.right <= right + 2}; }); }"""


def _number(v):
    return int(v) if isinstance(v, str) and v.isdigit() else v


def drop_nulls(value):
    """A serialised graph as the frontend wrote it: Playwright brings JavaScript's ``undefined`` back as None, and
    a null where the workflow schema wants an array or a number is an invalid workflow (an alert) when loaded."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def serialize(page) -> dict:
    """``app.graph.serialize()`` with node ids as numbers on every frontend (nodes, links, last ids)."""
    doc = page.evaluate("() => window.app.graph.serialize()")
    for n in doc.get("nodes", []):
        n["id"] = _number(n["id"])
    doc["links"] = [[_number(v) if k in (1, 3) else v for k, v in enumerate(link)] if isinstance(link, list)
                    else link for link in doc.get("links", [])]
    return doc


def node_texts(page) -> list[dict]:
    return page.evaluate(TEXTS_JS)
