"""Conditioning preparation shared with the nodes: resize rules, CLIP input, posterior sample, 8-bit output."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from unianimate_core.pipeline import conditioning as C
from unianimate_core.pipeline.errors import PipelineError
from unianimate_core.pipeline.video import to_uint8


def _image(h=60, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _triangle_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of an antialiased bilinear (triangle) resampling, pixel centres aligned: the
    filter is stretched by the scale factor when shrinking (support = max(in / out, 1))."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale
    taps = np.arange(in_size) + 0.5
    w = np.clip(1 - np.abs(taps[None, :] - centres[:, None]) / support, 0, None)
    return w / w.sum(axis=1, keepdims=True)


def _antialiased_bilinear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Independent float64 model of the official ``Resize`` (PIL BILINEAR, docs/official_behaviour.md#resize):
    the separable triangle filter in exact arithmetic (no rounding)."""
    wx, wy = _triangle_weights(img.shape[1], size[0]), _triangle_weights(img.shape[0], size[1])
    return np.einsum("yh,xi,hic->yxc", wy, wx, img.astype(np.float64))


@pytest.mark.parametrize("src_hw, size", [((60, 40), (64, 128)), ((150, 200), (64, 48)), ((97, 31), (64, 64))])
def test_resize_is_an_antialiased_bilinear_squash_to_w_h(src_hw, size):
    """Within 1.001 grey levels of the exact triangle-filter model: PIL resamples in two 8-bit passes (in
    either order), each rounded to the nearest level (<= 0.5 each; the second pass's weights are positive
    and sum to 1, so the first rounding stays <= 0.5), with weights in 22-bit fixed point (< 1e-3 levels).
    A plain (non-antialiased) bilinear resize is many levels away when shrinking."""
    img = _image(*src_hw)
    out = C.resize_frames(img, size)
    assert out.shape == (1, 3, size[1], size[0]) and out.dtype == torch.float32
    model = _antialiased_bilinear(img, size)
    got = out[0].permute(1, 2, 0).double().numpy() * 255
    assert np.abs(got - np.round(got)).max() < 1e-4  # 8-bit values / 255 (official ToTensor)
    assert np.abs(got - model).max() <= 1.001
    if src_hw[1] > 2 * size[0]:  # shrinking: a non-antialiased bilinear (2 taps) is far off
        plain = torch.nn.functional.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].double(),
                                                size=(size[1], size[0]), mode="bilinear", align_corners=False)
        assert np.abs(plain[0].permute(1, 2, 0).numpy() - model).max() > 20


def test_float_images_in_comfy_layout_give_the_same_result_as_uint8():
    img = _image()
    as_float = torch.from_numpy(img).float().unsqueeze(0) / 255.0  # (1, H, W, 3) ComfyUI IMAGE
    assert torch.equal(C.resize_frames(as_float, (64, 64)), C.resize_frames(img, (64, 64)))


def test_clip_input_is_224_squash_with_openai_mean_std():
    img = _image(300, 120)
    pixels = C.clip_pixels(img)
    assert pixels.shape == (1, 224, 224, 3)
    # ComfyUI's preprocessing of an exact 224x224 input only rounds to 8 bit: a no-op on these values
    assert torch.equal(torch.clip(255.0 * pixels, 0, 255).round() / 255.0, pixels)
    x = C.clip_input(img)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    assert torch.allclose(x, (pixels.permute(0, 3, 1, 2) - mean) / std, atol=1e-7)


def test_posterior_sample_uses_the_ldm_std_and_the_cpu_generator():
    """docs/official_behaviour.md#posterior-sample: channels split into mean and log-variance, std =
    exp(logvar / 2) with logvar clamped to [-30, 20], noise = torch.randn(mean shape) from the given CPU
    generator. Checked with log-variances whose std is known: 2 ln 3 -> 3, 100 -> e^10, -100 -> e^-15."""
    mean = torch.full((1, 4, 3, 5), 7.0)
    logvar = torch.empty(1, 4, 3, 5)
    logvar[:, :2], logvar[:, 2], logvar[:, 3] = 2 * np.log(3.0), 100.0, -100.0
    stds = torch.tensor([3.0, 3.0, np.exp(10.0), np.exp(-15.0)], dtype=torch.float32).view(1, 4, 1, 1)
    eps = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(5))  # what the official draws
    sample = C.posterior_sample(torch.cat([mean, logvar], dim=1), torch.Generator().manual_seed(5))
    torch.testing.assert_close(sample, 7.0 + stds * eps, rtol=1e-6, atol=1e-6)
    latent = C.reference_latent(torch.cat([mean, logvar], dim=1), torch.Generator().manual_seed(5))
    torch.testing.assert_close(latent, (7.0 + stds * eps) * 0.18215, rtol=1e-6, atol=1e-6)
    other_seed = C.posterior_sample(torch.cat([mean, logvar], dim=1), torch.Generator().manual_seed(6))
    assert not torch.allclose(other_seed, sample)


def test_latents_for_decode_is_frame_major_and_unscaled():
    """(B, C, F, h, w) -> (B F, C, h, w) batch-major (the official ``rearrange(z, 'b c f h w -> (b f) c h w')``),
    divided by the SD scale factor 0.18215 (docs/official_behaviour.md#conditions)."""
    from einops import rearrange

    z = torch.arange(2 * 4 * 3 * 2 * 2, dtype=torch.float32).view(2, 4, 3, 2, 2) * 0.18215
    flat = C.latents_for_decode(z)
    torch.testing.assert_close(flat, rearrange(z, "b c f h w -> (b f) c h w") / 0.18215, rtol=1e-6, atol=0)
    assert flat[4, 1, 0, 0].item() == pytest.approx(z[1, 1, 1, 0, 0].item() / 0.18215)  # sample 1, frame 1


def test_uint8_round_versus_official_truncation():
    x = torch.tensor([0.999, 0.5, 0.0, 1.2, -0.1]).view(1, 1, 5, 1).expand(1, 1, 5, 3)
    assert to_uint8(x, "round")[0, 0, :, 0].tolist() == [255, 128, 0, 255, 0]
    assert to_uint8(x, "truncate")[0, 0, :, 0].tolist() == [254, 127, 0, 255, 0]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(PipelineError, match="multiple of 64"):
        C.check_size(500, 768, 64)
    # each message names the input and the two nearest usable sizes
    assert C.size_problem("width", 500, 64) == ("width = 500 is not a multiple of 64 (the VAE's factor 8 times one "
                                                "halving per UNet level); use 448 or 512.")
    assert "height = 32 is too small" in C.size_problem("height", 32, 64)
    assert C.size_problem("height", 768, 64) is None
    with pytest.raises(PipelineError, match="width = 500.*height = 700"):
        C.check_size(500, 700, 64)
    with pytest.raises(PipelineError, match="NaN"):
        C.to_uint8_hwc(torch.full((4, 4, 3), float("nan")))
    with pytest.raises(PipelineError):
        C.posterior_sample(torch.zeros(1, 7, 2, 2))
