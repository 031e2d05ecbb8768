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
        "study, and the best of all rows on the natural-image UNet at 4-5 steps.",
        "python -m schedule_lab.lab.defaults.search (lab/benchmarks/results/defaults_search.json, "
        "best_without_search; tables in defaults_combos.md)"),
}
