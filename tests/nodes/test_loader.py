"""LoadUniAnimateModel against the fake ComfyUI with the tiny fixture checkpoint."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from comfy_fake.models import FakeCLIP

ZERO_Y_NAME = "zero_y_openclip_vit_h14.npy"


@pytest.fixture
def loader(host):
    return host.node_classes()["LoadUniAnimateModel"]


@pytest.fixture
def tiny_in_models(host, tiny_ckpt, tiny_zero_y):
    path = host.put_model(tiny_ckpt, name="unianimate_tiny.safetensors")
    np.save(path.parent / ZERO_Y_NAME, tiny_zero_y.numpy())
    return path


def errors(host):
    return host.pack.unianimate_core.errors


def test_missing_file_is_reported_with_searched_folders(host, loader):
    msg = loader.validate_inputs(model_name="nope.pth")
    assert isinstance(msg, str)
    # only model_name is validated here: ComfyUI shows the message under every input validate_inputs takes
    # (weight_dtype's combo is checked by ComfyUI itself), so the missing file is reported once
    import inspect
    assert list(inspect.signature(loader.validate_inputs).parameters) == ["model_name"]
    assert "nope.pth" in msg and "unianimate_16f_32f_non_ema_223000.pth" in msg
    assert str(host.models / "unianimate") in msg
    assert "No UniAnimate model file found" in loader.validate_inputs(model_name=None)
    with pytest.raises(errors(host).ModelFileNotFoundError, match="Download"):
        loader.execute(model_name="nope.pth", weight_dtype="auto")


def test_file_list_is_offered_in_the_combo(host, loader, tiny_in_models):
    spec = loader.INPUT_TYPES()["required"]["model_name"]
    assert spec[0] == "COMBO" and spec[1]["options"] == ["unianimate_tiny.safetensors"]
    assert loader.validate_inputs(model_name="unianimate_tiny.safetensors") is True


def test_loads_into_a_model_patcher_with_comfy_ops_and_attention(host, loader, tiny_in_models, tiny_zero_y):
    out = loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto")
    model = out[0]
    patcher = model.patcher
    assert isinstance(patcher, host.fake["comfy.model_patcher"].ModelPatcher)
    assert patcher.load_device == torch.device("cpu") and patcher.offload_device == torch.device("cpu")
    assert out[1] is patcher  # the MODEL output: the same weights as a ComfyUI BaseModel
    assert isinstance(patcher.model, host.fake["comfy.model_base"].BaseModel)
    unet = patcher.model.diffusion_model
    assert model.unet is unet
    assert unet.dtype == torch.float32  # the fake unet_dtype() picks fp32 (CPU)
    ops = host.fake["comfy.ops"]
    assert isinstance(unet.out[2], ops.CastWeightBiasOp), "layers must come from comfy.ops"
    assert torch.equal(model.zero_y, tiny_zero_y.float())
    # one forward: ComfyUI's attention dispatcher must be the one used
    attn = host.fake["comfy.ldm.modules.attention"]
    before = attn.calls["optimized_attention"]
    x = torch.randn(1, 4, 2, 8, 8)
    with torch.no_grad():
        v = unet(x, torch.tensor([500]), image=torch.randn(1, 1, 1024), dwpose=torch.rand(1, 3, 3, 64, 64),
                 randomref=torch.randn(1, 4, 1, 8, 8))
    assert v.shape == x.shape and torch.isfinite(v).all()
    assert attn.calls["optimized_attention"] > before


@pytest.mark.parametrize("choice, dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_weight_dtype(host, loader, tiny_in_models, choice, dtype):
    model = loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype=choice)[0]
    assert model.weight_dtype == dtype
    assert model.unet.input_blocks[0][0].weight.dtype == dtype
    # the fake device (CPU) asks for manual casting of half weights: activations in fp32
    assert model.compute_dtype == torch.float32 and model.unet.dtype == torch.float32
    # what ComfyUI's partial loading reads to budget the cast copies (None: no casting needed)
    assert model.unet.manual_cast_dtype == (None if dtype == torch.float32 else torch.float32)
    x = torch.randn(1, 4, 2, 8, 8)
    with torch.no_grad():
        v = model.unet(x, torch.tensor([500]), image=torch.randn(1, 1, 1024), dwpose=torch.rand(1, 3, 3, 64, 64),
                       randomref=torch.randn(1, 4, 1, 8, 8))
    assert v.dtype == torch.float32 and torch.isfinite(v).all()


def test_model_is_cached_across_runs_and_reloaded_when_the_file_changes(host, loader, tiny_in_models):
    a = loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto")[0]
    b = loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto")[0]
    assert a.patcher is b.patcher
    fp1 = loader.fingerprint_inputs(model_name="unianimate_tiny.safetensors", weight_dtype="auto")
    st = os.stat(tiny_in_models)
    os.utime(tiny_in_models, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    fp2 = loader.fingerprint_inputs(model_name="unianimate_tiny.safetensors", weight_dtype="auto")
    assert fp1 != fp2
    c = loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto")[0]
    assert c.patcher is not a.patcher


def test_zero_y_from_clip_is_cached_next_to_the_model(host, loader, tiny_in_models):
    cache = tiny_in_models.parent / ZERO_Y_NAME
    cache.unlink()
    with pytest.raises(errors(host).ModelFileNotFoundError, match="Connect the CLIP"):
        loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto")
    clip = FakeCLIP()
    clip.clip_layer(-1)  # e.g. a "CLIP Set Last Layer" upstream: the loader must still use the penultimate layer
    model = loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto", clip=clip)[0]
    (tokens, layer), = clip.encoded
    assert layer == -2 and tokens["h"][0][:3] == [(49406, 1.0), (49407, 1.0), (0, 1.0)]
    assert cache.is_file()
    again = loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto")[0]
    assert torch.equal(again.zero_y, model.zero_y)
    assert torch.equal(torch.from_numpy(np.load(cache)), model.zero_y)


@pytest.mark.parametrize("width, hint", [(768, "SD1.x"), (2048, "SDXL")])
def test_wrong_clip_is_rejected(host, loader, tiny_in_models, width, hint):
    with pytest.raises(errors(host).InputError, match=hint):
        loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto", clip=FakeCLIP(width))


def test_wrong_object_in_clip_socket(host, loader, tiny_in_models):
    with pytest.raises(errors(host).InputError, match="must be a ComfyUI CLIP"):
        loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto", clip=object())


def test_foreign_checkpoint_is_named(host, loader):
    vae_like = {"encoder.down.0.block.0.conv1.weight": torch.zeros(2, 2, 3, 3),
                "decoder.up.0.block.0.conv1.weight": torch.zeros(2, 2, 3, 3)}
    path = host.models / "unianimate" / "vae-ft-mse.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(vae_like, str(path))
    with pytest.raises(errors(host).CheckpointError, match=r"vae-ft-mse.safetensors.*VAE.*Load VAE"):
        loader.execute(model_name="vae-ft-mse.safetensors", weight_dtype="auto")


def test_corrupt_zero_y_cache_is_ignored(host, loader, tiny_in_models):
    np.save(tiny_in_models.parent / ZERO_Y_NAME, np.zeros((1, 77, 768), np.float32))
    with pytest.raises(errors(host).ModelFileNotFoundError):
        loader.execute(model_name="unianimate_tiny.safetensors", weight_dtype="auto")
