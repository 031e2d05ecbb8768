"""The standalone A/B job: every sampler × schedule on the bundled tiny EDM model, no ComfyUI needed.

Writes into ``--out``: ``grid.png`` (rows = sampler / schedule, columns = one noise seed each, labels drawn on the
image), ``schedules.png`` (log σ against step for every schedule shown) and ``table.md`` / ``table.json`` (steps,
counted NFE, wall time, FD_cls and SWD against the digits test split). The samplers and schedules default to our
euler and dpmpp_2m, the karras and AYS baselines, and every sampler and self-contained schedule of the pack's own
in ``solvers.catalogue`` — a catalogued method appears here without any change to this file. Every cell is one
``catalogue.run``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..benchmarks.setups import noise
from ..kernels.frechet import gaussian_stats
from ..schedules.model_kind import ModelKind
from ..solvers import catalogue
from ..testbeds.digits import load_digits_split
from ..testbeds.metrics import classifier_features, fd_cls, swd

__all__ = ["DEFAULT_SAMPLERS", "DEFAULT_SCHEDULES", "compare", "default_samplers", "default_schedules", "valid_names"]

DEFAULT_SAMPLERS = ("euler", "dpmpp_2m")
DEFAULT_SCHEDULES = ("karras", "ays")
CELL = 8 * 6  # digits are 8×8, drawn 6× with nearest-neighbour


def default_samplers() -> list[str]:
    return list(DEFAULT_SAMPLERS) + [n for n, e in catalogue.SAMPLERS.items() if e.ours]


def default_schedules() -> list[str]:
    return list(DEFAULT_SCHEDULES) + [n for n, e in catalogue.SCHEDULES.items() if e.ours and e.self_contained]


def valid_names() -> tuple[list[str], list[str]]:
    """Samplers and schedules compare can run: the catalogue's (schedules needing saved files excepted)."""
    return list(catalogue.SAMPLERS), [n for n, e in catalogue.SCHEDULES.items() if e.self_contained]


def model_kind(sigma_range: str, sigma_data: float) -> ModelKind:
    """``model``: the bundled model's own EDM range 0.002–80 (what ComfyUI's schedulers would see for it);
    ``sd1``: the SD1 VP range 0.0292–14.61 that the AYS SD1 table covers."""
    return ModelKind.edm(0.002, 80.0, sigma_data) if sigma_range == "model" else ModelKind.vp("eps")


