"""CPU training speed of every mode on the tiny config (steps/s, in one run so the ratios are comparable).

    python benchmarks/train_speed.py [--steps 20] [--size 64] [--frames 4] [--threads 1]

Generated clips (tests/train/synth.py), the tiny UNet initialised from the golden-fixture weights,
tiny VAE/CLIP stand-ins, batch 1, fp32. The rate is measured by the trainer over the training loop
(data loading, forward, backward, optimizer; no checkpoint, validation or plot inside the loop).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests.tiny_unet import tiny_checkpoint_path  # noqa: E402
from tests.train.synth import make_video  # noqa: E402
from unianimate_core.train.config import parse_config  # noqa: E402
from unianimate_core.train.trainer import train  # noqa: E402

MODES = {
    "full": {"kind": "full"},
    "temporal": {"kind": "temporal"},
    "lora r8": {"kind": "lora", "lora": {"rank": 8, "alpha": 8}},
    "mamba (scratch)": {"kind": "mamba", "mamba": {"source": "scratch"}},
    "mamba (distill layers)": {"kind": "mamba", "mamba": {"source": "distill", "distill": "layers"}},
    "mamba (distill output)": {"kind": "mamba", "mamba": {"source": "distill", "distill": "output"}},
    "full + grad. checkpointing": {"kind": "full", "_ckpt": True},
    "full bf16 autocast": {"kind": "full", "_precision": "bf16"},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(3):
            make_video(tmp / "videos", f"clip{i}", max(10, a.frames + 4), 96, 80, seed=i)
        print(f"tiny config, {a.frames} frames x {a.size}x{a.size}, batch 1, {a.threads} thread(s), {a.steps} steps\n")
        print("| mode | steps/s | s/step |")
        print("|---|---|---|")
        for name, mode in MODES.items():
            mode = dict(mode)
            ckpt, precision = mode.pop("_ckpt", False), mode.pop("_precision", "fp32")
            cfg = parse_config({
                "output_dir": str(tmp / name.replace(" ", "_")), "seed": 0,
                "data": {"videos": str(tmp / "videos"), "cache_dir": str(tmp / "cache"), "width": a.size,
                         "height": a.size, "frames": a.frames, "frame_stride": 1, "validation_videos": 0},
                "model": {"init": str(tiny_checkpoint_path())}, "encoders": {"kind": "tiny"}, "mode": mode,
                "train": {"steps": a.steps, "threads": a.threads, "gradient_checkpointing": ckpt,
                          "precision": precision},
                "checkpoint": {"every": 10 ** 6}, "validation": {"at_end": False},
                "logging": {"every": 10 ** 6, "plot_every": 10 ** 6, "progress": False},
            })
            result = train(cfg, log=lambda m: None)
            print(f"| {name} | {result.steps_per_second:.2f} | {1 / result.steps_per_second:.2f} |", flush=True)


if __name__ == "__main__":
    main()
