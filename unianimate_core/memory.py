"""Activation memory of one UNet call, for hosts that must keep it free (ComfyUI's ``load_models_gpu``).

Too low and an 8-12 GB card runs out of memory in the middle of a render; too high and ComfyUI
offloads every other model (and parts of this one) for nothing. The figures are the released
architecture's (``UNetConfig.full()``), measured with benchmarks/memory_estimate.py; the table and the
errors are in docs/performance.md.

Model (per sample, latent h x w, F target frames, i.e. F + 1 trunk frames with the reference slot):

* attention UNet: ``ACTIVATION_BYTES_PER_LATENT_PIXEL * (F + 1) * h * w`` - exactly linear: the live
  tensors at the peak are full-resolution feature maps of every frame, and attention is memory-efficient
  (flash / xformers / SDPA keep no (tokens x tokens) matrix);
* temporal Mamba: the larger of that and a peak inside the first (320-channel) Mamba layer, where the
  pure-PyTorch scan holds a float32 state and decay of (h * w, 640, 16) whatever the frame count.

The measured counts are multiplied by 1.15 for what a GPU adds on top of the tensors themselves
(convolution / matmul workspaces, the caching allocator's block rounding).
"""
from __future__ import annotations

import torch

MARGIN = 1.15
#: 16-bit activation bytes per latent pixel and trunk frame: 20 560 measured, x MARGIN.
ACTIVATION_BYTES_PER_LATENT_PIXEL = 24_000
#: Mamba UNet at the scan peak: 16 036 bytes per latent pixel and trunk frame (16-bit) ...
MAMBA_BYTES_PER_LATENT_PIXEL_FRAME = 18_500
#: ... plus 91 300 bytes per latent pixel of float32 scan state (not scaled by the compute dtype).
MAMBA_SCAN_BYTES_PER_LATENT_PIXEL = 105_000


def activation_bytes(frames: int, latent_h: int, latent_w: int, batch: int = 1,
                     dtype: torch.dtype = torch.float16, temporal: str = "attention") -> int:
    """Bytes one UNet call over ``frames`` target frames needs beyond its weights and inputs.

    ``batch``: samples per call (2 for batched guidance, windows per call for sliding windows);
    ``dtype``: the compute dtype (fp32 doubles the activations); ``temporal``: "attention" or "mamba".
    """
    scale = max(torch.finfo(dtype).bits, 16) / 16
    pixels = latent_h * latent_w * batch
    trunk = (frames + 1) * pixels
    total = trunk * ACTIVATION_BYTES_PER_LATENT_PIXEL * scale
    if temporal == "mamba":
        total = max(total, trunk * MAMBA_BYTES_PER_LATENT_PIXEL_FRAME * scale + pixels * MAMBA_SCAN_BYTES_PER_LATENT_PIXEL)
    return int(total)
