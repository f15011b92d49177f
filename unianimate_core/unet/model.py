"""``UNetSD_UniAnimate``: the UniAnimate 3D UNet with the official state-dict layout.

The reference image enters three ways: its CLIP-H embedding becomes 4 context tokens, its VAE latent
(plus the embedded reference pose) becomes an extra leading *frame* (the "reference slot"), and —
in first-frame mode — its pixels are embedded for every frame next to the target poses. The trunk
therefore always runs F + 1 frames and the output drops frame 0 (docs/official_behaviour.md#ref-frame).
"""
from __future__ import annotations

from typing import Any, Optional, Union

import torch
from einops import rearrange
from torch import nn

from ..config import UNetConfig
from ..errors import InputError
from ..ops import AttentionFn, default_operations
from .embedders import FrameAdapter, embed_frames, latent_embedder, pixel_embedder
from .layers import Downsample, Upsample, run_norm, silu, timestep_embedding
from .options import TransformerOptions, deep_cache_state, patch_list
from .resblock import ResBlock
from .transformer import SpatialTransformer, TemporalTransformer

#: The official adapters use 2 heads whose width equals the embedding width.
ADAPTER_HEADS = 2


class UNetSD_UniAnimate(nn.Module):  # noqa: N801 - the official class name, kept on purpose
    """The UniAnimate UNet. See ``docs/architecture.md`` for the forward contract.

    Args:
        config: architecture (``UNetConfig.full()`` is the released model).
        operations: layer factory (``torch.nn`` by default; ComfyUI passes ``comfy.ops.*``).
        attention_fn: ``(q, k, v, heads) -> out`` on (B, N, heads*d); SDPA by default.
        device, dtype: where/how to allocate parameters (``"meta"`` builds without memory).
    """

    def __init__(
        self,
        config: Optional[UNetConfig] = None,
        operations: Any = None,
        attention_fn: Optional[AttentionFn] = None,
        device: Any = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        ops = operations or default_operations()
        kw = dict(device=device, dtype=dtype)
        self.config = cfg
        self.gradient_checkpointing = False
        #: Dtype activations are computed in. None = the weight dtype. Set it when the layers cast their
        #: weights on the fly (ComfyUI's ``manual_cast`` ops: fp8/fp16 storage, fp32/bf16 compute).
        self.compute_dtype: Optional[torch.dtype] = None
        d, e, cdim, cat = cfg.dim, cfg.embed_dim, cfg.context_dim, cfg.concat_dim
        ref_ch = cat + cfg.in_dim  # the reference slot has as many channels as latent + pose embedding

        def temporal(channels: int, heads: int) -> nn.Module:
            if cfg.temporal == "mamba":
                from ..mamba import TemporalMamba
                from ..mamba.config import MambaConfig

                return TemporalMamba(channels, cfg.mamba or MambaConfig(), operations=ops, **kw)
            return TemporalTransformer(channels, heads, cfg.head_dim, ops, attention_fn, **kw)

        def spatial(channels: int) -> nn.Module:
            return SpatialTransformer(channels, channels // cfg.head_dim, cfg.head_dim, cdim, ops, attention_fn, **kw)

        # -- embeddings (registration order = official state-dict order) ----------------------------
        self.time_embed = nn.Sequential(ops.Linear(d, e, **kw), nn.SiLU(), ops.Linear(e, e, **kw))
        self.pre_image_condition = nn.Sequential(
            ops.Linear(cdim, cdim, **kw), nn.SiLU(), ops.Linear(cdim, cfg.num_tokens * cdim, **kw)
        )
        self.local_image_embedding = pixel_embedder(cat, ops, **kw)
        self.local_image_embedding_after = FrameAdapter(cat, ADAPTER_HEADS, cat, ops, **kw)
        self.dwpose_embedding = pixel_embedder(cat, ops, **kw)
        self.dwpose_embedding_after = FrameAdapter(cat, ADAPTER_HEADS, cat, ops, **kw)
        self.randomref_pose2_embedding = pixel_embedder(ref_ch, ops, **kw)
        self.randomref_pose2_embedding_after = FrameAdapter(ref_ch, ADAPTER_HEADS, ref_ch, ops, **kw)
        self.randomref_embedding2 = latent_embedder(cfg.in_dim, ref_ch, ops, **kw)
        self.randomref_embedding_after2 = FrameAdapter(ref_ch, ADAPTER_HEADS, ref_ch, ops, **kw)

        # -- encoder ---------------------------------------------------------------------------------
        enc_dims = [d * m for m in (1, *cfg.dim_mult)]
        dec_dims = [d * m for m in (cfg.dim_mult[-1], *cfg.dim_mult[::-1])]
        scale = 1.0
        skip_dims: list[int] = []
        self.input_blocks = nn.ModuleList()
        # the very first temporal layer uses num_heads heads (not C // head_dim): 8 x 64 on 320 channels
        init = nn.ModuleList([ops.Conv2d(cfg.in_dim + cat, d, 3, padding=1, **kw), temporal(d, cfg.num_heads)])
        self.input_blocks.append(init)
        skip_dims.append(d)
        last = cfg.num_levels - 1
        for level, (cin, cout) in enumerate(zip(enc_dims[:-1], enc_dims[1:])):
            for j in range(cfg.num_res_blocks):
                block = nn.ModuleList([ResBlock(cin, e, cout, ops, **kw)])
                if scale in cfg.attn_scales:
                    block.extend([spatial(cout), temporal(cout, cout // cfg.head_dim)])
                cin = cout
                self.input_blocks.append(block)
                skip_dims.append(cout)
                if level != last and j == cfg.num_res_blocks - 1:
                    self.input_blocks.append(Downsample(cout, ops, **kw))
                    skip_dims.append(cout)
                    scale /= 2.0

        # -- middle ----------------------------------------------------------------------------------
        c = enc_dims[-1]
        self.middle_block = nn.ModuleList(
            [ResBlock(c, e, c, ops, **kw), spatial(c), temporal(c, c // cfg.head_dim), ResBlock(c, e, c, ops, **kw)]
        )

        # -- decoder ---------------------------------------------------------------------------------
        self.output_blocks = nn.ModuleList()
        for level, (cin, cout) in enumerate(zip(dec_dims[:-1], dec_dims[1:])):
            for j in range(cfg.num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(cin + skip_dims.pop(), e, cout, ops, **kw)])
                if scale in cfg.attn_scales:
                    block.extend([spatial(cout), temporal(cout, cout // cfg.head_dim)])
                cin = cout
                if level != last and j == cfg.num_res_blocks:
                    block.append(Upsample(cout, ops, **kw))
                    scale *= 2.0
                self.output_blocks.append(block)

        # -- head ------------------------------------------------------------------------------------
        self.out = nn.Sequential(ops.GroupNorm(32, d, **kw), nn.SiLU(), ops.Conv2d(d, cfg.out_dim, 3, padding=1, **kw))

        # The empty-prompt OpenCLIP text context (1, 77, context_dim). Not part of the checkpoint:
        # it comes from the text encoder (or a cached file) and moves with the module.
        self.register_buffer("zero_y", None, persistent=False)

    # ------------------------------------------------------------------------------------ helpers
    def set_zero_y(self, zero_y: torch.Tensor) -> None:
        """Set the empty-prompt context; accepts (77, C) or (1, 77, C)."""
        if zero_y.dim() == 2:
            zero_y = zero_y[None]
        expected = (1, self.config.text_tokens, self.config.context_dim)
        if tuple(zero_y.shape) != expected:
            raise InputError(
                f"zero_y (empty-prompt text context) must have shape {expected}; got {tuple(zero_y.shape)}. "
                "It is the OpenCLIP ViT-H-14 text tower's penultimate layer + final LayerNorm on the empty prompt."
            )
        p = next(self.parameters(), None)
        device = p.device if p is not None and p.device.type != "meta" else zero_y.device
        self.zero_y = zero_y.detach().to(device=device, dtype=torch.float32)

    @property
    def dtype(self) -> torch.dtype:
        """The activation dtype: ``compute_dtype`` if set, else the weight dtype."""
        return self.compute_dtype or self.time_embed[0].weight.dtype

    # ------------------------------------------------------------------------------------ forward
    def forward(
        self,
        x: torch.Tensor,
        t: Union[torch.Tensor, int, float],
        image: Optional[torch.Tensor] = None,
        local_image: Optional[torch.Tensor] = None,
        dwpose: Optional[torch.Tensor] = None,
        randomref: Optional[torch.Tensor] = None,
        cond_mask: Optional[torch.Tensor] = None,
        context: Optional[torch.Tensor] = None,
        transformer_options: Optional[TransformerOptions] = None,
    ) -> torch.Tensor:
        """Predict v for F frames.

        Shapes: x (B, 4, F, h, w); t (B,) or scalar; image (B, 1024) or (B, 1, 1024);
        local_image (B, 3, F, H, W) in [0, 1]; dwpose (B, 3, F+1, H, W) in [0, 1] with the reference
        pose at frame 0; randomref (B, 4, F or 1, h, w) (reference latent x 0.18215, frame 0 used).
        ``cond_mask`` (B,) bool: rows where it is False get exactly the unconditional result (all
        conditions dropped), so classifier-free guidance can run cond and uncond in one batch.
        ``context`` (B or 1, T, context_dim): text context used instead of ``zero_y`` (the 4 image
        tokens are still appended). ``transformer_options``: a dict of patches / options a host
        application threads through every block and attention call (``options.py``); None = none.
        Returns (B, out_dim, F, h, w).
        """
        b, f, h, w = self._check_inputs(x, image, local_image, dwpose, randomref, cond_mask, context)
        to = transformer_options
        cfg = self.config
        dtype = self.dtype
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0 or t.numel() == 1:
            t = t.reshape(1).expand(b)
        keep = None if cond_mask is None else cond_mask.to(device=x.device, dtype=torch.bool)

        def masked(v: torch.Tensor) -> torch.Tensor:
            if keep is None:
                return v
            return torch.where(keep.view(-1, *([1] * (v.dim() - 1))), v, torch.zeros_like(v))

        # pose / first-frame embeddings, concatenated to the noisy latent
        concat = x.new_zeros(b, cfg.concat_dim, f, h, w, dtype=dtype)
        if local_image is not None:
            concat = concat + embed_frames(
                self.local_image_embedding, self.local_image_embedding_after, local_image.to(dtype)
            )
        ref_pose = None
        if dwpose is not None:
            dwpose = dwpose.to(dtype)
            ref_pose = dwpose[:, :, :1]
            concat = concat + embed_frames(self.dwpose_embedding, self.dwpose_embedding_after, dwpose[:, :, 1:])
        concat = masked(concat)

        # the reference slot: embedded reference latent (+ embedded reference pose)
        ref_slot = x.new_zeros(b, cfg.concat_dim + cfg.in_dim, 1, h, w, dtype=dtype)
        if randomref is not None:
            ref = embed_frames(self.randomref_embedding2, self.randomref_embedding_after2, randomref[:, :, :1].to(dtype))
            if ref_pose is not None:
                ref = ref + embed_frames(
                    self.randomref_pose2_embedding, self.randomref_pose2_embedding_after, ref_pose
                )
            ref_slot = masked(ref_slot + ref)

        x = torch.cat([ref_slot, torch.cat([x.to(dtype), concat], dim=1)], dim=2)  # (B, 12, F+1, h, w)
        frames = f + 1

        emb = self.time_embed(timestep_embedding(t, cfg.dim).to(dtype))
        for p in patch_list(to, "emb_patch"):
            emb = p(emb, cfg.dim, to)
        if context is None:
            if self.zero_y is None:
                raise InputError(
                    "the model's empty-prompt context (zero_y) is not set. Call model.set_zero_y(...) with the "
                    "OpenCLIP-H text embedding of the empty prompt (ComfyUI: connect a CLIP / SD2.1 checkpoint)."
                )
            context = self.zero_y
        context = context.to(device=x.device, dtype=dtype).expand(b, -1, -1)
        if image is not None:
            tokens = self.pre_image_condition(image.to(dtype)).reshape(b, cfg.num_tokens, cfg.context_dim)
            tokens = masked(tokens)
        else:
            tokens = context.new_zeros(b, cfg.num_tokens, cfg.context_dim)
        context = torch.cat([context, tokens], dim=1)
        emb = emb.repeat_interleave(frames, dim=0)
        # context stays (B, T, C): the spatial transformers compute its keys/values once per sample

        x = rearrange(x, "b c f h w -> (b f) c h w")
        if to is not None:
            to["original_shape"] = list(x.shape)
            to["num_video_frames"] = frames
            to["transformer_index"] = 0
        skips: list[torch.Tensor] = []
        deep = deep_cache_state(to, len(self.input_blocks))
        n = len(self.input_blocks)
        split = n if deep is None else deep.depth  # deep cache: the shallow blocks run first
        x = self._run_input_blocks(0, split, x, emb, context, frames, to, skips)
        cached = None if deep is None else deep.features
        reuse = cached is not None and _cache_fits(cached, skips[-1])
        first_output = 0
        if reuse:  # a reuse call: the deep part's result (the state entering output block n - depth) is cached
            x, first_output = cached, n - split
            if to is not None:
                to["transformer_index"] = self._spatial_count(self.output_blocks[:first_output]) + \
                    self._spatial_count(self.input_blocks[split:]) + self._spatial_count([self.middle_block]) + \
                    to.get("transformer_index", 0)
        else:
            x = self._run_input_blocks(split, n, x, emb, context, frames, to, skips)
            if to is not None:
                to["block"] = ("middle", 0)
            x = self._run_block(self.middle_block, x, emb, context, frames, to)
        for i in range(first_output, len(self.output_blocks)):
            block = self.output_blocks[i]
            if deep is not None and not reuse and i == n - split:
                deep.store(x)
            if to is not None:
                to["block"] = ("output", i)
            skip = skips.pop()
            for p in patch_list(to, "output_block_patch"):
                x, skip = p(x, skip, to)
            x = self._run_block(block, torch.cat([x, skip], dim=1), emb, context, frames, to)
        x = self.out[2](silu(run_norm(self.out[0], x)))
        x = rearrange(x, "(b f) c h w -> b c f h w", f=frames)
        return x[:, :, 1:]

    def _run_input_blocks(self, start: int, stop: int, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor,
                          frames: int, to: Optional[TransformerOptions], skips: list[torch.Tensor]) -> torch.Tensor:
        """Input blocks ``start:stop``, appending each one's output to ``skips`` (with the block patches)."""
        for i in range(start, stop):
            if to is not None:
                to["block"] = ("input", i)
            x = self._run_block(self.input_blocks[i], x, emb, ctx, frames, to)
            for p in patch_list(to, "input_block_patch"):
                x = p(x, to)
            skips.append(x)
            for p in patch_list(to, "input_block_patch_after_skip"):
                x = p(x, to)
        return x

    @staticmethod
    def _spatial_count(blocks: Any) -> int:
        """How many spatial transformers ``blocks`` hold (what a skipped stretch adds to transformer_index)."""
        return sum(isinstance(m, SpatialTransformer) for b in blocks for m in b.modules())

    def _run_block(self, block: nn.Module, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor, frames: int,
                   to: Optional[TransformerOptions] = None) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._run_layers, block, x, emb, ctx, frames, to, use_reentrant=False)
        return self._run_layers(block, x, emb, ctx, frames, to)

    @staticmethod
    def _run_layers(block: nn.Module, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor, frames: int,
                    to: Optional[TransformerOptions] = None) -> torch.Tensor:
        layers = block if isinstance(block, nn.ModuleList) else [block]
        for layer in layers:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, frames)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, ctx, to)
                if to is not None:
                    to["transformer_index"] = to.get("transformer_index", 0) + 1
            elif _is_temporal(layer):
                video = rearrange(x, "(b f) c h w -> b c f h w", f=frames)
                video = layer(video, to) if isinstance(layer, TemporalTransformer) and to is not None else layer(video)
                x = rearrange(video, "b c f h w -> (b f) c h w")
            else:  # conv_in, Downsample, Upsample
                x = layer(x)
        return x

    # ------------------------------------------------------------------------------------ checks
    def _check_inputs(
        self,
        x: torch.Tensor,
        image: Optional[torch.Tensor],
        local_image: Optional[torch.Tensor],
        dwpose: Optional[torch.Tensor],
        randomref: Optional[torch.Tensor],
        cond_mask: Optional[torch.Tensor],
        context: Optional[torch.Tensor] = None,
    ) -> tuple[int, int, int, int]:
        cfg = self.config
        if x.dim() != 5 or x.shape[1] != cfg.in_dim:
            raise InputError(
                f"x must be a video latent (B, {cfg.in_dim}, F, h, w); got shape {tuple(x.shape)}. "
                "ComfyUI LATENTs keep frames in the batch dimension: reshape (F, 4, h, w) -> (1, 4, F, h, w)."
            )
        b, _, f, h, w = x.shape
        if f < 1:
            raise InputError("x has 0 frames; at least one frame is needed.")
        m = cfg.latent_multiple
        if h % m or w % m:
            raise InputError(
                f"latent size {h}x{w} (pixels {8 * h}x{8 * w}) is not a multiple of {m} "
                f"(pixel size must be a multiple of {8 * m}); resize or pad the inputs, e.g. to "
                f"{8 * m * max(1, round(h / m))}x{8 * m * max(1, round(w / m))} (HxW)."
            )
        if image is not None:
            if image.dim() == 3 and image.shape[1] == 1:
                image = image[:, 0]
            if image.dim() != 2 or image.shape != (b, cfg.context_dim):
                raise InputError(
                    f"image (CLIP image embedding) must be (B, {cfg.context_dim}) or (B, 1, {cfg.context_dim}) "
                    f"with B={b}; got {tuple(image.shape)}. Use the ViT-H-14 `image_embeds` (projected, 1024-d)."
                )
        for name, value, frames in (("local_image", local_image, f), ("dwpose", dwpose, f + 1)):
            if value is None:
                continue
            expected = (b, 3, frames, 8 * h, 8 * w)
            if tuple(value.shape) != expected:
                extra = " (frame 0 = reference pose, then one pose per generated frame)" if name == "dwpose" else ""
                raise InputError(
                    f"{name} must have shape (B, 3, {'F+1' if name == 'dwpose' else 'F'}, H, W) = {expected}{extra}; "
                    f"got {tuple(value.shape)}. Pixel size must be 8x the latent size."
                )
        if randomref is not None:
            if randomref.dim() != 5 or randomref.shape[0] != b or randomref.shape[1] != cfg.in_dim or tuple(randomref.shape[-2:]) != (h, w):
                raise InputError(
                    f"randomref (reference latent x 0.18215) must be (B, {cfg.in_dim}, F or 1, {h}, {w}); "
                    f"got {tuple(randomref.shape)}."
                )
            if dwpose is None:
                raise InputError("randomref needs dwpose too: frame 0 of dwpose is the reference pose.")
        if cond_mask is not None and tuple(cond_mask.shape) != (b,):
            raise InputError(f"cond_mask must have shape ({b},); got {tuple(cond_mask.shape)}.")
        if context is not None and (context.dim() != 3 or context.shape[0] not in (1, b) or context.shape[1] < 1
                                    or context.shape[2] != cfg.context_dim):
            raise InputError(
                f"context (text tokens) must be (B, T, {cfg.context_dim}) or (1, T, {cfg.context_dim}) with B={b}; "
                f"got {tuple(context.shape)}. It is the OpenCLIP ViT-H-14 text context (the empty prompt: zero_y)."
            )
        return b, f, h, w


def _cache_fits(cached: torch.Tensor, skip: torch.Tensor) -> bool:
    """Whether a cached deep feature can stand in for this call's: same rows (batch x frames), same
    spatial size as the skip it is concatenated with, same dtype and device. Otherwise the call runs full."""
    return (isinstance(cached, torch.Tensor) and cached.dim() == skip.dim() and cached.shape[0] == skip.shape[0]
            and cached.shape[2:] == skip.shape[2:] and cached.dtype == skip.dtype and cached.device == skip.device)


def _is_temporal(layer: nn.Module) -> bool:
    """Temporal layers take (B, C, F, h, w); everything else in a block works per frame."""
    if isinstance(layer, TemporalTransformer):
        return True
    from ..mamba.layer import TemporalMamba  # cheap after the first import; mamba-ssm stays lazy

    return isinstance(layer, TemporalMamba)
