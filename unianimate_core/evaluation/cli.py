"""``python -m unianimate_core eval``: score generated videos, write the table and the plots.

Real videos::

    python -m unianimate_core eval --generated out.mp4 --ground-truth driving.mp4 --reference person.png \\
        [--generated other.mp4 ...] [--name a --name b] [--params steps=30 --params steps=10] \\
        [--pose-backend auto|dwpose|mediapipe|none] [--keypoints poses.json] [--models DIR] \\
        [--strategy short|windows|continuation --segment-length 32 --context-size 32 --context-overlap 8] \\
        [--out eval_report] [--no-plots] [--no-warp]

Pose following re-extracts the poses of the generated frames with the pose pipeline (DWPose or
MediaPipe) and compares them with the poses of the ground-truth video extracted the same way
(detector biases cancel), or with ``--keypoints`` (POSE_KEYPOINT JSON or the pipeline's keypoints
file, in the generated video's pixels). The ground truth is squashed to the generated size (the
pipeline's resize) and both are cut to the shorter length; both are said in the report.

The synthetic world (a self-check of the suite, and the baselines every model must beat)::

    python -m unianimate_core eval --toy [--split test --clips 4 --size 128 --frames 16] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EvaluationError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="score generated videos (fidelity, pose, identity, temporal, long-video) -> table + plots",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generated", action="append", default=[], metavar="VIDEO",
                   help="generated video (mp4/webm/gif/webp or a folder of images); repeat to compare runs")
    p.add_argument("--name", action="append", default=[], help="run name per --generated (default: the file name)")
    p.add_argument("--params", action="append", default=[], metavar="K=V[,K=V]",
                   help="parameters per --generated (e.g. steps=30,guidance=2.5): columns and 'metric vs K' plots")
    p.add_argument("--ground-truth", help="the ground-truth video (for real data usually the driving video)")
    p.add_argument("--reference", help="the reference image (identity is measured against it)")
    p.add_argument("--pose-backend", default="auto", choices=["auto", "dwpose", "mediapipe", "none"],
                   help="pose pipeline used to re-extract poses (default auto: DWPose if found, else MediaPipe, else none)")
    p.add_argument("--keypoints", help="ground-truth poses instead of extracting them from --ground-truth "
                                       "(POSE_KEYPOINT JSON or the pipeline's keypoints file)")
    p.add_argument("--models", action="append", default=[], metavar="DIR", help="folder with the DWPose files")
    p.add_argument("--strategy", default="short", choices=["short", "windows", "continuation"],
                   help="long-video strategy that made the videos: seam metrics at its boundaries (default short: none)")
    p.add_argument("--segment-length", type=int, default=32)
    p.add_argument("--context-size", type=int, default=32)
    p.add_argument("--context-overlap", type=int, default=8)
    p.add_argument("--toy", action="store_true", help="evaluate the baselines on the synthetic world instead")
    p.add_argument("--split", default="test", help="--toy: world split (default test)")
    p.add_argument("--clips", type=int, default=4, help="--toy: clips (default 4)")
    p.add_argument("--size", type=int, default=128, help="--toy: frame size (default 128)")
    p.add_argument("--frames", type=int, default=16, help="--toy: frames per clip (default 16)")
    p.add_argument("--out", default="eval_report", help="output folder (report.md, report.json, PNG plots)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-warp", action="store_true", help="skip the warping error (optical flow: the slowest metric)")
    return p


def _params(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        if "=" not in item:
            raise EvaluationError(f"--params takes KEY=VALUE pairs separated by commas, got {item!r}.")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v.strip()
    return out


def _read_video(path: str, what: str) -> np.ndarray:
    from ..pipeline.video import read_clip

    if not Path(path).exists():
        raise EvaluationError(f"{what} not found: {path}. Pass an existing video file, animated image, image or image folder.")
    clip = read_clip(path)
    if not clip.frames:
        raise EvaluationError(f"{path} has no frames.")
    return np.stack(clip.frames)


def _squash(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from ..pipeline.conditioning import squash_resize_u8

    return np.stack([squash_resize_u8(f, size) for f in frames])


def _pose_fn(backend: str, models: list[str]):
    """frames (F, H, W, 3) uint8 -> list[PoseFrame], through the pipeline's backend choice; None if unavailable."""
    if backend == "none":
        return None, "none"
    from ..pipeline.models import find_models
    from ..pipeline.poses import choose_extractor

    try:
        name, ext = choose_extractor(backend, find_models(models).dwpose, has_keypoints=True)
    except Exception:
        if backend != "auto":
            raise
        return None, "none"
    if ext is None:
        return None, "none"
    return (lambda frames: ext.driving(list(frames))), name


def _read_keypoints(path: str, size: tuple[int, int]):
    from ..pose.keypoints import PoseFrame
    from ..pose.pose_keypoint import from_pose_keypoint

    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and data.get("format"):
        from ..pipeline.poses import load_keypoints_file

        _, frames = load_keypoints_file(path)
    else:
        frames = from_pose_keypoint(data)
    # keypoints are normalised: they describe the generated canvas at any size
    return [PoseFrame(size[0], size[1], f.people) for f in frames]


