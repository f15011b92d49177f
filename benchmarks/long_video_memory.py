"""Peak memory of a long-video job against a single 32-frame window (CPU, tiny UNet), in one run.

    python benchmarks/long_video_memory.py [--frames 900] [--window 32] [--size 128] [--steps 1]
                                           [--short-steps 3] [--repeats 2] [--json long_video_memory.json]

Each job is a fresh Python process (``--worker``) that builds the tiny random-weight UNet and VAE
stand-in, then runs what a long-video job does: uint8 pose renders for every frame on the CPU (the
conditions), the latent of the whole clip on the CPU, the official sliding windows (``--window`` frames,
overlap 8, one window per UNet call, batched classifier-free guidance at 2.5), then VAE decoding in
chunks of 2 frames straight to the uint8 output frames (``runner.decode_to_uint8``).

Reported per job (MiB): peak RSS (VmHWM), the RSS before the job's data existed (interpreter, torch,
models), the bytes of the uint8 output frames the user asked for and of the uint8 pose renders, and

    working = peak - before - output frames - pose renders

which is what the job itself needs on top of its unavoidable per-frame data. The 32-frame job is the
short path (one UNet call per step over the 32 frames). The memory does not depend on the number of
steps beyond the first few calls (each call frees what it allocated), so the long job runs one step (37
window calls at 900 frames) and the 32-frame job three (three calls).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _util import proc_status_mib  # benchmarks/ is the script folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]


def worker(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    from unianimate_core.config import UNetConfig
    from unianimate_core.diffusion import Conditions, SamplerOptions, SlidingWindowOptions
    from unianimate_core.diffusion.sampler import sample_video
    from unianimate_core.diffusion.sliding import sample_long_sliding
    from unianimate_core.pipeline.encoders import TinyVAE, seeded_
    from unianimate_core.pipeline.runner import decode_to_uint8
    from unianimate_core.unet import UNetSD_UniAnimate

    model = seeded_(UNetSD_UniAnimate(UNetConfig.tiny()), 0).eval().requires_grad_(False)
    model.set_zero_y(torch.randn(1, 77, 1024, generator=torch.Generator().manual_seed(1)))
    vae = TinyVAE(0)
    before = proc_status_mib("VmRSS")
    f, size = a.frames, a.size
    g = torch.Generator().manual_seed(2)
    poses = torch.randint(0, 256, (1, 3, f + 1, size, size), dtype=torch.uint8, generator=g)
    cond = Conditions.build("standard", image=torch.randn(1, 1024, generator=g), dwpose=poses,
                            ref_latent=torch.randn(1, 4, size // 8, size // 8, generator=g))
    noise = torch.randn(1, 4, f, size // 8, size // 8, generator=g)
    opts = SamplerOptions(steps=a.steps, guide_scale=2.5)
    t0 = time.perf_counter()
    if f <= a.window:
        latent = sample_video(model, noise, cond, opts)
    else:
        latent = sample_long_sliding(model, noise, cond, opts, SlidingWindowOptions(context_size=a.window,
                                                                                    context_overlap=8))
    sampled = proc_status_mib("VmHWM")
    frames = decode_to_uint8(vae, latent, 2)
    seconds = time.perf_counter() - t0
    out_mib = sum(fr.nbytes for fr in frames) / 2**20
    peak = proc_status_mib("VmHWM")
    print(json.dumps(dict(frames=f, peak_mib=peak, peak_after_sampling_mib=sampled, before_mib=before,
                          output_mib=out_mib, poses_mib=poses.numel() / 2**20, seconds=seconds,
                          working_mib=peak - before - out_mib - poses.numel() / 2**20)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=900)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=1, help="steps of the long job")
    p.add_argument("--short-steps", type=int, default=3,
                   help="steps of the 32-frame job (several UNet calls, as the long job makes: the allocator's "
                        "reuse of freed blocks is part of both peaks)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default="long_video_memory.json")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return
    runs: dict[int, list[dict]] = {a.window: [], a.frames: []}
    print(f"long_video_memory: tiny UNet, {a.size}x{a.size}, windows of {a.window} (overlap 8), {a.steps} step(s) "
          f"({a.short_steps} for the {a.window}-frame job), "
          f"guidance 2.5 batched, decode 2 frames at a time; {a.repeats} interleaved repeats", flush=True)
    for rep in range(a.repeats):
        for f in (a.window, a.frames):
            cmd = [sys.executable, __file__, "--worker", "--frames", str(f), "--window", str(a.window),
                   "--size", str(a.size), "--steps", str(a.steps if f > a.window else a.short_steps)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            if res.returncode != 0:
                raise SystemExit(f"worker failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            runs[f].append(r)
            print(f"  rep {rep} {f:4d} frames: peak {r['peak_mib']:7.1f} MiB | before {r['before_mib']:6.1f} | output "
                  f"frames {r['output_mib']:7.1f} | pose renders {r['poses_mib']:7.1f} | working {r['working_mib']:6.1f} "
                  f"| {r['seconds']:.0f} s", flush=True)
    short = statistics.median(r["working_mib"] for r in runs[a.window])
    long = statistics.median(r["working_mib"] for r in runs[a.frames])
    minus_out_short = statistics.median(r["peak_mib"] - r["output_mib"] for r in runs[a.window])
    minus_out_long = statistics.median(r["peak_mib"] - r["output_mib"] for r in runs[a.frames])
    summary = dict(working_ratio=long / short, working_short_mib=short, working_long_mib=long,
                   rss_minus_output_ratio=minus_out_long / minus_out_short)
    print(f"\nworking memory {a.frames} frames / {a.window} frames = {long:.1f} / {short:.1f} MiB = {long / short:.3f}; "
          f"peak RSS minus output frames: {minus_out_long:.1f} / {minus_out_short:.1f} MiB = "
          f"{minus_out_long / minus_out_short:.3f}")
    Path(a.json).write_text(json.dumps(dict(args=vars(a), runs=runs, summary=summary), indent=1))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
