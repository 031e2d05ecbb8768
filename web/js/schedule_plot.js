// Schedule Lab: live schedule plots on every node that makes a schedule, and node texts that wrap.
//
// Imports resolve from the extension's real URL, /extensions/<pack folder>/js/schedule_plot.js: three levels up
// is the server root, where ComfyUI serves /scripts/app.js and /scripts/api.js (shims into the frontend bundle).
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";
import { drawChart, nearestStep, AXES } from "./schedule_chart.js";

const PLOT_HEIGHT = 190;
// The model-family presets: the pack's one list (nodes/host/plots.py FAMILY_PRESETS), read from the server once.
let FAMILIES = [];

// Node type -> how its widgets describe a schedule the server can compute before queueing. Each returns
// {query} (sent to /schedule_lab/plot) or {note} when there is nothing to draw yet. Nothing here is saved.
const w = (node, name) => node.widgets?.find((x) => x.name === name)?.value;
const choices = (node, name) => {
  const values = node.widgets?.find((x) => x.name === name)?.options?.values;
  return Array.isArray(values) ? values : [];
};
const byName = (node) => ({ scheduler: w(node, "scheduler"), steps: w(node, "steps"), denoise: w(node, "denoise") ?? 1 });
const fromFile = (node, file) => (file ? { schedule: file, steps: w(node, "steps") || 0, denoise: w(node, "denoise") ?? 1 } : null);
const SOURCES = {
  SL_Scheduler: (n) => ({ query: byName(n) }),
  BasicScheduler: (n) => ({ query: byName(n) }),
  KSampler: (n) => ({ query: byName(n) }),
  KSamplerAdvanced: (n) => ({ query: { scheduler: w(n, "scheduler"), steps: w(n, "steps"), denoise: 1 } }),
  // A file the server does not list (a shared workflow's file not saved here yet) is a note, not a request the
  // route must refuse (the browser would log its 400 in the console).
  SL_LoadSchedule: (n, files) => {
    const file = w(n, "schedule");
    if (file && !files.includes(file)) return { note: `${file} is not in models/schedules yet` };
    const q = fromFile(n, file);
    return q ? { query: q } : { note: "no schedule file in models/schedules yet" };
  },
  SL_SearchedSteps: (n, files) => {
    const choice = w(n, "schedule");
    const known = choice && (files.includes(choice) || choices(n, "schedule").includes(choice));
    if (choice && !known) return { note: `${choice} is not in models/schedules yet: run Timestep Search` };
    return choice ? { query: { searched: choice, steps: w(n, "steps") || 0, denoise: w(n, "denoise") ?? 1 } }
      : { note: "no searched schedule yet: run Timestep Search" };
  },
  SL_ConstantRateScheduler: (n) => ({
    query: { scheduler: "sl_constant_rate", steps: w(n, "steps"), denoise: w(n, "denoise") ?? 1 },
    note: `data-free default until it runs; calibration ≈ ${costs.constantRate(n)} model calls at batch 1`,
  }),
  SL_TimestepSearch: (n, files) => {
    const name = `${w(n, "filename") || ""}.json`;
    return files.includes(name)
      ? { query: { schedule: name, steps: 0, denoise: 1 }, note: `saved result ${name}` }
      : { note: `not searched yet (${w(n, "nfe")} steps): a search ≈ ${costs.search(n)} model calls` };
  },
};
// Model calls a run will cost, from the formulas in the nodes' tooltips (shown before anything is queued).
const costs = {
  // points x samples, plus samples x 12 for the data-free reference (per latent batch)
  constantRate: (n) => (w(n, "points") ?? 24) * (w(n, "samples") ?? 64) + (w(n, "samples") ?? 64) * 12,
  // evolution: population x generations x samples x nfe; the Heun reference: about 2 x reference_steps;
  // refinement: 2 x nfe sampler runs of nfe calls per iteration
  search: (n) => {
    const nfe = w(n, "nfe") ?? 4;
    const opt = String(w(n, "optimiser") ?? "evolution");
    const evo = opt.includes("evolution") ? (w(n, "population") ?? 16) * (w(n, "generations") ?? 8) * (w(n, "samples") ?? 4) * nfe : 0;
    const refine = opt.includes("refine") ? (w(n, "refine_iterations") ?? 20) * 2 * nfe * nfe : 0;
    return evo + refine + 2 * (w(n, "reference_steps") ?? 50);
  },
};
const SL_NODE = (type) => typeof type === "string" && type.startsWith("SL_");
// ComfyUI's own nodes stay as they are unless the user turns this setting on (Settings > Schedule Lab).
const STOCK = new Set(["KSampler", "KSamplerAdvanced", "BasicScheduler"]);
const STOCK_SETTING = "ScheduleLab.Plots.StockNodes";
function setting(id) {
  try {
    const store = app.extensionManager?.setting;
    if (store?.get) return store.get(id);
    return app.ui?.settings?.getSettingValue?.(id);
  } catch (e) {
    return undefined;
  }
}
const plotsOn = (node) => SL_NODE(node.type) || (STOCK.has(node.type) && setting(STOCK_SETTING) === true);

