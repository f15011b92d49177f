"""Per-frame fidelity against ground truth: L1, MSE, PSNR, SSIM (torchmetrics)."""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import EvaluationError, import_torchmetrics
from .frames import same_shape

#: PSNR reported for a frame identical to its ground truth (the formula gives +inf).
PSNR_CAP = 100.0


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """``(F,)`` mean absolute error per frame of videos ``(F, 3, H, W)`` in [0, 1]."""
    same_shape(pred, target, "L1")
    return (pred - target).abs().flatten(1).mean(1)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    same_shape(pred, target, "MSE")
    return (pred - target).pow(2).flatten(1).mean(1)


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """``(F,)`` PSNR in dB per frame (data range 1), capped at :data:`PSNR_CAP` for identical frames."""
    same_shape(pred, target, "PSNR")
    tmf = import_torchmetrics()
    out = tmf.peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return torch.nan_to_num(out, posinf=PSNR_CAP).clamp(max=PSNR_CAP)


def psnr_from_mse(m: float) -> float:
    """PSNR (dB, data range 1) of a mean squared error (for a whole clip: the PSNR of the mean MSE)."""
    import math

    return PSNR_CAP if m <= 10 ** (-PSNR_CAP / 10) else -10.0 * math.log10(m)


#: Half-width of the 11-tap Gaussian SSIM window: map pixels closer than this to the border are left out.
SSIM_BORDER = 5


def ssim(pred: Tensor, target: Tensor, chunk: int = 16) -> Tensor:
    """``(F,)`` SSIM per frame: Gaussian window 11 (sigma 1.5), K1 0.01, K2 0.03, data range 1, channel
    mean, averaged over the pixels whose window lies inside the image (5 px from each border) - the
    reference implementation's 'valid' region, which is also scikit-image's value. The SSIM map comes
    from torchmetrics (which would otherwise also average reflect-padded border windows), in float64."""
    same_shape(pred, target, "SSIM")
    if min(pred.shape[-2:]) <= 2 * SSIM_BORDER:
        raise EvaluationError(f"SSIM needs frames larger than {2 * SSIM_BORDER} px per side; got {tuple(pred.shape[-2:])}.")
    tmf = import_torchmetrics()
    b = SSIM_BORDER
    outs = []
    for i in range(0, pred.shape[0], chunk):
        # float64: E[x^2] - mean^2 cancels to ~1e-7 in float32, which C2 = 9e-4 would amplify to ~1e-4
        _, full = tmf.structural_similarity_index_measure(pred[i:i + chunk].double(), target[i:i + chunk].double(),
                                                          data_range=1.0, reduction="none", return_full_image=True)
        outs.append(full[..., b:-b, b:-b].flatten(1).mean(1))
    return torch.cat(outs).float()
