"""Checkpoint reading, recognition, dtype handling, the converter, and every bad-file message."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tiny_unet import regenerate_tiny_state_dict, tiny_zero_y
from unianimate_core.checkpoint import identify, infer_config, load_unet, read_state_dict
from unianimate_core.config import UNetConfig
from unianimate_core.convert import convert, main as convert_main
from unianimate_core.errors import CheckpointError, ModelFileNotFoundError
from unianimate_core.unet import UNetSD_UniAnimate

ROOT = Path(__file__).resolve().parents[2]


class NotATensor:  # a pickled object that needs code execution to load
    def __init__(self):
        self.payload = 1


@pytest.fixture(scope="module")
def tiny_sd():
    return regenerate_tiny_state_dict()


@pytest.fixture
def official_style_pth(tmp_path, tiny_sd):
    """Like the released file: a pickle with a ``state_dict`` wrapper and a ``step`` entry."""
    p = tmp_path / "unianimate_tiny.pth"
    torch.save({"state_dict": OrderedDict(tiny_sd), "step": 223000}, p)
    return p


def _forward(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 2, 8, 8, generator=g)
    kw = dict(image=torch.randn(1, 1024, generator=g), dwpose=torch.rand(1, 3, 3, 64, 64, generator=g),
              randomref=torch.randn(1, 4, 1, 8, 8, generator=g))
    with torch.no_grad():
        return model(x, torch.tensor([500]), **kw)


def test_pth_with_wrapper_and_step_loads_and_infers_the_tiny_config(official_style_pth, tiny_sd):
    model = load_unet(official_style_pth, zero_y=tiny_zero_y())
    assert model.config == UNetConfig.tiny()
    assert model.dtype == torch.float16  # auto keeps the file's dtype
    assert not model.training
    assert torch.equal(model.state_dict()["out.2.weight"], tiny_sd["out.2.weight"])


def test_full_config_is_inferred_from_the_full_manifest_shapes(fixtures_dir):
    keys = json.loads((fixtures_dir / "unet_full_manifest.json").read_text())["keys"]
    sd = {k: torch.empty(s, device="meta") for k, s in keys}
    assert infer_config(sd) == UNetConfig.full()


@pytest.fixture(scope="module")
def fp32_output(tiny_sd):
    return _forward(load_unet(tiny_sd, dtype="fp32", zero_y=tiny_zero_y()))


@pytest.mark.parametrize("dtype, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("auto", torch.float16),
                                             ("fp16", torch.float16)])
def test_weight_dtype_option(official_style_pth, fp32_output, dtype, expected):
    """Weights in the requested dtype, and the CPU forward (plain torch, float32 inputs) computes the fp32
    function to the precision of that dtype: within 32 unit roundoffs (2^-11 fp16, 2^-8 bf16) of the output
    scale; measured 7 (fp16) and 10 (bf16)."""
    model = load_unet(official_style_pth, dtype=dtype, zero_y=tiny_zero_y())
    assert all(p.dtype == expected for p in model.parameters())
    out = _forward(model)
    assert out.dtype == expected and bool(torch.isfinite(out).all())
    unit_roundoff = {torch.float32: 2.0 ** -24, torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}[expected]
    scale = float(fp32_output.abs().max())
    assert float((out.float() - fp32_output).abs().max()) <= 32 * unit_roundoff * scale


def test_converter_roundtrip_fp16_and_metadata(tmp_path, official_style_pth):
    out = tmp_path / "model.safetensors"
    info = convert(official_style_pth, out, dtype="fp16")
    assert info["keys"] == 1542
    converted = load_unet(out, dtype="fp32", zero_y=tiny_zero_y())
    original = load_unet(official_style_pth, dtype="fp32", zero_y=tiny_zero_y())
    assert torch.equal(_forward(converted), _forward(original))
    from unianimate_core.checkpoint import read_metadata

    meta = read_metadata(out)
    assert UNetConfig.from_dict(json.loads(meta["config"])) == UNetConfig.tiny()
    with pytest.raises(Exception, match="already exists"):
        convert(official_style_pth, out)


def test_converter_cli_module_entry_point(tmp_path, official_style_pth):
    out = tmp_path / "cli.safetensors"
    r = subprocess.run([sys.executable, "-m", "unianimate_core.convert", str(official_style_pth), str(out), "--dtype", "bf16"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "1542 tensors" in r.stdout
    assert all(v.dtype == torch.bfloat16 for v in load_file(str(out)).values())


def test_converter_reports_foreign_file_with_exit_code_2(tmp_path, capsys):
    sd_file = tmp_path / "v2-1_512-ema-pruned.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2),
               "first_stage_model.decoder.conv_in.weight": torch.zeros(2, 2)}, str(sd_file))
    assert convert_main([str(sd_file), str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "stable-diffusion checkpoint" in err and "Load Checkpoint" in err


# ------------------------------------------------------------------------------------ bad files
def test_missing_file(tmp_path):
    with pytest.raises(ModelFileNotFoundError, match="not found"):
        load_unet(tmp_path / "nope.pth")


@pytest.mark.parametrize("keys, kind", [
    ({"model.diffusion_model.x": 1, "cond_stage_model.y": 1}, "stable-diffusion checkpoint"),
    ({"encoder.down.0.block.0.conv1.weight": 1, "decoder.up.0.x": 1}, "VAE"),
    ({"visual.transformer.resblocks.0.attn.in_proj_weight": 1}, "CLIP"),
    ({"foo": 1}, "unknown"),
])
def test_foreign_models_are_named(tmp_path, keys, kind):
    sd = {k: torch.zeros(1) for k in keys}
    assert identify(sd) == kind
    p = tmp_path / "foreign.safetensors"
    save_file(sd, str(p))
    with pytest.raises(CheckpointError, match="not a UniAnimate UNet") as e:
        load_unet(p)
    assert "foreign.safetensors" in str(e.value)


def test_truncated_safetensors(tmp_path, tiny_sd):
    p = tmp_path / "cut.safetensors"
    save_file(tiny_sd, str(p))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_unet(p)


def test_truncated_pth(tmp_path, official_style_pth):
    data = official_style_pth.read_bytes()
    p = tmp_path / "cut.pth"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_unet(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.ckpt"
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_unet(p)


def test_pickle_that_needs_code_execution_is_refused(tmp_path, tiny_sd):
    p = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny_sd, "extra": NotATensor()}, p)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_state_dict(p)
    # explicitly allowed for trusted files (converter flag)
    assert "out.2.weight" in read_state_dict(p, allow_pickle_code=True)


def test_missing_and_unexpected_keys_are_listed(tmp_path, tiny_sd):
    sd = dict(tiny_sd)
    del sd["output_blocks.11.2.proj_out.weight"]
    sd["output_blocks.11.9.weight"] = torch.zeros(1)
    p = tmp_path / "edited.safetensors"
    save_file(sd, str(p))
    with pytest.raises(CheckpointError) as e:
        load_unet(p)
    msg = str(e.value)
    assert "edited.safetensors" in msg and "1 missing keys" in msg and "1 unexpected keys" in msg
    assert "output_blocks.11.2.proj_out.weight" in msg


def test_class_default_attention_placement_is_explained(tmp_path):
    """A file built with the class-default attn_scales [1/2,1/4,1/8] cannot load into the real model."""
    wrong = UNetSD_UniAnimate(UNetConfig.tiny(attn_scales=(0.5, 0.25, 0.125))).state_dict()
    with pytest.raises(CheckpointError, match=r"class-default attn_scales"):
        load_unet(wrong, config=UNetConfig.tiny())


def test_unsupported_suffix(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported file type"):
        load_unet(p)


def test_forward_without_zero_y_explains_what_to_do(official_style_pth):
    model = load_unet(official_style_pth, dtype="fp32")
    with pytest.raises(Exception, match="zero_y"):
        _forward(model)


@pytest.mark.parametrize("bad, fragment", [
    (dict(x=torch.randn(1, 4, 2, 9, 8)), "multiple of 8"),
    (dict(x=torch.randn(4, 2, 8, 8)), "frames in the batch"),
    (dict(dwpose=torch.rand(1, 3, 2, 64, 64)), "F\\+1"),
    (dict(image=torch.randn(1, 768)), "CLIP image embedding"),
])
def test_bad_inputs_are_explained(official_style_pth, bad, fragment):
    model = load_unet(official_style_pth, dtype="fp32", zero_y=tiny_zero_y())
    kw = dict(x=torch.randn(1, 4, 2, 8, 8), image=torch.randn(1, 1024), dwpose=torch.rand(1, 3, 3, 64, 64))
    kw.update(bad)
    x = kw.pop("x")
    with pytest.raises(Exception, match=fragment):
        model(x, torch.tensor([1]), **kw)
