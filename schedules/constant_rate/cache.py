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

from .. import safe_json as sj
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


#: A record of 256 points is ~20 KB; the velocity of the widest grid the node allows (256 points) with room.
MAX_RECORD_BYTES = 1024 * 1024
MAX_NODES = 4096
_FIX = "it is deleted and measured again"


def check_record(doc, source: str) -> dict:
    """Types, ranges and lengths of a velocity record, before the checksum or any tensor is made."""
    sj.obj(doc, source, "record", _FIX, ("format", "version", "key", "model", "settings", "velocity", "sha256"))
    if doc["format"] != FORMAT or doc["version"] != VERSION:
        raise ScheduleError(f"{source} is not a velocity record of this version; {_FIX}.")
    sj.string(doc["key"], source, "key", _FIX, 64)
    sj.string(doc["model"], source, "model", _FIX, 200)
    sj.obj(doc["settings"], source, "settings", _FIX)
    sj.string(doc["sha256"], source, "sha256", _FIX, 64)
    vel = sj.obj(doc["velocity"], source, "velocity", _FIX, ("lambda", "v"))
    for name, lo in (("lambda", -1e3), ("v", 0.0)):
        sj.array(vel[name], source, f"velocity.{name}", _FIX, 2, MAX_NODES,
                 lambda x, f, lo=lo: sj.number(x, source, f, _FIX, lo, 1e300))
    if len(vel["lambda"]) != len(vel["v"]):
        raise ScheduleError(f"{source}: velocity has {len(vel['lambda'])} nodes but {len(vel['v'])} values; {_FIX}.")
    sj.string(vel.get("measure", ""), source, "velocity.measure", _FIX, 100)
    sj.obj(vel.get("info", {}), source, "velocity.info", _FIX)
    return doc


def load_velocity(folder, key: str) -> tuple[Velocity | None, str]:
    """(velocity, "hit") for a sound record; (None, "miss") when absent; (None, "corrupt: why") after deleting a
    record that is unreadable, edited, or recorded under another key. A folder in the record's place is refused
    (ScheduleError naming it) before anything is measured, since the result could not be stored."""
    path = _path(folder, key)
    if path.is_dir():
        raise ScheduleError(f"calibration cache entry {path.name!r} is a folder, so the calibration cannot be "
                            f"stored; remove the folder {path.name!r} from models/schedule_lab_calibration.")
    if not path.exists():
        return None, "miss"
    try:
        doc = check_record(sj.read(path, "calibration record", _FIX, MAX_RECORD_BYTES),
                           f"calibration record {path.name!r}")
    except ScheduleError as e:
        return _discard(path, str(e))
    try:
        sound = doc["sha256"] == doc_hash(doc)
    except (TypeError, ValueError):
        sound = False
    if not sound:
        return _discard(path, "checksum mismatch (edited or truncated)")
    if doc["key"] != key:
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
