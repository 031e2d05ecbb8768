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

import dataclasses
import hashlib
import json
import os
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from .errors import ScheduleError
from .model_kind import KINDS, RANGE_RTOL, ModelKind, convert_sigmas
from .safe_json import FileProblem, array, integer, number, obj, parse, read, refuse, string
from .validate import MAX_STEPS, validate_sigmas

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


#: Largest schedule file read: 10,001 sigmas and a 10,000-entry table are ~0.5 MB as JSON.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Ranges real models have (with room): SD sigmas 0.029-14.6, zero-terminal-SNR v-models up to ~4500, EDM 0.002-80,
#: flow 0-1; timestep tables of 1000 entries (every ComfyUI discrete model); SD3/Flux shifts 1-3.2.
MAX_SIGMA = 1e6
MAX_TIMESTEPS = 10000
MODEL_RANGES = {"sigma_data": (0.0, 100.0), "shift": (0.0, 1000.0), "multiplier": (0.0, 1e5)}
_FIX = "save the schedule again with Schedule Lab, or delete the file"


def check_model_fields(d, source: str, fix: str = _FIX) -> dict:
    """Types and ranges of a stored ``ModelKind.to_dict()`` before anything is built from it (a table of
    ``timesteps`` entries is allocated only after ``timesteps`` is known to be at most MAX_TIMESTEPS)."""
    obj(d, source, "model", fix, ("kind", "sigma_min", "sigma_max"))
    if d["kind"] not in KINDS:
        refuse(source, "model.kind", d["kind"], f"one of {', '.join(KINDS)}", fix)
    for name in ("sigma_min", "sigma_max"):
        number(d[name], source, f"model.{name}", fix, hi=MAX_SIGMA, positive=True)
    for name, (_, hi) in MODEL_RANGES.items():
        if name in d:
            number(d[name], source, f"model.{name}", fix, hi=hi, positive=True)
    table = d.get("table")
    if table is None:
        return d
    obj(table, source, "model.table", fix, ("type",))
    if table["type"] == "scaled_linear":
        obj(table, source, "model.table", fix, ("beta_start", "beta_end", "timesteps"))
        for name in ("beta_start", "beta_end"):
            number(table[name], source, f"model.table.{name}", fix, hi=1.0, positive=True)
        integer(table["timesteps"], source, "model.table.timesteps", fix, 2, MAX_TIMESTEPS)
    elif table["type"] == "explicit":
        array(table.get("sigmas"), source, "model.table.sigmas", fix, 2, MAX_TIMESTEPS,
                 lambda v, f: number(v, source, f, fix, hi=MAX_SIGMA, positive=True))
    else:
        refuse(source, "model.table.type", table["type"], "'scaled_linear' or 'explicit'", fix)
    return d


