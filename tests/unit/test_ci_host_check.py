"""The real-host suite's pre-flight check (tests/integration/sl_env.py): a COMFYUI_PATH / COMFYUI_PYTHON pair that
cannot run ComfyUI gives one message naming both variables, instead of one error per test."""
import importlib.util
import sys
from pathlib import Path

SL_ENV = Path(__file__).resolve().parents[1] / "integration" / "sl_env.py"


def _sl_env():
    spec = importlib.util.spec_from_file_location("sl_env_under_test", SL_ENV)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_python_without_comfyuis_dependencies_is_named_with_both_variables(tmp_path):
    (tmp_path / "main.py").write_text("")
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "__init__.py").write_text("")
    # A python that lacks one of ComfyUI's requirements (torchsde stands for any of them here).
    blocker = tmp_path / "blocker"
    (blocker / "torchsde").mkdir(parents=True)
    (blocker / "torchsde" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torchsde'\")")
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={blocker} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    message = _sl_env().host_problem(str(tmp_path), str(wrapper))
    assert message is not None
    assert f"COMFYUI_PYTHON={wrapper}" in message and f"COMFYUI_PATH={tmp_path}" in message
    assert "torchsde" in message


def test_a_folder_without_main_py_is_not_a_comfyui_checkout(tmp_path):
    message = _sl_env().host_problem(str(tmp_path), sys.executable)
    assert message is not None and "has no main.py" in message and "COMFYUI_PATH" in message
