"""UniAnimate as a native ComfyUI model: what the MODEL output of 'Load UniAnimate Model' carries.

ComfyUI's core samplers (KSampler, SamplerCustomAdvanced, every sampler and scheduler), its context
windows, caches (EasyCache, LazyCache), TorchCompileModel and attention/block patches all work on a
``comfy.model_base.BaseModel`` inside a ``ModelPatcher``. :class:`UniAnimateNativeModel` is that
BaseModel for the UniAnimate UNet:

* ``model_sampling``: ComfyUI's discrete v-prediction sampling with the zero-terminal-SNR rescale of
  UniAnimate's ``linear_sd`` betas (0.00085 .. 0.012, 1000 steps) - the schedule UniAnimate was
  trained with. ComfyUI keeps the last sigma finite (its ZTSNR clamp, alpha_bar[999] = 4.9e-8 instead
  of 0); docs/native.md measures what that and the other sampling differences change.
* conditions: 'UniAnimate Conditioning' puts a :class:`UniAnimateCondition` into the positive and
  negative CONDITIONING; :meth:`UniAnimateNativeModel.extra_conds` turns it into ComfyUI conds: the
  driving poses per frame (``ua_poses``, sliced by context windows like the latent), the per-video
  conditions (``ua_video``: CLIP image embedding, reference latent, reference pose, first-frame
  pixels), a per-row conditional/unconditional flag (``ua_cond``) and the empty-prompt text context
  (``c_crossattn``).
* frames in the batch: the LATENT keeps ComfyUI's layout for SD-family video, (F, 4, h, w). ComfyUI
  batches the conditional and unconditional passes (and, under context windows, one window at a time)
  along that same batch dimension and says how many passes it stacked in
  ``transformer_options["cond_or_uncond"]``. :meth:`UniAnimateNativeModel._apply_model` splits the
  batch into that many equal runs of frames, runs each as one video through the UNet's
  (B, 4, F, h, w) forward and puts the frames back (the same regrouping AnimateDiff-Evolved does).
* ``transformer_options`` (attention and block patches, the attention override, ``sigmas``,
  ``cond_or_uncond``...) go through the UNet's forward unchanged (``unianimate_core.unet.options``).
* the noise prior: a SAMPLER_SAMPLE wrapper turns the sampler's starting noise into UniAnimate's
  start (offset noise + the reference latent diffused to ``noise_prior``) for fresh generations.

Nothing here changes the UNet; the UNIANIMATE_MODEL output shares the same ModelPatcher.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management as mm
import comfy.model_patcher
import comfy.model_sampling
import comfy.patcher_extension
import comfy.supported_models_base
import comfy.utils
import torch

from ..unianimate_core.diffusion import Conditions, NoiseOptions, combine_noise
from ..unianimate_core.errors import InputError
from . import comfy_bridge

log = logging.getLogger("UniAnimate")

#: UniAnimate's training schedule in ComfyUI's terms (ModelSamplingDiscrete settings).
SAMPLING_SETTINGS = {"beta_schedule": "linear", "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000,
                     "zsnr": True}
#: The offset noise is drawn from its own generator, seeded with the sampler's seed + this salt, so it is
#: reproducible from the seed but independent of the main noise ComfyUI draws from the plain seed.
OFFSET_SEED_SALT = 0x5EED_0FF5
NOISE_PRIOR_WRAPPER_KEY = "unianimate_noise_prior"
COND_KEY = "unianimate"


# ------------------------------------------------------------------------------------ payloads
class UniAnimateVideo:
    """The per-video conditions of one 'UniAnimate Conditioning' run, on the CPU (shared, never copied).

    image: (1, 1024) CLIP-H image embedding; ref_pose: (1, 3, 1, H, W) uint8 (dwpose frame 0);
    randomref: (1, 4, 1, h, w) reference latent x 0.18215 or None (first_frame mode);
    local_image: (1, 3, 1, H, W) reference pixels in [0, 1] or None (standard mode);
    ref_latent: (1, 4, h, w) x 0.18215 (the noise prior diffuses it); noise: the prior settings (None:
    the sampler's noise is used as it is).

    Compared by identity: ComfyUI batches a positive and a negative pass only when their constant
    conds are equal, i.e. when both come from the same conditioning node run.
    """

    def __init__(self, image: torch.Tensor, ref_pose: torch.Tensor, randomref: Optional[torch.Tensor],
                 local_image: Optional[torch.Tensor], ref_latent: torch.Tensor, noise: Optional[NoiseOptions],
                 frames: int, width: int, height: int) -> None:
        self.image = image
        self.ref_pose = ref_pose
        self.randomref = randomref
        self.local_image = local_image
        self.ref_latent = ref_latent
        self.noise = noise
        self.frames = frames
        self.width = width
        self.height = height

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.height // 8, self.width // 8

    def conditions(self, poses: torch.Tensor) -> Conditions:
        """Core conditions for B videos from their pose frames (B, 3, F, H, W) uint8 (dtypes kept)."""
        b = poses.shape[0]
        ref_pose = self.ref_pose.to(poses.device).expand(b, -1, -1, -1, -1)

        def batch(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else t.to(poses.device).expand(b, *t.shape[1:])

        return Conditions(image=batch(self.image), local_image=batch(self.local_image),
                          dwpose=torch.cat([ref_pose, poses], dim=2), randomref=batch(self.randomref))


@dataclass(frozen=True, eq=False)
class UniAnimateCondition:
    """What a CONDITIONING entry of 'UniAnimate Conditioning' carries under the key ``"unianimate"``.

    video: the per-video conditions; poses: (F, 3, H, W) uint8 driving poses, one per latent frame;
    conditional: True for the positive output, False for the negative one (UniAnimate's
    unconditional pass drops every condition; the tensors ride along only so ComfyUI can batch both).
    """

    video: UniAnimateVideo
    poses: torch.Tensor
    conditional: bool


class CONDPosePixels(comfy.conds.CONDRegular):
    """Per-frame uint8 pose pixels: repeated / sliced to the batch like any per-frame cond.

    They stay uint8 until the model call (4x less to move to the GPU); the model converts them with
    the core's ``/ 255`` rule. An area (ConditioningSetArea) cannot apply to pixel-space poses.
    """

    def process_cond(self, batch_size, area=None, **kwargs):
        if area is not None:
            raise InputError("UniAnimate conditioning cannot be limited to an area (ConditioningSetArea / "
                             "ConditioningSetAreaPercentage): the poses drive the whole frame. Remove the area node.")
        return self._copy_with(comfy.utils.repeat_to_batch_size(self.cond, batch_size))


# ------------------------------------------------------------------------------------ the model
class UniAnimateModelConfig(comfy.supported_models_base.BASE):
    """ComfyUI model config: no UNet is built from it (the UniAnimate loader builds the UNet)."""

    unet_config = {"disable_unet_model_creation": True}
    unet_extra_config: dict = {}
    sampling_settings = SAMPLING_SETTINGS
    latent_format = comfy.latent_formats.SD15
    # memory_required is overridden (same activation estimate as the UniAnimate sampler nodes)
    memory_usage_factor = 1.0


class UniAnimateNativeModel(comfy.model_base.BaseModel):
    """``BaseModel`` around an already built ``UNetSD_UniAnimate`` (``self.diffusion_model``).

    unet: the UNet (its weights stay where the loader put them); weight_dtype / manual_cast_dtype:
    storage and compute dtypes as ComfyUI chose them (manual_cast None = compute in the weight dtype).
    """

    def __init__(self, unet: torch.nn.Module, weight_dtype: torch.dtype,
                 manual_cast_dtype: Optional[torch.dtype] = None, device: Any = None) -> None:
        # model_channels: the trunk's base width, read by core patches that act per resolution (FreeU)
        config = UniAnimateModelConfig({"disable_unet_model_creation": True,
                                        "model_channels": int(unet.config.dim)})
        config.set_inference_dtype(weight_dtype, manual_cast_dtype)
        super().__init__(config, comfy.model_base.ModelType.V_PREDICTION, device=device)
        self.diffusion_model = unet

    # -- dtypes / memory ---------------------------------------------------------------------------
    def get_dtype(self) -> torch.dtype:
        """The weight dtype (the UNet's ``dtype`` property is its compute dtype)."""
        return self.diffusion_model.time_embed[0].weight.dtype

    def compute_dtype(self) -> torch.dtype:
        return self.manual_cast_dtype or self.get_dtype()

    def memory_required(self, input_shape, cond_shapes={}):  # noqa: B006 - ComfyUI's signature
        """Activation bytes for one call on ``input_shape`` = (frames x passes, 4, h, w)."""
        rows, h, w = int(input_shape[0]), int(input_shape[-2]), int(input_shape[-1])
        return comfy_bridge.memory_estimate(rows, h, w, 1, self.compute_dtype(), self.diffusion_model.config.temporal)

    # -- conditions --------------------------------------------------------------------------------
    def extra_conds(self, **kwargs):
        """CONDITIONING entry -> ComfyUI conds (called once per entry when sampling starts)."""
        out: dict[str, Any] = {}
        cross_attn = kwargs.get("cross_attn", None)
        if cross_attn is None:
            zero_y = getattr(self.diffusion_model, "zero_y", None)
            if zero_y is None:
                raise InputError("The UniAnimate model has no empty-prompt context; load it with 'Load UniAnimate "
                                 "Model' (connect its clip input once, the context is cached next to the model file).")
            cross_attn = zero_y
        out["c_crossattn"] = comfy.conds.CONDCrossAttn(cross_attn)
        cond = kwargs.get(COND_KEY, None)
        if cond is None:
            return out
        if not isinstance(cond, UniAnimateCondition):
            raise InputError(f"The conditioning carries a {type(cond).__name__} under {COND_KEY!r}; connect the "
                             "positive/negative outputs of 'UniAnimate Conditioning'.")
        check_latent_matches(cond.video, kwargs.get("noise", None))
        out["ua_poses"] = CONDPosePixels(cond.poses)
        out["ua_video"] = comfy.conds.CONDConstant(cond.video)
        out["ua_cond"] = comfy.conds.CONDRegular(torch.tensor([1.0 if cond.conditional else 0.0]))
        return out

    # -- the model call ----------------------------------------------------------------------------
    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},  # noqa: B006
                     **kwargs):
        """ComfyUI's model call: x (N, 4, h, w) frames in the batch at sigma t (N,) -> denoised x0.

        Same steps as ``BaseModel._apply_model`` (input scaling, timestep from sigma, dtype casts,
        DIFFUSION_MODEL wrappers around the network call, output -> x0); only the network call differs:
        the batch is regrouped into videos (:meth:`forward_frames`).
        """
        if control is not None:
            raise InputError("ControlNets / T2I adapters do not apply to UniAnimate (its trunk is not Stable "
                             "Diffusion's; the driving poses are its control). Remove the Apply ControlNet node.")
        if c_concat is not None:
            raise InputError("This conditioning adds concat channels (c_concat, e.g. an inpainting or image-to-video "
                             "conditioning node for another model); UniAnimate takes its inputs from 'UniAnimate "
                             "Conditioning' only.")
        sigma = t
        xc = self.model_sampling.calculate_input(sigma, x)
        dtype = self.compute_dtype()
        xc = xc.to(dtype)
        device = xc.device
        timestep = self.model_sampling.timestep(t).float()
        context = None if c_crossattn is None else mm.cast_to_device(c_crossattn, device, dtype)
        extra = {}
        for key, value in kwargs.items():
            if isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
                extra[key] = mm.cast_to_device(value, device, None)  # pixels: converted by the core's rule
            else:
                extra[key] = comfy.model_base.convert_tensor(value, dtype, device)
        executor = comfy.patcher_extension.WrapperExecutor.new_class_executor(
            self.forward_frames, self,
            comfy.patcher_extension.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL,
                                                     transformer_options))
        out = executor.execute(xc, timestep, context, transformer_options, **extra)
        return self.model_sampling.calculate_denoised(sigma, out.float(), x)

    def forward_frames(self, x: torch.Tensor, timestep: torch.Tensor, context: Optional[torch.Tensor],
                       transformer_options: dict, ua_poses: Optional[torch.Tensor] = None,
                       ua_video: Optional[UniAnimateVideo] = None, ua_cond: Optional[torch.Tensor] = None,
                       **unused: Any) -> torch.Tensor:
        """The network on frames-in-batch input: x (N, 4, h, w) -> v (N, 4, h, w).

        N = passes x frames: ComfyUI stacked ``len(cond_or_uncond)`` passes (conditional,
        unconditional, ...) of F frames each, pass after pass. Every per-row input (timestep, pose,
        flag, context) is constant within a pass except the pose.
        """
        n = x.shape[0]
        passes = len(transformer_options.get("cond_or_uncond") or ()) or 1
        if n % passes:
            raise InputError(f"UniAnimate got a batch of {n} latent frames for {passes} sampling passes; the latent "
                             "batch must be whole videos (one video = all frames of the LATENT).")
        f = n // passes
        video = x.reshape(passes, f, *x.shape[1:]).transpose(1, 2)  # (P, 4, F, h, w)
        t = timestep.reshape(passes, f)[:, 0] if timestep.numel() == n else timestep.reshape(-1)[:1].expand(passes)
        if context is not None and context.shape[0] == n:
            context = context.reshape(passes, f, *context.shape[1:])[:, 0]
        kwargs: dict[str, Any] = {}
        mask = None
        if ua_video is not None:
            poses = ua_poses.reshape(passes, f, *ua_poses.shape[1:]).transpose(1, 2)  # (P, 3, F, H, W)
            kwargs = ua_video.conditions(poses).model_kwargs(f, device=x.device, dtype=x.dtype)
            flags = ua_cond.reshape(passes, f)[:, 0] > 0.5
            mask = None if bool(flags.all()) else flags
        elif 0 in (transformer_options.get("cond_or_uncond") or [0]):
            raise InputError("The positive conditioning has no UniAnimate conditions: connect the positive output "
                             "of 'UniAnimate Conditioning' (a text prompt alone cannot drive UniAnimate).")
        v = self.diffusion_model(video, t, cond_mask=mask, context=context, transformer_options=transformer_options,
                                 **kwargs)
        return v.transpose(1, 2).reshape(n, *v.shape[1:2], *v.shape[3:])


