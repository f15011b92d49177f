"""Shared inputs for the sampler-node tests: the tiny model in a fake ComfyUI, small images."""
from __future__ import annotations

import numpy as np
import torch

ZERO_Y_NAME = "zero_y_openclip_vit_h14.npy"


def install_tiny_model(host, tiny_ckpt, tiny_zero_y, name: str = "unianimate_tiny.safetensors"):
    """Put the tiny checkpoint (+ its cached zero_y) into models/unianimate and load it with the node."""
    path = host.put_model(tiny_ckpt, name=name)
    np.save(path.parent / ZERO_Y_NAME, tiny_zero_y.numpy())
    loader = host.node_classes()["LoadUniAnimateModel"]
    return loader.execute(model_name=name, weight_dtype="fp32")[0]


def images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """A ComfyUI IMAGE batch (n, h, w, 3) with exact 8-bit values, like LoadImage produces."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), generator=g).float() / 255.0
