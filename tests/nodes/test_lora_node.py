"""Load UniAnimate LoRA against the fake ComfyUI: the trainer's LoRA file becomes one weight patch per
adapted layer on a clone of the model (the real-host test applies the patches and compares outputs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

ZERO_Y_NAME = "zero_y_openclip_vit_h14.npy"


@pytest.fixture
def loaded(host, tiny_ckpt, tiny_zero_y):
    path = host.put_model(tiny_ckpt, name="unianimate_tiny.safetensors")
    np.save(path.parent / ZERO_Y_NAME, tiny_zero_y.numpy())
    return host.node_classes()["LoadUniAnimateModel"].execute(model_name=path.name, weight_dtype="fp32").result[0]


def _lora_file(host, modules, name="style.safetensors", rank=2):
    g = torch.Generator().manual_seed(0)
    sd = {}
    for m, (out_dim, in_dim) in modules.items():
        sd[f"diffusion_model.{m}.lora_A.weight"] = torch.randn(rank, in_dim, generator=g)
        sd[f"diffusion_model.{m}.lora_B.weight"] = torch.randn(out_dim, rank, generator=g)
        sd[f"diffusion_model.{m}.alpha"] = torch.tensor(float(rank))
    path = host.models / "loras" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return path


def _attention_modules(unet, n=3):
    names = [k[: -len(".weight")] for k in unet.state_dict() if ".attn1.to_q.weight" in k][:n]
    return {m: tuple(unet.get_parameter(m + ".weight").shape) for m in names}


def test_lora_becomes_patches_on_a_clone(host, loaded):
    node = host.node_classes()["UniAnimateLoraLoader"]
    modules = _attention_modules(loaded.unet)
    path = _lora_file(host, modules)
    assert path.name in node.GET_SCHEMA().inputs[1].options
    out = node.execute(model=loaded, lora_name=path.name, strength=0.7).result[0]
    assert out.patcher is not loaded.patcher and loaded.patcher.patches == {}
    # keyed like ComfyUI's patches: the BaseModel's parameter names (the UNet under "diffusion_model.")
    assert sorted(out.patcher.patches) == sorted(f"diffusion_model.{m}.weight" for m in modules)
    strength, patch = out.patcher.patches[f"diffusion_model.{next(iter(modules))}.weight"][0][:2]
    assert strength == 0.7 and patch[0] == "lora"
    assert out.source.endswith("+ style.safetensors") and out.zero_y is loaded.zero_y
    assert node.execute(model=loaded, lora_name=path.name, strength=0.0).result[0] is loaded


def test_a_lora_for_another_model_is_refused_by_name(host, loaded):
    node = host.node_classes()["UniAnimateLoraLoader"]
    path = _lora_file(host, {"input_blocks.1.1.transformer_blocks.0.attn9.to_q": (32, 32)}, name="other.safetensors")
    with pytest.raises(host.pack.unianimate_core.errors.CheckpointError, match="attn9.*another model"):
        node.execute(model=loaded, lora_name=path.name, strength=1.0)
    full = host.models / "loras" / "not_a_lora.safetensors"
    save_file({"out.2.weight": torch.zeros(4, 32, 3, 3)}, str(full))
    with pytest.raises(host.pack.unianimate_core.errors.CheckpointError, match="no LoRA weights"):
        node.execute(model=loaded, lora_name=full.name, strength=1.0)


def test_a_trained_mamba_export_loads_in_load_unianimate_model(host, tiny_ckpt, tiny_zero_y, tmp_path):
    """What the trainer writes for mode mamba (a whole UNet with Mamba temporal layers and its config in the
    metadata) is recognised by the loader node as a Mamba model."""
    from importlib import import_module

    config = import_module(f"{host.pack.__name__}.unianimate_core.train.config")
    modes = import_module(f"{host.pack.__name__}.unianimate_core.train.modes")
    checkpoints = import_module(f"{host.pack.__name__}.unianimate_core.train.checkpoints")
    cfg = config.parse_config({"output_dir": str(tmp_path / "o"), "data": {"videos": str(tmp_path)},
                               "model": {"init": str(tiny_ckpt)}, "mode": {"kind": "mamba", "mamba": {"source": "scratch"}}})
    built = modes.build_train_model(cfg, tiny_zero_y)
    tensors, meta = built.export()
    path = host.models / "unianimate" / "unianimate_tiny_mamba.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.save_export(path, tensors, meta, torch.float16)
    np.save(path.parent / ZERO_Y_NAME, tiny_zero_y.numpy())
    model = host.node_classes()["LoadUniAnimateModel"].execute(model_name=path.name, weight_dtype="auto").result[0]
    assert model.config.temporal == "mamba"
    assert any(k.endswith("A_log") for k in model.unet.state_dict())
