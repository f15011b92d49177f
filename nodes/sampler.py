"""UniAnimateSampler: one clip (up to a few dozen frames) from a reference image and a pose sequence.

Inputs are ComfyUI's own VAE / CLIP vision models and IMAGE batches (or POSE_KEYPOINT); the output is
a LATENT in ComfyUI's convention for SD-family video (frames in the batch dimension, raw VAE scale),
so VAE Decode, latent previews and other latent nodes work on it.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from comfy_api.latest import io

from ..unianimate_core.diffusion import SamplerOptions
from ..unianimate_core.diffusion.deep_cache import DEFAULT_DEPTH
from ..unianimate_core.diffusion.solvers import SOLVERS
from ..unianimate_core.diffusion.timesteps import TIMESTEP_MODES
from ..unianimate_core.errors import InputError
from ..unianimate_core.pipeline.conditioning import size_problem
from ..unianimate_core.pipeline.prepare import effective_sampler, noise_options, sample_clip, work_units
from . import comfy_bridge
from . import choices
from .conditioning import CONDITION_MODES, Prepared, prepare, select
from .types import PoseKeypoint, SpeedOptionsType, UniAnimateModel, UniAnimateModelType

log = logging.getLogger("UniAnimate")

CATEGORY = "UniAnimate"
MAX_SIZE = choices.MAX_SIZE
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def model_inputs() -> list:
    """The inputs every sampling node shares (same names, so workflows can switch nodes)."""
    return [UniAnimateModelType.Input("model", tooltip="UniAnimate UNet from 'Load UniAnimate Model'."),
            *reference_inputs("generated frame")]


def reference_inputs(frame_word: str) -> list:
    """Encoders, reference, poses and size: shared by the sampling nodes and UniAnimate Conditioning."""
    return [
        io.Vae.Input("vae", tooltip="SD 2.1 VAE ('Load VAE', or the VAE output of 'Load Checkpoint' with "
                                    "v2-1_512-ema-pruned). Encodes the reference image."),
        io.ClipVision.Input("clip_vision", tooltip="OpenCLIP ViT-H-14 image encoder ('Load CLIP Vision' with "
                                                   "clip_vision_h.safetensors). Encodes the reference image."),
        io.Image.Input("reference_image", tooltip="The photo of the person to animate (one image)."),
        io.MultiType.Input("poses", types=[io.Image, PoseKeypoint],
                           tooltip="Driving poses: pose images (e.g. the pose_images output of UniAnimate Pose Align) "
                                   f"or POSE_KEYPOINT. One {frame_word} per selected pose."),
        io.MultiType.Input("reference_pose", types=[io.Image, PoseKeypoint],
                           tooltip="The pose of the reference image (one frame; the reference_pose output of "
                                   "UniAnimate Pose Align)."),
        io.Int.Input("width", default=512, min=64, max=MAX_SIZE, step=64,
                     tooltip="Output width in pixels, a multiple of 64 (other values are refused with the two "
                             "nearest sizes). The model was trained at 512x768; 768x1216 also works."),
        io.Int.Input("height", default=768, min=64, max=MAX_SIZE, step=64,
                     tooltip="Output height in pixels, a multiple of 64 (portrait, landscape and square all work)."),
    ]


def selection_inputs(max_frames_default: int) -> list:
    return [
        io.Int.Input("max_frames", default=max_frames_default, min=0, max=100000,
                     tooltip="How many frames to generate (0 = one per selected pose; 1 = a single image from the "
                             "first pose: repose). The model was trained on 16 and 32 frames; 48-64 still work in one "
                             "pass. Longer: use UniAnimate Long Video Loop."),
        io.Int.Input("frame_interval", default=1, min=1, max=64,
                     tooltip="Use every n-th pose (2 halves a 30 fps driving video to 15 fps of motion)."),
    ]


def sampling_inputs(noise_prior_default: int) -> list:
    return [
        io.Int.Input("steps", default=30, min=1, max=1000,
                     tooltip="DDIM steps (official 30, which runs 31 model steps). 20-25 is faster with a small loss."),
        io.Float.Input("guidance", default=2.5, min=0.0, max=30.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale (official 2.5). 1.0 skips the unconditional pass (2x "
                               "faster, weaker pose/identity)."),
        io.Int.Input("seed", default=11, min=0, max=MAX_SEED, control_after_generate=True,
                     tooltip="Random seed; the noise is drawn on the CPU, so a seed gives the same video on any device."),
        io.Int.Input("noise_prior", default=noise_prior_default, min=0, max=999,
                     tooltip="Noise prior: start from the reference latent diffused to this timestep instead of pure "
                             "noise (official 949 short / 939 long). Higher gives more freedom and fewer artefacts "
                             "(959-969), lower sticks closer to the reference. 0 = pure noise."),
        io.Combo.Input("condition_mode", options=list(CONDITION_MODES), default="standard",
                       tooltip="standard: reference via its latent (the official default). first_frame: the reference "
                               "becomes the first frame (better identity when the reference pose matches the first "
                               "pose). both: all conditions."),
        io.Combo.Input("pose_colors", options=list(choices.COLOR_KEYS), default="unianimate",
                       tooltip="Colour convention of pose IMAGES. unianimate: the R/B-swapped colours UniAnimate was "
                               "trained on, what this pack's pose nodes draw. openpose: standard OpenPose colours "
                               "(pose images from other packs, e.g. controlnet_aux; they are converted). Ignored "
                               "for POSE_KEYPOINT."),
    ]


def refine_inputs() -> list:
    """Optional inputs of every sampling node, last so saved workflows keep their widget order."""
    return [
        io.Latent.Input("latent", optional=True,
                        tooltip="Optional LATENT to refine instead of starting from the reference: an earlier "
                                "result of this node (refine it), or a video encoded with VAE Encode and the SD 2.1 "
                                "VAE (video-to-video restyle). Frames in the batch, raw VAE scale; it must have as "
                                "many frames as this run generates and width/8 x height/8."),
        io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01, optional=True,
                       tooltip="With a latent: how much of it is renoised and regenerated (1.0 = everything, from "
                               "its noised version; 0.3 = keep the structure, refine details). 'steps' steps run "
                               "over the lower part of the schedule, as in KSampler. Without a latent it must be "
                               "1.0."),
    ] + speed_inputs()


def speed_inputs() -> list:
    """The optional speed-options socket (a socket, not widgets: saved workflows keep their widget values)."""
    return [SpeedOptionsType.Input("speed_options", optional=True,
                                   tooltip="Optional: connect UniAnimate Speed Options for fewer model calls "
                                           "(DPM-Solver++, log-SNR steps, guidance on part of the steps, deep-feature "
                                           "reuse). "
                                           "Unconnected = the official sampler.")]


SPEED_DEFAULTS = dict(solver="ddim", timestep_spacing="official", guidance_end=1.0, deep_cache_interval=1,
                      deep_cache_depth=DEFAULT_DEPTH)


class UniAnimateSpeedOptions(io.ComfyNode):
    """Small option node: the sampler's speed settings, for the speed_options socket of the sampling nodes."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="UniAnimateSpeedOptions",
            display_name="UniAnimate Speed Options",
            category=CATEGORY,
            description=(
                "Fewer model calls for UniAnimate Sampler / Long Video Loop (connect to their speed_options). The "
                "defaults here are the official sampler. Measured equal to it on the project's observatory model: "
                "ddim with trailing spacing and 12 steps on the sampler (0.39x the model calls), or 15 trailing "
                "steps with deep_cache_interval 2 (0.37x the compute); dpmpp_2m with logsnr spacing came 0.2 dB "
                "lower. That model is a small proxy (docs/performance.md), not real videos: compare with the "
                "official sampler on your clip."
            ),
            inputs=[
                io.Combo.Input("solver", options=list(SOLVERS), default="ddim",
                               tooltip="ddim: the official sampler (exact). dpmpp_2m: DPM-Solver++(2M), a second-order "
                                       "solver that reaches DDIM's accuracy with far fewer steps; use it with "
                                       "timestep_spacing logsnr and 10-15 steps on the sampler node."),
                io.Combo.Input("timestep_spacing", options=list(TIMESTEP_MODES), default="official",
                               tooltip="Which timesteps the steps visit. official: the official list (30 steps run "
                                       "31). trailing: exactly 'steps' steps from pure noise, evenly spaced. logsnr: "
                                       "evenly spaced in log signal-to-noise ratio, what dpmpp_2m is made for."),
                io.Float.Input("guidance_end", default=1.0, min=0.0, max=1.0, step=0.05, round=0.01,
                               tooltip="Apply classifier-free guidance only on this first fraction of the steps; "
                                       "later steps make one model call instead of two (0.5 = 25 % fewer calls). "
                                       "1.0 = every step (official)."),
                io.Int.Input("deep_cache_interval", default=1, min=1, max=10, optional=True,
                             tooltip="DeepCache-style reuse: run the whole UNet only every N-th step; the steps in "
                                     "between run just its outer blocks (deep_cache_depth at each end) and reuse the "
                                     "deep features of the last full step. 1 = off (official). 2-3 saves most of the "
                                     "UNet's work on the other steps; the quality cost is measured on the observatory "
                                     "model in docs/performance.md."),
                io.Int.Input("deep_cache_depth", default=DEFAULT_DEPTH, min=1, max=12, optional=True,
                             tooltip="With deep_cache_interval > 1: how many UNet blocks at each end (of 12) still run "
                                     "on the reuse steps. Smaller = faster reuse steps, further from the full result. "
                                     f"Default {DEFAULT_DEPTH}."),
            ],
            outputs=[SpeedOptionsType.Output(display_name="speed_options",
                                             tooltip="Connect to speed_options of UniAnimate Sampler or Long Video Loop.")],
        )

    @classmethod
    def execute(cls, solver: str = "ddim", timestep_spacing: str = "official", guidance_end: float = 1.0,
                deep_cache_interval: int = 1, deep_cache_depth: int = DEFAULT_DEPTH) -> io.NodeOutput:
        # None: an older saved workflow without these inputs
        deep_cache_interval = 1 if deep_cache_interval is None else deep_cache_interval
        deep_cache_depth = DEFAULT_DEPTH if deep_cache_depth is None else deep_cache_depth
        options = dict(solver=str(solver), timestep_spacing=str(timestep_spacing), guidance_end=float(guidance_end),
                       deep_cache_interval=deep_cache_interval, deep_cache_depth=deep_cache_depth)
        # validated here, so a bad combination stops this node rather than the sampler after the encoders ran
        SamplerOptions(solver=options["solver"], timestep_mode=options["timestep_spacing"],
                       guidance_interval=(0.0, options["guidance_end"]),
                       deep_cache_interval=deep_cache_interval, deep_cache_depth=deep_cache_depth)
        return io.NodeOutput(options)


