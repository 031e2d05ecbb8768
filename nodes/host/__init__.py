"""The host adapter: everything of the pack that touches ComfyUI, split by concern.

* :mod:`.access` — the only module that imports ComfyUI (lazily, by name), ``COMPAT`` (every touch point),
  the one-time drift warnings, the V3 node API;
* :mod:`.kinds` — ``model_sampling`` → :class:`ModelKind`;
* :mod:`.registration` — our names in the KSampler lists (in place, append-only, idempotent);
* :mod:`.patches` — settings carried on a MODEL clone for the dropdown entries;
* :mod:`.folders` — ``models/schedules`` and the calibration cache folder;
* :mod:`.guider` — running pack code inside ``guider.sample``;
* :mod:`.fingerprints` — model / guider identity for the calibration cache;
* :mod:`.progress` — progress bars, Cancel, text on a node;
* :mod:`.plots` — model-family presets, ComfyUI's scheduler table and the HTTP route hook for the live plots;
* :mod:`.cells` — A/B Compare cells sampled inside ``guider.sample`` through the catalogue's ``run``;
* :mod:`.tpdm` — TPDM: ``models/tpm``, the model family and its feature taps (Apply TPM).

Node modules use the names re-exported here (``host.model_kind_of(model)``).
"""
from __future__ import annotations

from .access import COMPAT, IO_MEMBERS, UI_MEMBERS, _warned, comfy_version, definable_nodes, log, v3_api, warn_once
from .cells import cell_sampler, model_velocity, sample_cell, sampler_names, scheduler_sigmas_for
from .fingerprints import guider_fingerprint, model_fingerprint
from .folders import (
    CALIBRATION_FOLDER,
    SCHEDULE_FOLDER,
    calibration_dir,
    ensure_schedule_folder,
    missing_file_message,
    saved_schedule_paths,
    schedule_files,
    schedule_missing,
    schedule_read_path,
    schedule_write_dir,
)
from .guider import (
    calibrate_with_guider,
    check_latent_fits,
    latent_to_model_space,
    run_with_guider,
    sampler_function,
    sampler_name,
)
from .kinds import KNOWN_SAMPLING, REFUSED_SAMPLING, model_kind_from_sampling, model_kind_in_sampler, model_kind_of
from .patches import (
    SETTINGS_KEY,
    attach_model_setting,
    model_settings_of,
    pack_settings,
    with_model_setting,
    with_settings,
)
from .plots import FAMILIES, add_get_route, json_response, model_sampling_preset, scheduler_names, stock_sigmas
from .progress import Progress, check_interrupted, show_text
from .registration import (
    comfy_sampler,
    discards_penultimate,
    host_provided,
    register_all,
    register_samplers,
    register_schedulers,
    sampler_object,
    stock_sampler_object,
)
from .tpdm import apply_tpm, ensure_tpm_folder, family_of, tpm_files, tpm_missing, tpm_read_path

__all__ = [
    "FAMILIES", "IO_MEMBERS", "KNOWN_SAMPLING", "REFUSED_SAMPLING", "UI_MEMBERS", "check_interrupted", "sampler_name",
    "definable_nodes", "CALIBRATION_FOLDER", "COMPAT", "Progress", "SCHEDULE_FOLDER", "apply_tpm", "ensure_tpm_folder",
    "family_of", "tpm_files", "tpm_missing", "tpm_read_path", "schedule_missing", "missing_file_message",
    "SETTINGS_KEY", "_warned",
    "attach_model_setting",
    "calibrate_with_guider", "calibration_dir", "check_latent_fits", "comfy_sampler", "comfy_version", "host_provided",
    "ensure_schedule_folder", "guider_fingerprint", "latent_to_model_space", "log", "model_fingerprint",
    "model_kind_from_sampling", "model_kind_in_sampler", "model_kind_of", "model_settings_of", "pack_settings",
    "register_all", "register_samplers", "register_schedulers", "run_with_guider", "sampler_function",
    "sampler_object", "saved_schedule_paths", "schedule_files", "schedule_read_path", "schedule_write_dir",
    "show_text", "v3_api", "warn_once", "with_model_setting", "with_settings",
    "add_get_route", "cell_sampler", "json_response", "model_sampling_preset", "sample_cell",
    "sampler_names", "scheduler_names", "scheduler_sigmas_for", "stock_sigmas", "model_velocity",
    "discards_penultimate", "stock_sampler_object",
]
