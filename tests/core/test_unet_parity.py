"""Parity with the official UniAnimate UNet on the golden forward cases (tiny config, fp32)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import tiny_unet
from tiny_unet import fingerprint_mismatches, load_tiny_unet, regenerate_tiny_state_dict

CASES = [
    "a_t991", "a_t500", "a_t1", "b_local_t500", "c_uncond_t991", "d_b2f3", "e_h128w64_t500", "f_all4_t500",
    "ra_128_t500", "ra_128_t991", "rb_128_local_t1", "rc_128_uncond_t500", "rd_128_b2f3", "re_h256w128_t500",
]


@pytest.fixture(scope="module")
def cases(fixtures_dir):
    return load_file(str(fixtures_dir / "unet_tiny_cases.safetensors"))


@pytest.fixture(scope="module")
def model():
    return load_tiny_unet()


def inputs(cases, name):
    kw = {k: cases[f"{name}.{k}"] for k in ("image", "randomref") if f"{name}.{k}" in cases}
    for k in ("dwpose", "local_image"):
        if f"{name}.{k}_u8" in cases:
            kw[k] = cases[f"{name}.{k}_u8"].to(torch.float32) / 255.0  # exactly what ToTensor does
    return kw


@pytest.fixture(scope="module")
def regenerated():
    return regenerate_tiny_state_dict()


def test_regenerated_tiny_weights_match_the_fingerprint(regenerated):
    """The fingerprint was written from weights whose bytes had the fixture generator's sha256."""
    assert fingerprint_mismatches(regenerated) == []


@pytest.mark.parametrize("shape", [[5], [16], [17], [40, 3], [32, 64, 3, 3]])
def test_fixture_randn_reproduces_torch_randn_within_the_kernel_bound(shape):
    """The independent source is this machine's torch.randn (AVX2, AVX-512 or generic kernel)."""
    draws = [fn(shape, torch.Generator().manual_seed(1234)) for fn in (tiny_unet.fixture_randn, tiny_unet.torch_randn)]
    assert draws[0].dtype == torch.float32 and draws[0].shape == torch.Size(shape)
    assert (draws[0] - draws[1]).abs().max().item() <= tiny_unet.RANDN_KERNEL_ABS


def test_fingerprint_rejects_a_wrong_seed_or_recipe(regenerated):
    other_seed = fingerprint_mismatches(regenerate_tiny_state_dict(seed=2))
    assert len({p.split(":")[0] for p in other_seed}) == len(regenerated)  # every tensor fails
    key = "input_blocks.1.0.in_layers.2.bias"  # recipe: 0.05 z; 0.1 z would be the 1-D-weight rule
    wrong_scale = dict(regenerated, **{key: (regenerated[key].float() * 2).half()})
    problems = fingerprint_mismatches(wrong_scale)
    assert {p.split(":")[0] for p in problems} == {key} and len(problems) == 7  # mean, rms, absmax, 4 values
    assert fingerprint_mismatches(dict(regenerated, **{key: regenerated[key].float()})) != []  # not fp16


def test_fingerprint_accepts_one_fp16_ulp_everywhere(regenerated):
    """What another CPU's randn kernel can do to the fp16 weights (it measured up to 2 ulp on small values)."""
    for step in (1, -1):
        moved = {k: torch.where(v == 0, v, (v.view(torch.int16) + step).view(torch.float16))
                 for k, v in regenerated.items()}
        assert fingerprint_mismatches(moved) == []


def test_a_cached_checkpoint_is_reverified(regenerated, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setattr(tiny_unet, "CACHE", tmp_path)
    path = tmp_path / f"unet_tiny-{tiny_unet.recipe_key()}.safetensors"
    key = next(iter(regenerated))
    save_file(dict(regenerated, **{key: -regenerated[key]}), str(path))
    assert tiny_unet.tiny_checkpoint_path() == path
    assert fingerprint_mismatches(load_file(str(path))) == []  # replaced by a regenerated, verified file
    path.write_bytes(b"not a safetensors file")
    assert tiny_unet.tiny_checkpoint_path() == path and fingerprint_mismatches(load_file(str(path))) == []


def test_case_list_is_complete(fixtures_dir):
    meta = json.loads((fixtures_dir / "unet_tiny_cases.json").read_text())
    assert sorted(meta["cases"]) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_forward_matches_official(model, cases, name):
    with torch.no_grad():
        out = model(cases[f"{name}.x"], cases[f"{name}.t"], **inputs(cases, name))
    ref = cases[f"{name}.out"]
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= 1e-4


def test_cond_mask_false_rows_equal_the_unconditional_call(model, cases):
    """Batched classifier-free guidance: a masked-off row is exactly the all-conditions-dropped call."""
    x, t = cases["ra_128_t500.x"], cases["ra_128_t500.t"]
    kw = inputs(cases, "ra_128_t500")
    both = {k: torch.cat([v, v]) for k, v in kw.items()}
    with torch.no_grad():
        out = model(torch.cat([x, x]), torch.cat([t, t]), cond_mask=torch.tensor([True, False]), **both)
    assert (out[1:] - cases["rc_128_uncond_t500.out"]).abs().max().item() <= 1e-4
    assert (out[:1] - cases["ra_128_t500.out"]).abs().max().item() <= 1e-4


def test_intermediate_trunk_input_matches(model, cases):
    """The 12-channel trunk input (reference slot + latent + pose embedding) of case a_t500."""
    captured = {}
    conv_in = model.input_blocks[0][0]

    def hook(module, args, output):
        captured["x"] = args[0]

    handle = conv_in.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(cases["a_t500.x"], cases["a_t500.t"], **inputs(cases, "a_t500"))
    finally:
        handle.remove()
    assert (captured["x"] - cases["a_t500.inter.trunk_input"]).abs().max().item() <= 1e-5


def test_half_precision_forward_is_close_and_finite(cases):
    m = load_tiny_unet(dtype=torch.bfloat16)
    with torch.no_grad():
        out = m(cases["ra_128_t500.x"], cases["ra_128_t500.t"], **inputs(cases, "ra_128_t500"))
    ref = cases["ra_128_t500.out"]
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05
