"""The calibration cache: measured constant-rate velocities on disk, one JSON file per (model, settings).

A record is ``{"format": "schedule-lab/velocity", "version": 1, "key", "model", "settings", "velocity",
"created", "sha256"}`` (sha256 of the canonical JSON of every other field, as in :mod:`.files`), stored as
``<folder>/<key>.json``. The key is the sha256 of the model identity and the settings that shape the measurement,
so changing steps, ξ or denoise reuses the record. Writes are atomic (temporary file, fsync, ``os.replace``);
a calibration that fails or is cancelled writes nothing; an unreadable, edited or mismatched record is deleted
and measured again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ScheduleError
from ..files import atomic_write_text, canonical_json, doc_hash
from .construct import Velocity

__all__ = ["FORMAT", "cache_key", "cached_velocity", "load_velocity", "save_velocity"]

FORMAT = "schedule-lab/velocity"
VERSION = 1
log = logging.getLogger("schedule_lab")


def cache_key(model_id: str, settings: dict) -> str:
    """Hex key of a model identity and the JSON-safe settings of a measurement."""
    if not isinstance(model_id, str) or not model_id:
        raise ScheduleError("model_id must be a non-empty string identifying the model (e.g. a weights hash).")
    try:
        blob = canonical_json({"format": FORMAT, "model": model_id, "settings": settings})
    except (TypeError, ValueError) as e:
        raise ScheduleError(f"cache settings are not JSON-safe ({e}); pass plain numbers and strings.") from None
    return hashlib.sha256(blob).hexdigest()[:40]


def _path(folder, key: str) -> Path:
    if not (isinstance(key, str) and key.isalnum()):
        raise ScheduleError(f"cache key {key!r} must be alphanumeric (use cache_key()).")
    return Path(folder) / f"{key}.json"


def save_velocity(folder, key: str, model_id: str, settings: dict, velocity: Velocity) -> Path:
    """Write the record atomically; returns its path. The folder is created if missing."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "version": VERSION, "key": key, "model": model_id, "settings": settings,
           "velocity": velocity.to_dict(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    doc["sha256"] = doc_hash(doc)
    return atomic_write_text(_path(folder, key), json.dumps(doc, allow_nan=False) + "\n", "calibration")


def load_velocity(folder, key: str) -> tuple[Velocity | None, str]:
    """(velocity, "hit") for a sound record; (None, "miss") when absent; (None, "corrupt: why") after deleting a
    record that is unreadable, edited, or recorded under another key."""
    path = _path(folder, key)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "miss"
    except (OSError, UnicodeDecodeError) as e:
        return _discard(path, f"unreadable ({e})")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        return _discard(path, f"not JSON ({e.msg})")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        return _discard(path, "not a velocity record of this version")
    try:
        sound = doc.get("sha256") == doc_hash(doc)
    except (TypeError, ValueError):
        sound = False
    if not sound:
        return _discard(path, "checksum mismatch (edited or truncated)")
    if doc.get("key") != key:
        return _discard(path, "recorded under another key")
    try:
        return Velocity.from_dict(doc["velocity"]), "hit"
    except (ScheduleError, KeyError, TypeError) as e:
        return _discard(path, f"malformed velocity ({e})")


def _discard(path: Path, why: str) -> tuple[None, str]:
    log.warning("[Schedule Lab] calibration cache entry %s is %s; discarded, measuring again", path.name, why)
    try:
        path.unlink()
    except OSError:
        pass
    return None, f"corrupt: {why}"


def cached_velocity(folder, model_id: str, settings: dict, measure: Callable[[], Velocity]
                    ) -> tuple[Velocity, str]:
    """The cached velocity of (model_id, settings), or ``measure()`` saved under it. Returns (velocity, status),
    status "hit", "miss" or "corrupt: ..." (the latter two measured). If ``measure`` raises (an error or a
    Cancel), nothing is written."""
    key = cache_key(model_id, settings)
    velocity, status = load_velocity(folder, key)
    if velocity is not None:
        return velocity, status
    velocity = measure()
    save_velocity(folder, key, model_id, settings, velocity)
    return velocity, status