def compare(steps: int, samplers, schedules, seed: int, columns: int, n_samples: int, out: Path,
            sigma_range: str = "model", log=print) -> dict:
    from ..testbeds.models import load_classifier, load_edm_mlp

    model, classifier = load_edm_mlp(), load_classifier()
    kind = model_kind(sigma_range, model.sigma_data)
    split = load_digits_split()
    test_stats = gaussian_stats(classifier_features(split.test, classifier))
    grid_noise = torch.cat([noise(1, seed + j) for j in range(columns)])
    batch = torch.cat([grid_noise, noise(n_samples, seed)])
    rows, cells = [], []
    log(f"compare: {len(samplers)} samplers × {len(schedules)} schedules at {steps} steps on the bundled EDM MLP "
        f"({kind.describe()}), N = {n_samples} for the metrics, {columns} grid columns from seed {seed}")
    skipped = []
    provided = bundled_tpm(model) if sigma_range == "model" else {}
    for sampler in samplers:
        for schedule in schedules:
            label = f"{sampler} / {schedule}"
            try:
                result = catalogue.run(_tpdm_floor(sampler, kind), schedule, model, batch, kind=kind, steps=steps,
                                       seed=seed, provided=provided)
            except Exception as e:  # noqa: BLE001  (show the other combinations; say why this one is missing)
                skipped.append(f"{label}: {type(e).__name__}: {e}")
                log(f"  {label:<32} SKIPPED: {type(e).__name__}: {e}")
                continue
            rows.append(_row(sampler, schedule, steps, result, split, test_stats, classifier, columns))
            cells.append(result.x0[:columns])
            r = rows[-1]
            log(f"  {label:<32} NFE {r['nfe']:>3}  FD_cls {r['fd_cls']:6.2f}  SWD {r['swd']:.3f}  {r['wall_s']:.2f} s")
    if not rows:
        raise RuntimeError("compare: every combination failed:\n" + "\n".join(skipped))
    floor = {"fd_cls": fd_cls(split.train, test_stats, classifier), "swd": swd(split.train, split.test)}
    out.mkdir(parents=True, exist_ok=True)
    labels = [(f"{r['sampler']} / {r['schedule']}", f"NFE {r['nfe']}  FD_cls {r['fd_cls']:.2f}") for r in rows]
    draw_grid(cells, labels, [f"seed {seed + j}" for j in range(columns)], out / "grid.png")
    plot_schedules({s: catalogue.schedule_sigmas(s, kind, steps) for s in schedules}, steps, kind,
                   out / "schedules.png")
    doc = {"schema": "schedule-lab/compare/v1", "model": "testbeds/weights/edm_mlp_digits", "kind": kind.describe(),
           "steps": steps, "seed": seed, "columns": columns, "n_samples": n_samples,
           "threads": torch.get_num_threads(), "against": "test split", "floor_train_vs_test": floor, "rows": rows,
           "skipped": skipped}
    (out / "table.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "table.md").write_text(table_markdown(doc))
    log(f"wrote {out / 'grid.png'}, {out / 'schedules.png'}, {out / 'table.md'}, {out / 'table.json'}")
    return doc


def bundled_tpm(model) -> dict:
    """What ``sl_tpdm`` needs on the bundled model: the TPM trained for it (testbeds/weights/tpm_edm_digits, trained
    on the model's own EDM range by ``schedule-lab tpdm train``) and the tap that reads the model's features. The
    schedule then only gives the start level and ``steps`` is the cap, as in ComfyUI's KSampler."""
    from ..solvers.tpdm.official import load_tpm
    from ..testbeds.models import WEIGHTS_DIR
    from ..testbeds.taps import tap_for

    tpm, _ = load_tpm(WEIGHTS_DIR / "tpm_edm_digits.safetensors")
    return {"tpdm": (tpm.eval(), tap_for(model).read)}


def _tpdm_floor(sampler: str, kind: ModelKind) -> str:
    """``sl_tpdm`` without options stops at the model's smallest noise level, as the Adaptive Steps Sampler node does
    in ComfyUI (and as the bundled TPM was trained), not at the sampler's generic 0.001."""
    return f"sl_tpdm(min_sigma={kind.sigma_min!r})" if sampler == "sl_tpdm" else sampler


def _row(sampler, schedule, steps, result, split, test_stats, classifier, columns) -> dict:
    samples = result.x0[columns:]
    source = "registry" if catalogue.SAMPLERS[catalogue.parse_sampler(sampler)[0]].ours else "ours"
    return {"sampler": sampler, "schedule": schedule, "source": source, "steps": steps, "nfe": result.nfe,
            "wall_s": result.wall_s, "fd_cls": fd_cls(samples, test_stats, classifier),
            "swd": swd(samples, split.test), "sigmas": [float(s) for s in result.sigmas]}


def table_markdown(doc: dict) -> str:
    lines = [
        f"Bundled EDM MLP digits model, {doc['kind']}; {doc['steps']} steps; FD_cls and SWD of N = "
        f"{doc['n_samples']} samples (seed {doc['seed']}) against the digits test split; torch threads "
        f"{doc['threads']}. Floor (train split vs test split): FD_cls {doc['floor_train_vs_test']['fd_cls']:.2f}, "
        f"SWD {doc['floor_train_vs_test']['swd']:.3f}.",
        "",
        "| sampler | schedule | source | steps | NFE | time s | FD_cls ↓ | SWD ↓ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(f"| {r['sampler']} | {r['schedule']} | {r['source']} | {r['steps']} | {r['nfe']} | "
                     f"{r['wall_s']:.2f} | {r['fd_cls']:.2f} | {r['swd']:.3f} |")
    lines += [f"\nSkipped {s}" for s in doc.get("skipped", [])]
    return "\n".join(lines) + "\n"


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def draw_grid(cells: list[torch.Tensor], labels: list[tuple[str, str]], column_titles: list[str], path: Path):
    """Rows of upscaled digits with a two-line label on the left and a title over each column."""
    from PIL import Image, ImageDraw

    font, small = _font(13), _font(11)
    pad, head = 4, 20
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = 8 + max(max(probe.textlength(a, font=font), probe.textlength(b, font=small)) for a, b in labels)
    label_w = int(label_w) + pad
    n_cols = cells[0].shape[0]
    width = label_w + n_cols * (CELL + pad) + pad
    height = head + len(cells) * (CELL + pad) + pad
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for j, title in enumerate(column_titles):
        draw.text((label_w + j * (CELL + pad) + 2, 4), title, fill="black", font=small)
    for i, (x, (line1, line2)) in enumerate(zip(cells, labels, strict=True)):
        y = head + i * (CELL + pad)
        draw.text((6, y + 8), line1, fill="black", font=font)
        draw.text((6, y + 27), line2, fill=(90, 90, 90), font=small)
        # [-1, 1] → ink dark on white (sklearn digits: 16 = ink)
        pixels = ((1 - x.reshape(-1, 8, 8).clamp(-1, 1)) * 127.5).round().to(torch.uint8).numpy()
        for j in range(n_cols):
            tile = Image.fromarray(pixels[j], mode="L").resize((CELL, CELL), Image.NEAREST)
            img.paste(tile, (label_w + j * (CELL + pad), y))
    img.save(path, optimize=True)


def plot_schedules(schedules: dict[str, torch.Tensor], steps: int, kind: ModelKind, path: Path):
    """log σ against step index (positive sigmas; the final 0 is off the log axis) for every schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    styles = ("-", "--", ":", "-.")
    for i, (name, sigmas) in enumerate(schedules.items()):
        positive = [float(s) for s in sigmas if s > 0]
        ax.plot(range(len(positive)), positive, styles[i % len(styles)], marker="o", markersize=3.5,
                linewidth=1.4, label=f"{name} ({positive[-1]:.3g}–{positive[0]:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("σ (log scale; final σ = 0 not shown)")
    ax.set_title(f"Schedules at {steps} steps; model kind: {kind.kind}, σ {kind.sigma_min:.3g}–{kind.sigma_max:.3g}",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
