"""Time and peak memory of one forward of the full-size UniAnimate UNet (random weights).

    python benchmarks/unet_forward.py [--frames 2] [--size 256] [--dtype fp32] [--device cpu] [--threads N]

Prints one line per measurement. Random weights: no checkpoint is needed. On CUDA the peak is
``torch.cuda.max_memory_allocated``; on CPU the process's peak RSS (weights included).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import peak_rss_mib  # noqa: E402

from unianimate_core.config import UNetConfig  # noqa: E402
from unianimate_core.unet import UNetSD_UniAnimate  # noqa: E402

DT = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=2)
    p.add_argument("--size", type=int, default=256, help="pixel height = width (multiple of 64)")
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--dtype", choices=sorted(DT), default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="the tiny fixture config instead of the full model")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    H, W = a.height or a.size, a.width or a.size
    dev, dt = torch.device(a.device), DT[a.dtype]
    cfg = UNetConfig.tiny() if a.tiny else UNetConfig.full()
    t0 = time.perf_counter()
    with torch.device(dev):
        model = UNetSD_UniAnimate(cfg, dtype=dt).eval().requires_grad_(False)
    model.set_zero_y(torch.randn(1, 77, cfg.context_dim))
    build_s = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(0)
    f = a.frames
    x = torch.randn(1, 4, f, H // 8, W // 8, generator=g).to(dev)
    kw = dict(
        image=torch.randn(1, cfg.context_dim, generator=g).to(dev),
        dwpose=torch.rand(1, 3, f + 1, H, W, generator=g).to(dev),
        randomref=torch.randn(1, 4, 1, H // 8, W // 8, generator=g).to(dev),
    )
    t = torch.tensor([500], device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = model(x, t, **kw)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t1)
    assert torch.isfinite(out.float()).all()
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else peak_rss_mib()
    print(f"unet_forward config={'tiny' if a.tiny else 'full'} params={n:,} dtype={a.dtype} device={dev} "
          f"threads={torch.get_num_threads()} frames={f} size={H}x{W}")
    print(f"  build {build_s:.1f} s | forward min {min(times):.2f} s (of {len(times)}) | "
          f"peak {'GPU alloc' if dev.type == 'cuda' else 'RSS'} {peak:,.0f} MiB | weights {n * out.element_size() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
