"""FID / FVD / LPIPS with user-supplied networks (tiny ones built here; nothing is downloaded)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from unianimate_core.evaluation import LPIPS, EvaluationError, fid, frechet_distance, fvd, gaussian_stats


def test_frechet_distance_matches_scipy_sqrtm():
    """Library value: the textbook formula with scipy.linalg.sqrtm (float64; agreement to 1e-8 relative)."""
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 6)), rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 0.3
    mu1, s1 = a.mean(0), np.cov(a.T)
    mu2, s2 = b.mean(0), np.cov(b.T)
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2))))
    ours = frechet_distance(*(torch.from_numpy(x) for x in (mu1, s1, mu2, s2)))
    assert ours == pytest.approx(ref, rel=1e-8)


def test_frechet_distance_of_diagonal_gaussians_is_analytic():
    """N(m1, diag v1) vs N(m2, diag v2): |m1 - m2|^2 + sum (sqrt v1 - sqrt v2)^2."""
    m1, m2 = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])
    v1, v2 = torch.tensor([1.0, 4.0]), torch.tensor([4.0, 9.0])
    assert frechet_distance(m1, torch.diag(v1), m2, torch.diag(v2)) == pytest.approx(1.0 + 1.0 + 1.0)


class _TinyFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean((2, 3))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fid_with_a_user_network_file(tmp_path):
    net = torch.jit.script(_TinyFeatures().eval())
    path = tmp_path / "features.pt"
    net.save(str(path))
    g = torch.Generator().manual_seed(1)
    real = torch.rand(40, 3, 16, 16, generator=g)
    assert fid(real, real, path) == pytest.approx(0.0, abs=1e-6)
    shifted = (real * 0.5).clamp(0, 1)
    far = fid(real, shifted, path)
    # independent: the same statistics computed here
    with torch.no_grad():
        f1, f2 = net(real), net(shifted)
    assert far == pytest.approx(frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2)), rel=1e-9) and far > 0
    with pytest.raises(EvaluationError, match="not found"):
        fid(real, real, tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(EvaluationError, match="TorchScript"):
        fid(real, real, bad)


def test_fid_with_a_torch_export_archive(tmp_path):
    model = _TinyFeatures().eval()
    x = torch.rand(4, 3, 16, 16)
    path = tmp_path / "features.pt2"
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("n", min=2)},)), str(path))
    g = torch.Generator().manual_seed(4)
    real, fake = torch.rand(20, 3, 16, 16, generator=g), torch.rand(20, 3, 16, 16, generator=g) * 0.5
    with torch.no_grad():
        expected = frechet_distance(*gaussian_stats(model(real)), *gaussian_stats(model(fake)))
    assert fid(real, fake, path, batch=10) == pytest.approx(expected, rel=1e-6)


def test_fvd_calls_the_video_network_in_its_layout():
    seen = []

    def net(x):  # (1, 3, T, H, W) in [-1, 1]
        seen.append((tuple(x.shape), float(x.min()), float(x.max())))
        return torch.stack([x.mean(), x.std(), x[:, :, 0].mean()]).view(1, 3)

    g = torch.Generator().manual_seed(2)
    vids = [torch.rand(5, 3, 8, 8, generator=g) for _ in range(6)]
    assert fvd(vids, vids, net) == pytest.approx(0.0, abs=1e-9)
    assert seen[0][0] == (1, 3, 5, 8, 8) and seen[0][1] >= -1 and seen[0][2] <= 1


def test_lpips_formula_with_an_identity_network():
    """Analytic: with features = the (scaled) input itself and no channel weights, LPIPS is the mean over
    pixels of the squared difference of the channel-normalised input vectors (computed here in numpy)."""
    lp = LPIPS(lambda x: [x], weights=None, scaling=True)
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 6, 6, generator=g), torch.rand(2, 3, 6, 6, generator=g)
    shift = np.array([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
    scale = np.array([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)

    def norm(x):
        y = ((x.numpy() * 2 - 1) - shift) / scale
        return y / (np.sqrt((y ** 2).sum(1, keepdims=True)) + 1e-10)

    expected = ((norm(a) - norm(b)) ** 2).sum(1).mean((1, 2))
    np.testing.assert_allclose(lp(a, b).numpy(), expected, rtol=1e-5)
    assert torch.allclose(lp(a, a), torch.zeros(2))
    weighted = LPIPS(lambda x: [x], weights={"lin0": torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)})
    exp_w = ((norm(a) - norm(b)) ** 2)[:, 0].mean((1, 2))
    np.testing.assert_allclose(weighted(a, b).numpy(), exp_w, rtol=1e-5)
