"""install.py decides what to pip-install without ever replacing an existing build (nothing is installed here)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def install():
    spec = importlib.util.spec_from_file_location("unianimate_install_script", REPO / "install.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def probes(install, **states):
    def probe(name):
        return install.ModuleState(name, states.get(name, "ok"), "boom" if states.get(name) == "broken" else "")
    return probe


@pytest.mark.parametrize(
    "ort, cv2, gpu, expected",
    [
        ("ok", "ok", True, []),
        ("ok", "ok", False, []),
        ("missing", "ok", True, ["onnxruntime-gpu"]),
        ("missing", "ok", False, ["onnxruntime"]),
        ("ok", "missing", True, ["opencv-python-headless"]),
        ("missing", "missing", False, ["onnxruntime", "opencv-python-headless"]),
        ("broken", "ok", True, []),
        ("ok", "broken", False, []),
    ],
)
def test_plan(install, ort, cv2, gpu, expected):
    plan = install.make_plan(probes(install, onnxruntime=ort, cv2=cv2), lambda: gpu)
    assert plan.packages == expected
    assert len(plan.warnings) == (ort == "broken") + (cv2 == "broken")


def test_gpu_probe_not_consulted_when_onnxruntime_present(install):
    def gpu():
        raise AssertionError("must not probe for a GPU when onnxruntime imports")
    assert install.make_plan(probes(install), gpu).packages == []


def test_main_runs_pip_only_for_missing(install, capsys):
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    assert install.main(probes(install), lambda: True, run) == 0
    assert calls == []
    assert install.main(probes(install, onnxruntime="missing"), lambda: True, run) == 0
    assert calls == [[sys.executable, "-m", "pip", "install", "onnxruntime-gpu"]]


def test_broken_module_is_reported_not_replaced(install, capsys):
    calls = []
    install.main(probes(install, onnxruntime="broken"), lambda: True, lambda cmd, **kw: calls.append(cmd))
    out = capsys.readouterr().out
    assert calls == []
    assert "does not import" in out and "boom" in out


def test_probe_module_distinguishes_missing_and_present(install):
    assert install.probe_module("json").status == "ok"
    assert install.probe_module("surely_not_a_module_xyz").status == "missing"


def test_nvidia_visible_via_nvidia_smi(install, monkeypatch):
    monkeypatch.setattr(install.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    ok = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, stdout="GPU 0: NVIDIA H100 (UUID: x)\n")
    fail = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 9, stdout="")
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert install.nvidia_gpu_visible(ok) is True
    assert install.nvidia_gpu_visible(fail) is False
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    assert install.nvidia_gpu_visible(ok) is False
