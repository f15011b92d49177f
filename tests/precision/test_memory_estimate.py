"""unianimate_core.memory.activation_bytes (what ComfyUI is told to keep free) against the activation peak of
the full-size UNet, counted as live tensor storages on the ``meta`` device (benchmarks/_util.live_tensor_peak:
no weights, no compute, the real op sequence). The estimate must cover the count (too low = out of memory
on 8-12 GB cards) and stay within its documented 15 % margin plus 5 % (too high = needless offloading).
The CPU-allocator measurements and the GPU check are in docs/performance.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _util import live_tensor_peak  # noqa: E402

from unianimate_core.config import UNetConfig  # noqa: E402
from unianimate_core.mamba import MambaConfig  # noqa: E402
from unianimate_core.memory import MARGIN, activation_bytes  # noqa: E402
from unianimate_core.unet import UNetSD_UniAnimate  # noqa: E402


def counted_peak(temporal: str, frames: int, height: int, width: int, batch: int) -> int:
    cfg = UNetConfig.full(temporal=temporal, mamba=MambaConfig(backend="torch") if temporal == "mamba" else None)
    with torch.device("meta"):
        model = UNetSD_UniAnimate(cfg, dtype=torch.float16).eval().requires_grad_(False)
        model.set_zero_y(torch.zeros(1, 77, 1024))
        h, w = height // 8, width // 8
        x = torch.zeros(batch, 4, frames, h, w, dtype=torch.float16)
        kw = dict(image=torch.zeros(batch, 1024, dtype=torch.float16),
                  dwpose=torch.zeros(batch, 3, frames + 1, height, width, dtype=torch.float16),
                  randomref=torch.zeros(batch, 4, 1, h, w, dtype=torch.float16))
        t = torch.full((batch,), 500)
    with live_tensor_peak() as mode, torch.inference_mode():
        model(x, t, **kw)
    return mode.peak


@pytest.mark.slow
@pytest.mark.parametrize("temporal, frames, height, width, batch", [
    ("attention", 4, 256, 384, 1), ("attention", 2, 256, 256, 2), ("mamba", 1, 256, 256, 1), ("mamba", 16, 256, 256, 1)])
def test_estimate_covers_the_counted_peak_with_the_documented_margin(temporal, frames, height, width, batch):
    peak = counted_peak(temporal, frames, height, width, batch)
    est = activation_bytes(frames, height // 8, width // 8, batch, torch.float16, temporal)
    assert peak <= est <= (MARGIN + 0.05) * peak, (peak, est, est / peak)


def test_fp32_compute_doubles_and_batch_and_frames_scale_linearly():
    base = activation_bytes(16, 96, 64)
    assert activation_bytes(16, 96, 64, dtype=torch.float32) == 2 * base
    assert activation_bytes(16, 96, 64, dtype=torch.bfloat16) == base
    assert activation_bytes(16, 96, 64, batch=2) == 2 * base
    assert activation_bytes(33, 96, 64) == pytest.approx(base * 34 / 17, rel=1e-6)