def check_doc(doc, source: str = "schedule") -> dict:
    """Return ``doc`` if it is a well-formed, unmodified, valid schedule document; else raise ScheduleError.

    ``source`` names the document in messages (load_schedule passes the file name). Every field's type and range
    is checked before the checksum, the sigmas or the model kind are computed.
    """
    if not isinstance(doc, dict):
        raise ScheduleError(f"{source} is not a JSON object, so it is not a Schedule Lab schedule; "
                            "load a file saved by Schedule Lab.")
    if doc.get("format") != FORMAT:
        shown = doc.get("format")
        shown = repr(shown)[:60] if isinstance(shown, str) or shown is None else f"of type {type(shown).__name__}"
        raise ScheduleError(f"{source} has format {shown}, not {FORMAT!r}; load only files saved by Schedule Lab.")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ScheduleError(f"{source} has version {str(version)[:20]!r}, not a whole number >= 1; "
                            "save the schedule again.")
    if version > VERSION:
        raise ScheduleError(f"{source} uses schedule format version {version}, but this Schedule Lab reads "
                            f"up to version {VERSION}; update the Schedule Lab pack to load it.")
    missing = [k for k in ("sigmas", "split", "model", "provenance", "sha256") if k not in doc]
    if missing:
        raise ScheduleError(f"{source} lacks {', '.join(missing)}; "
                            "save the schedule again with Schedule Lab.")
    array(doc["sigmas"], source, "sigmas", _FIX, 2, MAX_STEPS + 1)
    for i, v in enumerate(doc["sigmas"]):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_SIGMA:
            raise ScheduleError(f"{source} sigmas must be a list of numbers from 0 to {MAX_SIGMA:g}, but "
                                f"sigmas[{i}] is {str(v)[:30]!r}; save the schedule again.")
    if not isinstance(doc["split"], bool):
        raise ScheduleError(f"{source} has split={str(doc['split'])[:20]!r}; it must be true or false.")
    check_model_fields(doc["model"], source)
    provenance = doc["provenance"]
    if not isinstance(provenance, dict) or not isinstance(provenance.get("method"), str):
        raise ScheduleError(f"{source} provenance must be an object with a 'method' string; "
                            "save the schedule again with Schedule Lab.")
    string(provenance["method"], source, "provenance.method", _FIX, 200)
    if "params" in provenance:
        obj(provenance["params"], source, "provenance.params", _FIX)
    string(doc["sha256"], source, "sha256", _FIX, 64)
    try:
        expected = doc_hash(doc)
    except (TypeError, ValueError):
        raise ScheduleError(f"{source} holds values that are not plain JSON; "
                            "save the schedule again with Schedule Lab.") from None
    if doc["sha256"] != expected:
        raise ScheduleError(f"{source} was changed after it was saved (its sha256 does not match); "
                            "restore the original, or if the edit was deliberate, save it again "
                            "(make_schedule_doc recomputes the hash).")
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
    """Parse (with the depth and number limits of :mod:`.safe_json`) and check a document; ``source`` names it."""
    return check_doc(parse(text, source, _FIX), source)


def save_schedule(path, doc: dict) -> Path:
    """Write ``doc`` to ``path`` atomically (see :func:`atomic_write_text`)."""
    return atomic_write_text(path, dumps(doc), "schedule")


#: Mode of a new file (an existing file keeps its own): readable by the other users of the server, as ComfyUI's
#: own outputs are (``mkstemp`` alone would leave 0600 and narrow a shared 0644 file on every overwrite).
NEW_FILE_MODE = 0o644


def atomic_write_text(path, text: str, what: str = "file") -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``.

    Afterwards ``path`` holds either the complete new file or, if anything failed (or was interrupted), whatever it
    held before; the temporary file is removed on failure. The file keeps the mode of the file it replaces (a new
    one gets NEW_FILE_MODE). ``what`` names the file in errors, which give its name, not the server path.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ScheduleError(f"the folder for {what} {path.name!r} does not exist; create it first.")
    if path.is_dir():
        raise ScheduleError(f"{what} {path.name!r} cannot be written: a folder of that name is in the way; "
                            "remove or rename the folder.")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = NEW_FILE_MODE
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sl.", suffix=".tmp")
    except OSError as e:
        raise ScheduleError(f"{what} {path.name!r} cannot be written ({e.strerror}); check that the folder is "
                            "writable and has free space.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise ScheduleError(f"{what} {path.name!r} cannot be written ({e.strerror or e}); check the name, that "
                                "the folder is writable and has free space.") from None
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
    """Read and check a schedule file with the hardened reader; every problem is a ScheduleError naming the file
    (by its name, not its server path) and the fix."""
    path = Path(path)
    source = f"schedule file {path.name!r}"
    doc = read(path, "schedule file", _FIX, MAX_FILE_BYTES)
    try:
        return check_doc(doc, source)
    except FileProblem:
        raise
    except ScheduleError as e:
        raise FileProblem(str(e), path.name) from None


