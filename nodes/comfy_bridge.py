"""Adapters between ComfyUI's objects and the core's plain-tensor interfaces.

* progress: ``comfy.utils.ProgressBar`` fed by the core's ``progress(done, total, x0)`` callback,
  with a live preview of frame 0 through ``latent_preview`` (frames in the batch dimension, item 0,
  like every SD-family video in ComfyUI);
* interrupt: the core polls ``should_cancel()`` before every model call; here that raises ComfyUI's
  own ``InterruptProcessingException``, so a Cancel ends the prompt as "interrupted", not as an error;
* memory: ``load_models_gpu`` with an activation estimate, and out-of-memory errors re-raised as
  ComfyUI's OOM exception type (ComfyUI then unloads models and adds its tips) with our advice;
* the VAE and CLIP-vision checks that turn "wrong model in this socket" into a readable message.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Optional

import comfy.latent_formats
import comfy.model_management as mm
import comfy.utils
import latent_preview
import torch

from ..unianimate_core.errors import InputError
from ..unianimate_core.memory import activation_bytes

log = logging.getLogger("UniAnimate")

#: SD 2.x VAE latent scale: the model works on VAE latents x 0.18215, ComfyUI's LATENT holds raw ones.
LATENT_SCALE = 0.18215


class ComfyProgress:
    """Core progress callback -> ComfyUI progress bar (+ preview of frame 0 of the x0 estimate)."""

    def __init__(self, total: int, device: torch.device):
        self.bar = comfy.utils.ProgressBar(total)
        self.previewer = latent_preview.get_previewer(device, comfy.latent_formats.SD15())

    def __call__(self, done: int, total: int, x0: Optional[torch.Tensor]) -> None:
        preview = None
        if x0 is not None and self.previewer is not None:
            preview = self.previewer.decode_latent_to_preview_image("JPEG", frames_in_batch(x0[:1, :, :1]))
        self.bar.update_absolute(done, total, preview)


def should_cancel() -> bool:
    """Polled by the core before each model call; raises ComfyUI's interrupt when Cancel was pressed."""
    mm.throw_exception_if_processing_interrupted()
    return False


