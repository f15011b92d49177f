"""Conversion attention -> Mamba and checkpoint recognition (no UNet needed)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from unianimate_core.mamba import (MambaConfig, MambaConfigError, TemporalMamba,
                                   convert_temporal_to_mamba, is_mamba_state_dict,
                                   mamba_config_from_state_dict)


class FakeTemporal(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(32, channels)
        self.proj = nn.Linear(channels, channels)


@dataclasses.dataclass(frozen=True)
class FakeConfig:
    temporal: str = "attention"
    mamba: object = None


class FakeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = FakeConfig()
        self.stem = nn.Conv2d(4, 32, 3)
        self.blocks = nn.ModuleList([
            nn.ModuleList([nn.Conv2d(32, 32, 1), FakeTemporal(32)]),
            nn.ModuleList([nn.Conv2d(32, 64, 1), nn.Identity(), FakeTemporal(64)]),
        ])
        self.middle = FakeTemporal(64)


def test_convert_replaces_every_temporal_module_in_place() -> None:
    net = FakeNet().double()
    stem = net.stem
    cfg = MambaConfig(d_state=8)
    out = convert_temporal_to_mamba(net, cfg, temporal_cls=FakeTemporal)
    assert out is net and net.stem is stem
    assert not any(isinstance(m, FakeTemporal) for m in net.modules())
    swapped = {n: m for n, m in net.named_modules() if isinstance(m, TemporalMamba)}
    assert sorted(swapped) == ["blocks.0.1", "blocks.1.2", "middle"]
    assert [swapped[n].channels for n in sorted(swapped)] == [32, 64, 64]
    assert all(m.config == cfg and m.proj_in.weight.dtype == torch.float64
               for m in swapped.values())
    assert net.config == FakeConfig(temporal="mamba", mamba=cfg)


def test_converted_layers_start_as_identity() -> None:
    net = convert_temporal_to_mamba(FakeNet(), temporal_cls=FakeTemporal)
    x = torch.randn(1, 64, 4, 2, 2)
    with torch.no_grad():
        assert torch.equal(net.middle(x), x)


def test_state_dict_detection() -> None:
    net = FakeNet()
    assert not is_mamba_state_dict(net.state_dict())
    convert_temporal_to_mamba(net, temporal_cls=FakeTemporal)
    assert is_mamba_state_dict(net.state_dict())
    assert is_mamba_state_dict({"model.diffusion_model.x.mixer.A_log": torch.zeros(1)})
    assert not is_mamba_state_dict({"x.A_logits": torch.zeros(1)})


@pytest.mark.parametrize("cfg", [
    MambaConfig(),
    MambaConfig(d_state=8, d_conv=3, expand=1, dt_rank=5, bias=True, conv_bias=False),
])
def test_config_is_recovered_from_checkpoint_shapes(cfg: MambaConfig) -> None:
    layers = nn.ModuleDict({"a": TemporalMamba(32, cfg, device="meta"),
                            "b": TemporalMamba(64, cfg, device="meta")})
    got = mamba_config_from_state_dict(layers.state_dict(), base=MambaConfig(backend="torch"))
    assert got == dataclasses.replace(cfg, backend="torch")


def test_inconsistent_or_missing_mamba_checkpoints_are_clear_errors() -> None:
    layers = nn.ModuleDict({"a": TemporalMamba(32, MambaConfig(d_state=8), device="meta"),
                            "b": TemporalMamba(32, MambaConfig(d_state=16), device="meta")})
    with pytest.raises(MambaConfigError, match="disagree on d_state"):
        mamba_config_from_state_dict(layers.state_dict())
    with pytest.raises(MambaConfigError, match="no Mamba mixer"):
        mamba_config_from_state_dict({"proj_in.weight": torch.zeros(2, 2)})
    sd = {k: v for k, v in TemporalMamba(32, device="meta").state_dict().items()
          if not k.endswith("dt_proj.weight")}
    with pytest.raises(MambaConfigError, match="lacks"):
        mamba_config_from_state_dict(sd)


def test_single_module_cannot_be_converted() -> None:
    with pytest.raises(MambaConfigError, match="TemporalMamba"):
        convert_temporal_to_mamba(FakeTemporal(32), temporal_cls=FakeTemporal)