def check_latent_matches(video: UniAnimateVideo, noise: Optional[torch.Tensor]) -> None:
    """The LATENT being sampled must be the one the conditioning was prepared for (frames and size)."""
    if noise is None:
        return
    if noise.ndim != 4:
        raise InputError(f"UniAnimate samples ComfyUI's image-style video LATENT (frames, 4, h, w); this latent is "
                         f"shaped {tuple(noise.shape)}. Use the latent output of 'UniAnimate Conditioning'.")
    frames, _, h, w = noise.shape
    if (h, w) != video.latent_size:
        raise InputError(f"The LATENT is {w * 8}x{h * 8} pixels but UniAnimate Conditioning prepared "
                         f"{video.width}x{video.height}. Use the conditioning node's latent output, or set its "
                         "width/height to the latent's size.")
    if frames != video.frames:
        raise InputError(f"The LATENT has {frames} frames but UniAnimate Conditioning prepared {video.frames} poses. "
                         "Use the conditioning node's latent output (one frame per pose), or change its "
                         "max_frames / frame_interval so the counts match.")


# ------------------------------------------------------------------------------------ noise prior
def offset_noise(seed: Optional[int], frames: int) -> torch.Tensor:
    """The offset noise (1, 4, F, 1, 1) for a sampler seed (CPU generator, seed + OFFSET_SEED_SALT)."""
    gen = torch.Generator().manual_seed((int(seed or 0) + OFFSET_SEED_SALT) % (1 << 64))
    return torch.randn((1, 4, frames, 1, 1), generator=gen, dtype=torch.float32)


