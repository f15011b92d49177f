"""Sampling speed and memory with the tiny UNet (random weights; numbers, never assertions).

    python benchmarks/sampling.py [--device cpu|cuda] [--frames 16,32,64,128] [--steps 4] [--size 64]
    python benchmarks/sampling.py --steps 1 --frames 32,128,512   # quick memory-vs-length sweep
    python benchmarks/sampling.py --host-buffers 400               # host memory of a sliding update

Prints, for a short clip (batched and sequential guidance) and for the two long-video strategies
at several total lengths:
  * steps/s     - denoising steps of the whole clip per second (continuation: segment steps / s)
  * ms/frame-step - wall time per (frame x denoising step), comparable across lengths
  * calls, max batch, max frames per model call
  * peak memory - CUDA: peak allocated on the compute device (storage stays on the CPU);
                  CPU: peak resident-set growth of the process during sampling (storage and
                  compute share the CPU there, so it includes the full-length latent/poses;
                  the "storage" column says how much of it that is).
Each case runs in a fresh subprocess so that peaks do not leak between cases. The long-video
peaks should stay flat as the number of frames grows (only one window/segment is on the device).

--host-buffers F: the full-length host (storage) memory of sliding windows, which does grow with
the length: F frames of a 512 x 768 latent (4 x 64 x 96), a trivial model (no UNet activations),
peak resident-set growth printed in units of one latent-sized float32 buffer.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unianimate_core.config import UNetConfig  # noqa: E402
from unianimate_core.diffusion import (  # noqa: E402
    Conditions, ContinuationOptions, NoiseOptions, SamplerOptions, SlidingWindowOptions, plan_segments,
    prepare_noise, sample_long_continuation, sample_long_sliding, sample_video,
)
from unianimate_core.unet import UNetSD_UniAnimate  # noqa: E402

CONTEXT, OVERLAP, SEGMENT = 8, 2, 8


class CountingModel:
    """Wraps the UNet to count calls and the largest input it was given."""

    def __init__(self, unet: UNetSD_UniAnimate) -> None:
        self.unet = unet
        self.supports_cond_mask = True
        self.calls = self.max_batch = self.max_frames = 0

    def __call__(self, x, t, **kwargs):
        self.calls += 1
        self.max_batch = max(self.max_batch, x.shape[0])
        self.max_frames = max(self.max_frames, x.shape[2])
        return self.unet(x, t, **kwargs)


class RssPeak:
    """Samples the resident set size every few ms (CPU has no allocator statistics)."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __enter__(self) -> "RssPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def build_inputs(frames: int, size: int, seed: int = 0) -> tuple[Conditions, torch.Tensor]:
    """Random stand-ins: uint8 poses on the CPU (storage), reference latent, CLIP embedding."""
    gen = torch.Generator().manual_seed(seed)
    h = size // 8
    dwpose = torch.randint(0, 256, (1, 3, frames + 1, size, size), generator=gen, dtype=torch.uint8)
    ref = torch.randn(1, 4, 1, h, h, generator=gen) * 0.5
    cond = Conditions.build("standard", image=torch.randn(1, 1, 1024, generator=gen), dwpose=dwpose, ref_latent=ref)
    return cond, ref


