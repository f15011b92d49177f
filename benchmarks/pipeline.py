"""Wall time and peak memory of the one-command demo on this machine (prints numbers, asserts nothing).

Runs ``python -m unianimate_core demo`` in a fresh process (as a user would), so the numbers include
interpreter start-up, imports, pose preparation, model construction, sampling, decoding and mp4
writing. Without real model files this is the tiny random-weight installation check.

    python benchmarks/pipeline.py [--repeat 3] [-- extra demo arguments]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(extra: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB of the child, exit code) of one demo run."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "unianimate_core", "demo", "--quiet", "--out", str(Path(tmp) / "demo.mp4"), *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode:
            print(proc.stdout[-2000:])
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: meaningful when it grew
        return wall, max(peak_kib, before) / 1024.0, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("extra", nargs="*", help="extra arguments for the demo command (after --)")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}")
    walls, peaks = [], []
    for i in range(args.repeat):
        wall, peak, code = run_once(args.extra)
        if code:
            print(f"run {i}: exit code {code}")
            return code
        walls.append(wall)
        peaks.append(peak)
        print(f"run {i}: wall {wall:.1f} s, peak RSS {peak:.0f} MiB")
    print(f"demo wall time: median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max {max(walls):.1f}); "
          f"peak RSS {max(peaks):.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
