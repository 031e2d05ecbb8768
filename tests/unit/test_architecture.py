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
CORE = ("schedules", "solvers", "kernels", "testbeds")
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


@pytest.mark.parametrize("path", [p for p in PACK_FILES if p.relative_to(ROOT).parts[0] in CORE],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_the_host_nor_the_node_layer(path):
    for level, name in _imports(path):
        top = name.split(".")[0]
        assert level > 0 or top not in HOST_MODULES, f"{path}: imports {name}"
        assert not (level >= 2 and top == "nodes"), f"{path}: core reaches up into nodes/"


def test_only_the_host_adapter_imports_comfy():
    """benchmarks/ may drive ComfyUI's own samplers as peers in a subprocess; the pack itself may not."""
    offenders = []
    for path in PACK_FILES:
        if path.relative_to(ROOT).parts[0] in ("benchmarks", "tools"):
            continue
        for level, name in _imports(path):
            if level == 0 and name.split(".")[0] in HOST_MODULES - {"nodes"}:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], offenders  # host.py imports lazily through importlib, by name


def test_the_host_adapter_names_every_comfy_module_it_loads():
    text = (ROOT / "nodes" / "host.py").read_text()
    loaded = set(re.findall(r'_import\("([a-z_.]+)"\)', text))
    assert loaded and loaded <= {m for m in loaded if m.split(".")[0] in HOST_MODULES}


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
