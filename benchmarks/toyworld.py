"""Speed of the synthetic world: clips per second (frames + ground truth, and with the pose images).

    python benchmarks/toyworld.py [--clips 20] [--frames 16] [--sizes 128,256]

Prints one JSON line per size; numbers depend on the machine and its load (run on an idle one to
compare). The same measurement as ``python -m unianimate_core.toyworld benchmark``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unianimate_core.toyworld.__main__ import _benchmark  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--sizes", default="128,256")
    args = p.parse_args()
    for s in (int(v) for v in args.sizes.split(",")):
        print(json.dumps(_benchmark(argparse.Namespace(width=s, height=s, frames=args.frames, clips=args.clips))))


if __name__ == "__main__":
    main()
