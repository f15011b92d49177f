"""``python -m unianimate_core.toyworld``: regenerate/measure the world's codec, benchmark and preview the world."""
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
    t = sub.add_parser("train-codec", help="train the world's autoencoder and save its weights (default: the shipped file)")
    t.add_argument("--out", type=Path, default=None)
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None)
    m = sub.add_parser("measure-codec", help="reconstruction PSNR and latent statistics on validation frames")
    m.add_argument("--weights", type=Path, default=None)
    m.add_argument("--frames", type=int, default=200)
    m.add_argument("--size", type=int, default=128)
    b = sub.add_parser("benchmark", help="clips per second of the world on this machine")
    pv = sub.add_parser("preview", help="write a PNG grid of clips (frames over pose images)")
    for q in (b, pv):
        q.add_argument("--width", type=int, default=128)
        q.add_argument("--height", type=int, default=128)
        q.add_argument("--frames", type=int, default=16)
        q.add_argument("--clips", type=int, default=20)
    pv.add_argument("--split", default="train")
    pv.add_argument("--out", default="outputs/toyworld_preview.png")
    args = p.parse_args(argv)
    try:
        if args.command == "train-codec":
            from .codec import WEIGHTS_PATH, train

            train(args.out or WEIGHTS_PATH, steps=args.steps, seed=args.seed, threads=args.threads)
        elif args.command == "measure-codec":
            from .codec import load_toy_codec, measure, training_frames

            frames = training_frames(args.frames, sizes=((args.size, args.size),), split="val")
            print(json.dumps(measure(load_toy_codec(args.weights), frames)))
        elif args.command == "benchmark":
            print(json.dumps(_benchmark(args)))
        else:
            print(_preview(args))
    except ToyWorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
