"""What the Few-Step Preset node does, as plain functions (no ComfyUI import; unit-tested directly).

A preset (``solvers/presets.py``) is a sampler + scheduler + step count that a benchmark command chose for some model
families. The node gives it as SAMPLER + SIGMAS for SamplerCustom / SamplerCustomAdvanced, so the best few-step
setting is one choice; ``"auto"`` picks the preset chosen for the connected MODEL's family.

Decision: a preset used on a family it was not chosen for is an **error naming the input**, not a warning. A
preset's only claim is "measured best for these families"; on another family it was measured to lose
(``sl_few_steps``, sl_tada + sl_constant_rate, on the flow model at 4 steps: 2.86× the menu's best pair's FD_patch,
docs/menu.md §4), and a setting that loses to the family's stock default is the defect the pack exists to avoid.
An artist who wants to try the pair anyway picks the same sampler and scheduler by hand (KSampler, or
KSamplerSelect + Schedule Lab Scheduler); the error says so.
"""
from __future__ import annotations

from ..schedules.errors import ScheduleError
from ..solvers.presets import PRESETS, Preset
from . import registry

AUTO = "auto"

#: Family (``ModelKind.kind``, the names ``Preset.families`` uses) → what an artist calls it.
FAMILY_NAMES = {"eps": "ε-prediction (SD1.5, SDXL)", "v": "v-prediction (SD2.x 768-v, v-pred SDXL finetunes)",
                "edm": "EDM (Playground v2.5, EDM-type finetunes)", "flow": "rectified flow (SD3, SD3.5, Flux)"}

SHORT_NAMES = {"eps": "ε", "v": "v", "edm": "EDM", "flow": "flow"}


def family_text(families) -> str:
    return ", ".join(FAMILY_NAMES.get(f, f) for f in families)


def preset_choices() -> list[str]:
    """The node's dropdown: ``auto`` first, then every preset by name (PRESETS order)."""
    return [AUTO, *PRESETS]


def preset_line(name: str, preset: Preset) -> str:
    """One preset for tooltips and the node's text: the pair, its steps, the families and the command that chose it."""
    return (f"{name}: {preset.sampler} + {preset.scheduler}, {preset.steps} steps; chosen for "
            f"{family_text(preset.families)} models by {preset.source}. {preset.description}")


def preset_tooltip() -> str:
    lines = [f"{AUTO}: the preset chosen for the connected model's family (an error names the family when there is "
             "none)."]
    return "\n".join(lines + [preset_line(n, p) for n, p in PRESETS.items()])


def presets_using(name: str) -> list[str]:
    """Presets whose sampler or scheduler is catalogue entry ``name``, as one line each (the sl_ entries' tooltips
    say for which family a setting with them was chosen)."""
    return [f"preset {n} ({p.sampler} + {p.scheduler}, {p.steps} steps) was chosen for {family_text(p.families)} "
            f"models" for n, p in PRESETS.items() if name in (p.sampler, p.scheduler)]


def with_presets(name: str, description: str) -> str:
    """``description`` of catalogue entry ``name`` with the families its presets were chosen for."""
    used = presets_using(name)
    return description + (" " + "; ".join(used) + "." if used else "")


def resolve_preset(choice: str, family: str, steps: int = 0) -> tuple[str, Preset]:
    """The preset the node runs for a MODEL of ``family``: ``choice`` by name, or ``auto``'s pick among the presets
    chosen for this family: the one chosen at the step count nearest ``steps`` (0: any step count); among equals the
    one chosen for the fewest families (a per-family rule's preset, measured on this family's model, before a
    preset chosen across families), then PRESETS order. Errors name the ``preset`` input, the family and the fix."""
    for_family = sorted((n for n, p in PRESETS.items() if family in p.families),  # stable: PRESETS order last
                        key=lambda n: (abs(PRESETS[n].steps - steps) if steps > 0 else 0, len(PRESETS[n].families)))
    if choice == AUTO:
        if not for_family:
            others = "; ".join(f"{n} ({family_text(p.families)})" for n, p in PRESETS.items())
            raise ScheduleError(f"preset: 'auto' found no preset chosen for {family_text([family])} models (presets: "
                                f"{others}); use the family's stock default in KSampler, or pick a preset by name "
                                "only for a model of its family")
        return for_family[0], PRESETS[for_family[0]]
    if choice not in PRESETS:
        raise ScheduleError(f"preset: unknown name {choice!r}; choose one of {', '.join(preset_choices())}")
    preset = PRESETS[choice]
    if family not in preset.families:
        alternative = (f"'auto' picks {for_family[0]} for this model" if for_family
                       else "no preset was chosen for this family yet")
        raise ScheduleError(f"preset: {choice} was chosen for {family_text(preset.families)} models, and the "
                            f"connected model is {family_text([family])}; {alternative}. To try the pair anyway, "
                            f"pick sampler {preset.sampler} and scheduler {preset.scheduler} by hand (KSampler, or "
                            "KSamplerSelect + Schedule Lab Scheduler)")
    return choice, preset


def preset_steps(preset: Preset, steps: int) -> int:
    """``steps`` 0 = the preset's own step count."""
    if steps < 0:
        raise ScheduleError(f"steps: {steps} is negative; 0 uses the preset's own {preset.steps} steps")
    return preset.steps if steps == 0 else int(steps)


def is_pack_name(name: str, what: str) -> bool:
    """True for a pack (``sl_``) sampler or scheduler of the dropdowns; False for a stock ComfyUI name."""
    return name in (registry.DROPDOWN_SAMPLERS if what == "sampler" else registry.DROPDOWN_SCHEDULERS)


def preset_report(name: str, preset: Preset, family: str, steps: int, auto: bool) -> str:
    """What the node shows after a run (short: it sits on the node)."""
    how = "auto picked" if auto else "preset"
    at = f"{steps} steps" + ("" if steps == preset.steps else f" (chosen at {preset.steps})")
    chosen = ", ".join(SHORT_NAMES.get(f, f) for f in preset.families)
    return (f"{how} {name} for this {family_text([family])} model: {preset.sampler} + {preset.scheduler}, {at}. "
            f"Chosen for {chosen} models by {preset.source.split(' (')[0]}.")
