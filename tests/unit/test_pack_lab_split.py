"""The two trees: the pack (what ComfyUI loads) imports nothing from the lab; the lab uses only the pack's public API.

Both directions are read from the AST of every module, imports inside functions included: relative imports are
resolved, absolute ``schedule_lab.*`` imports and ``importlib.import_module("schedule_lab....")`` count too.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = "lab"


def modules() -> dict[str, Path]:
    """Dotted name relative to the repository root (a package is its folder; "" the root) -> file, as the import
    circle test walks them."""
    spec = importlib.util.spec_from_file_location("sl_import_circles", ROOT / "tests" / "unit" /
                                                  "test_import_circles.py")
    circles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(circles)
    return circles.pack_modules()


def imports(name: str, path: Path):
    """(lineno, target module, imported names, relative?) for every import of a ``schedule_lab`` module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".") if package else []
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            yield node.lineno, ".".join(base + ([node.module] if node.module else [])), [a.name for a in
                                                                                          node.names], True
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "schedule_lab":
            yield node.lineno, node.module.removeprefix("schedule_lab").lstrip("."), [a.name for a in node.names], False
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "schedule_lab":
                    yield node.lineno, a.name.removeprefix("schedule_lab").lstrip("."), [], False
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.startswith("schedule_lab.")):
            yield node.lineno, node.args[0].value.removeprefix("schedule_lab."), [], False


def in_lab(module: str) -> bool:
    return module == LAB or module.startswith(LAB + ".")


MODS = modules()
PACK = {m: p for m, p in MODS.items() if not in_lab(m)}
LAB_MODS = {m: p for m, p in MODS.items() if in_lab(m)}


def pack_to_lab(mods) -> list[str]:
    bad = []
    for name, path in mods.items():
        for line, target, names, _ in imports(name, path):
            targets = [target] + [f"{target}.{n}".strip(".") for n in names]
            if any(in_lab(t) for t in targets):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} {names}")
    return bad


def lab_to_private(mods) -> list[str]:
    """Lab imports of the pack that are relative (the pack is imported by absolute name) or name a private module
    or a private name (the pack's public API is its non-underscore names)."""
    bad = []
    for name, path in mods.items():
        for line, target, names, relative in imports(name, path):
            if in_lab(target) or not target and all(in_lab(n) for n in names):
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if relative:
                bad.append(f"{where}: relative import of the pack ({target}); use `from schedule_lab.{target} import`")
            if any(part.startswith("_") for part in target.split(".") if part):
                bad.append(f"{where}: private pack module {target}")
            bad += [f"{where}: private pack name {target}.{n}" for n in names if n.startswith("_")]
    return bad


def test_the_lab_and_the_pack_are_both_found():
    assert {"lab.testbeds", "lab.benchmarks", "lab.defaults", "lab.cli", "lab.tpdm"} <= set(LAB_MODS)
    assert {"nodes.entry", "schedules", "solvers.catalogue", "kernels", ""} <= set(PACK)  # "": the root __init__.py
    assert not any(m.split(".")[0] in ("testbeds", "benchmarks", "cli", "tools") for m in PACK), \
        "lab folders outside lab/"


def test_the_pack_imports_nothing_from_the_lab():
    assert pack_to_lab(PACK) == []


def test_the_lab_uses_only_the_public_api_of_the_pack():
    assert lab_to_private(LAB_MODS) == []


@pytest.mark.parametrize("source, expected", [
    ("from ..lab.testbeds import x\n", True),  # relative, function level below too
    ("def f():\n    from schedule_lab.lab import cli\n", True),
    ("import importlib\nimportlib.import_module('schedule_lab.lab.cli')\n", True),
    ("from . import lab\n", True),  # the package itself, by name
    ("from ..schedules import baseline\n", False),
])
def test_the_pack_check_sees_every_kind_of_import(tmp_path, source, expected):
    (tmp_path / "nodes").mkdir()
    path = tmp_path / "nodes" / "__init__.py"
    path.write_text(source.replace("from . import lab", "from .. import lab"))
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert bool(pack_to_lab({"nodes": path})) is expected
    finally:
        ROOT = root


@pytest.mark.parametrize("source, expected", [
    ("from schedule_lab.solvers.catalogue import _split\n", 1),
    ("def f():\n    from schedule_lab.nodes.host._x import y\n", 1),
    ("from ...solvers import catalogue\n", 1),  # relative import of the pack
    ("from schedule_lab.solvers import catalogue\nfrom ..testbeds import _private_lab_name\n", 0),
    ("from schedule_lab.schedules import scaled_linear_sigmas\n", 0),
])
def test_the_lab_check_sees_private_names(tmp_path, source, expected):
    (tmp_path / "lab" / "x").mkdir(parents=True)
    path = tmp_path / "lab" / "x" / "mod.py"
    path.write_text(source)
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert len(lab_to_private({"lab.x.mod": path})) == expected
    finally:
        ROOT = root
