"""Learned-feature metrics with networks the *user* supplies: FID, FVD, LPIPS.

Their usual packages download pretrained weights at run time; here nothing is downloaded: the
user points at a network file they already have, and the formulas are applied to its features.

* **FID** (frames) / **FVD** (videos): the Frechet distance between Gaussians fitted to the
  features of two sets: ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The trace of the
  matrix square root is computed from the eigenvalues of ``S1 S2`` (real and >= 0 for covariance
  matrices) in float64. Networks: a TorchScript file (``torch.jit.load``) or any ``nn.Module``
  mapping images ``(N, 3, H, W)`` in [0, 1] (FID) / videos ``(N, 3, T, H, W)`` in [-1, 1] (FVD, the
  convention of the common I3D TorchScript export) to ``(N, D)`` features.
* **LPIPS**: a network returning a list of feature maps (e.g. a TorchScript export of the
  AlexNet/VGG trunk) and optional per-layer channel weights (``lin0`` ... as in the LPIPS release,
  in a safetensors file); inputs are scaled to [-1, 1] and shifted/scaled by the LPIPS constants,
  each feature map is unit-normalised over channels, and the weighted squared differences are
  averaged over space and summed over layers.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from .errors import EvaluationError

#: LPIPS input normalisation (the release's ScalingLayer).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def load_network(path_or_module: str | Path | nn.Module | Callable, what: str) -> Callable:
    """A user network: an ``nn.Module``/callable as given, a ``torch.export`` archive (``.pt2``) or a
    TorchScript file (anything else; the format most published FID/FVD/LPIPS exports use)."""
    if isinstance(path_or_module, nn.Module) or callable(path_or_module):
        return path_or_module
    path = Path(path_or_module)
    if not path.is_file():
        raise EvaluationError(f"{what} network file not found: {path}. Pass the path of a TorchScript or "
                              "torch.export (.pt2) file you already have (nothing is downloaded).")
    try:
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module()
        with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, but it is the users' format
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError or others for foreign files
        raise EvaluationError(f"{path} is not a TorchScript file or torch.export archive ({exc}); save the "
                              "network with torch.jit.script(...).save() or torch.export.save(), or pass an "
                              "nn.Module from Python.") from exc
    return net.eval()


def frechet_distance(mu1: Tensor, s1: Tensor, mu2: Tensor, s2: Tensor) -> float:
    """Frechet distance between N(mu1, s1) and N(mu2, s2) (float64)."""
    mu1, mu2, s1, s2 = (t.to(torch.float64) for t in (mu1, mu2, s1, s2))
    eig = torch.linalg.eigvals(s1 @ s2)
    tr_sqrt = eig.real.clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased) covariance of ``(N, D)`` features, float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise EvaluationError(f"need at least 2 feature vectors (N, D) for a covariance; got {tuple(features.shape)}.")
    f = features.to(torch.float64)
    return f.mean(0), torch.cov(f.T)


@torch.no_grad()
def _features(net: Callable, batches: Sequence[Tensor]) -> Tensor:
    out = []
    for b in batches:
        f = net(b)
        if isinstance(f, (list, tuple)):
            f = f[-1]
        out.append(f.reshape(f.shape[0], -1).float())
    return torch.cat(out)


def fid(real: Tensor, fake: Tensor, network, batch: int = 32) -> float:
    """FID between two image sets ``(N, 3, H, W)`` in [0, 1] with the user's feature network."""
    net = load_network(network, "FID")
    fr = _features(net, [real[i:i + batch] for i in range(0, len(real), batch)])
    ff = _features(net, [fake[i:i + batch] for i in range(0, len(fake), batch)])
    return frechet_distance(*gaussian_stats(fr), *gaussian_stats(ff))


def fvd(real: Sequence[Tensor], fake: Sequence[Tensor], network) -> float:
    """FVD between two sets of videos (each ``(F, 3, H, W)`` in [0, 1]) with the user's video network
    (called on ``(1, 3, F, H, W)`` in [-1, 1])."""
    net = load_network(network, "FVD")
    prep = lambda v: (v.permute(1, 0, 2, 3)[None] * 2 - 1)  # noqa: E731
    fr = _features(net, [prep(v) for v in real])
    ff = _features(net, [prep(v) for v in fake])
    return frechet_distance(*gaussian_stats(fr), *gaussian_stats(ff))


class LPIPS:
    """LPIPS with a user network (see the module docstring); ``lpips(a, b)`` -> ``(N,)`` distances."""

    def __init__(self, network, weights: str | Path | dict[str, Tensor] | None = None, scaling: bool = True) -> None:
        self.net = load_network(network, "LPIPS")
        if isinstance(weights, (str, Path)):
            from safetensors.torch import load_file

            if not Path(weights).is_file():
                raise EvaluationError(f"LPIPS weights file not found: {weights}.")
            weights = load_file(str(weights))
        self.weights = weights
        self.scaling = scaling

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape:
            raise EvaluationError(f"LPIPS needs two batches of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
        xa, xb = a * 2 - 1, b * 2 - 1
        if self.scaling:
            shift = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
            scale = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)
            xa, xb = (xa - shift) / scale, (xb - shift) / scale
        fa, fb = self.net(xa), self.net(xb)
        if isinstance(fa, Tensor):
            fa, fb = [fa], [fb]
        total = torch.zeros(a.shape[0])
        for i, (u, v) in enumerate(zip(fa, fb)):
            u = u / (u.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            v = v / (v.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = (u - v).pow(2)
            if self.weights is not None:
                key = f"lin{i}.model.1.weight" if f"lin{i}.model.1.weight" in self.weights else f"lin{i}"
                if key not in self.weights:
                    raise EvaluationError(f"LPIPS weights have no entry for layer {i} (expected 'lin{i}' or "
                                          f"'lin{i}.model.1.weight'); keys: {sorted(self.weights)[:6]}...")
                d = d * self.weights[key].reshape(1, -1, 1, 1).to(d.dtype)
            total += d.sum(1).mean((1, 2)).float()
        return total