def run_real(args: argparse.Namespace):
    from .evaluate import evaluate_video
    from .long_video import seam_frames
    from .report import Report

    if not args.generated:
        raise EvaluationError("give at least one --generated video (or --toy for the synthetic world).")
    if args.name and len(args.name) != len(args.generated):
        raise EvaluationError(f"{len(args.name)} --name for {len(args.generated)} --generated videos; give one each or none.")
    if args.params and len(args.params) != len(args.generated):
        raise EvaluationError(f"{len(args.params)} --params for {len(args.generated)} --generated videos; give one each or none.")
    reference = _read_video(args.reference, "--reference")[0] if args.reference else None
    gt_full = _read_video(args.ground_truth, "--ground-truth") if args.ground_truth else None
    pose_fn, backend = (None, "none") if args.keypoints else _pose_fn(args.pose_backend, args.models)
    encoder = None
    report = Report("UniAnimate evaluation")
    notes: list[str] = []
    notes_pose: list[str] = []
    for i, path in enumerate(args.generated):
        gen = _read_video(path, "--generated")
        h, w = gen.shape[1:3]
        gt = None
        if gt_full is not None:
            gt = gt_full if gt_full.shape[1:3] == (h, w) else _squash(gt_full, (w, h))
            n = min(len(gt), len(gen))
            if n != len(gen) or n != len(gt):
                notes.append(f"{path}: {len(gen)} generated vs {len(gt)} ground-truth frames; the first {n} are compared")
            gen, gt = gen[:n], gt[:n]
        ref = None
        if reference is not None:
            ref = reference if reference.shape[:2] == (h, w) else _squash(reference[None], (w, h))[0]
        gt_poses = pred_poses = None
        if args.keypoints:
            gt_poses = _read_keypoints(args.keypoints, (w, h))[:len(gen)]
            if pose_fn is None:
                pose_fn, backend = _pose_fn(args.pose_backend if args.pose_backend != "none" else "auto", args.models)
        elif pose_fn is not None and gt is not None:
            gt_poses = pose_fn(gt)
        if gt_poses is not None and pose_fn is not None:
            gen = gen[:len(gt_poses)]
            gt = gt[:len(gt_poses)] if gt is not None else None
            pred_poses = pose_fn(gen)
        seams = seam_frames(args.strategy, len(gen), context_size=args.context_size,
                            context_overlap=args.context_overlap, segment_length=args.segment_length)
        m = evaluate_video(gen, ground_truth=gt, reference=ref, gt_poses=gt_poses, pred_poses=pred_poses,
                           encoder=encoder, seams=seams, warp=not args.no_warp)
        m.info["pose_backend"] = backend if pred_poses is not None else "none"
        if pred_poses is None and (args.keypoints or gt is not None) and not notes_pose:
            notes_pose.append("pose following not measured: no pose backend available (install the DWPose files "
                              "with --models DIR, or mediapipe) " + ("" if args.keypoints else "or no ground-truth video"))
        name = args.name[i] if args.name else Path(path).stem
        report.add(name, m, _params(args.params[i]) if args.params else {})
        print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in m.summary.items() if k in
                                      ("psnr_clip", "ssim", "pck_0.2", "id_colour", "tde", "flicker")))
    for n in notes + notes_pose:
        print("note: " + n)
    return report


def run_toy(args: argparse.Namespace):
    from ..toyworld import ToyImageEncoder, World, WorldConfig
    from .evaluate import evaluate_toy_clip, toy_baselines
    from .report import Report, merge

    world = World(WorldConfig(width=args.size, height=args.size, frames=args.frames))
    encoder = ToyImageEncoder()
    per_run: dict[str, list] = {}
    for i in range(args.clips):
        clip = world.clip(args.split, i)
        runs = {"ground_truth": clip.frames, **toy_baselines(clip)}
        for name, frames in runs.items():
            per_run.setdefault(name, []).append(
                evaluate_toy_clip(frames, clip, encoder=encoder, warp=not args.no_warp, gt_ceiling=False))
        print(f"clip {i + 1}/{args.clips} done")
    report = Report(f"Synthetic world baselines ({args.split} split, {args.clips} clips, {args.size}x{args.size}, "
                    f"{args.frames} frames)")
    for name, ms in per_run.items():
        report.add(name, merge(ms))
    return report


def cmd_eval(args: argparse.Namespace) -> int:
    report = run_toy(args) if args.toy else run_real(args)
    paths = report.write(args.out, plots=not args.no_plots)
    print(report.markdown())
    print(f"wrote {len(paths)} files to {args.out} (report.md, report.json" + (", plots" if not args.no_plots else "") + ")")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from ..pipeline.cli import main

    sys.exit(main(["eval", *sys.argv[1:]]))
