"""The public API surface and the lazy-import contract of unianimate_core.pose."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_GUARD = r'''
import builtins
real = builtins.__import__
BLOCKED = ("cv2", "onnxruntime", "mediapipe", "comfy", "comfy_api", "folder_paths", "nodes", "server")
def guard(name, *args, **kwargs):
    if name.split(".")[0] in BLOCKED:
        raise ImportError("blocked " + name)
    return real(name, *args, **kwargs)
builtins.__import__ = guard
import numpy as np
import unianimate_core.pose as pose
from unianimate_core.pose import Person, PoseFrame, align_poses, to_pose_keypoint, from_pose_keypoint
frame = from_pose_keypoint(to_pose_keypoint(PoseFrame(10, 20, [Person.empty()])))[0]
try:
    pose.render_pose(frame)
except pose.PoseDependencyError as exc:
    assert "opencv-python-headless" in str(exc)
    print("lazy-ok")
'''


def test_pose_package_needs_no_cv2_onnxruntime_mediapipe_or_comfyui_to_import():
    res = subprocess.run([sys.executable, "-c", _GUARD], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "lazy-ok" in res.stdout


def test_public_names():
    import unianimate_core.pose as pose

    for name in ("PoseFrame", "Person", "DWPoseEstimator", "MediaPipeEstimator", "select_person", "align_poses",
                 "render_pose", "to_pose_keypoint", "from_pose_keypoint", "find_model_file", "default_search_dirs",
                 "extract_poses", "swap_red_blue", "AlignConfig"):
        assert name in pose.__all__, name
    assert len(pose.__all__) == len(set(pose.__all__))
    missing = [name for name in pose.__all__ if not hasattr(pose, name)]
    assert not missing  # every advertised name is importable
