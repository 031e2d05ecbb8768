"""Sigma core (pure torch/numpy): model kinds and conversions, validation, baseline schedules, resampling and
schedule files. Never imports ComfyUI; see docs/architecture.md.
"""
from .baseline import AYS_TABLES, ays, ays_noise_levels, exponential, karras, simple
from .errors import ScheduleError
from .files import (
    adapt_to_kind,
    check_doc,
    doc_hash,
    doc_kind,
    doc_sigmas,
    dumps,
    load_schedule,
    loads,
    make_schedule_doc,
    safe_schedule_name,
    save_schedule,
)
from .model_kind import KINDS, RANGE_RTOL, ModelKind, convert_sigmas, flow_shift, scaled_linear_sigmas
from .resample import loglinear_interp, loglinear_resample, truncate_for_denoise
from .validate import MAX_STEPS, validate_denoise, validate_sigmas, validate_steps

__all__ = [
    "AYS_TABLES", "KINDS", "MAX_STEPS", "RANGE_RTOL", "ModelKind", "ScheduleError",
    "adapt_to_kind", "ays", "ays_noise_levels", "check_doc", "convert_sigmas", "doc_hash", "doc_kind",
    "doc_sigmas", "dumps", "exponential", "flow_shift", "karras", "load_schedule", "loads",
    "loglinear_interp", "loglinear_resample", "make_schedule_doc", "safe_schedule_name", "save_schedule",
    "scaled_linear_sigmas", "simple", "truncate_for_denoise",
    "validate_denoise", "validate_sigmas", "validate_steps",
]
