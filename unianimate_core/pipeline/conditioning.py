"""Conditioning preparation shared by the command line and the ComfyUI nodes (plain tensor functions).

Every rule here is the official UniAnimate inference data path (ali-vilab/UniAnimate @ 643c963,
docs/official_behaviour.md#inference-data-path), so a result made headless and one made in ComfyUI see
identical inputs:

* all resizes are a PIL bilinear *squash* to ``(W, H)`` (aspect ratio not kept, no crop), done on
  8-bit images, then ``u8 / 255`` as float32 (what ``ToTensor`` does);
* the CLIP input is the reference squashed to 224 x 224 with PIL bilinear and normalised with the
  OpenAI CLIP mean/std (docs/official_behaviour.md#clip-preprocessing) - *not* OpenCLIP's or ComfyUI's
  bicubic + centre-crop preprocessing;
* pose and first-frame pixels stay in ``[0, 1]`` (docs/official_behaviour.md#value-ranges); the VAE input
  is ``[-1, 1]``;
* the reference latent is the VAE posterior **mean** times 0.18215 in every front end (a documented
  deviation: the official code draws a posterior sample, docs/official_behaviour.md#posterior-sample;
  see ``prepare.py``); ``posterior_sample`` / ``reference_latent`` reproduce the official draw for
  parity work.

Images may be given as PIL images, ``uint8`` arrays ``(H, W, 3)`` or float tensors in ``[0, 1]``
shaped ``(H, W, 3)`` / ``(N, H, W, 3)`` (ComfyUI's IMAGE layout). Float images are rounded to 8 bit
before resizing; ComfyUI's loaders produce exact ``u8 / 255`` values, so that step is lossless for
them, and it is what the official code sees (it reads 8-bit files).
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image

from .errors import PipelineError

#: OpenAI CLIP normalisation (OpenCLIP ViT-H-14 uses the same constants).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224
#: SD 2.x VAE latent scale (``get_first_stage_encoding``).
LATENT_SCALE = 0.18215
#: Posterior log-variance clamp of the LDM ``DiagonalGaussianDistribution``.
LOGVAR_RANGE = (-30.0, 20.0)

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]


# --------------------------------------------------------------------------------------------
# 8-bit image conversions
# --------------------------------------------------------------------------------------------

def to_uint8_hwc(image: ImageLike) -> np.ndarray:
    """One RGB image as a ``uint8`` array ``(H, W, 3)``.

    Float input (tensor or array) is read as ``[0, 1]`` and rounded to the nearest 8-bit level;
    grey or RGBA input is converted to RGB (alpha dropped, as the official ``convert('RGB')``).
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise PipelineError(f"expected one image shaped (H, W, 3) (or 1/4 channels), got shape {arr.shape}.")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise PipelineError(f"images must be uint8 or float in [0, 1]; got dtype {arr.dtype}.")
    if not np.isfinite(arr).all():
        raise PipelineError("the image contains NaN or infinite values; check the node or file that produced it.")
    return np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def image_list(images: Union[ImageLike, Sequence[ImageLike]]) -> list[np.ndarray]:
    """Split a batch (``(N, H, W, 3)`` tensor/array) or a sequence of images into uint8 images."""
    if isinstance(images, (torch.Tensor, np.ndarray)) and np.ndim(images) == 4:
        return [to_uint8_hwc(images[i]) for i in range(images.shape[0])]
    if isinstance(images, (Image.Image, torch.Tensor, np.ndarray)):
        return [to_uint8_hwc(images)]
    return [to_uint8_hwc(im) for im in images]