def find_condition(conds: Any) -> Optional[UniAnimateCondition]:
    """The first UniAnimate condition among a guider's conds (positive first)."""
    if not isinstance(conds, dict):
        return None
    for name in ["positive"] + [k for k in conds if k != "positive"]:
        for entry in conds.get(name) or ():
            cond = entry.get(COND_KEY) if isinstance(entry, dict) else None
            if isinstance(cond, UniAnimateCondition):
                return cond
    return None


def is_max_denoise(model_sampling: Any, sigma0: float) -> bool:
    """ComfyUI's rule (KSAMPLER.max_denoise): a start at sigma_max scales the noise by sqrt(1 + sigma^2)."""
    sigma_max = float(model_sampling.sigma_max)
    return math.isclose(sigma_max, sigma0, rel_tol=1e-05) or sigma0 > sigma_max


def unianimate_start_noise(noise: torch.Tensor, video: UniAnimateVideo, sigmas: torch.Tensor,
                           model_sampling: Any, seed: Optional[int]) -> torch.Tensor:
    """The noise to hand the sampler so that it starts where UniAnimate's own sampler starts.

    UniAnimate starts its first step (t for sigmas[0]) from x_t = prior(noise + offset) in
    variance-preserving units. ComfyUI's samplers start from noise_scaling(sigmas[0], noise, 0) =
    noise * sqrt(1 + s^2) at sigma_max and noise * s below it (k-diffusion units x / sqrt(ab)), so the
    start is returned divided by that factor / sqrt(1 + s^2). noise: (F, 4, h, w); returns the same shape.
    """
    frames = noise.shape[0]
    main = noise.detach().float().cpu().permute(1, 0, 2, 3).unsqueeze(0)  # (1, 4, F, h, w)
    options = video.noise
    offset = offset_noise(seed, frames) if options.offset_strength > 0 else None
    start = combine_noise(main, offset, options, prior_latent=video.ref_latent if options.prior_t is not None else None)
    s = float(sigmas[0])
    scale = 1.0 if is_max_denoise(model_sampling, s) else math.sqrt(1.0 + s * s) / s
    return (start[0].permute(1, 0, 2, 3) * scale).to(device=noise.device, dtype=noise.dtype)