def speed_settings(speed_options: Any) -> dict:
    """The speed settings from the optional socket (None = the official sampler)."""
    if speed_options is None:
        return dict(SPEED_DEFAULTS)
    if not isinstance(speed_options, dict) or set(speed_options) - set(SPEED_DEFAULTS):
        raise InputError("speed_options must come from a UniAnimate Speed Options node.")
    return {**SPEED_DEFAULTS, **speed_options}


def refine_latent(latent: Any, denoise: Any, frames: int, width: int, height: int) -> torch.Tensor | None:
    """The model-space latent to refine (or None); checked before the encoders run."""
    if latent is None:
        if denoise is not None and float(denoise) != 1.0:
            raise InputError(f"denoise {denoise} needs a latent to refine: connect a LATENT (e.g. VAE Encode of "
                             "video frames) or set denoise to 1.0.")
        return None
    if isinstance(denoise, bool) or not isinstance(denoise, (int, float)) or not 0.0 < float(denoise) <= 1.0:
        raise InputError(f"denoise must be in 0.01..1.0; got {denoise!r}.")
    return comfy_bridge.from_comfy_latent(latent, frames, width, height)


def latent_output() -> io.Latent.Output:
    return io.Latent.Output(display_name="latent",
                            tooltip="Generated frames as a LATENT (frames in the batch, raw VAE scale): connect VAE "
                                    "Decode, then Create Video / Save Video.")


