"""Generate a world clip with a UniAnimate model, through the same sampler calls as the headless runner.

    frames = generate(model, clip, GenerateOptions(steps=30, guidance=2.5, strategy="short"))
    metrics = evaluate_toy_clip(frames, clip)

``model`` is a UNet (or anything called ``model(x, t, **conditions)``) whose ``zero_y`` was set to
the CLIP stand-in's ``empty_context()``. Preparation and sampling are the pipeline's one path
(``unianimate_core.pipeline.prepare``: ``prepare_clip`` and ``sample_clip``, as the nodes and the
command line use them) with the world's codec and CLIP stand-in: reference embedding, reference
latent (posterior mean x 0.18215), pose stack, each strategy's start noise with the reference prior,
DDIM with guidance, and one of the three long-video strategies.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..diffusion import ContinuationOptions, SamplerOptions, SlidingWindowOptions
from ..diffusion.deep_cache import DEFAULT_DEPTH
from ..pipeline.conditioning import LATENT_SCALE, frames_from_decoded
from ..pipeline.encoders import ImageEncoder, LatentCodec
from .clip import ToyImageEncoder
from .codec import load_toy_codec
from .conditioning import decode_latents, prepare_toy_clip
from .errors import ToyWorldError
from .world import ToyClip

STRATEGIES: tuple[str, ...] = ("short", "windows", "continuation")


@dataclass(frozen=True)
class GenerateOptions:
    """steps/guidance: DDIM steps and guidance scale; mode: "standard" | "first_frame" | "both";
    strategy: "short" (one pass) | "windows" (sliding windows) | "continuation" (first-frame segments);
    noise_prior: start from the reference latent diffused to t = 949 (939 for windows), the official
    unified noise input (False: plain noise + offset noise); segment_length, context_size,
    context_overlap, colour_anchor: the long-video settings; seed: the run's generator seed;
    solver, timestep_spacing, guidance_end, deep_cache_interval, deep_cache_depth: the sampler's speed options
    (off by default, see SamplerOptions)."""

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
    solver: str = "ddim"
    timestep_spacing: str = "official"
    guidance_end: float = 1.0
    deep_cache_interval: int = 1
    deep_cache_depth: int = DEFAULT_DEPTH

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ToyWorldError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}.")


@torch.no_grad()
def generate(model, clip: ToyClip, options: GenerateOptions = GenerateOptions(), codec: LatentCodec | None = None,
             encoder: ImageEncoder | None = None, progress=None) -> np.ndarray:
    """Frames ``(F, H, W, 3)`` uint8 generated for ``clip``'s reference and driving poses.

    Preparation and sampling are the pipeline's own (``pipeline.prepare.prepare_clip`` and
    ``sample_clip``, the path of the nodes and the command line), with the world's codec and CLIP stand-in.
    """
    from ..pipeline.prepare import noise_options, sample_clip

    codec = codec or load_toy_codec()
    encoder = encoder or ToyImageEncoder()
    generator = torch.Generator().manual_seed(int(options.seed))
    prep = prepare_toy_clip(clip, codec, encoder, mode=options.mode)
    sampler = SamplerOptions(steps=options.steps, guide_scale=options.guidance, solver=options.solver,
                             timestep_mode=options.timestep_spacing, guidance_interval=(0.0, float(options.guidance_end)),
                             deep_cache_interval=options.deep_cache_interval, deep_cache_depth=options.deep_cache_depth)
    noise = noise_options(options.strategy, None if options.noise_prior else 0)

    def decode_last(latent: torch.Tensor) -> torch.Tensor:
        return frames_from_decoded(codec.decode(latent / LATENT_SCALE))

    parts = sample_clip(model, prep, options.strategy, sampler, generator=generator, noise=noise,
                        windows=SlidingWindowOptions(context_size=options.context_size,
                                                     context_overlap=options.context_overlap),
                        continuation=ContinuationOptions(segment_length=options.segment_length,
                                                         colour_anchor=options.colour_anchor),
                        decode_last_frame=decode_last, progress=progress)
    latents = torch.cat([part.latent for part in parts], dim=2)
    frames = decode_latents(codec, latents)
    return (frames * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
