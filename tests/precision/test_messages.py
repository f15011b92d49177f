"""What a user sees when the device or an installed kernel cannot run what was asked for."""
from __future__ import annotations

import logging

import pytest
import torch

from unianimate_core.errors import PrecisionError


def test_mamba_ssm_built_for_another_torch_falls_back_and_says_so_once(tmp_path, monkeypatch, caplog):
    """An installed mamba-ssm whose compiled extension does not match this torch: one warning naming the
    cause and the reinstall command, then the pure-PyTorch scan (same numbers) for every layer and call."""
    pkg = tmp_path / "mamba_ssm"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ops" / "__init__.py").write_text("")
    (pkg / "ops" / "selective_scan_interface.py").write_text(
        "raise ImportError('selective_scan_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: "
        "_ZN3c104cuda9SetDeviceEi')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in list(__import__("sys").modules) if m.startswith("mamba_ssm")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    import unianimate_core.mamba.fused as fused
    import unianimate_core.mamba.mixer as mixer_mod
    from unianimate_core.mamba import MambaConfig, MambaMixer

    fused.load_fused_kernels.cache_clear()
    monkeypatch.setattr(mixer_mod, "kernel_device", lambda x: True)  # as if the input were on a GPU
    try:
        mixers = [MambaMixer(32, MambaConfig()) for _ in range(3)]
        x = torch.randn(2, 5, 32)
        with caplog.at_level(logging.DEBUG, logger="unianimate.mamba"), torch.no_grad():
            outs = [m(x) for m in mixers for _ in range(2)]
            expected = [m.forward_torch(x) for m in mixers for _ in range(2)]
    finally:
        fused.load_fused_kernels.cache_clear()
    assert all(torch.equal(a, b) for a, b in zip(outs, expected))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert "undefined symbol" in text and torch.__version__ in text and "--no-build-isolation" in text


def test_headless_bf16_on_a_gpu_without_bf16_is_refused(monkeypatch):
    from unianimate_core.pipeline.providers import resolve_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: (6, 1))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "NVIDIA GeForce GTX 1080")
    with pytest.raises(PrecisionError, match=r"GTX 1080 \(compute capability 6.1\).*fp16"):
        resolve_dtype("bf16", torch.device("cuda"))
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_fp8_weights_need_a_casting_layer_factory(tmp_path):
    from tiny_unet import tiny_checkpoint_path

    from unianimate_core.checkpoint import load_unet

    with pytest.raises(PrecisionError, match="fp8_e4m3fn weights cannot be computed with plain torch.nn"):
        load_unet(tiny_checkpoint_path(), dtype="fp8_e4m3fn")