def check_model(model: Any) -> UniAnimateModel:
    if not isinstance(model, UniAnimateModel):
        raise InputError(f"The model input must come from 'Load UniAnimate Model'; got {type(model).__name__}.")
    return model


def validate_common(width: Any = None, height: Any = None, pose_colors: Any = None) -> bool | str:
    """Static checks ComfyUI cannot make itself: sizes that are multiples of 64, and the colour combo
    (old display labels accepted, see choices.py). Each message names its input.

    ComfyUI leaves its own range and list checks to this function for the inputs it takes, and
    passes a linked input as None (its value is not known yet: checked at run time).
    """
    return choices.verdict([*choices.size_problems(width, height), choices.color_problem("pose_colors", pose_colors)])


def check_run_inputs(model: UniAnimateModel, width: Any, height: Any, max_frames: Any, pose_colors: Any) -> str:
    """The run-time checks of the inputs a link may feed (ComfyUI validated only the widget values).

    Returns the pose colour key (an old display label becomes its key).
    """
    multiple = model.config.pixel_multiple
    problems = [size_problem("width", width, multiple), size_problem("height", height, multiple)]
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 0:
        problems.append(f"max_frames must be 0 (one frame per selected pose) or a positive number of frames; got "
                        f"{max_frames!r}.")
    found = [p for p in problems if p]
    if found:
        raise InputError(" ".join(found))
    return choices.color_key("pose_colors", pose_colors)


