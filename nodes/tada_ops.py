"""What the TADA nodes say, as plain functions (no ComfyUI import; unit-tested directly)."""
from __future__ import annotations


def detail_report(detail: float, sampler_name: str, explicit: dict) -> str:
    """What the Detail Level node shows after a run."""
    if sampler_name != "sl_tada":
        return (f"Detail Level {detail:g} had no effect: this graph sampled with '{sampler_name}', not TADA. "
                "Pick 'sl_tada' in KSampler or use the TADA Sampler node.")
    if "detail" in explicit:
        return (f"Detail Level {detail:g} had no effect: the TADA Sampler node's own detail "
                f"{explicit['detail']:g} wins.")
    return f"Detail Level {detail:g} used by sl_tada."
