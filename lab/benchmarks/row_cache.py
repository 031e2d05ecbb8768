"""The lab's one row cache: benchmark rows keyed ``"<testbed>|..."``, one JSON file per testbed in a folder, so
testbeds can run in parallel processes (the defaults study's ``defaults_rows/``, the flow study's ``flow_rows/``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["load_rows", "save_rows"]


def load_rows(rows_dir: Path) -> dict:
    """Every row cached in ``rows_dir`` (empty when the folder does not exist yet)."""
    rows = {}
    for f in sorted(rows_dir.glob("*.json")) if rows_dir.exists() else []:
        rows.update(json.loads(f.read_text()))
    return rows


def save_rows(rows: dict, rows_dir: Path, testbeds=None) -> None:
    """Write the rows of ``testbeds`` (default: all present) to their per-testbed files, atomically, keeping rows
    another process wrote for the same testbed."""
    rows_dir.mkdir(parents=True, exist_ok=True)
    names = set(testbeds) if testbeds is not None else {k.split("|")[0] for k in rows}
    for tb in names:
        mine = {k: v for k, v in rows.items() if k.split("|")[0] == tb}
        path = rows_dir / f"{tb}.json"
        if path.exists():
            mine = {**json.loads(path.read_text()), **mine}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(mine, indent=0, sort_keys=True) + "\n")
        os.replace(tmp, path)
