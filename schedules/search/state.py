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

from .. import safe_json as sj
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


#: A state of 256 candidates x 100 generations at nfe 50 is ~8 MB of JSON.
MAX_STATE_BYTES = 32 * 1024 * 1024
#: Most candidates a state can hold: population x generations at the node's maxima (256 x 100), with room.
MAX_ENTRIES = 100_000
MAX_GENES = 1000
_FIX = "delete it to start the search again"


def _genes_list(source):
    def check(v, field):
        sj.array(v, source, field, _FIX, 1, MAX_GENES,
                 lambda g, f: sj.integer(g, source, f, _FIX, 0, 10**6))
    return check


def _history_entry(source):
    def check(v, field):
        sj.obj(v, source, field, _FIX, ("generation", "best_fitness", "evaluations"))
        sj.integer(v["generation"], source, f"{field}.generation", _FIX, 0, 10**6)
        sj.number(v["best_fitness"], source, f"{field}.best_fitness", _FIX, optional=True)
        sj.integer(v["evaluations"], source, f"{field}.evaluations", _FIX, 0, 10**9)
        if "best_genes" in v:
            _genes_list(source)(v["best_genes"], f"{field}.best_genes")
        if v.get("mean_fitness") is not None:
            sj.number(v["mean_fitness"], source, f"{field}.mean_fitness", _FIX)
    return check


def _cache_entry(source):
    def check(v, field):
        sj.array(v, source, field, _FIX, 3, 3)
        _genes_list(source)(v[0], f"{field}[0]")
        sj.integer(v[1], source, f"{field}[1]", _FIX, 0, 10**6)
        sj.number(v[2], source, f"{field}[2]", _FIX, optional=True)
    return check


def check_state(doc, source: str = "search state") -> dict:
    """Return ``doc`` if it is an unmodified search state this version can read; else ScheduleError.

    Every field's type, range and length is checked before the checksum; whether the state belongs to *this*
    search (and its generation to this configuration) is checked by ``EvolutionSearch.restore``.
    """
    fix = _FIX
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        shown = doc.get("format") if isinstance(doc, dict) else None
        shown = repr(shown)[:60] if isinstance(shown, str) or shown is None else f"of type {type(shown).__name__}"
        raise ScheduleError(f"{source} is not a Schedule Lab search state (format {shown}); {fix}.")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ScheduleError(f"{source} has version {str(version)[:20]!r}; {fix}.")
    if version > STATE_VERSION:
        raise ScheduleError(f"{source} uses search-state version {version}, but this Schedule Lab reads up to "
                            f"{STATE_VERSION}; update the pack, or {fix}.")
    missing = [k for k in _FIELDS if k not in doc]
    if missing:
        raise ScheduleError(f"{source} lacks {', '.join(missing)}; {fix}.")
    sj.integer(doc["nfe"], source, "nfe", fix, 1, MAX_GENES)
    sj.integer(doc["seed"], source, "seed", fix, -(2**63), 2**64)
    sj.obj(doc["config"], source, "config", fix)
    sj.obj(doc["space"], source, "space", fix)
    sj.string(doc["fitness"], source, "fitness", fix)
    sj.integer(doc["generation"], source, "generation", fix, 0, 10**6)
    if not isinstance(doc["done"], bool):
        sj.refuse(source, "done", doc["done"], "true or false", fix)
    genes = _genes_list(source)
    sj.array(doc["population"], source, "population", fix, 0, MAX_ENTRIES, genes)
    sj.array(doc["archive"], source, "archive", fix, 0, MAX_ENTRIES, genes)
    sj.array(doc["cache"], source, "cache", fix, 0, MAX_ENTRIES, _cache_entry(source))
    sj.obj(doc["rng"], source, "rng", fix, ("bit_generator", "state"))
    sj.array(doc["history"], source, "history", fix, 0, MAX_ENTRIES, _history_entry(source))
    sj.integer(doc["evaluations"], source, "evaluations", fix, 0, 10**9)
    sj.string(doc["sha256"], source, "sha256", fix, 64)
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
    """Read and check a saved search state with the hardened reader; every problem is a ScheduleError naming the
    file (by its name) and the fix."""
    path = Path(path)
    doc = sj.read(path, "search state", _FIX, MAX_STATE_BYTES)
    return check_state(doc, f"search state {path.name!r}")
