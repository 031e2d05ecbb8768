"""The design card's rules, checked on the source: layering, packaging, and the safety rules."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
CORE = ("schedules", "solvers", "kernels")
#: The lab (never loaded by ComfyUI) may drive ComfyUI's own samplers in a subprocess and load modules by name.
LAB = "lab"
HOST_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "server", "nodes",
                "comfyui_version", "latent_preview", "node_helpers"}
PACK_FILES = [p for p in ROOT.rglob("*.py") if not {".venv", "tests", "build"} & set(p.relative_to(ROOT).parts)]


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield 0, a.name
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


@pytest.mark.parametrize("path", [p for p in PACK_FILES if p.relative_to(ROOT).parts[0] in CORE
                                  or p.relative_to(ROOT).parts[:2] == ("lab", "testbeds")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_the_host_nor_the_node_layer(path):
    for level, name in _imports(path):
        top = name.split(".")[0]
        assert level > 0 or top not in HOST_MODULES, f"{path}: imports {name}"
        assert not (level >= 2 and top == "nodes"), f"{path}: core reaches up into nodes/"
        assert not name.startswith("schedule_lab.nodes"), f"{path}: imports the node layer"


def test_only_the_host_adapter_imports_comfy():
    """The lab's benchmarks may drive ComfyUI's own samplers as peers in a subprocess; the pack itself may not."""
    offenders = []
    for path in PACK_FILES:
        if path.relative_to(ROOT).parts[0] == LAB:
            continue
        for level, name in _imports(path):
            if level == 0 and name.split(".")[0] in HOST_MODULES - {"nodes"}:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], offenders  # nodes/host/access.py imports lazily through importlib, by name


NODE_FILES = sorted((ROOT / "nodes").rglob("*.py"))
ACCESS = ROOT / "nodes" / "host" / "access.py"
#: Methods of the lists and dicts ComfyUI hands us (``SCHEDULER_NAMES.append``): the touch point is the container.
CONTAINER_METHODS = {"append", "get", "items", "keys", "values", "setdefault", "update", "pop"}


def _is_call_to(node, names) -> bool:
    f = node.func if isinstance(node, ast.Call) else None
    return (isinstance(f, ast.Name) and f.id in names) or (isinstance(f, ast.Attribute) and f.attr in names)


def _touch_points(path: Path) -> tuple[set[str], set[str]]:
    """ComfyUI symbols a module uses: chains from ``load("mod")`` / ``v3_api()`` through attributes, getattr,
    hasattr and setattr, followed through local names (``io = api.io``). Returns (symbols, non-literal loads)."""
    tree = ast.parse(path.read_text(), str(path))
    names: dict[str, str] = {}
    dynamic: set[str] = set()

    def chain(e) -> str | None:
        if isinstance(e, ast.Name):
            return names.get(e.id)
        if isinstance(e, ast.Attribute):
            base = chain(e.value)
            return None if base is None else f"{base}.{e.attr}"
        if _is_call_to(e, {"load"}):
            arg = e.args[0] if e.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return arg.value
            dynamic.add(f"{path.name}:{e.lineno}")
        if _is_call_to(e, {"v3_api"}):
            return "comfy_api.latest"
        if _is_call_to(e, {"getattr"}) and len(e.args) >= 2 and isinstance(e.args[1], ast.Constant):
            base = chain(e.args[0])
            return None if base is None else f"{base}.{e.args[1].value}"
        return None

    for _ in range(4):  # follow assignments until nothing new (x = load(...); y = x.a; ...)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                unpack = isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                pairs = zip(target.elts, value.elts, strict=True) if unpack else [(target, value)]
                for t, v in pairs:
                    c = chain(v)
                    if isinstance(t, ast.Name) and c is not None:
                        names[t.id] = c
    used = set()
    for node in ast.walk(tree):
        c = None
        if isinstance(node, ast.Attribute):
            c = chain(node)
        elif (_is_call_to(node, {"getattr", "hasattr"}) and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant)):
            base = chain(node.args[0])
            c = None if base is None else f"{base}.{node.args[1].value}"
        elif _is_call_to(node, {"setattr"}):
            c = chain(node.args[0])
        elif _is_call_to(node, {"load"}):
            chain(node)  # records a load() whose name is not a literal
        if c is not None:
            head, _, last = c.rpartition(".")
            used.add(head if last in CONTAINER_METHODS else c)
    return used, dynamic


def _used_touch_points() -> set[str]:
    used, dynamic = set(), set()
    for path in NODE_FILES + [ROOT / "__init__.py"]:
        u, d = _touch_points(path)
        used |= u
        dynamic |= d
    assert dynamic == set(), f"load() with a name the check cannot read: {dynamic}"
    return {u for u in used if not any(v.startswith(u + ".") for v in used)}  # the longest chains


def test_compat_lists_exactly_the_comfy_symbols_the_pack_uses():
    """Every ComfyUI symbol used is listed in COMPAT (with what breaks without it), and every listed one is used."""
    from schedule_lab.nodes.host.access import COMPAT

    used = _used_touch_points()
    assert {u.split(".")[0] for u in used} <= HOST_MODULES - {"nodes"}
    assert sorted(used - set(COMPAT)) == [], "used but not listed in nodes/host/access.py COMPAT"
    assert sorted(set(COMPAT) - used) == [], "listed in COMPAT but not used"
    assert all(COMPAT.values())


def test_the_touch_point_check_sees_every_kind_of_use(tmp_path):
    """The checker itself, on a sample: attributes, getattr/hasattr/setattr, names followed, container methods."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n"
        "    s = load('comfy.samplers')\n"
        "    k = load('comfy.k_diffusion.sampling')\n"
        "    s.SCHEDULER_NAMES.append('x')\n"
        "    inst = getattr(getattr(load('server'), 'PromptServer', None), 'instance', None)\n"
        "    if hasattr(inst, 'send_progress_text'):\n"
        "        setattr(k, 'sample_x', f)\n"
        "api = v3_api()\n"
        "io, ui = api.io, api.ui\n"
        "class N(io.ComfyNode):\n"
        "    x = ui.PreviewText\n"
        "load(name)\n")
    used, dynamic = _touch_points(sample)
    longest = {u for u in used if not any(v.startswith(u + ".") for v in used)}
    assert longest == {"comfy.samplers.SCHEDULER_NAMES", "comfy.k_diffusion.sampling",
                       "server.PromptServer.instance.send_progress_text", "comfy_api.latest.io.ComfyNode",
                       "comfy_api.latest.ui.PreviewText"}
    assert dynamic == {"sample.py:12"}


