"""The one hardened reader for every JSON file the pack reads (schedule files, search states, calibration records).

Files travel between people, so a file is untrusted input. Before anything is built from it:

1. its size is capped (``max_bytes``) before it is read into memory;
2. its nesting depth is counted on the raw text (strings removed) before ``json.loads`` runs, so deep nesting
   cannot reach Python's recursion limit;
3. the parser refuses NaN / Infinity, integers longer than ``MAX_INT_DIGITS`` digits (Python's own 4300-digit limit
   and float overflow are never reached) and number literals longer than ``MAX_NUMBER_CHARS``;
4. the caller checks every field's type and range with :func:`number`, :func:`integer`, :func:`string`,
   :func:`array` and :func:`obj` (list lengths included) *before* allocating anything from it.

Every failure is a :class:`ScheduleError` that names the file by its name (never the full server path) and says
how to fix it. :func:`scan` reads many files and skips a bad one with one warning naming it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from itertools import accumulate
from pathlib import Path

from .errors import ScheduleError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "FileProblem", "array", "digest", "integer", "number", "obj", "parse",
           "read", "refuse", "scan", "string"]

log = logging.getLogger("schedule_lab")

#: Deepest nesting any pack file uses is 5 (search state history entries); 32 leaves room for user params.
MAX_DEPTH = 32
#: Longest integer any pack file holds: a PCG64 state (128-bit, 39 digits).
MAX_INT_DIGITS = 40
#: Longest float literal json.dumps writes is ~24 characters ("-1.2345678901234567e-308").
MAX_NUMBER_CHARS = 64

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class FileProblem(ScheduleError):
    """A file that cannot be used; ``name`` is its file name (for skip warnings)."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


def _nesting_depth(text: str) -> int:
    marks = _BRACKETS.findall(_STRING.sub("", text))
    if not marks:
        return 0
    return max(accumulate(1 if m in "[{" else -1 for m in marks))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS} are read)")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number written with {len(text)} characters (at most {MAX_NUMBER_CHARS} are read)")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is too large for a float")
    return value


def parse(text: str, source: str, fix: str):
    """``json.loads`` with the depth and number limits; ``source`` names the file, ``fix`` says what to do."""
    depth = _nesting_depth(text)
    if depth > MAX_DEPTH:
        raise FileProblem(f"{source} is nested {depth} levels deep (Schedule Lab files use at most {MAX_DEPTH}); "
                          f"it is not a Schedule Lab file: {fix}.")
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant)
    except json.JSONDecodeError as e:
        raise FileProblem(f"{source} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {fix}.") \
            from None
    except (ValueError, RecursionError) as e:
        raise FileProblem(f"{source} holds {e}; it is not a Schedule Lab file: {fix}.") from None


