// Schedule Lab: draw the schedule (log sigma per step) on the Schedule Info node after it runs.
import { app } from "../../../scripts/app.js";

const NODE_ID = "SL_ScheduleInfo";
const PLOT_HEIGHT = 120;

export function plotPoints(sigmas, width, height, pad = 8) {
  // Map positive sigmas to canvas points: x = step, y = log(sigma) (top = largest). The final 0 is drawn
  // on the bottom edge. Returns [] for fewer than two values.
  const positive = sigmas.filter((s) => s > 0);
  if (sigmas.length < 2 || positive.length === 0) return [];
  const logs = positive.map(Math.log);
  const hi = Math.max(...logs);
  const lo = Math.min(...logs);
  const span = hi - lo || 1;
  const n = sigmas.length - 1;
  return sigmas.map((s, i) => {
    const x = pad + ((width - 2 * pad) * i) / n;
    const y = s > 0 ? pad + ((height - 2 * pad) * (hi - Math.log(s))) / span : height - pad;
    return [x, y];
  });
}

app.registerExtension({
  name: "schedule_lab.schedule_plot",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_ID) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const plot = message?.schedule_lab_sigmas?.[0];
      this.slSigmas = plot ? plot.sigmas : null;
      if (this.slSigmas && this.size[1] < PLOT_HEIGHT + 80) {
        this.setSize([this.size[0], this.size[1] + PLOT_HEIGHT]);
      }
      this.setDirtyCanvas(true, true);
    };

    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      if (!this.slSigmas || this.flags?.collapsed) return;
      const w = this.size[0];
      const top = this.size[1] - PLOT_HEIGHT;
      ctx.save();
      ctx.translate(0, top);
      ctx.fillStyle = "rgba(0,0,0,0.25)";
      ctx.fillRect(4, 0, w - 8, PLOT_HEIGHT - 4);
      const pts = plotPoints(this.slSigmas, w, PLOT_HEIGHT - 4);
      ctx.strokeStyle = "#6cf";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
      ctx.fillStyle = "#fff";
      pts.forEach(([x, y]) => ctx.fillRect(x - 1.5, y - 1.5, 3, 3));
      ctx.font = "10px sans-serif";
      ctx.fillText(`log σ, ${this.slSigmas.length - 1} steps`, 10, 12);
      ctx.restore();
    };
  },
});
