"""L1 / PSNR / SSIM against analytic values and scikit-image."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unianimate_core.evaluation import EvaluationError, evaluate_video
from unianimate_core.evaluation.image_metrics import PSNR_CAP, l1, psnr, psnr_from_mse, ssim


def _smooth_video(f=3, h=48, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(f, 3, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def test_l1_and_psnr_of_a_constant_offset_are_analytic():
    a = torch.full((2, 3, 16, 16), 0.25)
    b = a + 0.1  # |d| = 0.1 everywhere: L1 0.1, MSE 0.01, PSNR 20 dB
    torch.testing.assert_close(l1(b, a), torch.full((2,), 0.1), atol=1e-6, rtol=0)
    torch.testing.assert_close(psnr(b, a), torch.full((2,), 20.0), atol=1e-4, rtol=0)
    assert psnr_from_mse(0.01) == pytest.approx(20.0)
    assert psnr(a, a).tolist() == [PSNR_CAP, PSNR_CAP]


def test_ssim_matches_scikit_image():
    """Library value: scikit-image's structural_similarity (Gaussian weights, sigma 1.5, population
    covariance - the Wang et al. settings). Both evaluate the same windows in float64; the tolerance
    (1e-6) covers the float32 -> float64 rounding of the inputs and the order of summation."""
    from skimage.metrics import structural_similarity

    a = _smooth_video(seed=1)
    b = (a + 0.08 * torch.randn(a.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    ours = ssim(b, a)
    ref = [structural_similarity(b[i].permute(1, 2, 0).double().numpy(), a[i].permute(1, 2, 0).double().numpy(),
                                 data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for i in range(a.shape[0])]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)
    assert float(ssim(a, a).min()) == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_flat_images_is_the_luminance_term():
    """Analytic: for constant images the variances vanish and SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)."""
    m1, m2, c1 = 0.3, 0.6, 0.01 ** 2
    expected = (2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1)
    got = ssim(torch.full((1, 3, 24, 24), m1), torch.full((1, 3, 24, 24), m2))
    assert float(got[0]) == pytest.approx(expected, abs=1e-6)


def test_inputs_are_checked():
    a = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(EvaluationError, match="same number of frames"):
        evaluate_video(a, ground_truth=np.zeros((3, 16, 16, 3), np.uint8))
    with pytest.raises(EvaluationError, match=r"\[0, 1\]"):
        evaluate_video(np.full((2, 16, 16, 3), 2.0, np.float32))
    with pytest.raises(EvaluationError, match="3 colour channels"):
        evaluate_video(np.zeros((2, 16, 16, 4), np.uint8))
    with pytest.raises(EvaluationError, match="larger than 10"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_uint8_and_float_inputs_agree():
    a = (np.random.default_rng(0).random((3, 24, 24, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + 9, 0, 255).astype(np.uint8)
    m1 = evaluate_video(a, ground_truth=b, warp=False)
    m2 = evaluate_video(a.astype(np.float32) / 255, ground_truth=torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255,
                        warp=False)
    for k in ("l1", "psnr", "ssim"):
        np.testing.assert_allclose(m1.per_frame[k], m2.per_frame[k], atol=1e-5)
    assert math.isfinite(m1.summary["psnr_clip"])
