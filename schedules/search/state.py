"""Saved search state: a versioned, hashed JSON document, like a schedule file (``files.py``).

    {"format": "schedule-lab/search-state", "version": 1, "space": ..., "nfe": ..., "seed": ..., "config": ...,
     "fitness": label, "generation": g, "done": bool, "population": [[...]], "archive": [[...]],
     "cache": [[genes, draw, value|null]], "rng": PCG64 state, "history": [...], "evaluations": n,
     "sha256": hex digest of the canonical JSON of every other field}

Anything edited, truncated, from a newer version or not JSON is refused with a ScheduleError that names the file
and says to delete it (the search then starts again).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ScheduleError
from ..files import atomic_write_text, doc_hash

__all__ = ["STATE_FORMAT", "STATE_VERSION", "check_state", "load_state", "make_state_doc", "save_state"]

STATE_FORMAT = "schedule-lab/search-state"
STATE_VERSION = 1
_FIELDS = ("space", "nfe", "seed", "config", "fitness", "generation", "done", "population", "archive", "cache",
           "rng", "history", "evaluations", "sha256")


def make_state_doc(fields: dict) -> dict:
    doc = {"format": STATE_FORMAT, "version": STATE_VERSION, **fields}
    try:
        doc = json.loads(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ScheduleError(f"search state is not JSON-safe ({e}); this is a bug, please report it.") from None
    doc["sha256"] = doc_hash(doc)
    return doc


def check_state(doc, source: str = "search state") -> dict:
    """Return ``doc`` if it is an unmodified search state this version can read; else ScheduleError."""
    fix = "delete it to start the search again"
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise ScheduleError(f"{source} is not a Schedule Lab search state (format "
                            f"{doc.get('format') if isinstance(doc, dict) else None!r}); {fix}.")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ScheduleError(f"{source} has version {version!r}; {fix}.")
    if version > STATE_VERSION:
        raise ScheduleError(f"{source} uses search-state version {version}, but this Schedule Lab reads up to "
                            f"{STATE_VERSION}; update the pack, or {fix}.")
    missing = [k for k in _FIELDS if k not in doc]
    if missing:
        raise ScheduleError(f"{source} lacks {', '.join(missing)}; {fix}.")
    try:
        expected = doc_hash(doc)
    except (TypeError, ValueError):
        raise ScheduleError(f"{source} holds values that are not plain JSON; {fix}.") from None
    if doc["sha256"] != expected:
        raise ScheduleError(f"{source} was changed or damaged after it was saved (its sha256 does not match); "
                            f"{fix}.")
    return doc


def save_state(path, doc: dict) -> Path:
    """Write ``doc`` atomically (temporary file in the same folder, fsync, ``os.replace``)."""
    path = Path(path)
    check_state(doc)
    return atomic_write_text(path, json.dumps(doc, allow_nan=False) + "\n", "search state")


def load_state(path) -> dict:
    """Read and check a saved search state; every problem is a ScheduleError naming the file."""
    path = Path(path)
    source = f"search state {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScheduleError(f"{source} does not exist; start a new search or check the name.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScheduleError(f"{source} cannot be read ({e}); delete it to start the search again.") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScheduleError(f"{source} is not valid JSON ({e.msg} at line {e.lineno}); it is damaged, delete it "
                            "to start the search again.") from None
    return check_state(doc, source)
