"""Pose pipeline throughput on the CPU (numbers only; nothing is asserted).

    python benchmarks/pose.py [--repeat 3] [--threads 1] [--dwpose-dir DIR]

Prints frames/s for:
  * DWPose extraction with the tiny stand-in ONNX models of tests/fixtures/dwpose (same input/
    output signature as yolox_l.onnx / dw-ll_ucoco_384.onnx, constant outputs): this measures
    everything except the networks themselves — letterbox, crops, normalisation, decoding,
    NMS, session calls — i.e. the pipeline's own overhead per frame, with all 3 people the
    stand-in detector finds and with the best person only (max_people=1, what extract_poses
    does by default). Pass --dwpose-dir with the real model files to time the real networks.
  * MediaPipe Holistic (when ``mediapipe`` is importable) per image and in tracking mode;
  * alignment, and rendering at 512x768, 768x1216 and 256x384, per frame.
Input: the 16 real frames of tests/fixtures/pose_align/anim2_to_jump/source (175x350) and the
8 frames of dancer_to_seedance (350x350), MIT-licensed (see docs/pose.md, "Test media").
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unianimate_core.pose import (  # noqa: E402
    DWPoseEstimator,
    MediaPipeEstimator,
    PoseDependencyError,
    align_poses,
    extract_poses,
    render_pose,
)

FIXTURES = ROOT / "tests" / "fixtures"


def load_clip(case: str) -> tuple[list[np.ndarray], np.ndarray]:
    from PIL import Image

    src = FIXTURES / "pose_align" / case / "source"
    frames = [np.array(Image.open(p).convert("RGB")) for p in sorted(src.glob("frame_*.png"))]
    return frames, np.array(Image.open(src / "reference.png").convert("RGB"))


def best_rate(fn: Callable[[], Any], items: int, repeat: int) -> float:
    """Items per second of the fastest of ``repeat`` runs (the least disturbed one)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return items / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--dwpose-dir", type=Path, default=FIXTURES / "dwpose", help="folder with yolox_l.onnx and dw-ll_ucoco_384.onnx")
    args = parser.parse_args()

    clips = {case: load_clip(case) for case in ("anim2_to_jump", "dancer_to_seedance")}
    print(f"pose benchmark (CPU, best of {args.repeat}, onnxruntime threads {args.threads})")
    print(f"{'what':58s} {'frames/s':>10s} {'ms/frame':>9s}")

    def row(name: str, fps: float) -> None:
        print(f"{name:58s} {fps:10.1f} {1000.0 / fps:9.2f}")

    est = DWPoseEstimator(args.dwpose_dir / "yolox_l.onnx", args.dwpose_dir / "dw-ll_ucoco_384.onnx", "cpu", threads=args.threads)
    real = args.dwpose_dir.resolve() != (FIXTURES / "dwpose").resolve()
    label = "DWPose (real models)" if real else "DWPose (tiny stand-in models)"
    for case, (frames, _) in clips.items():
        h, w = frames[0].shape[:2]
        for max_people, what in ((None, "all people"), (1, "best person only")):
            fps = best_rate(lambda: [est.detect(f, max_people=max_people) for f in frames], len(frames), args.repeat)
            row(f"{label}, {case} {w}x{h}, {what}", fps)
        fps = best_rate(lambda: extract_poses(est, frames), len(frames), args.repeat)
        row(f"{label}, {case}: extract_poses (score)", fps)

    try:
        for video in (False, True):
            frames = clips["anim2_to_jump"][0]
            with MediaPipeEstimator(video=video) as mp_est:
                mp_est.detect(frames[0])  # graph warm-up
                fps = best_rate(lambda: [mp_est.detect(f) for f in frames], len(frames), args.repeat)
            row(f"MediaPipe Holistic ({'tracking' if video else 'per image'}), anim2_to_jump 175x350", fps)
    except PoseDependencyError as exc:
        print(f"MediaPipe: skipped ({str(exc).split('(')[0].strip()})")

    frames, ref_img = clips["anim2_to_jump"]
    poses = extract_poses(est, frames)
    ref = est.detect(ref_img)
    fps = best_rate(lambda: align_poses(ref, poses), len(poses), args.repeat)
    row("align_poses (16 frames, official path)", fps)
    aligned = align_poses(ref, poses)
    for w, h in ((512, 768), (768, 1216), (256, 384)):
        fps = best_rate(lambda: [render_pose(p, w, h) for p in aligned], len(aligned), args.repeat)
        row(f"render_pose {w}x{h}", fps)


if __name__ == "__main__":
    main()
