"""The searched lists of lab/benchmarks/searched_bench.py are what ``sl_searched`` gives in KSampler on the model they
were searched for: ComfyUI's own model_sampling for each setting (SD3 shift 3, Flux μ 1.15, EDM), described by the
host adapter as KSampler's scheduler call sees it, picks the saved file for that step count — and a model of another
family does not."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sl_env import COMFYUI_PATH, COMFYUI_PYTHON

ROOT = Path(__file__).resolve().parents[2]
LISTS = ROOT / "lab" / "benchmarks" / "results" / "searched_lists"

PROBE = r"""
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
sys.path.insert(0, str(root / "lab" / "benchmarks"))
import _bootstrap
_bootstrap.pack()
import comfy.cli_args
comfy.cli_args.args.cpu = True
import comfy.model_sampling
from schedule_lab.lab.benchmarks.comfy_worker import _model_sampling
from schedule_lab.lab.benchmarks.menu_bench import SETTINGS
from schedule_lab.nodes.host.kinds import model_kind_from_sampling
from schedule_lab.schedules.errors import ScheduleError
from schedule_lab.schedules.search.results import searched_sigmas

files = sorted((root / "lab" / "benchmarks" / "results" / "searched_lists").glob("*.json"))
out = []
for path in files:
    setting_name, nfe = path.stem.split("__nfe")
    setting_name = setting_name.replace("_", "/", 1)
    setting = SETTINGS[setting_name]
    kind = model_kind_from_sampling(_model_sampling(comfy, setting.sampling))
    doc = json.loads(path.read_text())
    got = searched_sigmas(kind, int(nfe), [(path.name, path)]).tolist()
    other = {"type": "flow", "shift": 1.0} if setting.sampling["type"] != "flow" or setting.sampling["shift"] != 1.0 \
        else {"type": "edm", "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.5}
    try:
        searched_sigmas(model_kind_from_sampling(_model_sampling(comfy, other)), int(nfe), [(path.name, path)])
        refused = False
    except ScheduleError:
        refused = True
    out.append({"file": path.name, "nfe": int(nfe), "got": got, "saved": doc["sigmas"], "other_refused": refused})
print("@@" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def report():
    done = subprocess.run([COMFYUI_PYTHON, "-c", PROBE, str(ROOT)], cwd=COMFYUI_PATH, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.split("@@", 1)[1])


def test_every_searched_list_is_what_sl_searched_gives_on_its_model(report):
    assert len(report) == len(list(LISTS.glob("*.json"))) >= 9  # 3 settings x NFE 4, 5, 6
    for row in report:
        assert len(row["got"]) == row["nfe"] + 1 and row["got"][-1] == 0.0
        assert row["got"] == pytest.approx(row["saved"], rel=1e-6), row["file"]


def test_a_model_of_another_family_does_not_get_them(report):
    assert all(row["other_refused"] for row in report)
