"""Every ComfyUI touch point the pack lists (nodes/host/access.py COMPAT, docs/compat.md) exists in the real host, and
the V3 module the pack picks there is the versioned one: the 'run' column of docs/compat.md."""
from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

from schedule_lab.nodes.host.access import COMPAT, IO_MEMBERS, UI_MEMBERS, V3_MODULES

#: Touch points that exist only inside a running server (``server`` cannot be imported without one: read its source)
#: or on newer ComfyUI (refused by name where present).
ONLY_RUNNING = {"server.PromptServer.instance.send_progress_text": ("PromptServer", "send_progress_text"),
                "server.PromptServer.instance.routes": ("PromptServer", "routes")}
NEWER = {"comfy.model_sampling.IMG_TO_IMG_FLOW", "comfy.model_sampling.IMG_TO_IMG_VELOCITY",
         "comfy.model_sampling.V_PREDICTION_DDPM", "comfy.model_sampling.ModelSamplingAV"}

_PROBE = """
import importlib, json, sys
sys.argv = ['probe', '--cpu']
import comfy.options; comfy.options.enable_args_parsing()
found = {}
for dotted in json.loads(sys.argv_json):
    parts = dotted.split('.')
    obj, ok = None, False
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except Exception:
            continue
        ok = True
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                ok = False
                break
            obj = getattr(obj, attr)
        break
    found[dotted] = ok
print('@@' + json.dumps(found))
"""


def _probe(comfy_python, names):
    path, python = comfy_python
    code = _PROBE.replace("sys.argv_json", repr(json.dumps(sorted(names))))
    out = subprocess.run([python, "-c", code], cwd=path, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.split("@@", 1)[1])


def test_every_listed_touch_point_exists_in_this_host(comfy_python):
    names = {k for k in COMPAT if k not in NEWER and k not in ONLY_RUNNING}
    names |= {f"{V3_MODULES[0]}.io.{m}" for m in IO_MEMBERS} | {f"{V3_MODULES[0]}.ui.{m}" for m in UI_MEMBERS}
    names |= {f"{V3_MODULES[0]}.ComfyExtension"}
    found = _probe(comfy_python, names)
    assert sorted(k for k, ok in found.items() if not ok) == []


def test_the_newer_classes_are_absent_here_so_their_refusal_is_read_not_run(comfy_python):
    found = _probe(comfy_python, NEWER)
    assert not any(found.values()), found


def test_the_running_server_methods_exist_in_this_hosts_source(comfy_python):
    tree = ast.parse((Path(comfy_python[0]) / "server.py").read_text())
    members = set()  # methods, and attributes the class sets on self (``self.routes = routes``)
    for c in ast.walk(tree):
        if isinstance(c, ast.ClassDef):
            for f in c.body:
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add((c.name, f.name))
                    members |= {(c.name, t.attr) for a in ast.walk(f) if isinstance(a, ast.Assign)
                                for t in a.targets if isinstance(t, ast.Attribute)
                                and isinstance(t.value, ast.Name) and t.value.id == "self"}
    assert set(ONLY_RUNNING.values()) <= members
