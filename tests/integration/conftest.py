"""Real-host fixtures: a headless ComfyUI server on CPU with this pack linked in.

Runs only when ``COMFYUI_PATH`` points at a ComfyUI checkout (0.3.64 or newer); otherwise every test
here is skipped with that reason. ``COMFYUI_PYTHON`` selects the interpreter of ComfyUI's own venv
(default: the one running pytest). Nothing is written into the ComfyUI checkout: models, outputs,
user data and the pack link live in a temporary directory given to the server through
``--extra-model-paths-config`` and the directory flags.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PACK_DIR_NAME = "schedule_lab"
sys.path.insert(0, str(HERE))  # tests import the graph builders as a plain module (importlib mode)

from sl_env import COMFYUI_PATH, COMFYUI_PYTHON, IN_CI, host_problem  # noqa: E402
from sl_graphs import CHECKPOINT  # noqa: E402

NO_HOST = ("COMFYUI_PATH is not set: point it at a ComfyUI checkout and COMFYUI_PYTHON at its venv's python "
           "(eval \"$(../shared/host/comfyui-host.sh)\" sets both) to run the real-host integration tests")


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.fspath)).parents]
    for item in mine:
        item.add_marker(pytest.mark.integration)
    if not mine:
        return
    if not COMFYUI_PATH:
        if IN_CI:  # CI must never pass by skipping the real host
            pytest.exit(f"CI=true but {NO_HOST}", returncode=3)
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=NO_HOST))
        return
    problem = host_problem()
    if problem:
        pytest.exit(problem, returncode=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, base: str, workdir: Path, log_path: Path):
        self.base, self.workdir, self.log_path = base, workdir, log_path

    # -- HTTP ------------------------------------------------------------------------------------
    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path: str, payload: dict):
        req = urllib.request.Request(self.base + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def queue(self, graph: dict) -> str:
        status, body = self.post("/prompt", {"prompt": graph, "client_id": str(uuid.uuid4())})
        assert status == 200, f"/prompt refused the graph: {json.dumps(body)[:2000]}"
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 180.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                entry = hist[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s; log: {self.log_tail()}")

    def run(self, graph: dict, timeout: float = 180.0) -> dict:
        return self.wait(self.queue(graph), timeout)

    def run_ws(self, graph: dict, interrupt_at_step: int | None = None, timeout: float = 180.0):
        """Run ``graph`` while listening on the websocket like the frontend does.

        Returns (history entry, events): events are ("json", type, data) for JSON messages, ("preview", bytes)
        for preview images and ("text", node_id, text) for progress text shown on a node. With
        ``interrupt_at_step`` the run is cancelled (POST /interrupt) once a progress event reaches that value.
        """
        import asyncio
        import struct

        import aiohttp

        client_id = str(uuid.uuid4())
        events: list = []

        async def go():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{self.base}/ws?clientId={client_id}") as ws:
                    status, body = self.post("/prompt", {"prompt": graph, "client_id": client_id})
                    assert status == 200, body
                    prompt_id = body["prompt_id"]
                    interrupted = False
                    deadline = time.time() + timeout
                    while time.time() < deadline:
                        msg = await ws.receive(timeout=timeout)
                        if msg.type == aiohttp.WSMsgType.BINARY:
                            kind = struct.unpack(">I", msg.data[:4])[0]
                            if kind == 3:  # TEXT: 4-byte node-id length, node id, utf-8 text
                                n = struct.unpack(">I", msg.data[4:8])[0]
                                events.append(("text", msg.data[8:8 + n].decode(), msg.data[8 + n:].decode()))
                            else:
                                events.append(("preview", msg.data))
                            continue
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        data = json.loads(msg.data)
                        events.append(("json", data["type"], data.get("data", {})))
                        d = data.get("data", {})
                        if (data["type"] == "progress" and interrupt_at_step is not None and not interrupted
                                and d.get("value", 0) >= interrupt_at_step):
                            self.post("/interrupt", {})
                            interrupted = True
                        if d.get("prompt_id") == prompt_id and (
                                data["type"] in ("execution_success", "execution_error", "execution_interrupted")
                                or (data["type"] == "executing" and d.get("node") is None)):
                            break
                    return prompt_id

        prompt_id = asyncio.run(go())
        return self.wait(prompt_id, timeout), events

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def _stock_lists() -> dict:
    """KSampler's lists in a plain ComfyUI process without any custom node (the stock baseline)."""
    code = ("import json,sys; sys.argv=['x','--cpu']; import comfy.options; comfy.options.enable_args_parsing();"
            "import comfy.samplers as s; print('@@'+json.dumps({'samplers': list(s.KSampler.SAMPLERS),"
            "'schedulers': list(s.KSampler.SCHEDULERS)}))")
    out = subprocess.run([COMFYUI_PYTHON, "-c", code], cwd=COMFYUI_PATH, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    return json.loads(out.split("@@", 1)[1])


@pytest.fixture(scope="session")
def stock_lists() -> dict:
    return _stock_lists()


@pytest.fixture(scope="session")
def comfy_workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("comfy")
    for sub in ("custom_nodes", "checkpoints", "schedules", "calibration", "tpm", "output", "input", "user",
                "temp"):
        (work / sub).mkdir()
    (work / "custom_nodes" / PACK_DIR_NAME).symlink_to(ROOT, target_is_directory=True)
    subprocess.run([COMFYUI_PYTHON, str(HERE / "make_tiny_checkpoint.py"), COMFYUI_PATH,
                    str(work / "checkpoints" / CHECKPOINT)], check=True, timeout=600, capture_output=True)
    (work / "extra_model_paths.yaml").write_text(
        "schedule_lab_test:\n"
        f"    base_path: {work}\n"
        "    custom_nodes: custom_nodes\n"
        "    checkpoints: checkpoints\n"
        "    schedules: schedules\n"
        "    schedule_lab_calibration: calibration\n"
        "    tpm: tpm\n"
    )
    return work


def _frontend_args() -> list[str]:
    """``SL_FRONTEND_ROOT``: a frontend's ``static/`` folder (a comfyui-frontend-package unpacked by .ci/run) served
    instead of the one the host's requirements pin (the browser suite's frontend matrix)."""
    root = os.environ.get("SL_FRONTEND_ROOT")
    if not root:
        return []
    if not (Path(root) / "index.html").is_file():
        raise RuntimeError(f"SL_FRONTEND_ROOT={root} has no index.html: point it at a frontend package's static/")
    return ["--front-end-root", root]


@pytest.fixture(scope="session")
def comfy(comfy_workdir) -> ComfyServer:
    port = _free_port()
    log_path = comfy_workdir / "server.log"
    log = open(log_path, "w")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.Popen(
        [COMFYUI_PYTHON, "main.py", "--cpu", "--use-pytorch-cross-attention", "--listen", "127.0.0.1",
         "--port", str(port), "--extra-model-paths-config", str(comfy_workdir / "extra_model_paths.yaml"),
         "--output-directory", str(comfy_workdir / "output"), "--input-directory", str(comfy_workdir / "input"),
         "--user-directory", str(comfy_workdir / "user"), "--temp-directory", str(comfy_workdir / "temp"),
         "--disable-auto-launch", "--preview-method", "latent2rgb", *_frontend_args()],
        cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = ComfyServer(f"http://127.0.0.1:{port}", comfy_workdir, log_path)
    deadline = time.time() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            server.get("/system_stats")
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"ComfyUI did not answer in 180 s:\n{server.log_tail()}") from None
            time.sleep(0.25)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
