"""Conditions: the three modes, window slicing/batching and the exact uint8 -> float conversion."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unianimate_core.diffusion import Conditions, SamplingError, pixels_to_float

F, H, W = 5, 16, 24


def parts(b: int = 1):
    gen = torch.Generator().manual_seed(0)
    return dict(image=torch.randn(b, 1, 1024, generator=gen),
                dwpose=torch.randint(0, 256, (b, 3, F + 1, H, W), generator=gen, dtype=torch.uint8),
                ref_latent=torch.randn(b, 4, H // 8, W // 8, generator=gen),
                ref_pixels=torch.randint(0, 256, (b, 3, H, W), generator=gen, dtype=torch.uint8))


@pytest.mark.parametrize("mode,keys", [("standard", {"image", "dwpose", "randomref"}),
                                       ("first_frame", {"image", "dwpose", "local_image"}),
                                       ("both", {"image", "dwpose", "randomref", "local_image"})])
def test_modes_fill_the_documented_slots(mode: str, keys: set) -> None:
    cond = Conditions.build(mode, **parts())
    kwargs = cond.model_kwargs(F)
    assert {k for k, v in kwargs.items() if v is not None} == keys
    cond.validate((1, 4, F, H // 8, W // 8))
    if "local_image" in keys:
        assert kwargs["local_image"].shape == (1, 3, F, H, W)  # single reference frame repeated
    if "randomref" in keys:
        assert kwargs["randomref"].shape == (1, 4, 1, H // 8, W // 8)


@pytest.mark.parametrize("mode,missing", [("standard", "ref_latent"), ("first_frame", "ref_pixels"),
                                          ("both", "ref_latent"), ("sideways", None)])
def test_missing_mode_inputs_are_reported(mode: str, missing: str | None) -> None:
    p = parts()
    if missing:
        p[missing] = None
    with pytest.raises(SamplingError, match=missing or "mode"):
        Conditions.build(mode, **p)


def test_uint8_conversion_is_the_correctly_rounded_quotient() -> None:
    """The official loader (ToTensor) divides in float32, which IEEE rounds correctly: every byte v must map
    to the float32 nearest to the rational v / 255 (checked in exact arithmetic, ties excluded by the
    assertion). A multiplication by 1/255 instead differs for 126 of the 256 bytes."""
    from fractions import Fraction

    got = pixels_to_float(torch.arange(256, dtype=torch.uint8))
    assert got.dtype == torch.float32
    for v, value in enumerate(got.numpy()):
        exact = Fraction(v, 255)
        below, above = np.nextafter(value, np.float32(-1)), np.nextafter(value, np.float32(2))
        error = abs(Fraction(float(value)) - exact)
        assert error < abs(Fraction(float(below)) - exact) and error < abs(Fraction(float(above)) - exact), v
    cond = Conditions.build("both", **parts())
    kw = cond.model_kwargs(F, dtype=torch.float16)
    assert kw["dwpose"].dtype == torch.float16  # half precision: the float32 values rounded once more
    assert torch.equal(kw["dwpose"], pixels_to_float(cond.dwpose).half())


def test_window_slicing_and_batching() -> None:
    p = parts(b=2)
    per_frame = p["ref_latent"].unsqueeze(2) + torch.arange(F).view(1, 1, F, 1, 1)
    cond = Conditions(image=p["image"], dwpose=p["dwpose"], randomref=per_frame,
                      local_image=pixels_to_float(p["ref_pixels"]).unsqueeze(2))
    win = cond.windows([[1, 2], [3, 4]])
    assert win.dwpose.shape == (4, 3, 3, H, W) and win.randomref.shape == (4, 4, 2, H // 8, W // 8)
    # window-major batch: (window 0: samples 0, 1), (window 1: samples 0, 1)
    assert torch.equal(win.dwpose[1], p["dwpose"][1][:, [0, 2, 3]])
    assert torch.equal(win.dwpose[2], p["dwpose"][0][:, [0, 4, 5]])
    assert torch.equal(win.randomref[3], per_frame[1][:, [3, 4]])
    assert torch.equal(win.image[2], p["image"][0]) and win.local_image.shape[2] == 1


@pytest.mark.parametrize("change,match", [
    (dict(dwpose=torch.zeros(1, 3, F, H, W)), "dwpose"),
    (dict(dwpose=torch.zeros(1, 3, F + 1, H + 8, W)), "dwpose"),
    (dict(local_image=torch.zeros(1, 3, 2, H, W)), "local_image"),
    (dict(randomref=torch.zeros(2, 4, 1, 2, 3)), "randomref"),
    (dict(image=torch.zeros(1, 2, 1024)), "image"),
    (dict(randomref=torch.zeros(1, 4, 1, 2, 3), dwpose=None), "dwpose"),
    (dict(image=torch.full((1, 1024), float("inf"))), "NaN or inf"),
    (dict(image=torch.zeros(1, 1, 1024, dtype=torch.uint8)), "float tensor"),
    (dict(dwpose=torch.full((1, 3, F + 1, H, W), 255.0)), r"\[0, 1\]"),  # .float() without / 255
    (dict(local_image=torch.full((1, 3, 1, H, W), -1.0)), r"\[0, 1\]"),  # a [-1, 1] image
])
def test_shape_errors_name_the_tensor(change: dict, match: str) -> None:
    cond = Conditions.build("standard", **parts()).replace(**change)
    with pytest.raises(SamplingError, match=match):
        cond.validate((1, 4, F, H // 8, W // 8))
