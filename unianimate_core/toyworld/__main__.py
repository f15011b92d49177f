"""``python -m unianimate_core.toyworld``: preview and benchmark the world, measure its codec."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from .errors import ToyWorldError


def _benchmark(args: argparse.Namespace) -> dict:
    """Clips per second (frames + ground truth, and with the pose renders) on this machine."""
    from .world import World, WorldConfig

    world = World(WorldConfig(width=args.width, height=args.height, frames=args.frames))
    world.clip("train", 10_000)  # warm-up (imports, OpenCV)
    t0 = time.perf_counter()
    clips = [world.clip("train", i) for i in range(args.clips)]
    t1 = time.perf_counter()
    for c in clips:
        c.pose_images()
        c.reference_pose_image()
    t2 = time.perf_counter()
    return {"size": f"{args.width}x{args.height}", "frames": args.frames, "clips": args.clips,
            "clips_per_s_frames_only": round(args.clips / (t1 - t0), 2),
            "clips_per_s_with_pose_images": round(args.clips / (t2 - t0), 2)}


def _measure_codec(args: argparse.Namespace) -> dict:
    """Round trip of validation frames through the codec: PSNR of the 8-bit result, UNet-scale latent stats."""
    import math

    import torch

    from ..pipeline.conditioning import LATENT_SCALE
    from .codec import load_toy_codec
    from .world import World, WorldConfig

    codec = load_toy_codec()
    world = World(WorldConfig(width=args.size, height=args.size, frames=4))
    sq, n, lat = 0.0, 0, []
    for i in range(args.clips):
        u8 = torch.from_numpy(world.clip("val", i).frames).permute(0, 3, 1, 2)
        x = u8.float() / 127.5 - 1.0
        z = codec.encode(x)
        rec = ((codec.decode(z).clamp(-1, 1) + 1) * 127.5).round()
        sq += float(((rec - u8.float()) ** 2).sum())
        n += u8.numel()
        lat.append((z * LATENT_SCALE).permute(1, 0, 2, 3).reshape(4, -1))
    z = torch.cat(lat, 1)
    mse = sq / n
    return {"frames": args.clips * 4, "size": args.size, "psnr_db": None if mse == 0 else 10 * math.log10(255 ** 2 / mse),
            "mse_8bit": mse, "latent_mean": [round(float(v), 4) for v in z.mean(1)],
            "latent_std": [round(float(v), 4) for v in z.std(1)]}


def _export(args: argparse.Namespace) -> str:
    """clip_NNNNN.mp4 (frames; or with ``--format png`` a folder clip_NNNNN/ of lossless PNG frames),
    clip_NNNNN.json (POSE_KEYPOINT of the frames), clip_NNNNN_ref.png and clip_NNNNN_ref.json
    (reference image and its POSE_KEYPOINT), and index.json (ids of every clip)."""
    from PIL import Image

    from ..pipeline.video import write_video
    from ..pose.pose_keypoint import to_pose_keypoint
    from .world import World, WorldConfig

    world = World(WorldConfig(width=args.width, height=args.height, frames=args.frames, render=args.render,
                              seed=args.seed))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for i in range(args.start, args.start + args.clips):
        c = world.clip(args.split, i)
        stem = f"clip_{i:05d}"
        if args.format == "png":  # lossless: the trainer reads a folder of images as one video
            (out / stem).mkdir(exist_ok=True)
            for k, frame in enumerate(c.frames):
                Image.fromarray(frame).save(out / stem / f"frame_{k:04d}.png")
        else:
            write_video(out / f"{stem}.mp4", list(c.frames), fps=args.fps)
        (out / f"{stem}.json").write_text(json.dumps(c.pose_keypoint()))
        Image.fromarray(c.reference).save(out / f"{stem}_ref.png")
        (out / f"{stem}_ref.json").write_text(json.dumps(to_pose_keypoint(c.reference_pose_frame())))
        index.append({"clip": stem, "split": args.split, "index": i, "character_id": c.character.character_id,
                      "motion_id": c.motion_id, "scene_seed": c.scene.seed, "reference_time": c.reference_time})
    (out / "index.json").write_text(json.dumps({"config": repr(world.config), "clips": index}, indent=1))
    return f"wrote {args.clips} clips to {out}"


def _preview(args: argparse.Namespace) -> str:
    """A PNG grid: per clip, the reference + frames on top of their pose images."""
    import numpy as np
    from PIL import Image

    from .world import World, WorldConfig

    world = World(WorldConfig(width=args.width, height=args.height, frames=args.frames))
    rows = []
    for i in range(args.clips):
        c = world.clip(args.split, i)
        rows.append(np.concatenate([np.concatenate([c.reference, *c.frames], 1),
                                    np.concatenate([c.reference_pose_image(), *c.pose_images()], 1)], 0))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out)
    return args.out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m unianimate_core.toyworld", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure-codec", help="round-trip PSNR and latent statistics on validation clips")
    m.add_argument("--clips", type=int, default=50)
    m.add_argument("--size", type=int, default=128)
    b = sub.add_parser("benchmark", help="clips per second of the world on this machine")
    pv = sub.add_parser("preview", help="write a PNG grid of clips (frames over pose images)")
    ex = sub.add_parser("export", help="write clips as videos + POSE_KEYPOINT JSON + reference PNG (a video dataset)")
    ex.add_argument("--out", required=True)
    ex.add_argument("--split", default="train")
    ex.add_argument("--start", type=int, default=0, help="first clip index")
    ex.add_argument("--fps", type=float, default=8.0)
    ex.add_argument("--render", default="blocks", choices=["blocks", "sharp"])
    ex.add_argument("--format", default="mp4", choices=["mp4", "png"],
                    help="mp4 (H.264, lossy) or png (a folder of lossless frames per clip: exact block frames)")
    ex.add_argument("--seed", type=int, default=0, help="world seed")
    for q in (b, pv, ex):
        q.add_argument("--width", type=int, default=128)
        q.add_argument("--height", type=int, default=128)
        q.add_argument("--frames", type=int, default=16)
        q.add_argument("--clips", type=int, default=20)
    pv.add_argument("--split", default="train")
    pv.add_argument("--out", default="outputs/toyworld_preview.png")
    args = p.parse_args(argv)
    try:
        if args.command == "measure-codec":
            print(json.dumps(_measure_codec(args)))
        elif args.command == "benchmark":
            print(json.dumps(_benchmark(args)))
        elif args.command == "export":
            print(_export(args))
        else:
            print(_preview(args))
    except ToyWorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
