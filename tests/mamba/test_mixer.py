"""MambaMixer: mamba-ssm parameter layout/initialisation, parity with references, backends."""
from __future__ import annotations

import math

import pytest
import torch

from unianimate_core.mamba import MambaBackendError, MambaConfig, MambaInputError, MambaMixer
from unianimate_core.mamba.fused import FusedKernels

from .reference import naive_mixer, reference_causal_conv1d_fn, reference_selective_scan_fn

D_MODEL = 48


def _mixer(seed: int = 0, **cfg) -> MambaMixer:
    torch.manual_seed(seed)
    return MambaMixer(D_MODEL, MambaConfig(**cfg))


def _input(b: int = 3, L: int = 19, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, L, D_MODEL, generator=torch.Generator().manual_seed(seed))


def test_parameter_names_shapes_and_dtypes_are_mamba_ssm_s() -> None:
    m = MambaMixer(D_MODEL, MambaConfig(), dtype=torch.float16)
    E, N, R, k = 2 * D_MODEL, 16, math.ceil(D_MODEL / 16), 4
    shapes = {k_: tuple(v.shape) for k_, v in m.state_dict().items()}
    assert shapes == {
        "A_log": (E, N), "D": (E,), "in_proj.weight": (2 * E, D_MODEL),
        "conv1d.weight": (E, 1, k), "conv1d.bias": (E,), "x_proj.weight": (R + 2 * N, E),
        "dt_proj.weight": (E, R), "dt_proj.bias": (E,), "out_proj.weight": (D_MODEL, E)}
    assert m.A_log.dtype == torch.float32 and m.D.dtype == torch.float32
    assert m.in_proj.weight.dtype == torch.float16


def test_initialisation_follows_mamba_ssm() -> None:
    cfg = MambaConfig()
    m = MambaMixer(D_MODEL, cfg)
    A = -torch.exp(m.A_log)
    assert torch.allclose(A, -torch.arange(1, 17, dtype=torch.float32).expand_as(A))
    assert torch.equal(m.D, torch.ones_like(m.D))
    dt = torch.nn.functional.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= cfg.dt_min * 0.999 and dt.max() <= cfg.dt_max * 1.001
    bound = m.dt_rank ** -0.5
    assert m.dt_proj.weight.abs().max() <= bound


def test_pure_torch_mixer_matches_naive_float64_loop() -> None:
    m = _mixer()
    x = _input()
    with torch.no_grad():
        y = m(x)
    ref = naive_mixer(m.state_dict(), x, d_state=16, dt_rank=m.dt_rank, d_conv=4)
    assert (y.double() - ref).abs().max().item() <= 1e-5


def test_matches_mambapy_with_strict_state_dict_load() -> None:
    mambapy = pytest.importorskip("mambapy.mamba")
    m = _mixer(seed=4)
    ref = mambapy.MambaBlock(mambapy.MambaConfig(d_model=D_MODEL, n_layers=1))
    ref.load_state_dict(m.state_dict(), strict=True)
    x = _input(L=33)
    with torch.no_grad():
        err = (m(x) - ref(x)).abs().max().item()
    assert err <= 1e-5


