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

    python -m unianimate_core eval --toy [--split test --start 0 --clips 4 --size 128 --frames 16] [--out DIR]

A model trained on the world (``make observatory``; docs/evaluation.md), generated through the
pipeline's sampler and scored next to its untrained start and the baselines::

    python -m unianimate_core eval --toy --model model.safetensors [--untrained] [--frames 8 --clips 16] \
        [--width 64 --height 128] [--steps 30 --guidance 2.5 --condition-mode standard --no-noise-prior --sample-seed 11]
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
    p.add_argument("--clips", type=_count(1), default=4, help="--toy: clips (default 4)")
    p.add_argument("--start", type=_count(0), default=0,
                   help="--toy: index of the first clip (default 0); e.g. --start 16 --clips 16 scores clips 16-31, "
                        "exactly as a --clips 32 run scores them (each clip is sampled from its own seeded generator)")
    p.add_argument("--size", type=int, default=128, help="--toy: frame size (default 128)")
    p.add_argument("--width", type=int, default=None, help="--toy: frame width (default --size)")
    p.add_argument("--height", type=int, default=None, help="--toy: frame height (default --size)")
    p.add_argument("--frames", type=int, default=16, help="--toy: frames per clip (default 16)")
    p.add_argument("--model", help="--toy: a UNet trained on the world (.safetensors); its clips are generated and scored")
    p.add_argument("--untrained", action="store_true",
                   help="--toy --model: also score the same architecture at its training start (fresh weights, "
                        "--init-seed, zero-initialised output layers: the trainer's step 0)")
    p.add_argument("--init-seed", type=int, default=0, help="--untrained: the training run's seed (default 0)")
    p.add_argument("--steps", type=int, default=30, help="--toy --model: DDIM steps (default 30)")
    p.add_argument("--guidance", type=float, default=2.5, help="--toy --model: guidance scale (default 2.5)")
    p.add_argument("--condition-mode", default="standard", choices=["standard", "first_frame", "both"],
                   help="--toy --model: condition mode (default standard)")
    p.add_argument("--no-noise-prior", action="store_true", help="--toy --model: plain start noise (no reference prior)")
    p.add_argument("--sample-seed", type=int, default=11, help="--toy --model: sampling seed (default 11)")
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


def load_toy_model(path: str):
    """A UNet trained on the world, with the CLIP stand-in's empty context as ``zero_y``."""
    from ..checkpoint import load_unet
    from ..errors import UniAnimateError
    from ..toyworld import ToyImageEncoder

    if not Path(path).is_file():
        raise EvaluationError(f"--model {path} does not exist; train the observatory model first (make observatory).")
    try:
        model = load_unet(path, dtype="fp32")
    except UniAnimateError as exc:
        raise EvaluationError(f"--model {path} is not a UniAnimate UNet checkpoint: {exc}") from exc
    model.set_zero_y(ToyImageEncoder().empty_context())
    return model


def untrained_like(model, seed: int):
    """The same architecture at the trainer's step 0 (seeded fresh weights, zero-initialised output layers)."""
    from ..toyworld import ToyImageEncoder
    from ..train.modes import fresh_unet

    fresh = fresh_unet(model.config, seed, zero_init=True).eval().requires_grad_(False)
    fresh.set_zero_y(ToyImageEncoder().empty_context())
    return fresh


def paired_margin(a: list, b: list, key: str) -> tuple[float, float, int, int]:
    """Per-clip ``a - b`` of summary ``key``: mean, standard error, clips where a wins, clips compared."""
    d = np.array([x.summary.get(key, np.nan) - y.summary.get(key, np.nan) for x, y in zip(a, b)], dtype=np.float64)
    d = d[np.isfinite(d)]
    if not d.size:
        return float("nan"), float("nan"), 0, 0
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return float(d.mean()), se, int((d > 0).sum()), int(d.size)


def _count(minimum: int):
    """An argparse type: an integer >= ``minimum``, with a usage error that says so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r} (e.g. 16)")
        return value
    return parse


def run_toy(args: argparse.Namespace):
    from ..toyworld import ToyImageEncoder, World, WorldConfig
    from ..toyworld.generate import GenerateOptions, generate
    from .evaluate import evaluate_toy_clip, toy_baselines
    from .report import Report, merge

    width, height = args.width or args.size, args.height or args.size
    world = World(WorldConfig(width=width, height=height, frames=args.frames))
    encoder = ToyImageEncoder()
    models: dict[str, Any] = {}
    if args.model:
        models["trained"] = load_toy_model(args.model)
        if args.untrained:
            models["untrained"] = untrained_like(models["trained"], args.init_seed)
    gen = GenerateOptions(steps=args.steps, guidance=args.guidance, mode=args.condition_mode,
                          noise_prior=not args.no_noise_prior, seed=args.sample_seed)
    per_run: dict[str, list] = {}
    for n, i in enumerate(range(args.start, args.start + args.clips)):
        clip = world.clip(args.split, i)
        runs = {"ground_truth": clip.frames}
        runs.update({name: generate(m, clip, gen, encoder=encoder) for name, m in models.items()})
        runs.update(toy_baselines(clip))
        for name, frames in runs.items():
            per_run.setdefault(name, []).append(
                evaluate_toy_clip(frames, clip, encoder=encoder, warp=not args.no_warp, gt_ceiling=False))
        print(f"clip {n + 1}/{args.clips} done (index {i})", flush=True)
    what = "a model" if models else "baselines"
    chosen = f"{args.clips} clips" if not args.start else f"clips {args.start}-{args.start + args.clips - 1}"
    report = Report(f"Synthetic world, {what} ({args.split} split, {chosen}, {width}x{height}, "
                    f"{args.frames} frames)")
    for name, ms in per_run.items():
        report.add(name, merge(ms))
    if models:
        report.notes.append(f"generated with {args.steps} DDIM steps, guidance {args.guidance}, mode "
                            f"{args.condition_mode}, noise prior {'off' if args.no_noise_prior else 'on'}, "
                            f"seed {args.sample_seed}; model {args.model}")
        for key, unit in (("psnr_clip", " dB"), ("pck_0.2", ""), ("pck_0.5", ""), ("limb_overlap", "")):
            mean, se, wins, n = paired_margin(per_run["trained"], per_run["copy_reference"], key)
            report.notes.append(f"trained - copy_reference, {key}: {mean:+.4g}{unit} (standard error {se:.2g} over "
                                f"{n} clips; trained higher on {wins} of {n})")
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
