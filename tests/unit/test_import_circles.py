"""No import circle inside the pack: every module parsed, imports inside functions included.

A circle held together by function-level imports works until someone moves one import to the top of a file; the
layering (node -> registry -> core) wants none. Run as a script to print the graph of ``nodes/``:
``python tests/unit/test_import_circles.py nodes``.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "tests", "build", "out", "node_modules"}


def pack_modules() -> dict[str, Path]:
    """Dotted module name (relative to the pack root; a package is its folder's name) -> file."""
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if SKIP & set(parts) or any(part.startswith(".") for part in parts):
            continue
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        mods[".".join(parts)] = p
    return mods


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def import_graph() -> dict[str, set[str]]:
    """Edges module -> pack module it imports (relative imports resolved; ``from . import x`` -> the submodule x)."""
    mods = pack_modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = _package_of(name, path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{stem}.{alias.name}" if stem else alias.name
                    targets.append(sub if sub in mods else stem)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):  # absolute: only the pack's own name counts
                absolute = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                targets += [a.removeprefix("schedule_lab.") for a in absolute if a.startswith("schedule_lab.")]
            graph[name] |= {t for t in targets if t in mods and t != name}
    if "nodes.entry" in graph:  # imports every nodes/*_nodes.py by name (node self-registration)
        graph["nodes.entry"] |= {m for m in mods if m.startswith("nodes.") and m.endswith("_nodes")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted, as import circles."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_graph_sees_relative_function_level_and_package_imports():
    g = import_graph()
    assert "schedules.errors" in g["nodes.host.kinds"]  # from ...schedules.errors import ScheduleError
    assert "nodes.host" in g["nodes.schedule_nodes"]  # from . import host (a package)
    assert {"nodes.host.access", "nodes.host.registration"} <= g["nodes.host"]
    assert {"nodes.schedule_nodes", "nodes.tada_nodes"} <= g["nodes.entry"]  # found by file name
    assert not any(m.startswith(("tests", ".venv")) for m in g)


def test_circles_are_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_inside_the_pack():
    found = circles(import_graph())
    assert found == [], "import circles inside the pack: " + "; ".join(" <-> ".join(c) for c in found)


if __name__ == "__main__":
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    g = import_graph()
    for src in sorted(g):
        for dst in sorted(g[src]):
            if src.startswith(prefix):
                print(f"{src} -> {dst}")
    print("circles:", circles(g))
