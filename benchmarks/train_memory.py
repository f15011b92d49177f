"""Training-memory table of the UNet (meta-device estimate; no GPU needed).

    python benchmarks/train_memory.py [--frames 16] [--height 768] [--width 512] [--batch 1] [--tiny]

Prints the Markdown table of docs/training.md: weights, gradients, optimizer, EMA and activation
memory per training setting, and whether it fits 24 / 48 / 80 GB (see unianimate_core/train/memory.py
for the method and what is not counted).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unianimate_core.config import UNetConfig  # noqa: E402
from unianimate_core.train.memory import memory_table  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--height", type=int, default=768)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="the tiny test config instead of the released model")
    a = p.parse_args()
    config = UNetConfig.tiny() if a.tiny else UNetConfig.full()
    print(memory_table(config, a.frames, a.height, a.width, batch=a.batch))


if __name__ == "__main__":
    main()
