"""UniAnimate diffusion: schedule, DDIM (v-prediction), classifier-free guidance, noise prior and
the long-video strategies (sliding windows, iterative first-frame continuation).

Pure PyTorch; the model is any callable ``model(x, t, image=, local_image=, dwpose=, randomref=)``
(optionally with ``cond_mask=`` for batched guidance). See docs/sampling.md for the walkthrough,
the defaults and the deviations from the official code.
"""
from .conditions import (
    CONDITION_KEYS, CONDITION_MODES, ConditionMode, Conditions, pixels_to_float, unconditional_kwargs,
)
from .continuation import (
    ContinuationOptions, DecodeFn, NoiseFn, Segment, anchor_colours, iter_sample_long_continuation, plan_segments,
    sample_long_continuation,
)
from .deep_cache import DeepCache, supports_deep_cache
from .ddim import ddim_step, predict_eps, predict_x0
from .errors import SamplingCancelled, SamplingError
from .guidance import (
    CfgMode, Model, apply_guidance, predict_cond_uncond, supports_cond_mask,
)
from .noise import NoiseOptions, combine_noise, draw_noise, prepare_noise
from .progress import CancelFn, ProgressFn
from .sampler import SamplerOptions, StepResult, iter_sample_video, sample_video
from .schedule import NUM_TIMESTEPS, NoiseSchedule
from .sliding import count_work_units, iter_sample_long_sliding, sample_long_sliding
from .timesteps import (
    TimestepMode, ddim_timesteps, official_ddim_timesteps_raw, previous_timesteps,
)
from .windows import SlidingWindowOptions, context_windows

__all__ = [
    "CONDITION_KEYS", "CONDITION_MODES", "CancelFn", "CfgMode", "ConditionMode", "Conditions",
    "ContinuationOptions", "DecodeFn", "DeepCache", "Model", "NUM_TIMESTEPS", "NoiseFn", "NoiseOptions", "NoiseSchedule",
    "ProgressFn", "SamplerOptions", "SamplingCancelled", "SamplingError", "Segment", "SlidingWindowOptions",
    "StepResult", "TimestepMode", "anchor_colours", "apply_guidance", "combine_noise", "context_windows",
    "count_work_units", "ddim_step", "ddim_timesteps", "draw_noise", "iter_sample_long_continuation",
    "iter_sample_long_sliding", "iter_sample_video", "official_ddim_timesteps_raw", "pixels_to_float",
    "plan_segments", "predict_cond_uncond", "predict_eps", "predict_x0", "prepare_noise", "previous_timesteps",
    "sample_long_continuation", "sample_long_sliding", "sample_video", "supports_cond_mask", "supports_deep_cache",
    "unconditional_kwargs",
]
