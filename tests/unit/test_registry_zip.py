"""Registry readiness: the node zip that ``comfy node pack`` builds carries only what ComfyUI loads, and
``[tool.comfy]`` / ``[project]`` have what the registry shows (icon, ComfyUI version, classifiers, URLs).

The zip is built the way comfy-cli builds it (``comfy_cli.file_utils.zip_files``, read from its source, not copied):
the files ``git ls-files`` lists, minus those matching a ``.comfyignore`` pattern (gitwildmatch, blank lines and
``#`` comments skipped), plus the ``[tool.comfy] includes`` folders (this pack lists none), deflated. The pattern
matcher below covers the subset of gitwildmatch the pack's ``.comfyignore`` may use (checked first), and agrees with
``pathspec`` (comfy-cli's matcher) where that is installed.
"""
from __future__ import annotations

import fnmatch
import io
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
#: What ComfyUI loads from a custom-node folder (and the files a user reads): the zip holds these and nothing else.
PACK_TOP_LEVEL = {"__init__.py", "version.py", "nodes", "schedules", "solvers", "kernels", "web",
                  "example_workflows", "locales", "requirements.txt", "pyproject.toml", "LICENSE", "README.md"}
#: Never in the zip: the lab (testbeds, benchmarks, the CLI, tools, or all under lab/), tests, docs, CI.
NEVER = {"tests", "lab", "docs", ".ci", "benchmarks", "testbeds", "cli", "tools"}
MAX_ZIP_BYTES = 1_500_000


def _git_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: comfy node pack zips git-tracked files")
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def _patterns() -> list[str]:
    lines = (ROOT / ".comfyignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _matches(pattern: str, path: str) -> bool:
    """gitwildmatch for patterns without negation, escapes or ``**``: a pattern with a slash before its end is
    anchored at the root; a trailing slash matches directories only; a matched directory ignores all below it."""
    dir_only = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = "/" in pattern.rstrip("/")
    want = body.split("/")
    parts = path.split("/")
    # candidates: every directory above the file, and the file itself unless the pattern is for directories
    candidates = [parts[:k] for k in range(1, len(parts))] + ([] if dir_only else [parts])
    for cand in candidates:
        if anchored:
            if len(cand) == len(want) and all(fnmatch.fnmatchcase(c, w) for c, w in zip(cand, want, strict=True)):
                return True
        elif len(want) == 1 and fnmatch.fnmatchcase(cand[-1], want[0]):
            return True
    return False


def pack_files() -> list[str]:
    patterns = _patterns()
    return [f for f in _git_files() if not any(_matches(p, f) for p in patterns)]


def build_zip(files: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            if (ROOT / f).exists():
                z.write(ROOT / f, f)
    return buf.getvalue()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_comfyignore_uses_only_the_matched_subset_of_gitwildmatch():
    for p in _patterns():
        assert not p.startswith("!") and "\\" not in p and "**" not in p and "[" not in p, p


def test_matcher_agrees_with_pathspec_where_installed():
    pathspec = pytest.importorskip("pathspec")
    spec = pathspec.PathSpec.from_lines("gitwildmatch", _patterns())
    files = _git_files()
    assert [f for f in files if spec.match_file(f)] == [f for f in files if any(_matches(p, f) for p in _patterns())]


def test_matcher_on_known_cases():
    assert _matches("/tests/", "tests/unit/x.py") and not _matches("/tests/", "nodes/tests/x.py")
    assert _matches("tests/", "nodes/tests/x.py") and not _matches("tests/", "tests")  # directories only
    assert _matches("*.jpg", "example_workflows/a.jpg") and not _matches("*.jpg", "a.json")
    assert _matches("/.gitignore", ".gitignore") and not _matches("/.gitignore", "web/.gitignore")


def test_the_node_zip_holds_only_the_pack(capsys):
    files = pack_files()
    top = {f.split("/")[0] for f in files}
    assert top <= PACK_TOP_LEVEL, f"not part of what ComfyUI loads: {sorted(top - PACK_TOP_LEVEL)}"
    assert not top & NEVER
    for needed in ("__init__.py", "nodes/entry.py", "web/js/schedule_plot.js", "requirements.txt", "LICENSE",
                   "README.md", "locales/en/main.json"):
        assert needed in files, needed
    assert sum(f.startswith("example_workflows/") and f.endswith(".json") for f in files) == \
        len(list((ROOT / "example_workflows").glob("*.json")))
    # every Python package the pack imports is in it (the folders with an __init__.py under the pack's code)
    for init in ROOT.glob("*/**/__init__.py"):
        rel = init.relative_to(ROOT).as_posix()
        if rel.split("/")[0] in PACK_TOP_LEVEL and rel in _git_files():
            assert rel in files, rel
    blob = build_zip(files)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == sorted(f for f in files if (ROOT / f).exists())
        assert z.testzip() is None
    all_blob = build_zip(_git_files())
    with capsys.disabled():
        print(f"\nnode zip: {len(blob):,} bytes ({len(files)} files); without .comfyignore "
              f"{len(all_blob):,} bytes ({len(_git_files())} files)")
    assert len(blob) < MAX_ZIP_BYTES, f"the node zip is {len(blob):,} bytes"


def test_registry_fields():
    doc = _pyproject()
    comfy, project = doc["tool"]["comfy"], doc["project"]
    assert comfy["PublisherId"] and comfy["DisplayName"] == "Schedule Lab"
    # requires-comfyui: the version the real-host suite runs (../shared/host/comfyui-host.sh's snapshot)
    host_script = (ROOT.parent / "shared" / "host" / "comfyui-host.sh")
    assert comfy["requires-comfyui"] == ">=0.3.64"
    if host_script.exists():
        assert "snap=ComfyUI-0.3.64-" in host_script.read_text()
    assert "0.3.64" in (ROOT / "README.md").read_text()
    # comfy-cli reads the OS and accelerator classifiers; only its listed values count
    classifiers = project["classifiers"]
    assert "Operating System :: OS Independent" in classifiers
    accelerators = {c for c in classifiers if c.startswith("Environment ::")}
    assert accelerators and accelerators <= {"Environment :: GPU :: NVIDIA CUDA", "Environment :: GPU :: AMD ROCm",
                                             "Environment :: GPU :: Intel Arc", "Environment :: NPU :: Huawei Ascend",
                                             "Environment :: GPU :: Apple Metal"}
    assert project["urls"]["Homepage"].startswith("https://") and project["urls"]["Repository"].startswith("https://")
    assert comfy["includes"] == []  # nothing untracked goes in; .comfyignore decides


def test_icon_is_a_small_square_png_in_the_repository():
    icon_url = _pyproject()["tool"]["comfy"]["Icon"]
    prefix = "https://raw.githubusercontent.com/schedule-lab/schedule-lab/main/"
    assert icon_url.startswith(prefix), icon_url
    path = ROOT / icon_url.removeprefix(prefix)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 20_000
    width, height = struct.unpack(">II", data[16:24])
    assert width == height and 64 <= width <= 512
    assert icon_url.removeprefix(prefix) in _git_files()  # tracked: the URL resolves once pushed
