"""UniAnimate diffusion: schedule, DDIM (v-prediction), classifier-free guidance, noise prior and
the long-video strategies (sliding windows, iterative first-frame continuation).

Pure PyTorch; the model is any callable ``model(x, t, image=, local_image=, dwpose=, randomref=)``.
See docs/sampling.md for the API walkthrough and the deviations from the official code.
"""
from unianimate_core.diffusion.conditions import CONDITION_KEYS, ConditionMode, Conditions, unconditional_kwargs
from unianimate_core.diffusion.ddim import ddim_step, predict_eps, predict_x0
from unianimate_core.diffusion.errors import SamplingCancelled, SamplingError
from unianimate_core.diffusion.guidance import apply_guidance, predict_cond_uncond, supports_cond_mask
from unianimate_core.diffusion.noise import NoiseOptions, combine_noise, draw_noise, prepare_noise
from unianimate_core.diffusion.progress import CancelFn, ProgressFn
from unianimate_core.diffusion.sampler import SamplerOptions, StepResult, iter_sample_video, sample_video
from unianimate_core.diffusion.schedule import NUM_TIMESTEPS, NoiseSchedule
from unianimate_core.diffusion.timesteps import ddim_timesteps, official_ddim_timesteps_raw, previous_timesteps

__all__ = [
    "CONDITION_KEYS", "CancelFn", "ConditionMode", "Conditions", "NUM_TIMESTEPS", "NoiseOptions",
    "NoiseSchedule", "ProgressFn", "SamplerOptions", "SamplingCancelled", "SamplingError", "StepResult",
    "apply_guidance", "combine_noise", "ddim_step", "ddim_timesteps", "draw_noise", "iter_sample_video",
    "official_ddim_timesteps_raw", "predict_cond_uncond", "predict_eps", "predict_x0", "prepare_noise",
    "previous_timesteps", "sample_video", "supports_cond_mask", "unconditional_kwargs",
]
