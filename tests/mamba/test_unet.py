"""The UNet with temporal Mamba layers: forward for every frame count, identity at init after
converting a trained attention UNet, checkpoint round trip, and a short training run."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tiny_unet import load_tiny_unet, tiny_zero_y
from unianimate_core.checkpoint import load_unet
from unianimate_core.config import UNetConfig
from unianimate_core.mamba import (MambaConfig, TemporalMamba, convert_temporal_to_mamba,
                                   is_mamba_state_dict)
from unianimate_core.unet import TemporalTransformer, UNetSD_UniAnimate

LATENT = 8  # tiny config: 4 levels -> latent side must be a multiple of 8


def _conditions(frames: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(1, 1024, generator=g),
        "dwpose": torch.rand(1, 3, frames + 1, 8 * LATENT, 8 * LATENT, generator=g),
        "randomref": torch.randn(1, 4, 1, LATENT, LATENT, generator=g),
    }


def _latent(frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 4, frames, LATENT, LATENT, generator=torch.Generator().manual_seed(seed))


def _randomise_mamba_outputs(model: nn.Module, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TemporalMamba):
                m.proj_out.weight.copy_(torch.randn(m.proj_out.weight.shape, generator=g) * 0.05)


@pytest.fixture(scope="module")
def mamba_unet() -> UNetSD_UniAnimate:
    torch.manual_seed(0)
    # frozen like a loaded model: on CPU, parameters that require grad take another Linear
    # kernel (last-bit differences) even under no_grad, which would defeat exact comparisons
    model = UNetSD_UniAnimate(UNetConfig.tiny(temporal="mamba")).eval().requires_grad_(False)
    model.set_zero_y(tiny_zero_y())
    _randomise_mamba_outputs(model)
    return model


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 8, 16, 32])
def test_mamba_unet_forward_for_every_frame_count(mamba_unet: UNetSD_UniAnimate,
                                                  frames: int) -> None:
    assert sum(isinstance(m, TemporalMamba) for m in mamba_unet.modules()) == 17
    x = _latent(frames)
    with torch.no_grad():
        v = mamba_unet(x, torch.tensor([500]), **_conditions(frames))
        v_uncond = mamba_unet(x, torch.tensor([500]))
    assert v.shape == x.shape and torch.isfinite(v).all()
    assert torch.isfinite(v_uncond).all() and not torch.equal(v, v_uncond)


def test_converted_unet_equals_attention_unet_without_temporal_attention() -> None:
    """Identity at init, precisely: every fresh TemporalMamba returns its input bit for bit, so
    the converted model computes the attention model with its temporal transformers removed
    (made residual-free by zeroing their output projections)."""
    attention = load_tiny_unet()
    converted = convert_temporal_to_mamba(copy.deepcopy(attention), MambaConfig())
    removed = copy.deepcopy(attention)
    for m in removed.modules():
        if isinstance(m, TemporalTransformer):
            nn.init.zeros_(m.proj_out.weight)
            nn.init.zeros_(m.proj_out.bias)

    layers = [m for m in converted.modules() if isinstance(m, TemporalMamba)]
    assert len(layers) == 17 and converted.config.temporal == "mamba"
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(torch.equal(inp[0], out)))
             for m in layers]
    x, cond, t = _latent(3), _conditions(3), torch.tensor([700])
    with torch.no_grad():
        got = converted(x, t, **cond)
        want = removed(x, t, **cond)
        full = attention(x, t, **cond)
    for h in hooks:
        h.remove()
    assert seen == [True] * 17
    assert torch.equal(got, want)
    assert not torch.allclose(got, full)   # the trained temporal attention did matter


def test_factory_and_conversion_build_the_same_state_dict_layout() -> None:
    built = UNetSD_UniAnimate(UNetConfig.tiny(temporal="mamba"), device="meta").state_dict()
    converted = convert_temporal_to_mamba(
        UNetSD_UniAnimate(UNetConfig.tiny(), device="meta")).state_dict()
    assert {k: tuple(v.shape) for k, v in built.items()} == \
        {k: tuple(v.shape) for k, v in converted.items()}


def test_mamba_checkpoint_round_trip_through_the_loader(mamba_unet: UNetSD_UniAnimate) -> None:
    sd = mamba_unet.state_dict()
    assert is_mamba_state_dict(sd)
    loaded = load_unet(sd, zero_y=tiny_zero_y())
    assert loaded.config.temporal == "mamba"
    assert sum(isinstance(m, TemporalMamba) for m in loaded.modules()) == 17
    x, cond, t = _latent(4), _conditions(4), torch.tensor([300])
    with torch.no_grad():
        assert torch.equal(loaded(x, t, **cond), mamba_unet(x, t, **cond))


def _v_target_schedule() -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(alpha_bar), sqrt(1 - alpha_bar) of the zero-terminal-SNR linear_sd schedule."""
    try:
        from unianimate_core.diffusion import NoiseSchedule
    except ImportError:  # pragma: no cover - diffusion package not present
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        a = torch.cumprod(1 - betas, 0).sqrt()
        a = (a - a[-1]) * (a[0] / (a[0] - a[-1]))
        return a, (1 - a ** 2).sqrt()
    s = NoiseSchedule.unianimate()
    return s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod


def test_few_adam_steps_reduce_v_prediction_loss_of_converted_unet() -> None:
    """Fine-tuning recipe: trained attention UNet -> convert -> train the new Mamba layers."""
    torch.manual_seed(3)
    model = convert_temporal_to_mamba(load_tiny_unet(), MambaConfig())
    params = [p for m in model.modules() if isinstance(m, TemporalMamba) for p in m.parameters()]
    assert params and all(p.requires_grad for p in params)
    frozen = sum(p.requires_grad for p in model.parameters()) - len(params)
    assert frozen == 0   # the loader froze the pretrained weights; only the new layers train
    mixer_before = [m.mamba.mixer.in_proj.weight.detach().clone()
                    for m in model.modules() if isinstance(m, TemporalMamba)]

    frames = 4
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(1, 4, frames, LATENT, LATENT, generator=g)
    noise = torch.randn(1, 4, frames, LATENT, LATENT, generator=g)
    t = torch.tensor([600])
    sa, s1a = (s[t].float().view(1, 1, 1, 1, 1) for s in _v_target_schedule())
    x_t = sa * x0 + s1a * noise
    v_target = sa * noise - s1a * x0
    cond = _conditions(frames, seed=5)

    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = F.mse_loss(model(x_t, t, **cond), v_target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] * 0.95, losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    changed = [not torch.equal(b, m.mamba.mixer.in_proj.weight)
               for b, m in zip(mixer_before,
                               [m for m in model.modules() if isinstance(m, TemporalMamba)])]
    assert all(changed)   # gradients reached the mixers through the scan
