"""Command line: ``python -m unianimate_core {animate, demo, extract-poses, models, eval, train, batch}``.

``animate`` makes a video from a reference photo and a driving clip; ``demo`` runs the whole
pipeline on the bundled media (with the real model files when they are found, otherwise with a
tiny random-weight model whose output is clearly labelled as noise); ``extract-poses`` writes the
aligned pose images only; ``models`` shows which model files are found where; ``eval`` scores
generated videos (``unianimate_core.evaluation.cli``);
``train`` trains or fine-tunes the UNet from a JSON config (``unianimate_core/train``, docs/training.md);
``batch`` renders many jobs on Ray or on ComfyUI
servers (``unianimate_core.batch``).

Exit codes: 0 ok, 2 bad input or missing files (one line says what to do), 130 interrupted (what
had finished is kept and its location printed).
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..errors import UniAnimateError

from .errors import PipelineError
from .models import ModelFiles, find_models
from .poses import POSE_BACKENDS
from .runner import MODES, STRATEGIES, AnimateOptions, animate, describe
from .video import Clip

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_REFERENCE = "reference.png"
DEMO_DRIVING = "driving.mp4"
DEMO_KEYPOINTS = "driving_keypoints.json"
#: Size/steps of the random-weight installation check (small: it only has to prove the plumbing).
TINY_DEFAULTS = {"width": 128, "height": 192, "steps": 10}

EPILOG = """\
Model files (searched in --models DIR, $UNIANIMATE_MODELS, ComfyUI/models/{unianimate,checkpoints,
clip_vision,vae,dwpose} of the ComfyUI this pack is installed in or $COMFYUI_PATH, ./checkpoints):
  unianimate_16f_32f_non_ema_223000.pth   UniAnimate UNet (or a converted .safetensors)
  open_clip_pytorch_model.bin             OpenCLIP ViT-H-14 (image embedding + empty-prompt context)
  v2-1_512-ema-pruned.ckpt                SD 2.1 checkpoint (only its VAE is used)
  yolox_l.onnx, dw-ll_ucoco_384.onnx      DWPose (optional: MediaPipe or keypoint files also work)
