"""Install the pose backend's binary dependencies, but only when they are missing.

ComfyUI-Manager runs this file after ``pip install -r requirements.txt`` (you can also run it by hand
with ComfyUI's Python: ``python install.py``). ``onnxruntime`` / ``onnxruntime-gpu`` and the OpenCV
wheels (``opencv-python``, ``-headless``, ``-contrib``...) each install the *same* Python module, so
listing one in requirements.txt would silently replace a GPU or contrib build the user already has.
Instead this script:

* does nothing for a module that imports (whatever build it is);
* installs ``onnxruntime-gpu`` when an NVIDIA GPU is visible (CUDA torch, or a working
  ``nvidia-smi``), otherwise ``onnxruntime``, when ``import onnxruntime`` fails because it is absent;
* installs ``opencv-python-headless`` when ``import cv2`` fails because it is absent;
* never touches a module that is installed but fails to import (a broken CUDA/cuDNN setup, say):
  it prints what is wrong and how to fix it instead, because reinstalling could replace a build the
  user chose on purpose.
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

ONNXRUNTIME_CPU = "onnxruntime"
ONNXRUNTIME_GPU = "onnxruntime-gpu"
OPENCV = "opencv-python-headless"


@dataclass(frozen=True)
class ModuleState:
    """Whether a module is importable, absent, or present but broken (with the import error)."""

    name: str
    status: str  # "ok" | "missing" | "broken"
    error: str = ""


@dataclass
class InstallPlan:
    """The pip packages to install and the problems to report instead of installing."""

    packages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def probe_module(name: str) -> ModuleState:
    """Try to import ``name``; distinguish "not installed" from "installed but broken"."""
    try:
        importlib.import_module(name)
        return ModuleState(name, "ok")
    except ImportError as exc:
        if importlib.util.find_spec(name) is None:
            return ModuleState(name, "missing", str(exc))
        return ModuleState(name, "broken", str(exc))
    except Exception as exc:  # noqa: BLE001 - a module's import-time crash is "broken", not "missing"
        return ModuleState(name, "broken", f"{type(exc).__name__}: {exc}")


def nvidia_gpu_visible(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> bool:
    """True if a CUDA (not ROCm) torch sees a GPU, or ``nvidia-smi -L`` lists one."""
    try:
        import torch

        if torch.cuda.is_available() and getattr(torch.version, "hip", None) is None:
            return True
    except Exception:  # noqa: BLE001 - no/broken torch: fall back to nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in (out.stdout or "")


def make_plan(probe: Callable[[str], ModuleState], gpu_visible: Callable[[], bool]) -> InstallPlan:
    """Decide what to install. Pure: the probes are passed in (tests use fakes)."""
    plan = InstallPlan()
    ort = probe("onnxruntime")
    if ort.status == "missing":
        plan.packages.append(ONNXRUNTIME_GPU if gpu_visible() else ONNXRUNTIME_CPU)
    elif ort.status == "broken":
        plan.warnings.append(
            "onnxruntime is installed but does not import (" + ort.error + "). It is left as is. "
            "Fix it by reinstalling the build you want with ComfyUI's Python, e.g. "
            f"`{sys.executable} -m pip install --force-reinstall onnxruntime-gpu` (NVIDIA) or `... onnxruntime` (CPU)."
        )
    cv = probe("cv2")
    if cv.status == "missing":
        plan.packages.append(OPENCV)
    elif cv.status == "broken":
        plan.warnings.append(
            "OpenCV (cv2) is installed but does not import (" + cv.error + "). It is left as is. "
            f"Fix it with `{sys.executable} -m pip install --force-reinstall opencv-python-headless` "
            "(or reinstall the OpenCV variant you use)."
        )
    return plan


def pip_command(packages: Sequence[str]) -> list[str]:
    """pip in the running interpreter (ComfyUI's), so the packages land where ComfyUI imports from."""
    return [sys.executable, "-m", "pip", "install", *packages]


def main(probe: Callable[[str], ModuleState] = probe_module,
         gpu_visible: Callable[[], bool] = nvidia_gpu_visible,
         run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> int:
    plan = make_plan(probe, gpu_visible)
    for warning in plan.warnings:
        print(f"[ComfyUI-UniAnimate] WARNING: {warning}")
    if not plan.packages:
        print("[ComfyUI-UniAnimate] onnxruntime and OpenCV are present; nothing to install.")
        return 0
    print(f"[ComfyUI-UniAnimate] installing {', '.join(plan.packages)}")
    result = run(pip_command(plan.packages))
    if result.returncode != 0:
        print(f"[ComfyUI-UniAnimate] pip failed (exit {result.returncode}); install by hand: "
              + " ".join(pip_command(plan.packages)))
    return int(result.returncode)


if __name__ == "__main__":
    sys.exit(main())
