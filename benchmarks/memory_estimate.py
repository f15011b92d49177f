"""The activation-memory estimate (``unianimate_core.memory.activation_bytes``, which ComfyUI is told to keep
free) against measured peaks of the full-size UNet (random weights, no download).

    python benchmarks/memory_estimate.py [--skip-cpu] [--json out.json]

Two measurements per configuration (frames x height x width, batch, temporal layer):

* ``cpu``: one forward on the CPU in fp32, the peak of allocations seen by torch's memory profiler
  (allocator events, kernel temporaries included; weights and inputs exist before and are not counted),
  after one unprofiled warm-up call.
  fp32 because the CPU's bf16/fp16 kernels allocate hidden fp32 scratch buffers a GPU does not have.
  Small sizes only (CPU time, 5.7 GB of fp32 weights).
* ``meta``: the same forward on the ``meta`` device, the peak of live tensor storages
  (``_util.live_tensor_peak``); seconds at any size, so it also covers GPU-sized clips in fp16. The
  same small cases run there in fp32 too, to show that the count equals the measured peak.

Prints a table and the error of the estimate, (estimate - measured) / measured.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import live_tensor_peak, profiled_peak_bytes  # noqa: E402

from unianimate_core.config import UNetConfig  # noqa: E402
from unianimate_core.mamba import MambaConfig  # noqa: E402
from unianimate_core.memory import activation_bytes  # noqa: E402
from unianimate_core.unet import UNetSD_UniAnimate  # noqa: E402

#: (temporal, frames, height, width, batch); the first ones also run on the CPU.
CPU_CASES = [("attention", 2, 256, 256, 1), ("attention", 4, 256, 256, 1), ("attention", 2, 256, 384, 1),
             ("attention", 2, 256, 256, 2), ("mamba", 2, 256, 256, 1)]
META_CASES = CPU_CASES + [("attention", 1, 768, 512, 1), ("attention", 16, 768, 512, 1),
                          ("attention", 32, 768, 512, 1), ("attention", 32, 768, 512, 2),
                          ("attention", 16, 1216, 768, 1), ("attention", 48, 768, 512, 1),
                          ("mamba", 32, 768, 512, 1)]


def build(temporal: str, device: str, dtype: torch.dtype) -> UNetSD_UniAnimate:
    cfg = UNetConfig.full(temporal=temporal, mamba=MambaConfig(backend="torch") if temporal == "mamba" else None)
    with torch.device(device):
        model = UNetSD_UniAnimate(cfg, dtype=dtype).eval().requires_grad_(False)
        if device != "meta":
            with torch.no_grad():  # small random weights (values do not change the memory, only finiteness)
                for p in model.parameters():
                    p.normal_(0, 0.02)
        model.set_zero_y(torch.zeros(1, 77, cfg.context_dim))
    return model


def inputs(frames: int, height: int, width: int, batch: int, device: str, dtype: torch.dtype) -> tuple:
    h, w = height // 8, width // 8
    with torch.device(device):
        x = torch.randn(batch, 4, frames, h, w, dtype=dtype)
        kw = dict(image=torch.randn(batch, 1024, dtype=dtype),
                  dwpose=torch.rand(batch, 3, frames + 1, height, width, dtype=dtype),
                  randomref=torch.randn(batch, 4, 1, h, w, dtype=dtype))
        t = torch.full((batch,), 500)
    return x, t, kw


def measure(model, case, device: str, dtype: torch.dtype) -> tuple[int, float]:
    _, frames, height, width, batch = case
    x, t, kw = inputs(frames, height, width, batch, device, dtype)
    t0 = time.perf_counter()
    if device == "meta":
        with live_tensor_peak() as mode, torch.inference_mode():
            model(x, t, **kw)
        peak = mode.peak
    else:
        def run():
            with torch.inference_mode():
                model(x, t, **kw)

        run()  # warm-up: one-time allocations (kernel caches, thread pools) are not activations
        t0 = time.perf_counter()
        peak = profiled_peak_bytes(run)
    return peak, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-cpu", action="store_true", help="only the meta-device counts (seconds instead of minutes)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    models: dict = {}
    for device, dtype, cases in (("meta", torch.float16, META_CASES), ("meta", torch.float32, CPU_CASES),
                                 ("cpu", torch.float32, [] if a.skip_cpu else CPU_CASES)):
        for case in cases:
            temporal = case[0]
            if (device, dtype, temporal) not in models:
                models = {}  # one full model in memory at a time
                models[(device, dtype, temporal)] = build(temporal, device, dtype)
            peak, seconds = measure(models[(device, dtype, temporal)], case, device, dtype)
            _, frames, height, width, batch = case
            est = activation_bytes(frames, height // 8, width // 8, batch, dtype, temporal)
            rows.append(dict(device=device, dtype=str(dtype).replace("torch.", ""), temporal=temporal, frames=frames,
                             height=height, width=width, batch=batch,
                             peak_mib=peak / 2**20, estimate_mib=est / 2**20, error=(est - peak) / peak,
                             bytes_per_latent_pixel=peak / ((frames + 1) * (height // 8) * (width // 8) * batch),
                             seconds=seconds))
            r = rows[-1]
            print(f"{device:5s} {r['dtype']:8s} {temporal:9s} F={frames:<3d} {height}x{width} B={batch}  peak {r['peak_mib']:9.1f} MiB  "
                  f"estimate {r['estimate_mib']:9.1f} MiB  error {100 * r['error']:+6.1f} %  "
                  f"({r['bytes_per_latent_pixel']:.0f} B per latent pixel-frame, {seconds:.0f} s)", flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
