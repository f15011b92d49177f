"""Weights, scenarios and the derived tolerance of the dtype x layer-factory x compute matrix.

Tolerance (see docs/precision.md). A run that stores weights in dtype ``s`` and computes in ``c``
differs from the float32 reference by

* the rounding of the weights to ``s`` - measured exactly as ``E_w(s)``: the float32 path (the one the
  golden-fixture parity tests validate) run on the same weights rounded to ``s``;
* the rounding of activations to ``c``. Each rounding is a relative perturbation of at most eps(c)/2
  per element that enters the next matmul/conv/norm exactly like a rounding of its weights to ``c``
  does, so each costs about E_w(c). Per weight layer the half-precision forward rounds about four
  activations: the layer's input, its output, the norm output before the nonlinearity (or q, k, v and
  the attention probabilities in the transformers) and the residual sum. Summed linearly (the worst
  case; independent errors would add in quadrature, i.e. about 2 E_w(c)): 4 * E_w(c);
* float32 noise (kernel order), bounded by 1e-4 of the output scale like the parity tests.

    tol = E_w(s) + 4 * E_w(c) + 1e-4 * max|ref|          (E_w(fp32) = 0)

A weight function (LoRA) rounds the patched weight to ``s`` once more: + E_w(s).
Measured on these scenarios (docs/precision.md): the largest (error - E_w(s)) / E_w(c) was 3.2.
"""
from __future__ import annotations

import zlib
from typing import Any, Callable

import torch
from safetensors.torch import load_file

from tiny_unet import tiny_checkpoint_path, tiny_zero_y
from unianimate_core.checkpoint import load_unet
from unianimate_core.config import UNetConfig
from unianimate_core.diffusion import (
    Conditions, ContinuationOptions, NoiseOptions, SamplerOptions, prepare_noise, sample_long_continuation,
    sample_video,
)
from unianimate_core.mamba import MambaConfig
from unianimate_core.pipeline.encoders import seeded_
from unianimate_core.unet import UNetSD_UniAnimate

FP32, FP16, BF16, FP8 = torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn
FP32_NOISE = 1e-4
#: activation roundings per weight rounding in a half-precision forward (see the module docstring)
ACTIVATION_ROUNDINGS = 4
STATE_SPACE = ("A_log", ".D")


def _seeded(name: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1))


def attention_weights() -> dict[str, torch.Tensor]:
    """The tiny fixture UNet's weights made float32-only: x (1 + 0.01 N(0,1)) so that no value is exactly an
    fp16/bf16 number (the fixture file is fp16, which would make fp16 storage look lossless)."""
    sd = load_file(str(tiny_checkpoint_path()))
    return {k: v.float() * (1 + 0.01 * torch.randn(v.shape, generator=_seeded(k, 5))) for k, v in sd.items()}


def mamba_weights() -> dict[str, torch.Tensor]:
    """A tiny UNet with temporal Mamba layers and seeded random float32 weights (proj_out non-zero)."""
    cfg = UNetConfig.tiny(temporal="mamba", mamba=MambaConfig())
    return {k: v.clone() for k, v in seeded_(UNetSD_UniAnimate(cfg), 3).state_dict().items()}


