"""Named sampler + scheduler pairs that the defaults study measured as one setting (docs/defaults.md §3b, §6).

A preset is what to pick in the stock KSampler (``sampler_name``, ``scheduler``, ``steps``) or write as an A/B
Compare entry line; ``schedule-lab compare --preset NAME`` runs it beside the stock ``dpmpp_2m`` + ``karras``. Each
names the benchmark command and the results file that chose it; ``tests/unit/test_defaults_suite.py`` checks the
pair is the study's best few-step setting without a search (``results/defaults_search.json``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset:
    sampler: str  # a catalogue / KSampler sampler name
    scheduler: str  # a catalogue / KSampler scheduler name
    steps: int  # the step count it is meant for
    description: str
    source: str  # the command and file that chose it
    #: the model families (``ModelKind.family``-style names: "eps", "v", "edm", "flow") the setting was chosen for;
    #: nodes and docs say it, and the guard checks the preset only on these.
    families: tuple[str, ...] = ("eps", "v", "edm")

    def entry_line(self, label: str = "") -> str:
        """The preset as an A/B Compare ``entry_list`` line (``sampler, scheduler, steps[, label]``)."""
        return f"{self.sampler}, {self.scheduler}, {self.steps}" + (f", {label}" if label else "")


PRESETS: dict[str, Preset] = {
    "sl_few_steps": Preset(
        "sl_tada", "sl_constant_rate", 5,
        "TADA on the constant-rate list: the best few-step (4-6) setting that needs no search in the defaults "
        "study (docs/defaults.md §6, with §3's lists; eps/v/EDM now use the family tables of §10-§10b).",
        "python -m schedule_lab.lab.defaults.search (lab/benchmarks/results/defaults_search.json, "
        "best_without_search; tables in defaults_combos.md)"),
    "sl_v_few_steps": Preset(
        "dpmpp_2m", "sl_constant_rate", 5,
        "DPM-Solver++(2M) on the constant-rate list, for v-prediction models (SD2-768-v type) at 4-8 steps: the "
        "per-family rule's choice on the v model of Schedule Lab's zoo (worst 1.21x the error of ComfyUI's best "
        "sampler + scheduler pair at 4-8 steps, never worse than dpmpp_2m + karras at 4-30).",
        "python -m schedule_lab.lab.benchmarks.menu_rule --family v (lab/benchmarks/results/menu_rule.json; "
        "docs/menu.md §5c)",
        families=("v",)),
    "sl_sd1_few_steps": Preset(
        "dpmpp_2m", "sl_constant_rate", 5,
        "DPM-Solver++(2M) on the constant-rate list, for eps-prediction models (SD1.5, SDXL) at 4-8 steps: the "
        "per-family rule's choice on the eps model of Schedule Lab's zoo (worst 1.36x the error of ComfyUI's best "
        "sampler + scheduler pair at 4-8 steps, never worse than dpmpp_2m + karras at 4-30). At 5-30 steps the eps "
        "list is Karras's own (docs/defaults.md §16), so there this is the stock default itself; the gain is at 4 "
        "steps (0.75x the stock default's error).",
        "python -m schedule_lab.lab.benchmarks.menu_rule --family eps (lab/benchmarks/results/menu_rule.json; "
        "docs/menu.md §5e)",
        families=("eps",)),
    "sl_flow_few_steps": Preset(
        "uni_pc", "sl_constant_rate", 5,
        "UniPC on the constant-rate list, for SD3 / Flux (flow) models at 4-8 steps: the per-family rule's choice on "
        "the flow model of Schedule Lab's zoo at shift 1, 3 and Flux's shift (worst 2.06x the error of ComfyUI's best "
        "sampler + scheduler pair at 4-8 steps, never worse than euler + simple at 4-30). At 4-10 steps the flow "
        "list is simple's spacing (docs/defaults.md §11), so the gain over euler + simple is UniPC's.",
        "python -m schedule_lab.lab.benchmarks.menu_rule --family flow (lab/benchmarks/results/menu_rule.json; "
        "docs/menu.md §5d)",
        families=("flow",)),
}
