"""Device placement without a GPU: every path runs with its compute device pretending to be ``cuda:0``
(tests/precision/pretend_device.py) and must not use a tensor on the wrong device.

Covered: the short sampler, conditions (uint8 poses on the CPU), sliding windows, the continuation (a
CPU-side decoder), the Mamba UNet (fully moved, and loaded like ComfyUI does: leaf modules on the GPU,
the mixer's own A_log/D left on the CPU) and the nodes on a fake ComfyUI whose device is "cuda" (fp16
weights without manual cast, regular and low-VRAM loading). The result must also equal the plain CPU
run: the pretend device computes on the CPU, so only a device mix-up can change it.
"""
from __future__ import annotations

import pytest
import torch

import matrix_helpers as mh
from pretend_device import PretendDevice, WrongDeviceError
from unianimate_core.config import UNetConfig
from unianimate_core.diffusion import (
    Conditions, ContinuationOptions, NoiseOptions, SamplerOptions, SlidingWindowOptions, prepare_noise,
    sample_long_continuation, sample_long_sliding, sample_video,
)
from unianimate_core.mamba import MambaConfig

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")
H = W = 64


# --------------------------------------------------------------------------------- the checker itself
def test_the_checker_catches_wrong_devices():
    lin = torch.nn.Linear(4, 3)
    with PretendDevice("cuda") as mode:
        x = torch.randn(2, 4).to("cuda")
        assert x.device == CUDA and x.is_cuda and mode.device_of(x) == CUDA
        with pytest.raises(WrongDeviceError, match="cuda:0 and cpu"):
            lin(x)                                          # weights left on the CPU
        lin.to("cuda")
        assert lin.weight.device == CUDA and lin(x).device == CUDA
        with pytest.raises(WrongDeviceError):
            torch.cat([x, torch.zeros(1, 4)])               # a CPU tensor joining a CUDA one
        with pytest.raises(WrongDeviceError, match="numpy"):
            x.numpy()
        with pytest.raises(WrongDeviceError, match="generator"):
            torch.randn(3, generator=torch.Generator(), device="cuda")
        assert (x * torch.tensor(2.0)).device == CUDA        # 0-dim CPU scalars are fine, as in torch
        assert x[torch.tensor([1, 0])].device == CUDA        # so are CPU indices
        back = x.cpu()
        assert back.device == CPU and x.device == CUDA and back.numpy().shape == (2, 4)
        assert torch.nn.Parameter(x).device == CUDA
        assert torch.zeros(2, device=x.device).device == CUDA


# --------------------------------------------------------------------------------------- core paths
def half_unet(weights: dict, device=None):
    model = mh.build(weights, torch.float16, torch.float16)
    return model.to(device) if device is not None else model


