"""FAKE `latent_preview` (tests only).

`get_previewer(device, latent_format)` returns None when previews are off (ComfyUI's default) and
otherwise a previewer whose `decode_latent_to_preview_image(preview_format, x0)` returns the same
("JPEG", PIL image, size) triple as the real one. The real Latent2RGB/TAESD previewers take
frames-in-batch latents (item 0); the fake records every x0 it was given.
"""
from __future__ import annotations

import torch
from PIL import Image

MAX_PREVIEW_RESOLUTION = 512
preview_enabled = False
previewed: list = []


class LatentPreviewer:
    def decode_latent_to_preview(self, x0):
        pass

    def decode_latent_to_preview_image(self, preview_format, x0):
        preview_image = self.decode_latent_to_preview(x0)
        return ("JPEG", preview_image, MAX_PREVIEW_RESOLUTION)


class _RecordingPreviewer(LatentPreviewer):
    def __init__(self, latent_format):
        self.factors = torch.tensor(latent_format.latent_rgb_factors).transpose(0, 1)

    def decode_latent_to_preview(self, x0):
        previewed.append(x0.detach().clone())
        frame = x0[0] if x0.ndim == 4 else x0[0, :, 0]
        rgb = torch.nn.functional.linear(frame.movedim(0, -1).float(), self.factors)
        return Image.fromarray(((rgb + 1) / 2).clamp(0, 1).mul(255).byte().numpy())


def get_previewer(device, latent_format):
    if not preview_enabled:
        return None
    return _RecordingPreviewer(latent_format)