def adapt_to_kind(doc: dict, kind: ModelKind, *, clamp: bool = False,
                  clamp_hint: str = "pass clamp=True") -> torch.Tensor:
    """The document's sigmas for a model of ``kind``, as float64.

    When both kinds share the lambda map (eps, v and edm all have ``lambda = -log sigma``; flow models of any
    shift share theirs) the stored sigmas come back unchanged, provided they lie in ``kind``'s range (within
    RANGE_RTOL). Otherwise they are converted through lambda with ``convert_sigmas``. Values outside the
    range raise ScheduleError (saying ``clamp_hint``, e.g. the node's "enable clamp_to_model"), or with
    ``clamp=True`` are moved onto it unless that merges two steps.
    """
    check_doc(doc)
    src = doc_kind(doc)
    sigmas = doc_sigmas(doc)
    what = f"schedule {doc['provenance']['method']!r} (made for a {src.describe()})"
    if src.kind == "flow" and kind.kind == "flow":
        # a flow model's time is continuous (timestep = multiplier·σ for any σ in (0, 1]); σ_min is only the end of
        # ComfyUI's 1000-entry table, and e.g. a frozen TPDM run stops below it (docs/tpdm.md)
        positive = sigmas[sigmas > 0]
        if len(positive) and float(positive.min()) < kind.sigma_min:
            kind = dataclasses.replace(kind, sigma_min=float(positive.min()))
    try:
        out = convert_sigmas(sigmas, src, kind, clamp=clamp, clamp_hint=clamp_hint)
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


#: Names Windows reserves for devices, with or without an extension (``NUL.json`` is the device too).
WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in "123456789\u00b9\u00b2\u00b3"),
                              *(f"LPT{i}" for i in "123456789\u00b9\u00b2\u00b3")})
#: Characters Windows refuses in file names (besides control characters and the path separators).
WINDOWS_FORBIDDEN = '<>:"|?*'
#: Longest name accepted, in UTF-8 bytes: file systems allow 255, and the pack adds ".json" / ".searchstate" and
#: writes through a temporary file beside it.
MAX_NAME_BYTES = 200


def safe_schedule_name(name: str) -> str:
    """A file name for a user's schedule ``name``, with ``.json`` added if missing.

    Refuses anything that could leave the schedules folder, hide the file or not travel to another system: empty
    names, path separators, ``..``, absolute paths and drives, NUL and other control characters, a leading dot,
    the characters Windows forbids (``<>:"|?*``), Windows device names (``CON``, ``NUL``, ``COM1.json`` ...), a
    trailing dot or space, and names longer than MAX_NAME_BYTES bytes.
    """
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError("schedule name is empty; type a name such as 'my_sd15_schedule'.")
    name = name.strip()
    stem = name.split(".")[0].rstrip(" ").upper()
    shown = name if len(name) <= 60 else name[:40] + "..." + name[-10:]
    problems = [
        ("\x00" in name, "contains a NUL character"),
        ("/" in name or "\\" in name, "contains a path separator (/ or \\)"),
        (".." in name, "contains '..'"),
        (os.path.isabs(name), "is an absolute path"),
        (":" in name, "contains ':' (a drive or stream name)"),
        (any(ord(c) < 32 or ord(c) == 127 for c in name), "contains control characters"),
        (name.startswith("."), "starts with '.' (a hidden file)"),
        (any(c in WINDOWS_FORBIDDEN for c in name), f"contains one of {WINDOWS_FORBIDDEN} (not allowed on Windows)"),
        (stem in WINDOWS_RESERVED, f"is the Windows device name {stem} (such a file cannot exist on Windows)"),
        (name.endswith("."), "ends with '.' (Windows drops it)"),
        (len(name.encode("utf-8")) > MAX_NAME_BYTES, f"is longer than {MAX_NAME_BYTES} bytes"),
    ]
    for bad, why in problems:
        if bad:
            raise ScheduleError(f"schedule name {shown!r} {why}; use a plain name of letters, digits, "
                                "spaces, '-' and '_', without folders.")
    if not name.lower().endswith(SUFFIX):
        name += SUFFIX
    return name