def conditions(frames: int, uint8_poses: bool = True) -> Conditions:
    g = torch.Generator().manual_seed(0)
    dwpose = torch.randint(0, 256, (1, 3, frames + 1, H, W), generator=g, dtype=torch.uint8)
    return Conditions(image=torch.randn(1, 1, 1024, generator=g),
                      dwpose=dwpose if uint8_poses else dwpose.float() / 255,
                      randomref=torch.randn(1, 4, 1, H // 8, W // 8, generator=g),
                      local_image=torch.rand(1, 3, 1, H, W, generator=g))


def start(frames: int, cond: Conditions) -> torch.Tensor:
    return prepare_noise((1, 4, frames, H // 8, W // 8), torch.Generator().manual_seed(1), NoiseOptions.short(),
                         prior_latent=cond.randomref)


@pytest.fixture(scope="module")
def weights():
    return mh.attention_weights()


def run_pretend(fn, *args):
    with PretendDevice("cuda") as mode:
        out = fn(*args)
    assert mode.calls > 1000  # the model really ran under the checker
    return out


def options(**kw):
    return SamplerOptions(steps=2, model_dtype=torch.float16, **kw)


@pytest.mark.parametrize("cfg_mode", ["batched", "sequential"])
def test_short_sampler(weights, cfg_mode):
    cond = conditions(3)
    expected = sample_video(half_unet(weights), start(3, cond), cond, options(cfg_mode=cfg_mode))

    def run():
        return sample_video(half_unet(weights, "cuda"), start(3, cond), cond, options(device="cuda", cfg_mode=cfg_mode))

    out = run_pretend(run)
    assert out.device == CPU
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_sliding_windows(weights):
    cond = conditions(5)
    windows = SlidingWindowOptions(context_size=3, context_overlap=1, context_batch_size=2)
    expected = sample_long_sliding(half_unet(weights), start(5, cond), cond, options(), windows)

    def run():
        return sample_long_sliding(half_unet(weights, "cuda"), start(5, cond), cond, options(device="cuda"), windows)

    out = run_pretend(run)
    assert out.device == CPU
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_continuation_with_a_cpu_decoder(weights):
    cond = conditions(5)
    cont = ContinuationOptions(segment_length=3, colour_anchor=0.5)
    decoded_on = []

    def decode(latent):
        decoded_on.append(latent.device)
        return mh.fixed_decoder(latent.cpu())  # like ComfyUI's VAE: results come back on the CPU

    expected = sample_long_continuation(half_unet(weights), cond, options(), cont, decode_last_frame=decode,
                                        generator=torch.Generator().manual_seed(3))

    def run():
        return sample_long_continuation(half_unet(weights, "cuda"), cond, options(device="cuda"), cont,
                                        decode_last_frame=decode, generator=torch.Generator().manual_seed(3))

    out = run_pretend(run)
    assert out.device == CPU and decoded_on[-1] == CUDA
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def comfy_like_load(model: torch.nn.Module, device) -> None:
    """ComfyUI's regular (not full) load: only modules whose parameters are all their own move."""
    for m in model.modules():
        own = list(m.parameters(recurse=False))
        if own and len(own) == len(list(m.parameters())):
            m.to(device)


@pytest.mark.parametrize("placement", ["model.to", "comfy_regular_load"])
def test_mamba_unet(placement):
    sd = mh.mamba_weights()
    inputs = {k: v.half() for k, v in conditions(2, uint8_poses=False).model_kwargs(2).items()}
    x = torch.randn(1, 4, 2, H // 8, W // 8).half()
    with torch.inference_mode():
        expected = half_unet(sd)(x, torch.tensor([500]), **inputs)

    def run():
        model = half_unet(sd)
        if placement == "model.to":
            model.to("cuda")
        else:
            comfy_like_load(model, "cuda")
            mixers = [m for n, m in model.named_modules() if n.endswith("mamba.mixer")]
            assert mixers and all(m.A_log.device == CPU and m.D.device == CPU for m in mixers)
            assert all(m.in_proj.weight.device == CUDA for m in mixers)
        with torch.inference_mode():
            out = model(x.to("cuda"), torch.tensor([500], device="cuda"), **{k: v.to("cuda") for k, v in inputs.items()})
        assert out.device == CUDA
        return out.cpu()

    torch.testing.assert_close(run_pretend(run), expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------- node paths
NODE_CASES = [("sampler", "attention", False), ("sampler", "attention", True), ("sampler", "mamba", True),
              ("sliding_windows", "attention", False), ("first_frame_continuation", "attention", True)]


@pytest.mark.parametrize("node, temporal, lowvram", NODE_CASES)
def test_nodes_on_a_gpu_like_comfyui(node_host, comfy_pack, weights, node, temporal, lowvram):
    """Load UniAnimate Model -> sampler / long-video loop with ComfyUI's device = "cuda": fp16 weights computed
    natively (disable_weight_init, no manual cast), the model placed by the fake load_models_gpu."""
    mm = node_host.model_management
    if temporal == "attention":
        name = mh.put_model(node_host, weights, UNetConfig.tiny(), "tiny_attention.safetensors")
    else:
        name = mh.put_model(node_host, mh.mamba_weights(), UNetConfig.tiny(temporal="mamba", mamba=MambaConfig()),
                         "tiny_mamba.safetensors")
    classes = mh.node_classes(comfy_pack)

    def run(profile_device: str):
        mm.set_fake_device("nvidia", torch_device=profile_device, lowvram=lowvram)
        model = classes["LoadUniAnimateModel"].execute(model_name=name, weight_dtype="auto")[0]
        assert model.compute_dtype == torch.float16 and model.unet.manual_cast_dtype is None
        inputs = mh.sampler_inputs(model)
        if node == "sampler":
            return classes["UniAnimateSampler"].execute(**inputs)[0]["samples"]
        inputs["poses"] = mh.images(5, 70, 50, seed=2)
        return classes["UniAnimateLongVideoLoop"].execute(**inputs, strategy=node, context_size=3,
                                                          context_overlap=1)[0]["samples"]

    expected = run("cpu")
    comfy_pack.nodes.loader._loaded.clear()
    out = run_pretend(lambda: run("cuda"))
    assert out.device == CPU and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
