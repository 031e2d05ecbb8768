"""docs/architecture.md describes the tree as it is: every path it names exists, every ``python -m`` module it names
is a file, and the import rules of its table hold on the import graph (module- and function-level imports)."""
from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
COMFYUI = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "server", "comfyui_version",
           "latent_preview", "node_helpers"}
PATHLIKE = re.compile(r"^[\w.\-/]+$")


def _circles_module():
    spec = importlib.util.spec_from_file_location("sl_import_circles", ROOT / "tests" / "unit" /
                                                  "test_import_circles.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sl_import_circles", module)
    spec.loader.exec_module(module)
    return module


def _blocks(text: str):
    """(language, body) of each fenced block, and the prose with the blocks cut out."""
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    prose = re.sub(r"```\w*\n.*?```", "", text, flags=re.S)
    return blocks, prose


def _is_path(token: str) -> bool:
    """A repository path: has a folder part (``nodes/registry.py``, ``schedules/``) or is a root file. ComfyUI's
    folders (``models/...``), URLs and paths outside the repository (``../shared``) are not."""
    if not PATHLIKE.match(token) or token.startswith(("/", "../", "models/")):
        return False
    return token in ("__init__.py", "version.py", "requirements.txt", ".comfyignore") or (
        "/" in token and not token.startswith("."))


def named_paths(text: str) -> set[str]:
    blocks, prose = _blocks(text)
    found = {t for t in re.findall(r"`([^`\s]+)`", prose) if _is_path(t)}
    for lang, body in blocks:
        if lang != "text":  # code examples name files that a reader would create
            continue
        parent = ""
        for line in body.splitlines():
            if line.startswith("   "):  # a description carried over from the line above
                continue
            first = line.split()[0] if line.strip() else ""
            if not first or not PATHLIKE.match(first.rstrip(",")):
                continue
            first = first.rstrip(",")
            if line.startswith("  "):
                found.add(parent + first)
            else:
                found.add(first)
                parent = first if first.endswith("/") else parent
    return found


def test_the_path_finder_reads_prose_and_trees():
    text = ("See `nodes/registry.py` and `schedules/` but not `sl_tada` nor `GET /x`.\n```text\nnodes/host/   x\n"
            "  access.py     y\nversion.py   z\n```\n```python\n# solvers/midpoint.py\n```\n")
    assert named_paths(text) == {"nodes/registry.py", "schedules/", "nodes/host/", "nodes/host/access.py",
                                 "version.py"}


def test_every_path_the_doc_names_exists():
    text = DOC.read_text()
    paths = named_paths(text)
    assert len(paths) > 40, "the tree and the tables should be read"
    missing = []
    for p in sorted(paths):
        if "*" in p or "<" in p:
            if not list(ROOT.glob(p.replace("<name>", "*"))):
                missing.append(p)
        elif not (ROOT / p).exists():
            missing.append(p)
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_module_the_doc_runs_exists():
    mods = re.findall(r"python -m (schedule_lab(?:\.[a-z_<>]+)+)", DOC.read_text())
    assert mods
    for mod in mods:
        rel = Path(*mod.split(".")[1:])
        if "<name>" in mod:
            assert list(ROOT.glob(str(rel.parent / "*.py"))), mod
        else:
            assert (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file(), mod


def import_rules() -> list[tuple[list[str], list[str]]]:
    """The rows of the table under '## Import rules': (modules, what they never import)."""
    text = DOC.read_text()
    section = text[text.index("## Import rules"):]
    section = section[: section.index("\n## ", 5)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("modules", "---"):
            continue
        rows.append((re.findall(r"`([^`]+)`", cells[0]),
                     re.findall(r"`([^`]+)`", cells[1]) + (["ComfyUI"] if "ComfyUI" in cells[1] else [])))
    return rows


def _matches(module: str, path: str) -> bool:
    """Does dotted ``module`` (relative to the root; "" is the root __init__) live under doc path ``path``?"""
    if path == "__init__.py":
        return module == ""
    if path.endswith(".py"):
        return module == path[:-3].replace("/", ".")
    prefix = path.rstrip("/").replace("/", ".")
    return module == prefix or module.startswith(prefix + ".")


def _comfy_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & COMFYUI


def violations() -> list[str]:
    circles = _circles_module()
    graph, files = circles.import_graph(), circles.pack_modules()
    bad = []
    for sources, forbidden in import_rules():
        for module in sorted(graph):
            if not any(_matches(module, s) for s in sources):
                continue
            for target in sorted(graph[module]):
                if target != module and any(_matches(target, f) for f in forbidden if f != "ComfyUI"):
                    bad.append(f"{module} imports {target}")
            if "ComfyUI" in forbidden and _comfy_imports(files[module]):
                bad.append(f"{module} imports ComfyUI ({sorted(_comfy_imports(files[module]))})")
    return bad


def test_the_import_rules_table_is_read():
    rows = dict((tuple(s), tuple(f)) for s, f in import_rules())
    assert rows[("schedules/",)] == ("solvers/", "nodes/", "lab/", "ComfyUI")
    assert rows[("solvers/",)] == ("nodes/", "lab/", "ComfyUI")
    assert len(rows) >= 6


def test_the_import_rules_the_doc_states_hold():
    assert violations() == []


@pytest.mark.parametrize("module, path, expected", [
    ("schedules.search.fitness", "schedules/", True), ("solvers.catalogue", "schedules/", False),
    ("nodes.registry", "nodes/registry.py", True), ("", "__init__.py", True),
    ("lab.testbeds.suite", "lab/testbeds/", True),
])
def test_doc_paths_map_to_modules(module, path, expected):
    assert _matches(module, path) is expected