def frames_in_batch(latent: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B*F, C, h, w): ComfyUI's layout for SD-family video latents."""
    b, c, f, h, w = latent.shape
    return latent.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def to_comfy_latent(model_latent: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sampler output (1, 4, F, h, w), scaled -> ComfyUI LATENT {"samples": (F, 4, h, w)} unscaled."""
    samples = frames_in_batch(model_latent.float()) / LATENT_SCALE
    return {"samples": samples.to(mm.intermediate_device())}


def from_comfy_latent(latent: Any, frames: int, width: int, height: int) -> torch.Tensor:
    """A ComfyUI LATENT to refine -> model space (1, 4, F, h, w) x 0.18215, float32 CPU.

    ComfyUI's convention for SD-family video: ``{"samples": (F, 4, H/8, W/8)}``, frames in the batch,
    raw VAE scale (what VAE Encode of the frames and this pack's samplers produce). Every mismatch is
    named with its fix; a noise mask (inpainting) is refused rather than ignored.
    """
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor):
        raise InputError(f"latent must be a ComfyUI LATENT (a dict with 'samples'); got {type(latent).__name__}.")
    samples = latent["samples"]
    if samples.ndim == 5:
        raise InputError(
            f"latent holds video latents shaped {tuple(samples.shape)} (batch, channels, time, h, w) from a video "
            "VAE (Wan, Hunyuan, LTX ...). UniAnimate refines SD-family latents with the frames in the batch: encode "
            "the frames with VAE Encode and the SD 2.1 VAE.")
    if samples.ndim != 4 or samples.shape[1] != 4:
        raise InputError(
            f"latent samples are shaped {tuple(samples.shape)}; UniAnimate needs (frames, 4, height/8, width/8) from "
            "an SD 1.x/2.x VAE (VAE Encode with the SD 2.1 VAE, or a UniAnimate sampler's output).")
    if latent.get("noise_mask") is not None:
        raise InputError("latent carries a noise mask (Set Latent Noise Mask / VAE Encode for Inpainting); UniAnimate "
                         "refines whole frames - use a latent without a mask.")
    h, w = height // 8, width // 8
    if tuple(samples.shape[2:]) != (h, w):
        lh, lw = samples.shape[2], samples.shape[3]
        raise InputError(
            f"latent is {lw}x{lh} latent pixels ({lw * 8}x{lh * 8} pixels) but width x height is {width}x{height}; "
            f"set width {lw * 8} and height {lh * 8}, or scale the frames before VAE Encode.")
    if samples.shape[0] != frames:
        raise InputError(
            f"latent has {samples.shape[0]} frames but this run generates {frames} (from the poses, max_frames and "
            "frame_interval); use the same max_frames / frame_interval as the run that made the latent, or give "
            f"{frames} frames (e.g. ImageFromBatch before VAE Encode).")
    model = samples.detach().float().cpu() * LATENT_SCALE
    if not bool(torch.isfinite(model).all()):
        raise InputError("latent contains NaN/inf values; recompute it.")
    return model.permute(1, 0, 2, 3).unsqueeze(0).contiguous()


def check_vae(vae: Any) -> None:
    """The sampler needs an SD1.x/2.x image VAE: 4 latent channels, 8x, 2-D."""
    if not (hasattr(vae, "encode") and hasattr(vae, "decode")):
        raise InputError(f"The vae input must be a ComfyUI VAE; got {type(vae).__name__}. Use 'Load VAE' or the VAE "
                         "output of 'Load Checkpoint'.")
    channels = getattr(vae, "latent_channels", 4)
    latent_dim = getattr(vae, "latent_dim", 2)
    ratio = getattr(vae, "downscale_ratio", 8)
    if channels != 4 or latent_dim != 2 or ratio != 8:
        raise InputError(
            f"This VAE is not a Stable Diffusion 1.x/2.x image VAE (latent channels {channels}, "
            f"{latent_dim}-D latents, downscale {ratio if isinstance(ratio, int) else 'per-axis'}). UniAnimate uses the "
            "SD 2.1 VAE: load vae-ft-mse-840000-ema-pruned / the SD2.1 VAE with 'Load VAE', or connect the VAE output of "
            "'Load Checkpoint' with v2-1_512-ema-pruned."
        )


def clip_image_embedding(clip_vision: Any, pixels_224: torch.Tensor) -> torch.Tensor:
    """Encode (1, 224, 224, 3) pixels with ComfyUI's CLIP vision model -> (1, 1, 1024).

    At 224 x 224 ComfyUI skips its own (bicubic) resize, so the official squash-resize done by the
    caller is what the model sees; ``crop`` does not matter then and is passed as False.
    """
    if not hasattr(clip_vision, "encode_image"):
        raise InputError(f"The clip_vision input must be a ComfyUI CLIP vision model; got {type(clip_vision).__name__}. "
                         "Use 'Load CLIP Vision' with clip_vision_h.safetensors (OpenCLIP ViT-H-14).")
    out = clip_vision.encode_image(pixels_224, crop=False)
    embeds = out["image_embeds"]
    if embeds is None or embeds.ndim != 2 or embeds.shape[-1] != 1024:
        width = None if embeds is None else embeds.shape[-1]
        known = {768: "ViT-L (SD1.x / SDXL image encoders)", 1280: "ViT-bigG", 1152: "SigLIP"}
        raise InputError(
            f"This CLIP vision model gives {width}-wide image embeddings"
            + (f" ({known[width]})" if width in known else "")
            + "; UniAnimate needs OpenCLIP ViT-H-14 (1024). Load clip_vision_h.safetensors (the file Wan 2.1 "
            "also uses) with 'Load CLIP Vision'."
        )
    embeds = embeds.float()
    if not bool(torch.isfinite(embeds).all()):
        raise InputError("The CLIP vision model returned NaN/inf; its weights are broken - load the file again.")
    return embeds[:1].unsqueeze(1).cpu()


def vae_encode_mean(vae: Any, pixels: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> ComfyUI's VAE.encode: the raw posterior mean (1, 4, h, w) (the core scales it)."""
    check_vae(vae)
    return vae.encode(pixels.permute(0, 2, 3, 1).contiguous())


def vae_decode_frames(vae: Any, model_latent: torch.Tensor) -> torch.Tensor:
    """Model-space latents (B, 4, h, w) -> pixels (B, 3, H, W) in [0, 1] through ComfyUI's VAE."""
    images = vae.decode(model_latent.float().cpu() / LATENT_SCALE)
    return images[..., :3].permute(0, 3, 1, 2).float()


#: Frame rate of the video written for a cancelled job's finished frames (the shipped workflows' rate).
CANCELLED_VIDEO_FPS = 15.0
CANCELLED_PREFIX = "UniAnimate/cancelled_long_video"
DECODE_CHUNK = 8


def save_finished_frames(vae: Any, model_latent: torch.Tensor, prefix: str = CANCELLED_PREFIX) -> list[str]:
    """Write finished frames to ComfyUI's output folder: ``<prefix>_NNNNN_.latent`` and ``.mp4``.

    model_latent: (1, 4, F, h, w) model space. The ``.latent`` is what ComfyUI's Save Latent writes
    (``latent_tensor`` (F, 4, h, w) at raw VAE scale + the format marker), so Load Latent reads it back
    and it can be refined or decoded later; the ``.mp4`` holds the frames decoded with the workflow's
    VAE (``DECODE_CHUNK`` frames per call). Returns the paths written; a failing video write costs
    only a log line (the latent is written first).
    """
    import folder_paths

    from ..unianimate_core.pipeline.latent_file import save_latent
    from ..unianimate_core.pipeline.video import to_uint8, write_video

    samples = frames_in_batch(model_latent.float().cpu()) / LATENT_SCALE
    h, w = samples.shape[2] * 8, samples.shape[3] * 8
    folder, name, counter, _, _ = folder_paths.get_save_image_path(prefix, folder_paths.get_output_directory(), w, h)
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, f"{name}_{counter:05}_")
    written = [str(save_latent(base + ".latent", model_latent))]
    try:
        frames = [to_uint8(vae_decode_frames(vae, samples[i:i + DECODE_CHUNK] * LATENT_SCALE))
                  for i in range(0, samples.shape[0], DECODE_CHUNK)]
        written.append(str(write_video(base + ".mp4", [f for chunk in frames for f in chunk], CANCELLED_VIDEO_FPS)))
    except Exception as exc:  # noqa: BLE001 - the latent is safe; the video is a convenience
        log.error("UniAnimate: could not write the video of the finished frames (%s); the latent %s holds them.",
                  exc, written[0])
    return written


def memory_estimate(frames: int, latent_h: int, latent_w: int, batch: int, dtype: torch.dtype,
                    temporal: str = "attention") -> int:
    """Bytes ComfyUI should keep free for one model call (measured activations + 15 %, see unianimate_core.memory)."""
    return activation_bytes(frames, latent_h, latent_w, batch, dtype, temporal)


def room_for(device: torch.device, memory: int) -> bool:
    """Whether ``device`` has ``memory`` bytes free right now (always True on the CPU)."""
    if torch.device(device).type == "cpu":
        return True
    return mm.get_free_memory(device) >= memory


def load_for_sampling(patcher: Any, memory_required: int) -> None:
    """Hand the UNet to ComfyUI's memory manager (it unloads/offloads other models as needed)."""
    mm.load_models_gpu([patcher], memory_required=memory_required)


@contextlib.contextmanager
def oom_advice(what: str) -> Iterator[None]:
    """Re-raise out-of-memory as ComfyUI's OOM type with advice for this pack's knobs."""
    try:
        yield
    except mm.OOM_EXCEPTION as exc:
        mm.soft_empty_cache(True)
        raise mm.OOM_EXCEPTION(
            f"Out of memory while {what}. Try, in this order: fewer frames per call (max_frames, or the Long Video Loop "
            "with a smaller context_size / context_batch_size 1), a smaller width/height, weight_dtype fp16/bf16 in "
            "Load UniAnimate Model, closing other GPU programs. (" + str(exc).splitlines()[0] + ")"
        ) from exc


def log_note(note: str) -> None:
    if note:
        log.warning("UniAnimate: %s", note)