def run_case(kind: str, frames: int, args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    unet = UNetSD_UniAnimate(UNetConfig.tiny(), device=device).eval()
    unet.set_zero_y(torch.randn(1, 77, 1024, generator=torch.Generator().manual_seed(7)))
    model = CountingModel(unet)
    cond, ref = build_inputs(frames, args.size)
    gen = torch.Generator().manual_seed(1)
    cfg_mode = "sequential" if kind.endswith("seq") else "batched"
    options = SamplerOptions(steps=args.steps, cfg_mode=cfg_mode, device=device)
    n_steps = len(options.schedule_timesteps())
    latent_shape = (1, 4, frames, args.size // 8, args.size // 8)
    latent_bytes = 4 * torch.Size(latent_shape).numel()
    # full-length tensors on the storage device: uint8 poses + latent state, x0 and the two window sums
    # (sliding) or the finished output (continuation)
    storage_bytes = cond.dwpose.numel() + latent_bytes * (1 if kind == "continuation" else 4)
    if kind != "continuation":
        noise_opts = NoiseOptions.short() if kind.startswith("short") else NoiseOptions.long()
        noise = prepare_noise(latent_shape, gen, noise_opts, ref)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with RssPeak() as rss:
        start = time.perf_counter()
        if kind.startswith("short"):
            sample_video(model, noise, cond, options)
        elif kind == "sliding":
            sample_long_sliding(model, noise, cond, options, SlidingWindowOptions(CONTEXT, OVERLAP))
        else:
            decode = lambda z: torch.sigmoid(z[:, :3]).repeat_interleave(8, 2).repeat_interleave(8, 3)  # noqa: E731
            sample_long_continuation(model, cond, options, ContinuationOptions(SEGMENT), decode_last_frame=decode,
                                     generator=gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else rss.peak - rss.base
    clip_steps = n_steps * (len(plan_segments(frames, SEGMENT)) if kind == "continuation" else 1)
    return dict(kind=kind, frames=frames, seconds=seconds, steps_per_s=clip_steps / seconds,
                ms_per_frame_step=1000 * seconds / (frames * n_steps), calls=model.calls,
                max_batch=model.max_batch, max_frames=model.max_frames, peak_mb=peak / 2**20,
                storage_mb=storage_bytes / 2**20)


class TrivialModel:
    """v = 0.3 x: costs nothing, so the measured memory is the sampler's own."""

    supports_cond_mask = True

    def __call__(self, x, t, cond_mask=None, **kwargs):
        return 0.3 * x


def host_buffers(frames: int, threads: int) -> None:
    torch.set_num_threads(threads)
    noise = torch.randn(1, 4, frames, 64, 96, generator=torch.Generator().manual_seed(0))
    latent_mb = noise.numel() * 4 / 2**20
    with RssPeak() as rss:
        sample_long_sliding(TrivialModel(), noise, Conditions(), SamplerOptions(steps=2),
                            SlidingWindowOptions(32, 8))
    grown = (rss.peak - rss.base) / 2**20
    print(f"sliding, {frames} frames of 4x64x96: latent {latent_mb:.1f} MB, peak host growth {grown:.1f} MB "
          f"= {grown / latent_mb:.1f} latent-sized buffers ({grown / frames:.2f} MB per frame)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", default="16,32,64,128", help="total lengths for the long-video strategies")
    parser.add_argument("--short-frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="requested DDIM steps (official list)")
    parser.add_argument("--size", type=int, default=64, help="pixel size (square), multiple of 64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--host-buffers", type=int, metavar="F", help="measure the host memory of a sliding "
                        "update over F frames of a 512x768 latent instead of the timing table")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host_buffers:
        host_buffers(args.host_buffers, args.threads)
        return
    if args.case:
        kind, frames = args.case.split(":")
        print(json.dumps(run_case(kind, int(frames), args)))
        return
    cases = [("short", args.short_frames), ("short_seq", args.short_frames)]
    for kind in ("sliding", "continuation"):
        cases += [(kind, int(f)) for f in args.frames.split(",")]
    print(f"device={args.device} size={args.size}px steps={args.steps} threads={args.threads} "
          f"window={CONTEXT}/{OVERLAP} segment={SEGMENT} torch={torch.__version__}")
    print(f"{'case':<13}{'frames':>7}{'s':>8}{'steps/s':>9}{'ms/fr-step':>11}{'calls':>7}{'maxB':>6}{'maxF':>6}"
          f"{'peak MB':>9}{'storage MB':>11}")
    base = [sys.executable, __file__, "--device", args.device, "--steps", str(args.steps), "--size", str(args.size),
            "--threads", str(args.threads)]
    for kind, frames in cases:
        out = subprocess.run(base + ["--case", f"{kind}:{frames}"], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['kind']:<13}{r['frames']:>7}{r['seconds']:>8.2f}{r['steps_per_s']:>9.2f}{r['ms_per_frame_step']:>11.1f}"
              f"{r['calls']:>7}{r['max_batch']:>6}{r['max_frames']:>6}{r['peak_mb']:>9.1f}{r['storage_mb']:>11.2f}")


if __name__ == "__main__":
    main()
