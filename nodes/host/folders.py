"""The pack's folders under ComfyUI's ``models/``: ``schedules`` (schedule files) and ``schedule_lab_calibration``
(the constant-rate calibration cache), both registered with ``folder_paths`` so extra_model_paths.yaml applies."""
from __future__ import annotations

import os

from ...schedules.errors import ScheduleError
from .access import load

SCHEDULE_FOLDER = "schedules"
CALIBRATION_FOLDER = "schedule_lab_calibration"


def ensure_folder(folder: str, extensions: set[str]) -> None:
    """Register ``models/<folder>`` (only ``extensions``) with ComfyUI's folder_paths, idempotently, keeping the
    paths extra_model_paths.yaml gave it."""
    fp = load("folder_paths")
    if fp is None:
        return
    default = os.path.join(fp.models_dir, folder)
    paths = fp.folder_names_and_paths[folder][0] if folder in fp.folder_names_and_paths else []
    if default not in paths:
        paths.append(default)
    fp.folder_names_and_paths[folder] = (paths, set(extensions))


def folder_files(folder: str, extensions: set[str]) -> list[str]:
    """The file names ComfyUI lists in ``models/<folder>`` (empty without folder_paths)."""
    fp = load("folder_paths")
    if fp is None:
        return []
    ensure_folder(folder, extensions)
    return fp.get_filename_list(folder)


def read_path(folder: str, extensions: set[str], name: str, input_name: str, what: str, hint: str) -> str:
    """Full path of an existing file, found only inside ComfyUI's ``folder`` paths; else a ScheduleError naming
    ``input_name`` and saying which file to put where."""
    fp = load("folder_paths")
    ensure_folder(folder, extensions)
    path = fp.get_full_path(folder, name) if fp else None
    if path is None:
        raise ScheduleError(f"{input_name}: " + missing_file_message(folder, name, what, hint))
    return path


def missing_message(read, name) -> str | None:
    """``read(name)``'s missing-file message, or None when the file is there (validation before a run)."""
    try:
        read(name)
    except ScheduleError as e:
        return str(e)
    return None


SCHEDULE_EXTENSIONS = {".json"}


def ensure_schedule_folder() -> None:
    """Register ``models/schedules`` (extensions: .json) with ComfyUI's folder_paths, idempotently."""
    ensure_folder(SCHEDULE_FOLDER, SCHEDULE_EXTENSIONS)


def schedule_files() -> list[str]:
    return folder_files(SCHEDULE_FOLDER, SCHEDULE_EXTENSIONS)


#: What to do about a missing schedule file (Load Schedule / Searched Steps / the plot route).
SCHEDULE_HINT = ("Save Schedule writes such files (Timestep Search too); or copy the .json file there.")


def missing_file_message(folder: str, name: str, what: str, hint: str) -> str:
    """Which file to put where: ``models/<folder>/<name>``, the folder this ComfyUI actually reads first (it may be
    set by extra_model_paths.yaml), and how to get the file. Used by the loaders' validation and at run time."""
    fp = load("folder_paths")
    where = ""
    try:
        folders = fp.get_folder_paths(folder) if fp is not None else []
    except Exception:  # noqa: BLE001 - the message must never fail
        folders = []
    if folders:
        where = f" (here: {os.path.join(folders[0], str(name))})"
    return (f"no file named {name!r} in models/{folder}: put {what} at ComfyUI/models/{folder}/{name}{where}, "
            f"then refresh the page (press R). {hint}")


def schedule_read_path(name: str) -> str:
    """Full path of an existing schedule file, found only inside ComfyUI's schedule folders."""
    return read_path(SCHEDULE_FOLDER, SCHEDULE_EXTENSIONS, name, "schedule", "the schedule file (.json)",
                     SCHEDULE_HINT)


def schedule_missing(name) -> str | None:
    """The missing-file message for a schedule name, or None when the file is there (validation before a run)."""
    return missing_message(schedule_read_path, name)


def saved_schedule_paths() -> list[tuple[str, str]]:
    """``(name, path)`` of every schedule file, what catalogue entries with a ``"files"`` need get."""
    return [(name, schedule_read_path(name)) for name in schedule_files()]


def schedule_write_dir() -> str:
    """The first (default) schedule folder, created if missing."""
    fp = load("folder_paths")
    if fp is None:
        raise ScheduleError("schedule: ComfyUI's folder_paths is unavailable; cannot save schedules")
    ensure_schedule_folder()
    directory = fp.get_folder_paths(SCHEDULE_FOLDER)[0]
    os.makedirs(directory, exist_ok=True)
    return directory


def calibration_dir() -> str:
    """Folder of the calibration cache: ``models/schedule_lab_calibration``, or the last path configured for
    ``schedule_lab_calibration`` in extra_model_paths.yaml; created if missing."""
    fp = load("folder_paths")
    if fp is None:
        raise ScheduleError("calibration cache: ComfyUI's folder_paths is unavailable; update ComfyUI")
    if CALIBRATION_FOLDER not in fp.folder_names_and_paths:
        fp.folder_names_and_paths[CALIBRATION_FOLDER] = ([os.path.join(fp.models_dir, CALIBRATION_FOLDER)],
                                                        {".json"})
    directory = fp.get_folder_paths(CALIBRATION_FOLDER)[-1]
    os.makedirs(directory, exist_ok=True)
    return directory