def u8_to_float(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` images -> float32 ``(N, 3, H, W)`` = ``u8 / 255`` (an IEEE division, as ToTensor)."""
    stacked = torch.from_numpy(np.stack([np.ascontiguousarray(a) for a in arrays]))
    return stacked.permute(0, 3, 1, 2).to(torch.float32) / 255.0


def squash_resize_u8(image: ImageLike, size: tuple[int, int]) -> np.ndarray:
    """PIL bilinear resize to ``size = (W, H)`` ignoring the aspect ratio (official ``Resize``).

    PIL's bilinear filter is antialiased when downscaling; that is what the official model saw.
    """
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise PipelineError(f"resize target must be positive (W, H); got {size}.")
    arr = to_uint8_hwc(image)
    if arr.shape[1] == width and arr.shape[0] == height:
        return arr
    return np.asarray(Image.fromarray(arr).resize((width, height), Image.BILINEAR), dtype=np.uint8)


def resize_frames(images: Union[ImageLike, Sequence[ImageLike]], size: tuple[int, int]) -> torch.Tensor:
    """Images -> float32 ``(N, 3, H, W)`` in ``[0, 1]`` after the official squash resize to ``size = (W, H)``."""
    arrays = [squash_resize_u8(im, size) for im in image_list(images)]
    if not arrays:
        raise PipelineError("no images to resize.")
    return u8_to_float(arrays)


# --------------------------------------------------------------------------------------------
# CLIP input
# --------------------------------------------------------------------------------------------

def clip_pixels(reference: ImageLike, size: int = CLIP_SIZE) -> torch.Tensor:
    """The reference squashed to ``size`` x ``size`` (PIL bilinear), float32 ``(1, size, size, 3)`` in [0, 1].

    This is the form ComfyUI's ``CLIPVisionEncode`` / ``ClipVisionModel.encode_image`` accepts: at
    exactly 224 x 224 ComfyUI skips its own bicubic resize and its 8-bit rounding is a no-op on
    these values, so it then applies the same mean/std as :func:`clip_input`
    (docs/official_behaviour.md#clip-preprocessing).
    """
    arr = squash_resize_u8(reference, (size, size))
    return (torch.from_numpy(arr.copy()).to(torch.float32) / 255.0).unsqueeze(0)


def clip_normalize(pixels: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> OpenAI-CLIP-normalised ``(x - mean) / std`` (float32)."""
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.to(torch.float32) - mean) / std


def clip_input(reference: ImageLike, size: int = CLIP_SIZE) -> torch.Tensor:
    """Official CLIP input of the reference: float32 ``(1, 3, size, size)``, normalised
    (docs/official_behaviour.md#clip-preprocessing)."""
    return clip_normalize(clip_pixels(reference, size).permute(0, 3, 1, 2))


# --------------------------------------------------------------------------------------------
# VAE input / reference latent
# --------------------------------------------------------------------------------------------

def vae_input(pixels: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` pixels -> the VAE's ``[-1, 1]`` range (official ``(x - 0.5) / 0.5``)."""
    return (pixels - 0.5) / 0.5


def posterior_sample(moments: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``mean + std * randn`` from VAE moments ``(B, 2C, h, w)`` (mean first, log-variance second).

    The log-variance is clamped to [-30, 20] like the LDM ``DiagonalGaussianDistribution``. The
    normal draw has the mean's shape ``(B, C, h, w)`` and comes from ``generator`` on the CPU (as in
    the official code), then moves to the moments' device, so results do not depend on the device.
    """
    if moments.ndim != 4 or moments.shape[1] % 2:
        raise PipelineError(f"VAE moments must be (B, 2*C, h, w) (mean and log-variance); got {tuple(moments.shape)}.")
    mean, logvar = moments.float().chunk(2, dim=1)
    std = torch.exp(0.5 * logvar.clamp(*LOGVAR_RANGE))
    noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32, device="cpu").to(mean.device)
    return mean + std * noise


def posterior_mean(moments: torch.Tensor) -> torch.Tensor:
    """The mean half of VAE moments ``(B, 2C, h, w)`` -> ``(B, C, h, w)`` float32 (what ComfyUI's VAE.encode gives)."""
    if moments.ndim != 4 or moments.shape[1] % 2:
        raise PipelineError(f"VAE moments must be (B, 2*C, h, w) (mean and log-variance); got {tuple(moments.shape)}.")
    return moments.float().chunk(2, dim=1)[0]


def reference_latent(moments: torch.Tensor, generator: torch.Generator | None = None,
                     scale: float = LATENT_SCALE) -> torch.Tensor:
    """The official ``randomref`` latent: a posterior sample times 0.18215, ``(B, C, h, w)``
    (docs/official_behaviour.md#posterior-sample)."""
    return posterior_sample(moments, generator) * scale


def latents_for_decode(latents: torch.Tensor, scale: float = LATENT_SCALE) -> torch.Tensor:
    """Sampler output ``(B, C, F, h, w)`` -> per-frame VAE input ``(B*F, C, h, w)`` divided by 0.18215."""
    if latents.ndim != 5:
        raise PipelineError(f"expected video latents (B, C, F, h, w); got {tuple(latents.shape)}.")
    b, c, f, h, w = latents.shape
    return (latents / scale).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def frames_from_decoded(decoded: torch.Tensor) -> torch.Tensor:
    """VAE output ``(N, 3, H, W)`` in about [-1, 1] -> ``(N, 3, H, W)`` in [0, 1] (official ``x * 0.5 + 0.5`` then clamp)."""
    return (decoded.float() * 0.5 + 0.5).clamp(0.0, 1.0)


def size_problem(name: str, value: int, multiple: int) -> str | None:
    """Why ``value`` cannot be the output ``name`` ("width"/"height"), or None when it can.

    The UNet halves the latent once per level, so pixel sizes must divide by ``8 * 2**(levels - 1)``
    (64 for the released model, docs/official_behaviour.md#size-multiple). The message names the input
    and the two nearest sizes.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number of pixels; got {value!r}."
    if value < multiple:
        return f"{name} = {value} is too small: use at least {multiple} pixels."
    if value % multiple:
        low = value // multiple * multiple
        return (f"{name} = {value} is not a multiple of {multiple} (the VAE's factor 8 times one halving per UNet "
                f"level); use {low} or {low + multiple}.")
    return None


def check_size(width: int, height: int, multiple: int) -> None:
    """Raise an actionable error unless ``width`` and ``height`` are positive multiples of ``multiple``."""
    problems = [p for p in (size_problem("width", width, multiple), size_problem("height", height, multiple)) if p]
    if problems:
        raise PipelineError(" ".join(problems))
