"""Every training mode on the tiny config, on clips of the synthetic world (exported by the world's own
exporter; its exact block codec and CLIP stand-in as VAE and CLIP): the loss on held-out clips of the
world's validation split (other characters and motions) goes down, and what is exported loads in the
project's loader (a Mamba export is recognised as Mamba) and samples; a LoRA applies."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from unianimate_core.checkpoint import load_unet, read_metadata
from unianimate_core.diffusion import Conditions, SamplerOptions, sample_video
from unianimate_core.mamba.convert import is_mamba_state_dict
from unianimate_core.train.config import parse_config
from unianimate_core.train.trainer import train
from tests.tiny_unet import tiny_checkpoint_path, tiny_zero_y
from tests.train.conftest import base_config

MODES = {
    "full": {"kind": "full"},
    "temporal": {"kind": "temporal"},
    "lora": {"kind": "lora", "lora": {"rank": 8, "alpha": 8, "targets": ["attention"]}},
    "mamba_scratch": {"kind": "mamba", "mamba": {"source": "scratch"}},
    "mamba_distill_layers": {"kind": "mamba", "mamba": {"source": "distill", "distill": "layers"}},
    "mamba_distill_output": {"kind": "mamba", "mamba": {"source": "distill", "distill": "output"}},
}
#: Learning rates of the short runs: the adapter-only modes start from an identity (LoRA B = 0, Mamba
#: out projections = 0) and need larger steps to move in 20 steps.
LR = {"lora": 5e-3, "mamba_scratch": 3e-3}
#: Minimum relative drop of the validation loss (8 fixed samples of the validation split) after 20 steps.
#: Measured: full 23 %, temporal 17 %, LoRA 16 %, Mamba from scratch 6.9 %, layer distillation 10.7 %, output
#: distillation 5.2 %; 3 % leaves room for platform differences in the float rounding of the trajectory while
#: still failing for a trainer that does not learn (a frozen model changes it by exactly 0).
MIN_DROP = 0.03


def _sample(model, f=4):
    g = torch.Generator().manual_seed(0)
    cond = Conditions.build("standard", image=torch.randn(1, 1, 1024, generator=g),
                            dwpose=torch.rand(1, 3, f + 1, 64, 64, generator=g),
                            ref_latent=torch.randn(1, 4, 8, 8, generator=g))
    return sample_video(model, torch.randn(1, 4, f, 8, 8, generator=g), cond, SamplerOptions(steps=2), generator=g)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODES))
def test_mode_learns_exports_and_the_export_loads(name, world_videos, shared_cache, tmp_path):
    out = tmp_path / name
    train_dir, val_dir = world_videos
    cfg = parse_config(base_config(train_dir, out, shared_cache, mode=MODES[name], encoders={"kind": "toyworld"},
                                   data={"videos": str(train_dir), "validation_dir": str(val_dir), "width": 64,
                                         "height": 64, "frames": 4, "frame_stride": 1},
                                   optim={"lr": LR.get(name, 1e-3)},
                                   train={"steps": 20, "threads": 1}, checkpoint={"every": 20},
                                   validation={"at_start": True, "at_end": True, "samples": 8, "render": False}))
    result = train(cfg, log=lambda m: None)
    start, end = result.val_losses[0], result.val_losses[-1]
    print(f"{name}: validation loss {start:.4f} -> {end:.4f}, {result.steps_per_second:.2f} steps/s")
    assert end < (1 - MIN_DROP) * start, (name, start, end)
    assert (out / "loss.png").is_file() and (out / "data_report.json").is_file()

    if name == "lora":
        _check_lora(out / "lora.safetensors")
        return
    path = out / "model.safetensors"
    model = load_unet(path)
    model.set_zero_y(tiny_zero_y())
    sd = load_file(str(path))
    base = load_file(str(tiny_checkpoint_path()))
    if name.startswith("mamba"):
        assert model.config.temporal == "mamba" and is_mamba_state_dict(sd)
        assert '"temporal": "mamba"' in read_metadata(path)["config"]
    else:
        changed = {k for k in sd if not torch.equal(sd[k], base[k])}
        if name == "temporal":  # frozen weights come back bit for bit (fp16 fixture -> fp32 -> fp16)
            assert changed and all(("temopral_conv" in k) or _is_temporal_key(model, k) for k in changed)
        else:
            assert len(changed) > 0.9 * len(sd)
    out_latent = _sample(model)
    assert out_latent.shape == (1, 4, 4, 8, 8) and torch.isfinite(out_latent).all()


def _is_temporal_key(model, key):
    from unianimate_core.unet.transformer import TemporalTransformer

    module = model
    for part in key.split(".")[:-1]:
        module = getattr(module, part)
        if isinstance(module, TemporalTransformer):
            return True
    return False


def _check_lora(path):
    """Merged by our loader == the same adapters run by peft on the base model (independent implementation)."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

    from unianimate_core.lora import PREFIX, apply_lora, parse_lora

    sd = load_file(str(path))
    assert read_metadata(path)["format"] == "unianimate-lora"
    assert all(k.startswith(PREFIX) for k in sd) and any(k.endswith(".lora_A.weight") for k in sd)
    layers = parse_lora(sd)
    merged = load_unet(tiny_checkpoint_path(), dtype="fp32")
    merged.set_zero_y(tiny_zero_y())
    patched = apply_lora(merged, path)
    assert sorted(patched) == sorted(layers)
    reference = load_unet(tiny_checkpoint_path(), dtype="fp32").requires_grad_(False)
    reference.set_zero_y(tiny_zero_y())
    reference = inject_adapter_in_model(LoraConfig(r=8, lora_alpha=8, target_modules=sorted(layers)), reference)
    peft_sd = {k[len(PREFIX):]: v for k, v in sd.items() if not k.endswith(".alpha")}
    set_peft_model_state_dict(reference, peft_sd)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 4, 8, 8, generator=g)
    kw = dict(image=torch.randn(1, 1024, generator=g), dwpose=torch.rand(1, 3, 5, 64, 64, generator=g),
              randomref=torch.randn(1, 4, 1, 8, 8, generator=g))
    with torch.no_grad():
        a = merged(x, torch.tensor([400]), **kw)
        b = reference.eval()(x, torch.tensor([400]), **kw)
        base = load_unet(tiny_checkpoint_path(), dtype="fp32")
        base.set_zero_y(tiny_zero_y())
        c = base(x, torch.tensor([400]), **kw)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert (a - c).abs().max() > 1e-3  # the LoRA does change the model
    assert torch.isfinite(_sample(merged)).all()