The headless CLIP/VAE need the optional extra: pip install "comfyui-unianimate[standalone]".
"""


def _positive_or_all(value: str) -> int | None:
    if value.lower() in ("all", "0", "none"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames or 'all', got {value!r}") from None
    if n < 2:
        raise argparse.ArgumentTypeError("at least 2 frames (or 'all')")
    return n


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model files")
    g.add_argument("--models", action="append", default=[], metavar="DIR",
                   help="folder with the model files (a ComfyUI models folder works; repeatable)")
    g.add_argument("--unet", help="UniAnimate UNet file (overrides the search)")
    g.add_argument("--clip", help="OpenCLIP ViT-H-14 file (overrides the search)")
    g.add_argument("--vae", help="SD 2.1 checkpoint or SD VAE file (overrides the search)")
    g.add_argument("--device", default="auto", help="auto (CUDA, MPS, else CPU), cpu, cuda, cuda:1 ... (default auto)")
    g.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="UNet precision (auto: fp16 on CUDA, else fp32)")
    g.add_argument("--weight-dtype", default="same", choices=["same", "fp16", "bf16"],
                   help="store the UNet weights in fp16/bf16 while computing in --dtype (half the weight memory of an "
                        "fp32 run; same: store in --dtype)")


def _add_run_args(p: argparse.ArgumentParser, defaults: AnimateOptions) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--width", type=int, default=defaults.width, help="output width, multiple of 64 (default %(default)s)")
    g.add_argument("--height", type=int, default=defaults.height, help="output height, multiple of 64 (default %(default)s)")
    g.add_argument("--frames", type=_positive_or_all, default=defaults.frames,
                   help="frames to generate, or 'all' for the whole clip (default %(default)s)")
    g.add_argument("--frame-interval", type=int, default=defaults.frame_interval,
                   help="use every n-th driving frame (default %(default)s)")
    g.add_argument("--steps", type=int, default=defaults.steps, help="DDIM steps (default %(default)s)")
    g.add_argument("--guidance", type=float, default=defaults.guidance, help="guidance scale (default %(default)s)")
    g.add_argument("--solver", default=defaults.solver, choices=["ddim", "dpmpp_2m"],
                   help="ddim: the official sampler (default). dpmpp_2m: DPM-Solver++(2M), second order; use it with "
                        "--timestep-spacing logsnr and 10-15 steps")
    g.add_argument("--timestep-spacing", default=defaults.timestep_spacing, choices=["official", "trailing", "logsnr"],
                   help="timesteps the steps visit: official list (30 steps run 31), trailing (exactly --steps from "
                        "pure noise), logsnr (even in log-SNR, for dpmpp_2m) (default %(default)s)")
    g.add_argument("--guidance-end", type=float, default=defaults.guidance_end,
                   help="apply guidance only on this first fraction of the steps; later steps make one model call "
                        "instead of two (default %(default)s = every step)")
    g.add_argument("--deep-cache-interval", type=int, default=defaults.deep_cache_interval,
                   help="reuse the UNet's deep features between steps: the whole UNet runs every N-th step, the "
                        "steps between run only its first and last --deep-cache-depth blocks (default %(default)s "
                        "= off, the official sampler)")
    g.add_argument("--deep-cache-depth", type=int, default=defaults.deep_cache_depth,
                   help="blocks at each end of the UNet that still run on reuse steps, 1-12; smaller is faster and "
                        "further from the full result (default %(default)s)")
    g.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default %(default)s)")
    g.add_argument("--long", dest="strategy", choices=STRATEGIES, default=defaults.strategy,
                   help="long-video strategy: short (one pass), windows (official sliding windows), continuation "
                        "(first-frame segments; Ctrl-C keeps finished ones), auto (short up to --segment-length "
                        "frames, else continuation) (default %(default)s)")
    g.add_argument("--segment-length", type=int, default=defaults.segment_length,
                   help="frames per continuation segment (default %(default)s)")
    g.add_argument("--context-size", type=int, default=defaults.context_size, help="sliding-window size (default %(default)s)")
    g.add_argument("--context-overlap", type=int, default=defaults.context_overlap,
                   help="sliding-window overlap (default %(default)s)")
    g.add_argument("--mode", choices=MODES, default=defaults.mode,
                   help="reference conditioning: standard (reference latent), first_frame, both (default %(default)s)")
    g.add_argument("--pose-backend", choices=POSE_BACKENDS, default=defaults.pose_backend,
                   help="auto: DWPose if its files are found, else MediaPipe, else --keypoints (default %(default)s)")
    g.add_argument("--keypoints", help="pre-extracted keypoints file (unianimate-wholebody134 JSON)")
    g.add_argument("--no-align", action="store_true", help="use the driving poses as they are (no alignment to the reference)")
    g.add_argument("--uint8", choices=["round", "truncate"], default=defaults.uint8,
                   help="8-bit conversion: round (default) or truncate (the official code)")
    g.add_argument("--fps", type=float, default=None, help="output frame rate (default: driving fps / frame interval)")
    g.add_argument("--no-preview", action="store_true", help="skip the side-by-side preview")
    g.add_argument("--save-latent", action="store_true",
                   help="also write the video's latent next to it (<name>.latent, ComfyUI's Load Latent reads it)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unianimate_core",
                                     description="UniAnimate without ComfyUI: animate a photo with a driving video.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("animate", help="reference photo + driving video -> mp4", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="reference image (the person to animate)")
    p.add_argument("--driving", required=True, help="driving clip: mp4/webm/..., animated webp/gif, or an image folder")
    p.add_argument("--out", required=True, help="output video (.mp4); the preview is written next to it")
    p.add_argument("--random-weights", action="store_true",
                   help="use a tiny random-weight model instead of the real files (installation check; output is noise)")
    _add_run_args(p, AnimateOptions())
    _add_model_args(p)

    d = sub.add_parser("demo", help="run the whole pipeline on the bundled demo media", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--out", default="outputs/demo.mp4", help="output video (default %(default)s)")
    d.add_argument("--random-weights", action="store_true", help="force the tiny random-weight model")
    _add_run_args(d, AnimateOptions(frames=None, steps=30))
    _add_model_args(d)

    e = sub.add_parser("extract-poses", help="write the aligned pose images of a driving clip")
    e.add_argument("--ref", required=True)
    e.add_argument("--driving", required=True)
    e.add_argument("--out", required=True, help="output folder (0000.png ..., ref_pose.png)")
    e.add_argument("--width", type=int, default=512)
    e.add_argument("--height", type=int, default=768)
    e.add_argument("--frames", type=_positive_or_all, default=None)
    e.add_argument("--frame-interval", type=int, default=1)
    e.add_argument("--pose-backend", choices=POSE_BACKENDS, default="auto")
    e.add_argument("--keypoints")
    e.add_argument("--no-align", action="store_true")
    e.add_argument("--models", action="append", default=[], metavar="DIR")

    m = sub.add_parser("models", help="show which model files are found and where they were searched")
    m.add_argument("--models", action="append", default=[], metavar="DIR")

    from ..evaluation.cli import add_parser as add_eval_parser

    add_eval_parser(sub)

    from ..train.cli import add_parser as add_train_parser

    add_train_parser(sub)

    from ..batch.cli import add_parser as add_batch_parser

    add_batch_parser(sub)
    return parser


def _options(args: argparse.Namespace, **overrides: object) -> AnimateOptions:
    values = dict(width=args.width, height=args.height, frames=args.frames, frame_interval=args.frame_interval,
                  steps=args.steps, guidance=args.guidance, seed=args.seed, strategy=args.strategy,
                  segment_length=args.segment_length, context_size=args.context_size,
                  context_overlap=args.context_overlap, mode=args.mode, pose_backend=args.pose_backend,
                  align=not args.no_align, uint8=args.uint8, fps=args.fps, preview=not args.no_preview,
                  solver=args.solver, timestep_spacing=args.timestep_spacing, guidance_end=args.guidance_end,
                  deep_cache_interval=args.deep_cache_interval, deep_cache_depth=args.deep_cache_depth)
    values.update(overrides)
    return AnimateOptions(**values)  # type: ignore[arg-type]


def _providers(args: argparse.Namespace, files: ModelFiles, random_weights: bool):
    from .providers import RealModels, TinyModels, resolve_device, resolve_dtype

    device = resolve_device(args.device)
    if random_weights:
        if device.type == "cpu":
            import torch

            # A tiny model on a small CPU runs fastest on one thread: several OpenMP threads mostly
            # wait for each other (measured 1.5 s vs 17 s per step on a busy 2-core machine).
            torch.set_num_threads(1)
        return TinyModels(seed=0, device=device)
    weights = None if getattr(args, "weight_dtype", "same") == "same" else args.weight_dtype
    return RealModels(files, device, resolve_dtype(args.dtype, device), weight_dtype=weights)


def read_driving(path: str, frames: int | None, frame_interval: int, thin: bool) -> tuple[Clip, int]:
    """Decode only the driving frames the selection can use: (clip, frame interval left to apply).

    With ``frames`` the official selection needs at most ``interval * (frames - 1) + 1`` frames. In
    whole-clip mode (``frames`` None) with ``thin``, every n-th frame is kept while decoding (a long
    clip never sits in memory in full) and the selection then takes every frame of the thinned clip.
    ``thin`` must be False when frame indices have to stay those of the file (a keypoints file).
    """
    from .video import read_clip

    if frames is None and frame_interval > 1 and thin:
        return read_clip(path, step=frame_interval), 1
    limit = None if frames is None else frame_interval * (frames - 1) + 1
    return read_clip(path, limit=limit), frame_interval


def _run(args: argparse.Namespace, reference_path: str, driving_path: str, keypoints: str | None,
         random_weights: bool, files: ModelFiles, option_overrides: dict[str, object]) -> int:
    from .video import read_image

    options = _options(args, **option_overrides)  # validated before any file is read or model built
    models = _providers(args, files, random_weights)
    reference = read_image(reference_path)
    clip, interval = read_driving(driving_path, options.frames, options.frame_interval, thin=keypoints is None)
    options = replace(options, frame_interval=interval)
    print(f"reference: {reference_path} ({reference.shape[1]}x{reference.shape[0]}); driving: {driving_path} "
          f"({len(clip.frames)} frames read, {clip.size[0]}x{clip.size[1]}, {clip.fps:g} fps)")
    result = animate(models, reference, clip, options, args.out, keypoints_file=keypoints,
                     dwpose_files=files.dwpose, progress_stream=sys.stderr, show_progress=not args.quiet)
    print(describe(result))
    if args.save_latent and result.latent is not None and result.video is not None:
        from .latent_file import LATENT_SUFFIX, save_latent

        print(f"latent:  {save_latent(result.video.with_suffix(LATENT_SUFFIX), result.latent)}")
    return 130 if result.interrupted else 0


def cmd_animate(args: argparse.Namespace) -> int:
    files = find_models(args.models, unet=args.unet, clip=args.clip, vae=args.vae)
    if not args.random_weights and not files.complete:
        print("error: " + files.describe_missing() + "\n(or add --random-weights for an installation check that "
              "produces labelled noise)", file=sys.stderr)
        return 2
    return _run(args, args.ref, args.driving, args.keypoints, args.random_weights, files, {})


def cmd_demo(args: argparse.Namespace) -> int:
    for name in (DEMO_REFERENCE, DEMO_DRIVING, DEMO_KEYPOINTS):
        if not (DEMO_DIR / name).is_file():
            print(f"error: demo media {DEMO_DIR / name} is missing; run the demo from a checkout of the repository.",
                  file=sys.stderr)
            return 2
    files = find_models(args.models, unet=args.unet, clip=args.clip, vae=args.vae)
    overrides: dict[str, object] = {}
    random_weights = args.random_weights or not files.complete
    if random_weights:
        if not args.random_weights:
            print("Real model files were not found, so the demo cannot make a real video.\n"
                  + files.describe_missing()
                  + "\nRunning a tiny RANDOM-WEIGHT model instead to prove the installation works end to end. "
                    "Its output is noise and is labelled as such.")
        defaults = build_parser().parse_args(["demo"])
        for key, value in TINY_DEFAULTS.items():  # small sizes unless the user chose others
            if getattr(args, key) == getattr(defaults, key):
                overrides[key] = value
    else:
        print(f"using real model files: {files.unet}, {files.clip_vision}, {files.vae}")
    keypoints = args.keypoints or str(DEMO_DIR / DEMO_KEYPOINTS)
    return _run(args, str(DEMO_DIR / DEMO_REFERENCE), str(DEMO_DIR / DEMO_DRIVING), keypoints,
                random_weights, files, overrides)


def cmd_extract_poses(args: argparse.Namespace) -> int:
    from PIL import Image

    from .frames import select_frames
    from .poses import prepare_poses
    from .video import read_image

    files = find_models(args.models)
    reference = read_image(args.ref)
    if args.frame_interval < 1:
        raise PipelineError(f"--frame-interval must be >= 1; got {args.frame_interval}.")
    clip, interval = read_driving(args.driving, args.frames, args.frame_interval, thin=args.keypoints is None)
    sel = select_frames(len(clip.frames), args.frames, interval)
    stage = prepare_poses(reference, clip.frames, sel.indices, (args.width, args.height), backend=args.pose_backend,
                          dwpose_files=files.dwpose, keypoints_file=args.keypoints, align=not args.no_align)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, pose in enumerate(stage.poses):
        Image.fromarray(pose).save(out / f"{i:04d}.png")
    Image.fromarray(stage.reference_pose).save(out / "ref_pose.png")
    print(f"wrote {len(stage.poses)} pose images and ref_pose.png to {out} (backend {stage.backend})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    files = find_models(args.models)
    for role in ("unet", "clip_vision", "clip_text", "zero_y", "vae", "dwpose"):
        value = getattr(files, role)
        print(f"{role:12s} {value if value is not None else '-- not found --'}")
    print("searched:\n" + "\n".join(f"  {d}" for d in files.searched))
    if not files.complete:
        print(files.describe_missing())
    return 0 if files.complete else 2


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation.cli import cmd_eval as run

    return run(args)


def cmd_train(args: argparse.Namespace) -> int:
    from ..train.cli import cmd_train as run

    return run(args)


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch.cli import cmd_batch as run

    return run(args)


COMMANDS = {"animate": cmd_animate, "demo": cmd_demo, "extract-poses": cmd_extract_poses, "models": cmd_models,
            "eval": cmd_eval, "train": cmd_train, "batch": cmd_batch}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except UniAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