def read(path, what: str, fix: str, max_bytes: int):
    """Parse the JSON file at ``path`` with every limit; errors name it as ``<what> '<file name>'``."""
    path = Path(path)
    source = f"{what} {path.name!r}"
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise FileProblem(f"{source} is {size:,} bytes, above the {max_bytes:,} bytes a {what} can have; "
                                  f"{fix}.", path.name)
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise FileProblem(f"{source} does not exist; check the name and the folder.", path.name) from None
    except IsADirectoryError:
        raise FileProblem(f"{source} is a folder, not a file; remove or rename the folder.", path.name) from None
    except PermissionError:
        raise FileProblem(f"{source} cannot be read (permission denied); make it readable.", path.name) from None
    except OSError as e:
        raise FileProblem(f"{source} cannot be read ({e.strerror}); check that it is a readable file.",
                          path.name) from None
    if len(raw) > max_bytes:  # grew while we read it
        raise FileProblem(f"{source} is above the {max_bytes:,} bytes a {what} can have; {fix}.", path.name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FileProblem(f"{source} is not UTF-8 text, so it is not a Schedule Lab file; {fix}.", path.name) \
            from None
    try:
        return parse(text, source, fix)
    except FileProblem as e:
        e.name = path.name
        raise


def digest(path, max_bytes: int) -> str:
    """sha256 of a file's bytes (at most ``max_bytes`` are hashed; the size is hashed too), for caches that must
    notice a rewritten file; errors are FileProblems naming the file."""
    import hashlib

    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h = hashlib.sha256(str(size).encode())
            h.update(f.read(max_bytes))
    except OSError as e:
        raise FileProblem(f"file {path.name!r} cannot be read ({e.strerror}); check the name.", path.name) from None
    return h.hexdigest()


# -- schema checks: each raises ScheduleError naming the file, the field and the fix --------------------------------

def refuse(source: str, field: str, value, want: str, fix: str):
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise ScheduleError(f"{source}: {field} is {shown}, but it must be {want}; {fix}.")


def obj(value, source: str, field: str, fix: str, keys: Iterable[str] = ()) -> dict:
    """``value`` if it is a JSON object holding every one of ``keys``."""
    if not isinstance(value, dict):
        refuse(source, field, value, "an object", fix)
    missing = [k for k in keys if k not in value]
    if missing:
        raise ScheduleError(f"{source}: {field} lacks {', '.join(missing)}; {fix}.")
    return value


def number(value, source: str, field: str, fix: str, lo: float = -math.inf, hi: float = math.inf, *,
           positive: bool = False, optional: bool = False):
    """``value`` as a float in ``[lo, hi]`` (``> 0`` with ``positive``); None passes when ``optional``."""
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            f = float(value)
        except OverflowError:
            ok = False
        else:
            ok = math.isfinite(f) and lo <= f <= hi and (f > 0 or not positive)
    if not ok:
        low = "> 0" if positive else (f">= {lo:g}" if lo > -math.inf else "")
        high = f"<= {hi:g}" if hi < math.inf else ""
        refuse(source, field, value, " and ".join(x for x in ("a finite number", low, high) if x), fix)
    return float(value)


def integer(value, source: str, field: str, fix: str, lo: int, hi: int) -> int:
    """``value`` if it is a whole number (not a bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        refuse(source, field, value, f"a whole number from {lo} to {hi}", fix)
    return value


def string(value, source: str, field: str, fix: str, max_len: int = 1000, optional: bool = False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        refuse(source, field, value, f"a text of at most {max_len} characters", fix)
    return value


def array(value, source: str, field: str, fix: str, lo: int, hi: int,
          item: Callable[[object, str], object] | None = None) -> list:
    """``value`` if it is a list of ``lo`` to ``hi`` entries, each passing ``item(entry, field[i])``."""
    if not isinstance(value, list) or not lo <= len(value) <= hi:
        n = f" of {len(value)} entries" if isinstance(value, list) else ""
        raise ScheduleError(f"{source}: {field} is {'a list' + n if n else type(value).__name__}, but it must be "
                            f"a list of {lo} to {hi} entries; {fix}.")
    if item is not None:
        for i, v in enumerate(value):
            item(v, f"{field}[{i}]")
    return value


# -- scanning a folder --------------------------------------------------------------------------------------------

_skipped: dict[str, str] = {}


def scan(names: Iterable[str], load: Callable[[str], object], what: str = "file") -> list[tuple[str, object]]:
    """``[(name, load(name))]`` for every name that loads; a bad file is skipped with one warning naming it (again
    only if its problem changes), so one bad file never stops the others. Only ScheduleError is expected from
    ``load``; anything else is a bug in the reader and is logged the same way rather than failing the scan."""
    out = []
    for name in names:
        try:
            out.append((name, load(name)))
        except Exception as e:  # noqa: BLE001 - one bad file must never break the scan over the others
            why = str(e) if isinstance(e, ScheduleError) else f"{type(e).__name__}: {e}"
            if _skipped.get(name) != why:
                _skipped[name] = why
                log.warning("[Schedule Lab] skipping %s %r: %s", what, name, why)
            continue
        _skipped.pop(name, None)
    return out