def round_to(sd: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """float32 weights rounded to ``dtype`` and back (the state-space A_log/D always stay float32)."""
    return {k: v if k.endswith(STATE_SPACE) else v.to(dtype).float() for k, v in sd.items()}


def lora_delta(key: str, weight: torch.Tensor) -> torch.Tensor:
    """A fixed patch of 5 % of the weight's spread, standing in for a LoRA applied through weight_function."""
    return 0.05 * weight.float().std(correction=0).clamp(min=1e-3) * torch.randn(weight.shape, generator=_seeded(key, 9))


def patched(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v if k.endswith(STATE_SPACE) or not k.endswith("weight") else v + lora_delta(k, v) for k, v in sd.items()}


def attach_lora(model: torch.nn.Module, sd32: dict[str, torch.Tensor]) -> int:
    """Attach ``w + delta`` weight functions (computed in fp32, cast back, like ComfyUI's patches) to every
    comfy.ops layer; returns how many layers got one."""
    n = 0
    for name, module in model.named_modules():
        if hasattr(module, "weight_function") and getattr(module, "weight", None) is not None:
            key = f"{name}.weight"
            delta = lora_delta(key, sd32[key])
            module.weight_function = [lambda w, d=delta: (w.float() + d.to(w.device)).to(w.dtype)]
            n += 1
    return n


def build(sd: dict[str, torch.Tensor], weight: torch.dtype, compute: torch.dtype, operations: Any = None):
    model = load_unet(sd, dtype=weight, operations=operations, zero_y=tiny_zero_y())
    if compute != weight:
        model.compute_dtype = compute
    assert model.dtype == compute
    return model


# ------------------------------------------------------------------------------------------ scenarios
H = W = 64


def _inputs(frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(image=torch.randn(1, 1024, generator=g), dwpose=torch.rand(1, 3, frames + 1, H, W, generator=g),
                randomref=torch.randn(1, 4, 1, H // 8, W // 8, generator=g))


def forward(model) -> torch.Tensor:
    """One UNet call, batch 2 with a cond_mask (the batched-guidance layout), t = 500."""
    dt = model.dtype
    inp = {k: torch.cat([v, v]).to(dt) for k, v in _inputs(2).items()}
    x = torch.randn(2, 4, 2, H // 8, W // 8, generator=torch.Generator().manual_seed(1)).to(dt)
    with torch.inference_mode():
        out = model(x, torch.tensor([500, 500]), cond_mask=torch.tensor([True, False]), **inp)
    assert out.dtype == dt
    return out


def short_sampler(model) -> torch.Tensor:
    """Two DDIM steps with guidance 2.5 over 3 frames, official noise prior."""
    inp = _inputs(3)
    cond = Conditions(image=inp["image"][:, None], dwpose=inp["dwpose"], randomref=inp["randomref"])
    g = torch.Generator().manual_seed(2)
    noise = prepare_noise((1, 4, 3, H // 8, W // 8), g, NoiseOptions.short(), prior_latent=inp["randomref"])
    return sample_video(model, noise, cond, SamplerOptions(steps=2, model_dtype=model.dtype), generator=g)


def fixed_decoder(latent: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in VAE decode: (B, 4, h, w) -> (B, 3, 8h, 8w) in [0, 1]."""
    m = torch.randn(3, 4, generator=torch.Generator().manual_seed(4)) / 2
    x = torch.sigmoid(torch.einsum("oc,bchw->bohw", m, latent.float()))
    return torch.nn.functional.interpolate(x, scale_factor=8, mode="nearest")


def continuation(model) -> torch.Tensor:
    """5 frames in segments of 3 (two segments, one decoded hand-over), two steps each."""
    inp = _inputs(5)
    cond = Conditions(image=inp["image"][:, None], dwpose=inp["dwpose"], randomref=inp["randomref"])
    return sample_long_continuation(model, cond, SamplerOptions(steps=2, model_dtype=model.dtype),
                                    ContinuationOptions(segment_length=3), decode_last_frame=fixed_decoder,
                                    generator=torch.Generator().manual_seed(3))


SCENARIOS: dict[str, Callable] = {"forward": forward, "short_sampler": short_sampler, "continuation": continuation}


def tolerance(ref: torch.Tensor, e_w: dict[torch.dtype, float], storage: torch.dtype, compute: torch.dtype,
              lora: bool = False) -> float:
    err = lambda d: 0.0 if d == FP32 else e_w[d]  # noqa: E731
    return ((2 if lora else 1) * err(storage) + ACTIVATION_ROUNDINGS * err(compute)
            + FP32_NOISE * float(ref.abs().max()))


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t.float()).all())


# ------------------------------------------------------------------------------------------ node path
def node_classes(pack) -> dict[str, type]:
    import asyncio

    ext = asyncio.run(pack.comfy_entrypoint())
    return {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(ext.get_node_list())}


def put_model(fake, sd: dict, config: UNetConfig, name: str) -> str:
    """Save float32 weights (+ the cached empty-prompt context) into the fake ComfyUI's models/unianimate."""
    import numpy as np
    from pathlib import Path

    from safetensors.torch import save_file

    path = Path(fake.folder_paths.get_folder_paths("unianimate")[0]) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={"config": config.to_json()})
    np.save(path.parent / "zero_y_openclip_vit_h14.npy", tiny_zero_y().numpy())
    return name


def images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """A ComfyUI IMAGE batch (n, h, w, 3) with exact 8-bit values."""
    return torch.randint(0, 256, (n, h, w, 3), generator=torch.Generator().manual_seed(seed)).float() / 255.0


def sampler_inputs(model) -> dict:
    from comfy_fake.models import FakeClipVision, FakeVAE

    return dict(model=model, vae=FakeVAE(), clip_vision=FakeClipVision(), reference_image=images(1, 80, 60, seed=1),
                poses=images(3, 70, 50, seed=2), reference_pose=images(1, 70, 50, seed=3), width=W, height=H,
                max_frames=0, frame_interval=1, steps=2, guidance=2.5, seed=5, noise_prior=949,
                condition_mode="both")
