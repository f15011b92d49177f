"""FAKE `comfy.utils` (tests only): ProgressBar with ComfyUI's global hook, and load_torch_file.

The real server installs a global hook (main.py) that checks for interruption and forwards
progress + preview images to the browser. Tests install a recording hook with
`set_progress_bar_global_hook`, which ProgressBar picks up at construction, as in ComfyUI.
"""
from __future__ import annotations

import math

import torch

PROGRESS_BAR_ENABLED = True
PROGRESS_BAR_HOOK = None


def set_progress_bar_enabled(enabled):
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


def set_progress_bar_global_hook(function):
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value):
        self.update_absolute(self.current + value)


def load_torch_file(ckpt, safe_load=False, device=None, return_metadata=False):
    if device is None:
        device = torch.device("cpu")
    if ckpt.lower().endswith((".safetensors", ".sft")):
        import safetensors.torch
        sd = safetensors.torch.load_file(ckpt, device=str(device))
    else:
        sd = torch.load(ckpt, map_location=device, weights_only=True)
        if "state_dict" in sd:
            sd = sd["state_dict"]
    return (sd, None) if return_metadata else sd


def repeat_to_batch_size(tensor, batch_size, dim=0):
    """Cut or tile `tensor` along `dim` to `batch_size` rows (ComfyUI's rule: truncate, or repeat then cut)."""
    if tensor.shape[dim] > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if tensor.shape[dim] < batch_size:
        reps = dim * [1] + [math.ceil(batch_size / tensor.shape[dim])] + [1] * (len(tensor.shape) - 1 - dim)
        return tensor.repeat(reps).narrow(dim, 0, batch_size)
    return tensor
