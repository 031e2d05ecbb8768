"""Benchmark results: markdown for one testbed (mean ± std over seeds, floors underneath) and the one writer every
benchmark uses (``write_results``: ``<name>.md``, ``<name>.json``, ``<name>_summary.md`` with the ratios, printed)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

__all__ = ["fmt", "mean_std", "metric_columns", "testbed_markdown", "write_results"]


def write_results(out: Path, name: str, markdown: str, doc=None, summary: str | None = None, log=print) -> Path:
    """Write ``<out>/<name>.md`` (and ``<name>.json`` from ``doc``, ``<name>_summary.md`` from ``summary``, the
    table of ratios the README quotes, which is also printed); returns the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{name}.md"
    md.write_text(markdown)
    written = [md]
    if doc is not None:
        written.append(out / f"{name}.json")
        written[-1].write_text(json.dumps(doc, indent=1) + "\n")
    if summary is not None:
        written.append(out / f"{name}_summary.md")
        written[-1].write_text(summary)
        log(summary)
    log("wrote " + ", ".join(str(p) for p in written))
    return md

#: metric key → (column title, decimals). Lower is better except mode agreement.
METRICS = {
    "rmse": ("RMSE→ODE ↓", 3),
    "rmse_own": ("RMSE→own ODE ↓", 3),
    "mode_agreement": ("mode agr. ↑", 2),
    "fd_cls": ("FD_cls ↓", 2),
    "swd": ("SWD ↓", 3),
    "wall_s": ("time/run s", 2),
}


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values, decimals: int) -> str:
    if values is None:
        return "–"
    if not isinstance(values, (list, tuple)):
        return f"{values:.{decimals}f}"
    m, s = mean_std(values)
    return f"{m:.{decimals}f} ± {s:.{decimals}f}" if len(values) > 1 else f"{m:.{decimals}f}"


def metric_columns(testbed: dict) -> list[str]:
    keys = ["rmse", "mode_agreement", "fd_cls", "swd", "wall_s"]
    if any("rmse_own" in row for row in testbed["rows"]):
        keys.insert(1, "rmse_own")
    return [k for k in keys if k != "mode_agreement" or testbed["mode_agreement"]]


def _nfe_cell(nfes: list[int]) -> str:
    return str(nfes[0]) if len(set(nfes)) == 1 else fmt(nfes, 1)


def testbed_markdown(tb: dict, title: str | None = None) -> str:
    """One markdown section: caption, result rows grouped by NFE budget, then the floors."""
    keys = metric_columns(tb)
    seeds = " ".join(str(s) for s in tb["seeds"])
    lines = [
        f"### {title or tb['name']}",
        "",
        f"{tb['description']}. **σ range {tb['sigma_min']:.4g}–{tb['sigma_max']:.4g}** ({tb['range_note']}) for "
        f"every schedule unless the row says otherwise: karras/exponential span it, AYS is the SD1 table "
        f"(ComfyUI semantics). N = {tb['n_samples']} samples per seed, seeds {seeds}; mean ± std (sample std) "
        f"over seeds. Distribution metrics (FD_cls, SWD) are against the **{tb['against']} split**; RMSE"
        + (" and mode agreement are" if tb["mode_agreement"] else " is")
        + f" against the converged ODE from the same x_T ({tb['reference']}). NFE is counted by a wrapper around "
        f"the model; a 2nd-order sampler gets the most steps that fit the budget. torch threads: "
        f"{tb['threads']}, float32.",
        "",
        "| NFE | sampler | schedule | source | steps | NFE counted | " + " | ".join(METRICS[k][0] for k in keys)
        + " |",
        "|" + "---|" * (6 + len(keys)),
    ]
    for row in tb["rows"]:
        cells = [str(row["nfe_target"]), row["sampler"], row["schedule"], row["source"], str(row["steps"]),
                 _nfe_cell(row["nfe"])]
        cells += [fmt(row.get(k), METRICS[k][1]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "**Floors** (what a perfect solver / the data itself score):", "",
              "| floor | NFE | " + " | ".join(METRICS[k][0] for k in keys if k != "wall_s") + " |",
              "|" + "---|" * (1 + len(keys))]
    for floor in tb["floors"]:
        cells = [floor["name"], str(floor.get("nfe", "–"))]
        cells += [fmt(floor.get(k), METRICS[k][1]) for k in keys if k != "wall_s"]
        lines.append("| " + " | ".join(cells) + " |")
    for note in tb.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"