def test_gradients_reach_every_parameter() -> None:
    m = _mixer()
    x = _input(b=2, L=9).requires_grad_()
    m(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_mixer_gradients_match_naive_autograd() -> None:
    m = _mixer(seed=5, scan_chunk=3)
    x = _input(b=2, L=10, seed=6)
    m(x).sum().backward()
    sd = {k: v.detach().double().requires_grad_() for k, v in m.state_dict().items()}
    naive_mixer(sd, x, d_state=16, dt_rank=m.dt_rank, d_conv=4).sum().backward()
    for name, p in m.named_parameters():
        ref = sd[name].grad
        err = (p.grad.double() - ref).abs().max().item()
        assert err <= 1e-4 * max(1.0, ref.abs().max().item()), name


@pytest.mark.parametrize("with_conv_kernel", [True, False])
def test_fused_path_wiring_against_documented_kernel_contract(with_conv_kernel: bool) -> None:
    """The mamba-ssm call is wired with the kernels' documented argument layout; CPU
    stand-ins implementing that contract must reproduce the pure-PyTorch path."""
    m = _mixer(seed=7)
    kernels = FusedKernels(reference_selective_scan_fn,
                           reference_causal_conv1d_fn if with_conv_kernel else None)
    x = _input(L=12)
    with torch.no_grad():
        fused = m.forward_fused(x, kernels)
        plain = m.forward_torch(x)
    assert (fused - plain).abs().max().item() <= 1e-5


def test_fused_path_keeps_the_kernels_dtype_contract_in_bfloat16() -> None:
    """Half-precision activations: the stand-ins assert the CUDA entry points' dtype checks
    (delta/B/C/z in u's dtype, A/D float32, conv bias in the weight's dtype)."""
    m = _mixer(seed=9).to(torch.bfloat16)
    x = _input(L=6).bfloat16()
    with torch.no_grad():
        fused = m.forward_fused(x, FusedKernels(reference_selective_scan_fn, reference_causal_conv1d_fn))
        plain = m.forward_torch(x)
    assert fused.dtype == torch.bfloat16
    assert (fused.float() - plain.float()).abs().max().item() <= 5e-2 * plain.float().abs().max().item()


def test_causal_conv1d_kernel_is_not_used_for_widths_it_does_not_support() -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("causal_conv1d_fn only supports widths 2..4")

    m = _mixer(seed=10, d_conv=5)
    x = _input(L=9)
    with torch.no_grad():
        fused = m.forward_fused(x, FusedKernels(reference_selective_scan_fn, refuse))
        plain = m.forward_torch(x)
    assert (fused - plain).abs().max().item() <= 1e-5


def _failing_kernels(calls: list) -> FusedKernels:
    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("selective_scan_cuda: no kernel image is available for execution on the device")

    return FusedKernels(broken, None)


def test_kernel_failure_falls_back_to_the_torch_path_with_a_logged_reason(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import unianimate_core.mamba.fused as fused_mod
    import unianimate_core.mamba.mixer as mixer_mod

    fused_mod.report_fused_failure.cache_clear()
    calls: list = []
    monkeypatch.setattr(mixer_mod, "kernel_device", lambda x: True)  # pretend the input is on a GPU
    monkeypatch.setattr(mixer_mod, "load_fused_kernels", lambda: _failing_kernels(calls))
    m = _mixer(seed=11)
    x = _input(L=7)
    with caplog.at_level("WARNING", logger="unianimate.mamba"), torch.no_grad():
        first = m(x)
        second = m(x)
        expected = m.forward_torch(x)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert calls == [1]  # the broken kernel is not retried on every call
    assert "no kernel image" in caplog.text and "pure-PyTorch" in caplog.text


def test_kernel_failure_with_backend_mamba_ssm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import unianimate_core.mamba.mixer as mixer_mod

    monkeypatch.setattr(mixer_mod, "kernel_device", lambda x: True)
    monkeypatch.setattr(mixer_mod, "load_fused_kernels", lambda: _failing_kernels([]))
    m = _mixer(backend="mamba_ssm")
    with pytest.raises(MambaBackendError, match="no kernel image.*backend='auto'"):
        m(_input())


def test_out_of_memory_in_the_kernel_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    import unianimate_core.mamba.mixer as mixer_mod

    monkeypatch.setattr(mixer_mod, "kernel_device", lambda x: True)
    monkeypatch.setattr(mixer_mod, "load_fused_kernels", lambda: FusedKernels(oom, None))
    m = _mixer()
    with pytest.raises(torch.cuda.OutOfMemoryError):
        m(_input())


def test_state_space_parameters_follow_the_input_device() -> None:
    """A_log and D live on the mixer itself, which ComfyUI's partial loading leaves on the offload
    device; they are read on the input's device (the meta device stands in for a GPU here)."""
    m = _mixer()
    like = torch.empty(1, device="meta")
    A, D = m._A(like), m._D(like)
    assert A.device.type == "meta" and D.device.type == "meta"
    assert A.dtype == D.dtype == torch.float32 and A.shape == (2 * D_MODEL, 16)


def test_backend_mamba_ssm_without_cuda_is_a_clear_error() -> None:
    m = _mixer(backend="mamba_ssm")
    with pytest.raises(MambaBackendError, match="backend='auto'"):
        m(_input())


def test_auto_backend_on_cpu_never_loads_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    import unianimate_core.mamba.mixer as mixer_mod

    def fail():
        raise AssertionError("kernels must not be loaded for CPU input")

    monkeypatch.setattr(mixer_mod, "load_fused_kernels", fail)
    m = _mixer()
    with torch.no_grad():
        assert torch.isfinite(m(_input())).all()


def test_wrong_input_shape_is_a_clear_error() -> None:
    with pytest.raises(MambaInputError, match=r"\(batch, length, 48\)"):
        _mixer()(torch.randn(2, 5, 32))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fused_kernels_match_pure_torch_path() -> None:
    from unianimate_core.mamba import load_fused_kernels
    kernels = load_fused_kernels()
    if kernels is None:
        pytest.skip("mamba-ssm is not installed")
    m = _mixer(seed=8).cuda()
    x = _input(b=4, L=33).cuda()
    with torch.no_grad():
        fused = m.forward_fused(x, kernels)
        plain = m.forward_torch(x)
    assert (fused - plain).abs().max().item() <= 1e-5
    xg = x.clone().requires_grad_()
    m.forward_fused(xg, kernels).square().sum().backward()
    g_fused = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    m.forward_torch(x).square().sum().backward()
    for n, p in m.named_parameters():
        assert torch.allclose(p.grad, g_fused[n], rtol=1e-3, atol=1e-4), n
