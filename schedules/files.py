"""Schedule files: the versioned JSON format every method uses to share a schedule.

A document is a JSON object::

    {"format": "schedule-lab/schedule", "version": 1,
     "sigmas": [...], "split": false, "model": ModelKind.to_dict(),
     "provenance": {"method": ..., "params": {...}, "pack_version": ..., "created": ISO-8601 UTC time},
     "sha256": hex digest of the canonical JSON of every other field}

Canonical JSON is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` as UTF-8 bytes;
the hash catches edits and truncation (it is a checksum, not a signature).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from .errors import ScheduleError
from .model_kind import RANGE_RTOL, ModelKind, convert_sigmas
from .validate import validate_sigmas

FORMAT = "schedule-lab/schedule"
VERSION = 1
SUFFIX = ".json"


def canonical_json(obj) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def doc_hash(doc: dict) -> str:
    """sha256 of the canonical JSON of ``doc`` without its ``sha256`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in doc.items() if k != "sha256"})).hexdigest()


def make_schedule_doc(sigmas, kind: ModelKind, method: str, params: dict, pack_version: str, *,
                      split: bool = False, created: str | None = None) -> dict:
    """Build a hashed schedule document; ``params`` must be JSON-safe (no tensors, NaN or inf)."""
    s = validate_sigmas(sigmas, "sigmas", split=split)
    if not isinstance(method, str) or not method:
        raise ScheduleError(f"method={method!r} must be a non-empty string naming how the schedule was made.")
    if not isinstance(params, dict):
        raise ScheduleError(f"params must be a dict of the method's settings, got {type(params).__name__}.")
    try:
        params = json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ScheduleError(f"params for {method!r} are not JSON-safe ({e}); pass plain numbers, strings, "
                            "lists and dicts (no tensors, NaN or inf).") from None
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "sigmas": [float(v) for v in s.tolist()],
        "split": bool(split),
        "model": kind.to_dict(),
        "provenance": {
            "method": method,
            "params": params,
            "pack_version": str(pack_version),
            "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    doc["sha256"] = doc_hash(doc)
    return doc


def check_doc(doc, source: str = "schedule") -> dict:
    """Return ``doc`` if it is a well-formed, unmodified, valid schedule document; else raise ScheduleError.

    ``source`` names the document in messages (load_schedule passes the file name).
    """
    if not isinstance(doc, dict):
        raise ScheduleError(f"{source} is not a JSON object, so it is not a Schedule Lab schedule; "
                            "load a file saved by Schedule Lab.")
    if doc.get("format") != FORMAT:
        raise ScheduleError(f"{source} has format {doc.get('format')!r}, not {FORMAT!r}; "
                            "load only files saved by Schedule Lab.")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ScheduleError(f"{source} has version {version!r}, not a whole number >= 1; "
                            "save the schedule again.")
    if version > VERSION:
        raise ScheduleError(f"{source} uses schedule format version {version}, but this Schedule Lab reads "
                            f"up to version {VERSION}; update the Schedule Lab pack to load it.")
    missing = [k for k in ("sigmas", "split", "model", "provenance", "sha256") if k not in doc]
    if missing:
        raise ScheduleError(f"{source} lacks {', '.join(missing)}; "
                            "save the schedule again with Schedule Lab.")
    try:
        expected = doc_hash(doc)
    except (TypeError, ValueError):
        raise ScheduleError(f"{source} holds values that are not plain JSON; "
                            "save the schedule again with Schedule Lab.") from None
    if doc["sha256"] != expected:
        raise ScheduleError(f"{source} was changed after it was saved (its sha256 does not match); "
                            "restore the original, or if the edit was deliberate, save it again "
                            "(make_schedule_doc recomputes the hash).")
    if not isinstance(doc["split"], bool):
        raise ScheduleError(f"{source} has split={doc['split']!r}; it must be true or false.")
    provenance = doc["provenance"]
    if not isinstance(provenance, dict) or not isinstance(provenance.get("method"), str):
        raise ScheduleError(f"{source} provenance must be an object with a 'method' string; "
                            "save the schedule again with Schedule Lab.")
    numbers = isinstance(doc["sigmas"], list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in doc["sigmas"]
    )
    if not numbers:
        raise ScheduleError(f"{source} sigmas must be a list of numbers; save the schedule again.")
    validate_sigmas(doc["sigmas"], f"{source} sigmas", split=doc["split"])
    try:
        ModelKind.from_dict(doc["model"])
    except ScheduleError as e:
        raise ScheduleError(f"{source}: {e}") from None
    return doc


def doc_sigmas(doc: dict) -> torch.Tensor:
    """The document's sigmas as a float64 tensor."""
    return torch.tensor(doc["sigmas"], dtype=torch.float64)


def doc_kind(doc: dict) -> ModelKind:
    """The model kind the document's sigmas were made for."""
    return ModelKind.from_dict(doc["model"])


def dumps(doc: dict) -> str:
    """Check ``doc`` and serialise it as indented JSON (the hash does not depend on the layout)."""
    check_doc(doc)
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def loads(text: str, source: str = "schedule") -> dict:
    """Parse and check a document; ``source`` names it in error messages."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScheduleError(f"{source} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                            "restore the original file or save the schedule again.") from None
    return check_doc(doc, source)


def save_schedule(path, doc: dict) -> Path:
    """Write ``doc`` to ``path`` atomically (see :func:`atomic_write_text`)."""
    return atomic_write_text(path, dumps(doc), "schedule")


def atomic_write_text(path, text: str, what: str = "file") -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``.

    Afterwards ``path`` holds either the complete new file or, if anything failed (or was interrupted), whatever it
    held before; the temporary file is removed on failure. ``what`` names the file in the error for a missing folder.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ScheduleError(f"folder {str(folder)!r} for {what} {path.name!r} does not exist; create it first.")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable on POSIX; a no-op where folders cannot be opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_schedule(path) -> dict:
    """Read and check a schedule file; every problem is a ScheduleError naming the file."""
    path = Path(path)
    source = f"schedule file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScheduleError(f"{source} does not exist; check the name and the folder.") from None
    except UnicodeDecodeError:
        raise ScheduleError(f"{source} is not UTF-8 text, so it is not a Schedule Lab schedule; "
                            "load a file saved by Schedule Lab.") from None
    except OSError as e:
        raise ScheduleError(f"{source} cannot be read ({e.strerror}); check that it is a readable file.") \
            from None
    return loads(text, source)


def adapt_to_kind(doc: dict, kind: ModelKind, *, clamp: bool = False) -> torch.Tensor:
    """The document's sigmas for a model of ``kind``, as float64.

    When both kinds share the lambda map (eps, v and edm all have ``lambda = -log sigma``; flow models of any
    shift share theirs) the stored sigmas come back unchanged, provided they lie in ``kind``'s range (within
    RANGE_RTOL). Otherwise they are converted through lambda with ``convert_sigmas``. Values outside the
    range raise ScheduleError, or with ``clamp=True`` are moved onto it unless that merges two steps.
    """
    check_doc(doc)
    src = doc_kind(doc)
    sigmas = doc_sigmas(doc)
    what = f"schedule {doc['provenance']['method']!r} (made for a {src.describe()})"
    try:
        out = convert_sigmas(sigmas, src, kind, clamp=clamp)
    except ScheduleError as e:
        raise ScheduleError(f"{what} does not fit this {kind.describe()}: {e}") from None
    if (src.kind == "flow") == (kind.kind == "flow"):  # same lambda map: keep stored values bit for bit
        lo, hi = kind.sigma_min * (1 - RANGE_RTOL), kind.sigma_max * (1 + RANGE_RTOL)
        out = torch.where((sigmas == 0) | ((sigmas >= lo) & (sigmas <= hi)), sigmas, out)
    try:
        validate_sigmas(out, "adapted sigmas", split=doc["split"])
    except ScheduleError:
        raise ScheduleError(f"{what}, clamped onto this {kind.describe()}, has several steps outside its "
                            "range that merge into one; use a schedule made for this model.") from None
    return out


def safe_schedule_name(name: str) -> str:
    """A file name for a user's schedule ``name``, with ``.json`` added if missing.

    Refuses anything that could leave the schedules folder or hide the file: empty names, path separators,
    ``..``, absolute paths and drives, ``:``, NUL and other control characters, a leading dot.
    """
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError("schedule name is empty; type a name such as 'my_sd15_schedule'.")
    name = name.strip()
    problems = [
        ("\x00" in name, "contains a NUL character"),
        ("/" in name or "\\" in name, "contains a path separator (/ or \\)"),
        (".." in name, "contains '..'"),
        (os.path.isabs(name), "is an absolute path"),
        (":" in name, "contains ':' (a drive or stream name)"),
        (any(ord(c) < 32 or ord(c) == 127 for c in name), "contains control characters"),
        (name.startswith("."), "starts with '.' (a hidden file)"),
    ]
    for bad, why in problems:
        if bad:
            raise ScheduleError(f"schedule name {name!r} {why}; use a plain name of letters, digits, "
                                "spaces, '-' and '_', without folders.")
    if not name.lower().endswith(SUFFIX):
        name += SUFFIX
    return name
