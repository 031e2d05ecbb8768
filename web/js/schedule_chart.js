// Schedule Lab: the chart itself, pure drawing on a 2-D context (no ComfyUI import; loaded by schedule_plot.js).
// Data come from the pack's /schedule_lab/plot route: every axis is computed by the server from the model kind.

export const AXES = { "σ": "sigmas", "log σ": "log_sigma", "log-SNR": "log_snr", "flow t": "flow_t" };
const PAD = { l: 34, r: 8, t: 16, b: 14 };

function series(data, axis) {
  const values = data?.[AXES[axis]] || data?.sigmas || [];
  return values.map((v) => (v === null || v === undefined || !Number.isFinite(v) ? null : v));
}

export function chartRange(state) {
  const all = [...series(state.data, state.axis), ...series(state.ghost, state.axis)].filter((v) => v !== null);
  if (!all.length) return null;
  // reduce, not Math.min(...all): spreading 200,000 values into a call overflows the stack
  let lo = all.reduce((a, b) => Math.min(a, b), Infinity);
  let hi = all.reduce((a, b) => Math.max(a, b), -Infinity);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  return { lo, hi };
}

// Canvas points of one series: x = step (0..n evenly over the width), y = value (larger value higher up);
// a missing value (log of the final 0) sits on the bottom edge, or top for log-SNR (+inf).
export function points(values, range, width, height, axis) {
  const n = Math.max(values.length - 1, 1);
  const iw = width - PAD.l - PAD.r;
  const ih = height - PAD.t - PAD.b;
  const infTop = axis === "log-SNR";
  return values.map((v, i) => {
    const x = PAD.l + (iw * i) / n;
    const y = v === null ? (infTop ? PAD.t : PAD.t + ih) : PAD.t + (ih * (range.hi - v)) / (range.hi - range.lo);
    return [x, y];
  });
}

function line(ctx, pts, color, width, dash = []) {
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.setLineDash(dash);
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.stroke();
  ctx.restore();
}

const fmt = (v) => (v === null ? "—" : Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : v.toFixed(3));

export function drawChart(ctx, width, height, state) {
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = "#181818";
  ctx.fillRect(0, 0, width, height);
  ctx.font = "10px sans-serif";
  const range = chartRange(state);
  if (!range || !state.data) {
    ctx.fillStyle = state.error ? "#f88" : "#999";
    const msg = state.error || state.note || "no schedule yet";
    wrapText(ctx, msg, 8, 16, width - 16, 12);
    if (!range) return;
  }
  // frame and grid
  ctx.strokeStyle = "#333";
  ctx.lineWidth = 1;
  ctx.strokeRect(PAD.l, PAD.t, width - PAD.l - PAD.r, height - PAD.t - PAD.b);
  ctx.fillStyle = "#888";
  ctx.fillText(fmt(range.hi), 2, PAD.t + 8);
  ctx.fillText(fmt(range.lo), 2, height - PAD.b);
  if (state.ghost) {
    const g = points(series(state.ghost, state.axis), range, width, height, state.axis);
    line(ctx, g, "rgba(255,190,90,0.55)", 1.5, [4, 3]);
  }
  if (state.data) {
    const vals = series(state.data, state.axis);
    const p = points(vals, range, width, height, state.axis);
    line(ctx, p, "#6cf", 2);
    ctx.fillStyle = "#fff";
    p.forEach(([x, y]) => ctx.fillRect(x - 2, y - 2, 4, 4)); // step markers
    if (state.hover >= 0 && state.hover < p.length) {
      const [x, y] = p[state.hover];
      ctx.strokeStyle = "#fff";
      ctx.beginPath();
      ctx.arc(x, y, 4.5, 0, Math.PI * 2);
      ctx.stroke();
    }
  }
  const steps = state.data ? state.data.sigmas.length - 1 : 0;
  const title = state.hoverText || `${state.axis} · ${state.data?.label ?? ""} · ${steps} steps`
    + (state.ghost ? ` · ghost ${state.ghost.label}` : "") + (state.note ? ` · ${state.note}` : "");
  ctx.fillStyle = "#ddd";
  ctx.fillText(title, PAD.l, 11, width - PAD.l - 4);
}

function wrapText(ctx, text, x, y, maxWidth, lineHeight) {
  let lineText = "";
  for (const word of String(text).split(/\s+/)) {
    const test = lineText ? `${lineText} ${word}` : word;
    if (ctx.measureText(test).width > maxWidth && lineText) {
      ctx.fillText(lineText, x, y);
      lineText = word;
      y += lineHeight;
    } else {
      lineText = test;
    }
  }
  if (lineText) ctx.fillText(lineText, x, y);
}

// The step under the mouse (nearest in x) and its values on every axis, for the hover read-out.
export function nearestStep(state, x, width) {
  const sig = state.data?.sigmas;
  if (!sig?.length) return { index: -1, text: "" };
  const n = Math.max(sig.length - 1, 1);
  const i = Math.min(sig.length - 1, Math.max(0, Math.round(((x - PAD.l) / (width - PAD.l - PAD.r)) * n)));
  const v = series(state.data, state.axis)[i];
  return { index: i, text: `step ${i}: σ=${fmt(sig[i])}  ${state.axis}=${fmt(v)}` };
}
