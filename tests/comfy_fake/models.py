"""FAKE stand-ins for the model objects ComfyUI's loaders hand to nodes (tests only).

* `FakeVAE`        ~ `comfy.sd.VAE` of an SD1.x/2.x KL-f8 VAE: `encode(IMAGE)` -> raw latents
                     (B, 4, H/8, W/8), `decode(latent)` -> IMAGE (B, H, W, 3) in [0, 1].
* `FakeClipVision` ~ `comfy.clip_vision.ClipVisionModel`: `encode_image(image, crop=True)` with
                     ComfyUI's preprocessing semantics (resize to 224 unless already 224x224,
                     8-bit rounding, OpenAI CLIP mean/std) -> an Output with `image_embeds`.
* `FakeCLIP`       ~ `comfy.sd.CLIP` for the SD2 OpenCLIP-H text tower: `tokenize`, `clip_layer`,
                     `clone`, `encode_from_tokens` -> (1, 77, width).

They are cheap deterministic functions, not neural networks; what they preserve is the interface
(method names, argument names, tensor layouts, value ranges) and the few attributes nodes inspect
(`latent_channels`, `downscale_ratio`, `latent_dim`, embedding widths). They record their inputs so
tests can check what a node handed to ComfyUI. Their method signatures are compared with the real
classes' by `tests/host/test_comfy_host.py::test_fake_matches_real_signatures`.
"""
from __future__ import annotations

import torch

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def _fixed_matrix(rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) / cols ** 0.5


class FakeVAE:
    """Image VAE with ComfyUI's `VAE` interface (raw latents, no 0.18215 scaling)."""

    def __init__(self, latent_channels: int = 4, downscale_ratio: int = 8, latent_dim: int = 2):
        self.latent_channels = latent_channels
        self.downscale_ratio = downscale_ratio
        self.upscale_ratio = downscale_ratio
        self.latent_dim = latent_dim
        self.output_channels = 3
        self.encode_calls: list[tuple] = []
        self.decode_calls: list[tuple] = []
        self._enc = _fixed_matrix(latent_channels, 3, 1)
        self._dec = _fixed_matrix(3, latent_channels, 2)

    def encode(self, pixel_samples: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) in [0, 1] -> (B, latent_channels, H/8, W/8), cropped to multiples of 8."""
        self.encode_calls.append(tuple(pixel_samples.shape))
        r = self.downscale_ratio
        h, w = pixel_samples.shape[1] // r * r, pixel_samples.shape[2] // r * r
        x = pixel_samples[:, :h, :w, :3].movedim(-1, 1).float() * 2 - 1
        x = torch.nn.functional.avg_pool2d(x, r)
        return torch.einsum("oc,bchw->bohw", self._enc, x)

    def decode(self, samples_in: torch.Tensor, vae_options={}) -> torch.Tensor:
        """(B, latent_channels, h, w) -> (B, 8h, 8w, 3) in [0, 1]; a 5D input decodes frame 0."""
        if self.latent_dim == 2 and samples_in.ndim == 5:
            samples_in = samples_in[:, :, 0]
        self.decode_calls.append(tuple(samples_in.shape))
        x = torch.einsum("oc,bchw->bohw", self._dec, samples_in.float())
        x = torch.nn.functional.interpolate(x, scale_factor=self.upscale_ratio, mode="nearest")
        return ((x + 1) / 2).clamp(0, 1).movedim(1, -1)


class ClipVisionOutput:
    """Attribute and item access, like `comfy.clip_vision.Output`."""

    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, item):
        setattr(self, key, item)


class FakeClipVision:
    """CLIP vision encoder with ComfyUI's preprocessing and a fixed linear "tower"."""

    def __init__(self, projection_dim: int = 1024, width: int = 1280, image_size: int = 224):
        self.image_size = image_size
        self.image_mean = OPENAI_MEAN
        self.image_std = OPENAI_STD
        self.projection_dim = projection_dim
        self.width = width
        self.load_device = torch.device("cpu")
        self.seen_images: list[torch.Tensor] = []
        self.pixel_values: list[torch.Tensor] = []
        self._proj = _fixed_matrix(projection_dim, 3 * 16 * 16, 3)

    def _preprocess(self, image: torch.Tensor, crop) -> torch.Tensor:
        image = image[:, :, :, :3]
        x = image.movedim(-1, 1)
        size = self.image_size
        if not (x.shape[2] == size and x.shape[3] == size):
            if crop:
                scale = size / min(x.shape[2], x.shape[3])
                new = (round(scale * x.shape[2]), round(scale * x.shape[3]))
            else:
                new = (size, size)
            x = torch.nn.functional.interpolate(x, size=new, mode="bicubic", antialias=True)
            top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
            x = x[:, :, top:top + size, left:left + size]
        x = torch.clip(255.0 * x, 0, 255).round() / 255.0
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        return (x - mean) / std

    def encode_image(self, image: torch.Tensor, crop=True) -> ClipVisionOutput:
        self.seen_images.append(image.detach().clone())
        pixel_values = self._preprocess(image.float(), crop)
        self.pixel_values.append(pixel_values)
        pooled = torch.nn.functional.adaptive_avg_pool2d(pixel_values, 16).flatten(1)
        out = ClipVisionOutput()
        out["image_embeds"] = pooled @ self._proj.T
        b = image.shape[0]
        out["last_hidden_state"] = torch.zeros(b, 257, self.width)
        out["penultimate_hidden_states"] = torch.zeros(b, 257, self.width)
        out["mm_projected"] = None
        return out


class FakeCLIP:
    """SD2-style text encoder: tokens of "" are [SOT, EOT, pad*75]; output depends on the layer."""

    def __init__(self, width: int = 1024):
        self.width = width
        self.layer_idx = None
        self.encoded: list = []

    def clone(self) -> "FakeCLIP":
        n = FakeCLIP(self.width)
        n.layer_idx = self.layer_idx
        n.encoded = self.encoded
        return n

    def clip_layer(self, layer_idx):
        self.layer_idx = layer_idx

    def tokenize(self, text, return_word_ids=False, **kwargs):
        if text:
            raise AssertionError("the fake CLIP only knows the empty prompt")
        return {"h": [[(49406, 1.0), (49407, 1.0)] + [(0, 1.0)] * 75]}

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        self.encoded.append((tokens, self.layer_idx))
        layer = self.layer_idx if self.layer_idx is not None else -2
        g = torch.Generator().manual_seed(1000 + abs(layer))
        cond = torch.randn(1, 77, self.width, generator=g)
        if return_dict:
            return {"cond": cond, "pooled_output": cond[:, 1]}
        if return_pooled:
            return cond, cond[:, 1]
        return cond
