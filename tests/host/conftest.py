"""Real-ComfyUI tests: run only when ``COMFYUI_PATH`` names a ComfyUI work tree (skipped otherwise).

Environment:
  COMFYUI_PATH            ComfyUI work tree (contains main.py).
  COMFYUI_PYTHON          its Python (default: COMFYUI_PATH/venv, COMFYUI_PATH/.venv or ../venv next to it).
  UNIANIMATE_COMFY_TOOLS  folder with comfy_client.py (HTTP client) and make_test_models.py (random-weight
                          VAE / CLIP-vision files ComfyUI's loaders accept); the tests that need them are
                          skipped without it.
  UNIANIMATE_HOST_PORT    port for the server (default: a free one).

The fixture starts ``main.py --cpu`` on 127.0.0.1 with a temporary ``--base-directory`` whose
``custom_nodes/ComfyUI-UniAnimate`` links to this repository, so ComfyUI imports the pack exactly as
it would for a user, and stops that server process at the end.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def comfy_path() -> Path | None:
    p = os.environ.get("COMFYUI_PATH")
    return Path(p) if p and (Path(p) / "main.py").is_file() else None


def comfy_python(root: Path) -> Path | None:
    env = os.environ.get("COMFYUI_PYTHON")
    if env:
        return Path(env)
    for cand in (root / "venv", root / ".venv", root.parent / "venv"):
        py = cand / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if py.is_file():
            return py
    return None


def tools_dir() -> Path | None:
    p = os.environ.get("UNIANIMATE_COMFY_TOOLS")
    return Path(p) if p and (Path(p) / "comfy_client.py").is_file() else None


def pytest_collection_modifyitems(config, items):
    root = comfy_path()
    reason = None
    if root is None:
        reason = "COMFYUI_PATH does not name a ComfyUI work tree"
    elif comfy_python(root) is None:
        reason = "no Python environment found for COMFYUI_PATH (set COMFYUI_PYTHON)"
    for item in items:
        if "tests/host" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.comfy_host)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _import_from(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Server:
    root: Path
    python: Path
    base: Path
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def models(self) -> Path:
        return self.base / "models"

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def output(self) -> Path:
        return self.base / "output"

    def get(self, path: str, timeout: float = 60):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory) -> Server:
    root = comfy_path()
    python = comfy_python(root)
    base = tmp_path_factory.mktemp("comfy_base")
    for sub in ("models/unianimate", "models/dwpose", "models/vae", "models/clip_vision", "custom_nodes", "input",
                "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "ComfyUI-UniAnimate").symlink_to(REPO, target_is_directory=True)
    port = int(os.environ.get("UNIANIMATE_HOST_PORT") or _free_port())
    log = base / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    cmd = [str(python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
           "--disable-api-nodes", "--base-directory", str(base), "--database-url", f"sqlite:///{base}/user/comfyui.db"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=str(root), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    server = Server(root, python, base, f"http://127.0.0.1:{port}", proc, log)
    t0 = time.time()
    while True:
        try:
            server.get("/system_stats", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() - t0 > 240:
                proc.kill()
                pytest.fail(f"ComfyUI did not start; log tail:\n{server.log_text()[-4000:]}")
            time.sleep(1)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def tools() -> Path:
    d = tools_dir()
    if d is None:
        pytest.skip("UNIANIMATE_COMFY_TOOLS does not name the folder with comfy_client.py / make_test_models.py")
    return d


@pytest.fixture(scope="session")
def client(comfy_server, tools):
    module = _import_from(tools / "comfy_client.py", "unianimate_host_comfy_client")
    return module.ComfyClient(comfy_server.url)


@pytest.fixture(scope="session")
def test_models(comfy_server, tools) -> dict[str, str]:
    """Random-weight TAESD/KL VAEs and a sparse ViT-H CLIP vision file (ComfyUI's loaders accept them),
    the tiny UniAnimate checkpoint with its cached empty-prompt context, and the tiny DWPose models."""
    subprocess.run([sys.executable, str(tools / "make_test_models.py"), str(comfy_server.models), "--taesd"],
                   check=True, capture_output=True, timeout=600)
    import numpy as np
    from tiny_unet import tiny_checkpoint_path, tiny_zero_y

    shutil.copyfile(tiny_checkpoint_path(), comfy_server.models / "unianimate" / "unianimate_tiny.safetensors")
    np.save(comfy_server.models / "unianimate" / "zero_y_openclip_vit_h14.npy", tiny_zero_y().numpy())
    for f in ("yolox_l.onnx", "dw-ll_ucoco_384.onnx"):
        shutil.copyfile(REPO / "tests" / "fixtures" / "dwpose" / f, comfy_server.models / "dwpose" / f)
    return {"unet": "unianimate_tiny.safetensors", "vae": "test_taesd_vae.safetensors",
            "vae_kl": "test_sd_vae_kl.safetensors", "clip_vision": "test_clip_vision_h.safetensors"}
