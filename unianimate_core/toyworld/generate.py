"""Generate a world clip with a UniAnimate model, through the same sampler calls as the headless runner.

    frames = generate(model, clip, GenerateOptions(steps=30, guidance=2.5, strategy="short"))
    metrics = evaluate_toy_clip(frames, clip)

``model`` is a UNet (or anything called ``model(x, t, **conditions)``) whose ``zero_y`` was set to
the CLIP stand-in's ``empty_context()``. The data path is the official one with the world's codec
and CLIP stand-in: reference embedding, reference latent (posterior sample x 0.18215), pose stack,
noise prior from the reference latent, DDIM with guidance, and one of the three long-video
strategies exactly as ``unianimate_core.pipeline.runner`` runs them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..diffusion import NoiseOptions, SamplerOptions, prepare_noise, sample_video
from ..diffusion.continuation import ContinuationOptions, iter_sample_long_continuation
from ..diffusion.sliding import sample_long_sliding
from ..diffusion.windows import SlidingWindowOptions
from ..pipeline.conditioning import LATENT_SCALE, frames_from_decoded
from ..pipeline.encoders import ImageEncoder, LatentCodec
from .clip import ToyImageEncoder
from .codec import load_toy_codec
from .conditioning import clip_conditions, decode_latents
from .errors import ToyWorldError
from .world import ToyClip

STRATEGIES: tuple[str, ...] = ("short", "windows", "continuation")


@dataclass(frozen=True)
class GenerateOptions:
    """steps/guidance: DDIM steps and guidance scale; mode: "standard" | "first_frame" | "both";
    strategy: "short" (one pass) | "windows" (sliding windows) | "continuation" (first-frame segments);
    noise_prior: start from the reference latent diffused to t = 949 (939 for windows), the official
    unified noise input (False: plain noise + offset noise); segment_length, context_size,
    context_overlap, colour_anchor: the long-video settings; seed: the run's generator seed."""

    steps: int = 30
    guidance: float = 2.5
    mode: str = "standard"
    strategy: str = "short"
    noise_prior: bool = True
    segment_length: int = 32
    context_size: int = 32
    context_overlap: int = 8
    colour_anchor: float = 0.0
    seed: int = 11

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ToyWorldError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}.")


def _noise_options(kind: str, prior: bool) -> NoiseOptions:
    base = NoiseOptions.long() if kind == "long" else NoiseOptions.short()
    return base if prior else NoiseOptions(base.offset_strength, None, base.prior_order)


@torch.no_grad()
def generate(model, clip: ToyClip, options: GenerateOptions = GenerateOptions(), codec: LatentCodec | None = None,
             encoder: ImageEncoder | None = None, progress=None) -> np.ndarray:
    """Frames ``(F, H, W, 3)`` uint8 generated for ``clip``'s reference and driving poses."""
    codec = codec or load_toy_codec()
    encoder = encoder or ToyImageEncoder()
    generator = torch.Generator().manual_seed(int(options.seed))
    cond = clip_conditions(clip, codec, encoder, mode=options.mode, generator=generator)
    ref_latent = cond.randomref[:, :, 0] if cond.randomref is not None else None
    if ref_latent is None:  # first_frame mode: the prior still comes from the reference latent (as the runner)
        from ..pipeline.conditioning import reference_latent, vae_input
        from .conditioning import _pixels

        ref_latent = reference_latent(codec.encode_moments(vae_input(_pixels(clip.reference))), generator)
    f, (h, w) = len(clip), (clip.height // 8, clip.width // 8)
    shape = (1, 4, f, h, w)
    sampler = SamplerOptions(steps=options.steps, guide_scale=options.guidance)
    if options.strategy == "continuation":
        cont = ContinuationOptions(segment_length=options.segment_length, colour_anchor=options.colour_anchor)

        def decode_last(latent: torch.Tensor) -> torch.Tensor:
            return frames_from_decoded(codec.decode(latent / LATENT_SCALE))

        segs = [s.latent for s in iter_sample_long_continuation(
            model, cond, sampler, cont, decode_last_frame=decode_last,
            noise=_noise_options("short", options.noise_prior), generator=generator, prior_latent=ref_latent,
            progress=progress)]
        latents = torch.cat(segs, dim=2)
    elif options.strategy == "windows":
        noise = prepare_noise(shape, generator, _noise_options("long", options.noise_prior), prior_latent=ref_latent)
        windows = SlidingWindowOptions(context_size=options.context_size, context_overlap=options.context_overlap)
        latents = sample_long_sliding(model, noise, cond, sampler, windows, generator=generator, progress=progress)
    else:
        noise = prepare_noise(shape, generator, _noise_options("short", options.noise_prior), prior_latent=ref_latent)
        latents = sample_video(model, noise, cond, sampler, generator=generator, progress=progress)
    frames = decode_latents(codec, latents)
    return (frames * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