def activate(model: UniAnimateModel, prep: Prepared, frames: int, windows_per_call: int,
             options: SamplerOptions) -> tuple[Any, SamplerOptions]:
    """Let ComfyUI load the UNet for sampling; returns the module to call and the options to use.

    ComfyUI is asked to keep room for one single-batch call; guidance then runs the conditional and
    unconditional passes as one batch when the device has room for it (faster), else one after the
    other like the official code (half the activation memory).
    """
    h, w = prep.height // 8, prep.width // 8
    single = comfy_bridge.memory_estimate(frames, h, w, windows_per_call, model.compute_dtype,
                                         model.config.temporal)
    comfy_bridge.load_for_sampling(model.patcher, single)
    unet = model.unet
    unet.set_zero_y(model.zero_y)
    if options.guided and not comfy_bridge.room_for(model.patcher.load_device, 2 * single):
        log.info("UniAnimate: not enough free memory to batch the guidance passes; running them one after the other.")
        options = dataclasses.replace(options, cfg_mode="sequential")
    return unet, options


def sampler_options(model: UniAnimateModel, steps: int, guidance: float, solver: str = "ddim",
                    timestep_spacing: str = "official", guidance_end: float = 1.0, deep_cache_interval: int = 1,
                    deep_cache_depth: int = DEFAULT_DEPTH) -> SamplerOptions:
    """The sampler options (validated here, so a bad value stops the node before the encoders run)."""
    return SamplerOptions(steps=int(steps), guide_scale=float(guidance), device=model.patcher.load_device,
                          model_dtype=model.compute_dtype, solver=str(solver), timestep_mode=str(timestep_spacing),
                          guidance_interval=(0.0, float(guidance_end)), deep_cache_interval=deep_cache_interval,
                          deep_cache_depth=deep_cache_depth)


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & MAX_SEED)


class UniAnimateSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="UniAnimateSampler",
            display_name="UniAnimate Sampler",
            category=CATEGORY,
            description=(
                "Animates the reference image with the driving poses in one pass (up to ~64 frames; the model was "
                "trained on 32). DDIM with classifier-free guidance and UniAnimate's noise prior. Output: a LATENT for "
                "VAE Decode. Memory grows with frames x pixels (the official code needed about 12 GB for 32 frames at "
                "512x768 in fp16); for longer videos use UniAnimate Long Video Loop."
            ),
            inputs=model_inputs() + selection_inputs(32) + sampling_inputs(949) + refine_inputs(),
            outputs=[latent_output()],
        )

    @classmethod
    def validate_inputs(cls, width: Any = None, height: Any = None, pose_colors: Any = None) -> bool | str:
        """Static checks (see validate_common); ComfyUI checks the other inputs' ranges itself."""
        return validate_common(width, height, pose_colors)

    @classmethod
    def execute(cls, model: Any, vae: Any, clip_vision: Any, reference_image: torch.Tensor, poses: Any,
                reference_pose: Any, width: int = 512, height: int = 768, max_frames: int = 32,
                frame_interval: int = 1, steps: int = 30, guidance: float = 2.5, seed: int = 11,
                noise_prior: int = 949, condition_mode: str = "standard",
                pose_colors: str = "unianimate", latent: Any = None, denoise: float = 1.0,
                speed_options: Any = None) -> io.NodeOutput:
        model = check_model(model)
        pose_colors = check_run_inputs(model, width, height, max_frames, pose_colors)
        options = sampler_options(model, steps, guidance, **speed_settings(speed_options))
        noise = noise_options("short", noise_prior)
        selection = select(poses, max_frames, frame_interval)
        init = refine_latent(latent, denoise, selection.num_frames, width, height)
        prep = prepare(vae, clip_vision, reference_image, poses, reference_pose, width, height,
                       model.config.pixel_multiple, condition_mode, pose_colors, max_frames, frame_interval,
                       selection=selection)
        generator = make_generator(seed)
        with comfy_bridge.oom_advice(f"sampling {prep.frames} frames at {prep.width}x{prep.height}"):
            unet, options = activate(model, prep, prep.frames, 1, options)
            steps_run = effective_sampler(options, float(denoise), init is not None)
            progress = comfy_bridge.ComfyProgress(work_units(prep.frames, "short", steps_run),
                                                  model.patcher.load_device)
            (part,) = sample_clip(unet, prep, "short", options, generator=generator, noise=noise, progress=progress,
                                  should_cancel=comfy_bridge.should_cancel, init_latent=init, denoise=float(denoise))
        log.info("UniAnimate: generated %d frames at %dx%d", prep.frames, prep.width, prep.height)
        return io.NodeOutput(comfy_bridge.to_comfy_latent(part.latent))