def noise_prior_wrapper(executor, guider, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                        disable_pbar=False, *args, **kwargs):
    """SAMPLER_SAMPLE wrapper: UniAnimate's start for fresh generations with UniAnimate conditioning.

    Applied when the conditioning comes from 'UniAnimate Conditioning' with a noise setting, the
    latent is empty (all zeros: a new video, not a refine / video-to-video), there is noise (KSampler
    Advanced with add_noise disabled hands over a ready start latent instead) and no noise mask.
    """
    cond = find_condition(getattr(guider, "conds", None))
    ms = getattr(getattr(guider, "inner_model", None), "model_sampling", None)
    fresh = latent_image is None or not bool(torch.count_nonzero(latent_image))
    if (cond is not None and cond.video.noise is not None and fresh and denoise_mask is None and ms is not None
            and isinstance(ms, comfy.model_sampling.EPS) and len(sigmas) > 1 and bool(torch.count_nonzero(noise))
            and noise.ndim == 4 and noise.shape[0] == cond.video.frames):
        noise = unianimate_start_noise(noise, cond.video, sigmas, ms, extra_args.get("seed"))
    return executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar,
                    *args, **kwargs)


def make_model_patcher(unet: torch.nn.Module, weight_dtype: torch.dtype, manual_cast_dtype: Optional[torch.dtype],
                       load_device: Any, offload_device: Any) -> Any:
    """The ModelPatcher both loader outputs share (MODEL for core sampling, UNIANIMATE_MODEL for ours)."""
    model = UniAnimateNativeModel(unet, weight_dtype, manual_cast_dtype, device=offload_device)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, NOISE_PRIOR_WRAPPER_KEY,
                                 noise_prior_wrapper)
    return patcher