let savedFiles = [];
let listing = null;
// /schedule_lab/schedules: the saved files, KSampler's scheduler names and the model families (read once here,
// before the first plot is built; refreshFiles re-reads the files).
function loadListing() {
  listing ??= api.fetchApi("/schedule_lab/schedules")
    .then((r) => (r.ok ? r.json() : {}))
    .then((body) => {
      FAMILIES = body.families || [];
      savedFiles = body.schedules || savedFiles;
    })
    .catch((e) => {
      console.warn("[Schedule Lab] could not read the model families", e);
      listing = null;
    });
  return listing;
}

async function refreshFiles() {
  try {
    const r = await api.fetchApi("/schedule_lab/schedules");
    if (r.ok) savedFiles = (await r.json()).schedules || [];
  } catch (e) {
    console.warn("[Schedule Lab] could not list saved schedules", e);
  }
  return savedFiles;
}

async function fetchPlot(query, family) {
  const params = new URLSearchParams({ family });
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    if (k === "steps" && (query.schedule || query.searched) && !v) params.set("keep_steps", "1");
    else params.set(k, String(v));
  }
  if (!params.has("steps")) params.set("steps", "10");
  const r = await api.fetchApi(`/schedule_lab/plot?${params}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function select(options, value, title) {
  const el = document.createElement("select");
  el.title = title;
  el.style.cssText = "font-size:10px;background:#222;color:#ddd;border:1px solid #444;border-radius:3px;max-width:33%";
  for (const o of options) el.append(new Option(o, o));
  el.value = value;
  return el;
}

// The family the graph's own loaders say (the plot's default until the menu is changed by hand): Flux and SD3
// by their ModelSampling / diffusion-model loaders, SDXL by a checkpoint name with "xl", else SD1.
function graphFamily(graph) {
  const nodes = graph?._nodes || [];
  const names = nodes.map((n) => String(w(n, "ckpt_name") || w(n, "unet_name") || "").toLowerCase());
  const types = new Set(nodes.map((n) => n.type));
  if (types.has("ModelSamplingFlux") || names.some((x) => x.includes("flux"))) return "flux";
  if (types.has("ModelSamplingSD3") || names.some((x) => x.includes("sd3"))) return "sd3";
  if (names.some((x) => x.includes("xl"))) return "sdxl";
  return "sd1";
}

function addPlot(node, options = {}) {
  if (node.slPlot) return node.slPlot;
  const root = document.createElement("div");
  root.className = "schedule-lab-plot";
  root.style.cssText = "display:flex;flex-direction:column;gap:2px;width:100%;height:100%;min-height:0";
  const bar = document.createElement("div");
  bar.style.cssText = "display:flex;gap:3px;flex:0 0 auto";
  const state = { family: "sd1", axis: "log σ", reference: "karras", data: null, ghost: null, note: "",
                  error: "", draws: 0, hover: -1, hoverText: "", fixed: options.fixed || false };
  const family = select(FAMILIES.length ? FAMILIES : [state.family], state.family, "Model family the plot assumes (the real model is known only when it runs)");
  const axis = select(Object.keys(AXES), state.axis, "Vertical axis");
  const reference = select(["karras", "none"], state.reference, "Ghost overlay: a reference schedule at the same steps");
  bar.append(family, axis, reference);
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "width:100%;flex:1 1 auto;min-height:0;border-radius:4px;background:#181818";
  root.append(bar, canvas);
  const widget = node.addDOMWidget("sl_plot", "schedule_lab_plot", root, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => PLOT_HEIGHT,
    getMaxHeight: () => PLOT_HEIGHT * 2,
  });
  widget.serialize = false;
  const plot = { node, widget, canvas, state, root };
  const redraw = () => {
    const rect = canvas.getBoundingClientRect();
    const scale = window.devicePixelRatio || 1;
    const width = Math.max(120, Math.round((rect.width || node.size[0] - 20) * scale));
    const height = Math.max(80, Math.round((rect.height || PLOT_HEIGHT - 30) * scale));
    if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
    const ctx = canvas.getContext("2d");
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    drawChart(ctx, width / scale, height / scale, state);
    state.draws += 1;
  };
  plot.redraw = redraw;
  plot.refresh = async () => {
    if (state.fixed) return redraw();
    const source = SOURCES[node.type];
    if (!source) return;
    const files = await refreshFiles();
    updateReferences(files);
    if (!state.familyChosen) {  // follow the graph's loaders until the user picks a family
      state.family = graphFamily(node.graph || app.graph);
      family.value = state.family;
    }
    const { query, note } = source(node, files) || {};
    state.note = note || "";
    state.error = "";
    try {
      const data = query ? await fetchPlot(query, state.family) : null;
      const steps = data?.steps || Number(query?.steps) || 10;
      const ghost = state.reference === "none" ? null
        : await fetchPlot(state.reference === "karras" ? { scheduler: "karras", steps, denoise: query?.denoise ?? 1 }
                                                        : { schedule: state.reference, steps, denoise: 1 }, state.family);
      Object.assign(state, { data, ghost });
    } catch (e) {
      state.data = null;
      state.error = String(e.message || e);
    }
    redraw();
  };
  const updateReferences = (files) => {
    const want = ["karras", "none", ...files];
    if ([...reference.options].map((o) => o.value).join() === want.join()) return;
    reference.replaceChildren(...want.map((o) => new Option(o, o)));
    reference.value = want.includes(state.reference) ? state.reference : "karras";
  };
  let timer = null;
  plot.schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => plot.refresh(), 60);
  };
  family.onchange = () => { state.family = family.value; state.familyChosen = true; plot.schedule(); };
  axis.onchange = () => { state.axis = axis.value; redraw(); };
  reference.onchange = () => { state.reference = reference.value; plot.schedule(); };
  canvas.addEventListener("mousemove", (e) => {
    const rect = canvas.getBoundingClientRect();
    const hit = nearestStep(state, e.clientX - rect.left, rect.width);
    if (hit.index !== state.hover) {
      state.hover = hit.index;
      state.hoverText = hit.text;
      canvas.title = hit.text;
      redraw();
    }
  });
  canvas.addEventListener("mouseleave", () => { state.hover = -1; state.hoverText = ""; redraw(); });
  new ResizeObserver(() => redraw()).observe(canvas);
  node.slPlot = plot;
  return plot;
}

function addText(node) {
  if (node.slText) return node.slText;
  const el = document.createElement("div");
  el.className = "schedule-lab-text";
  el.style.cssText = "white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word;overflow-x:hidden;"
    + "overflow-y:auto;font:11px/1.35 monospace;color:#ccc;background:#1b1b1b;border-radius:4px;padding:4px 6px;"
    + "box-sizing:border-box;width:100%;height:100%;max-height:100%";
  const widget = node.addDOMWidget("sl_text", "schedule_lab_text", el, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => textHeight(node, el.textContent),
    getMaxHeight: () => 260,
  });
  widget.serialize = false;
  node.slText = { el, widget };
  return node.slText;
}

// Height for a text: its lines (wrapped at the node's width, 11 px monospace) between one line and 260 px, so a
// one-line report does not make the node tall.
function textHeight(node, text) {
  const perLine = Math.max(16, Math.floor(((node.size?.[0] || 300) - 32) / 6.7));
  const lines = String(text || "").split("\n").reduce((n, line) => n + Math.max(1, Math.ceil(line.length / perLine)), 0);
  return Math.min(260, 12 + 15 * lines);
}

function showText(node, text) {
  const { el } = addText(node);
  el.textContent = text;
  fitNode(node);
}

// The text a pack node sends while a run goes on (ComfyUI's progress text: search generations, the Detail Level
// report, which arrives while KSampler samples). The frontend shows it in a preview widget of its own, which newer
// frontends (1.58) remove when the job ends, so the pack keeps it in its own text widget instead (pack nodes only).
const FRONTEND_TEXT_PREVIEW = "$$node-text-preview";

function onProgressText(event) {
  const { nodeId, text } = event?.detail || {};
  if (!text || nodeId === undefined || nodeId === null || String(nodeId).includes(":")) return;
  const node = app.graph?.getNodeById?.(nodeId) ?? app.graph?.getNodeById?.(Number(nodeId));
  if (!node || !SL_NODE(node.type)) return;
  showText(node, String(text));
  // one text on the node, the pack's: the frontend's preview goes, whether its listener ran before this one or not
  removeFrontendPreview(node);
  setTimeout(() => removeFrontendPreview(node), 0);
}

function removeFrontendPreview(node) {
  const index = node.widgets?.findIndex((x) => x.name === FRONTEND_TEXT_PREVIEW) ?? -1;
  if (index < 0) return;
  node.widgets[index].onRemove?.();
  node.widgets.splice(index, 1);
  node.setDirtyCanvas?.(true, true);
}

function fitNode(node) {
  const min = node.computeSize();
  if (node.size[0] < min[0] || node.size[1] < min[1]) {
    const before = [...node.size];
    node.setSize([Math.max(node.size[0], min[0]), Math.max(node.size[1], min[1])]);
    if (node.slGrowth) {  // a stock node: what the plot added is not the node's own size
      node.slGrowth[0] += node.size[0] - before[0];
      node.slGrowth[1] += node.size[1] - before[1];
    }
  }
  node.setDirtyCanvas?.(true, true);
}

// The plot on a stock node (the setting on): drawn as on the pack's nodes, but the size saved into the workflow is
// the node's size without the plot, so turning the setting off (or opening the workflow elsewhere) shows the node
// as it was.
function addStockPlot(node) {
  if (node.slPlot) return;
  node.slGrowth = [0, 0];
  addPlot(node);
  hookWidgets(node);
  fitNode(node);
  node.slPlot.schedule();
}

function removeStockPlot(node) {
  const plot = node.slPlot;
  if (!plot) return;
  const index = node.widgets?.indexOf(plot.widget) ?? -1;
  if (node.removeWidget) node.removeWidget(plot.widget);
  else if (index >= 0) node.widgets.splice(index, 1);
  plot.widget.onRemove?.();
  plot.root.remove();
  const [gw, gh] = node.slGrowth || [0, 0];
  node.setSize([node.size[0] - gw, node.size[1] - gh]);
  delete node.slPlot;
  delete node.slGrowth;
  node.setDirtyCanvas?.(true, true);
}

function applyStockSetting(on) {
  for (const node of app.graph?._nodes || []) {
    if (!STOCK.has(node.type)) continue;
    if (on) addStockPlot(node);
    else removeStockPlot(node);
  }
}

function hookWidgets(node) {
  for (const widget of node.widgets || []) {
    if (widget.slHooked || widget.name === "sl_plot" || widget.name === "sl_text") continue;
    const callback = widget.callback;
    widget.callback = function () {
      const out = callback?.apply(this, arguments);
      node.slPlot?.schedule();
      return out;
    };
    widget.slHooked = true;
  }
}

function setUp(node) {
  // control_after_generate is left as the frontend sets it (the user's choice), as on stock nodes.
  if (STOCK.has(node.type)) {
    if (plotsOn(node)) addStockPlot(node);
    return;
  }
  if (SOURCES[node.type]) {
    addPlot(node);
    hookWidgets(node);
    fitNode(node);
    node.slPlot.schedule();
  }
  if (node.type === "SL_ScheduleInfo") {
    addPlot(node, { fixed: true });
    fitNode(node);
  }
}

// Inputs renamed to the stock nodes' names. A saved workflow stores each input slot with its name and the frontend
// restores the slots from the file, so a link saved under an earlier name would be queued under that name (and the
// server would miss the new one): the names are updated in the workflow before the graph is configured.
const RENAMED_INPUTS = {
  SL_ABCompare: { latent: "latent_image" },
  SL_ConstantRateScheduler: { latent: "latent_image" },
  SL_TimestepSearch: { latent: "latent_image" },
};

function renameInputs(nodes) {
  let count = 0;
  for (const node of nodes || []) {
    const renamed = RENAMED_INPUTS[node?.type];
    if (!renamed) continue;
    for (const input of node.inputs || []) {
      const now = renamed[input?.name];
      if (!now) continue;
      if (input.localized_name === input.name) input.localized_name = now;
      if (input.label === input.name) delete input.label;
      input.name = now;
      count += 1;
    }
  }
  return count;
}

app.registerExtension({
  name: "schedule_lab.schedule_plot",
  settings: [
    {
      id: STOCK_SETTING,
      category: ["Schedule Lab", "Plots", "Stock nodes"],
      name: "Live schedule plots on KSampler, KSamplerAdvanced and BasicScheduler",
      tooltip: "Off: ComfyUI's own nodes are left as they are. On: they show the schedule their widgets describe "
        + "(the plot's height is not saved into the workflow). The pack's own nodes always plot.",
      type: "boolean",
      defaultValue: false,
      onChange: (value) => applyStockSetting(value === true),
    },
  ],
  async setup() {
    api.addEventListener("progress_text", onProgressText);
  },
  async beforeConfigureGraph(graphData) {
    renameInputs(graphData?.nodes);
    for (const subgraph of graphData?.definitions?.subgraphs || []) renameInputs(subgraph.nodes);
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = nodeData.name;
    if (!SOURCES[name] && !SL_NODE(name)) return;
    await loadListing();

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const out = onNodeCreated?.apply(this, arguments);
      setUp(this);
      return out;
    };

    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const out = onConfigure?.apply(this, arguments);
      if (STOCK.has(this.type) && !this.slPlot) return out;  // a stock node without the setting: untouched
      if (this.slGrowth) this.slGrowth = [0, 0];  // the loaded size is the node's own
      hookWidgets(this);
      fitNode(this);
      this.slPlot?.schedule();
      return out;
    };

    if (STOCK.has(name)) {
      const onSerialize = nodeType.prototype.onSerialize;
      nodeType.prototype.onSerialize = function (o) {
        const out = onSerialize?.apply(this, arguments);
        if (this.slGrowth && o?.size) o.size = [o.size[0] - this.slGrowth[0], o.size[1] - this.slGrowth[1]];
        return out;
      };
    }

    if (!SL_NODE(name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      if (text?.length) showText(this, Array.isArray(text) ? text.join("\n") : String(text));
      const plot = message?.schedule_lab_sigmas?.[0];
      if (plot && this.slPlot) {
        this.slPlot.state.data = plot;
        this.slPlot.redraw();
      }
    };
  },
});