def test_only_the_access_module_loads_modules_by_name():
    """``nodes/host/access.py`` is the one place that imports ComfyUI (lazily, importlib); the rest calls load().
    ``nodes/entry.py`` imports the pack's own ``nodes/*_nodes.py`` files by name (node self-registration)."""
    offenders = []
    for path in PACK_FILES:
        if path.relative_to(ROOT).parts[0] == LAB or path in (ACCESS, ROOT / "nodes" / "entry.py"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if _is_call_to(node, {"import_module", "__import__"}):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("path", PACK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_pickle_eval_or_exec(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            builtin = isinstance(f, ast.Name) or owner == "builtins"  # module.eval() of torch is fine
            assert not (builtin and name in ("eval", "exec")), f"{path}:{node.lineno} calls {name}"
            assert not (owner == "torch" and name == "load"), f"{path}:{node.lineno} torch.load"
            assert owner != "pickle", f"{path}:{node.lineno} pickle"


def test_requirements_match_the_runtime_dependencies_and_never_pin_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert sorted(reqs) == sorted(project["dependencies"])
    assert not any(r.split("=")[0].split(">")[0].strip() in ("torch", "torchvision") for r in reqs)


def test_pyproject_has_the_comfy_registry_fields():
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert doc["project"]["name"] == "schedule-lab"
    assert re.fullmatch(r"\d+\.\d+\.\d+", doc["project"]["version"])
    assert doc["tool"]["comfy"]["DisplayName"] == "Schedule Lab" and doc["tool"]["comfy"]["PublisherId"]
    assert "GPL-3.0" in doc["project"]["license"] and (ROOT / "LICENSE").read_text().startswith(
        " " * 20 + "GNU GENERAL PUBLIC LICENSE")


def test_the_wheel_lists_every_package_folder_of_the_pack():
    """pip installs (the README's set-up, `schedule-lab compare`) get only what [tool.setuptools] packages lists: a
    sub-package missing there (nodes.host and solvers.tpdm were) imports in the editable checkout but not from a
    wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(("schedule_lab", *p.parent.relative_to(ROOT).parts)) for p in ROOT.rglob("__init__.py")
               if not {".venv", "tests", "build", "out"} & set(p.relative_to(ROOT).parts)}
    assert listed == folders, f"missing: {sorted(folders - listed)}, not folders: {sorted(listed - folders)}"


def test_pack_version_is_one_number_everywhere():
    import schedule_lab
    from schedule_lab.nodes import schedule_ops, search_ops
    from schedule_lab.version import PACK_VERSION

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert schedule_lab.__version__ == PACK_VERSION == schedule_ops.PACK_VERSION == search_ops.PACK_VERSION == version
    written = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py")
               if ".venv" not in p.parts and "tests" not in p.parts and f'"{version}"' in p.read_text()]
    assert written == [], f"the version {version} is written out again in {written}; read version.PACK_VERSION"


def test_pack_version_falls_back_to_the_installed_metadata_without_a_pyproject(tmp_path):
    from schedule_lab.version import read_version

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "9.8.7"\n[tool.x]\nversion = "1"\n')
    assert read_version(tmp_path / "pyproject.toml") == "9.8.7"
    assert read_version(tmp_path / "missing.toml") != "9.8.7"


def test_root_package_imports_without_comfy_and_exposes_nothing():
    code = ("import importlib.util,sys; s=importlib.util.spec_from_file_location('pk', sys.argv[1], "
            "submodule_search_locations=[sys.argv[2]]); m=importlib.util.module_from_spec(s); sys.modules['pk']=m; "
            "s.loader.exec_module(m); print(hasattr(m,'comfy_entrypoint'), hasattr(m,'NODE_CLASS_MAPPINGS'), "
            "'comfy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "__init__.py"), str(ROOT)], capture_output=True,
                         text=True, check=True, cwd="/")
    assert out.stdout.split() == ["False", "False", "False"]


def test_code_cites_only_documents_inside_the_repository():
    """A reader of this repository cannot open the specs or the issue tracker: code points at docs/*.md instead, and
    every doc (and quoted section heading) it points at exists."""
    outside, missing = [], []
    for path in PACK_FILES + sorted((ROOT / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text()
        where = str(path.relative_to(ROOT))
        if re.search(r"shared/specs|\b[Ii]ssue \d|\bspec §|\btestbeds\.md §", text):
            outside.append(where)
        for doc, section in re.findall(r"(docs/[a-z_]+\.md)(?:, \"([^\"]+)\")?", text):
            if not (ROOT / doc).is_file():
                missing.append(f"{where}: {doc}")
            elif section and not re.search(rf"^#+ .*{re.escape(' '.join(section.split()))}", (ROOT / doc).read_text(),
                                           re.M):
                missing.append(f"{where}: {doc} \"{section}\"")
    assert outside == [] and missing == [], (outside, missing)
