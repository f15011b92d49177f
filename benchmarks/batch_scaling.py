"""Batch throughput on a local Ray: jobs per hour with 1 and with 2 renderers (prints numbers, asserts nothing).

Runs ``python -m unianimate_core batch`` in a fresh process per measurement (as a user would) on N jobs of
the tiny random-weight model (demo media, pre-extracted keypoints), each renderer on one torch thread.
Two numbers per run:

* render throughput: jobs / (last job finished - first job started), from the manifest's attempt times
  (what more workers change);
* wall throughput: jobs / the command's whole wall time (adds Ray start-up, ~10 s, and model loading).

Runs alternate 1, 2, 2, 1 ... workers so that a change in the machine's load hits both sides. On a
machine with C free cores, w workers can at best give min(w, C)x; on a shared 2-core machine expect less.

    python benchmarks/batch_scaling.py [--jobs 8] [--repeat 2] [--size 128] [--frames 8] [--steps 6]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"


def write_jobs(folder: Path, n: int, size: int, frames: int, steps: int) -> Path:
    defaults = {"width": size, "height": size, "frames": frames, "steps": steps, "pose_backend": "keypoints",
                "keypoints": str(DEMO / "driving_keypoints.json"), "preview": False}
    lines = [{"defaults": defaults}] + [{"id": f"job{i}", "reference": str(DEMO / "reference.png"),
                                         "driving": str(DEMO / "driving.mp4"), "seed": i} for i in range(n)]
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def run_once(jobs: Path, workers: int, out: Path) -> tuple[float, float, int]:
    """(wall seconds, render span seconds, jobs done)."""
    cmd = [sys.executable, "-m", "unianimate_core", "batch", str(jobs), "--random-weights", "--workers", str(workers),
           "--threads", "1", "--out-dir", str(out), "--object-store-mb", "200", "--quiet"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        print(proc.stderr[-3000:])
        raise SystemExit(proc.returncode)
    records = json.loads((out / "manifest.json").read_text())["jobs"].values()
    times = [(dt.datetime.fromisoformat(a["started"]), dt.datetime.fromisoformat(a["ended"]))
             for r in records for a in r["attempts"]]
    span = (max(e for _, e in times) - min(s for s, _ in times)).total_seconds()
    return wall, span, sum(r["status"] == "done" for r in records)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}; "
          f"{args.jobs} jobs of {args.size}x{args.size}, {args.frames} frames, {args.steps} steps (tiny model)")
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    order = [(1, 2, 2, 1)[i % 4] for i in range(2 * args.repeat)]  # 1, 2, 2, 1, ...
    with tempfile.TemporaryDirectory() as tmp:
        jobs = write_jobs(Path(tmp), args.jobs, args.size, args.frames, args.steps)
        for i, workers in enumerate(order):
            wall, span, done = run_once(jobs, workers, Path(tmp) / f"out{i}")
            assert done == args.jobs, done
            results[workers].append((wall, span))
            print(f"run {i}: {workers} worker(s): wall {wall:.1f} s, render span {span:.1f} s -> "
                  f"{args.jobs / span * 3600:.0f} jobs/h rendering, {args.jobs / wall * 3600:.0f} jobs/h wall "
                  f"(load avg {os.getloadavg()[0]:.2f})")
    med = {w: (statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)) for w, r in results.items()}
    for w in (1, 2):
        print(f"{w} worker(s): median {args.jobs / med[w][1] * 3600:.0f} jobs/h rendering, "
              f"{args.jobs / med[w][0] * 3600:.0f} jobs/h wall")
    print(f"scaling 2 vs 1 workers: {med[1][1] / med[2][1]:.2f}x rendering, {med[1][0] / med[2][0]:.2f}x wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
