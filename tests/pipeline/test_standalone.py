"""The optional standalone encoders (OpenCLIP, diffusers); skipped where the extra is not installed.

The heavy equivalence with ComfyUI's loaders on full-size files is in test_comfy_equivalence.py;
this file checks what can be checked on small models: the empty-prompt context recipe against
OpenCLIP's own transformer, and the file-layout handling.
"""
from __future__ import annotations

import copy

import pytest
import torch

try:
    import open_clip
except Exception as exc:  # noqa: BLE001 - a torchvision/torch mismatch raises RuntimeError
    pytest.skip(f"OpenCLIP not usable here ({type(exc).__name__}: {exc})", allow_module_level=True)

from unianimate_core.pipeline.errors import PipelineError  # noqa: E402
from unianimate_core.pipeline.standalone import OpenClipEncoder, split_openclip_state_dict  # noqa: E402


@pytest.fixture(scope="module")
def small_clip():
    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-32", pretrained=None).eval()


@torch.no_grad()
def test_empty_context_is_penultimate_block_then_ln_final(small_clip):
    enc = OpenClipEncoder(small_clip, True, True, torch.device("cpu"), torch.float32)
    ours = enc.empty_context()
    # reference: OpenCLIP's own transformer forward (its own layout handling) without the last block
    ref_model = copy.deepcopy(small_clip)
    ref_model.transformer.resblocks = ref_model.transformer.resblocks[:-1]
    tokens = open_clip.tokenize([""])
    x = ref_model.token_embedding(tokens) + ref_model.positional_embedding
    expected = ref_model.ln_final(ref_model.transformer(x, attn_mask=ref_model.attn_mask))
    assert ours.shape == (1, 77, small_clip.transformer.width)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    # and it is not simply the full text tower output
    full = small_clip.ln_final(small_clip.transformer(x, attn_mask=small_clip.attn_mask))
    assert (full - ours).abs().max() > 1e-3


def test_state_dict_layouts(small_clip):
    sd = small_clip.state_dict()
    vision, text = split_openclip_state_dict(sd, "full.bin")
    assert vision and text and "token_embedding.weight" in text and all(k.startswith("visual.") for k in vision)
    sd21 = {"cond_stage_model.model." + k: v for k, v in sd.items() if not k.startswith("visual.")}
    sd21["first_stage_model.decoder.conv_in.weight"] = torch.zeros(1)
    vision, text = split_openclip_state_dict(sd21, "v2-1.ckpt")
    assert not vision and "ln_final.weight" in text
    with pytest.raises(PipelineError, match="not an OpenCLIP"):
        split_openclip_state_dict({"foo.weight": torch.zeros(1)}, "x.safetensors")


def test_text_tower_missing_is_explained(small_clip):
    enc = OpenClipEncoder(small_clip, True, False, torch.device("cpu"), torch.float32)
    with pytest.raises(PipelineError, match="text tower"):
        enc.empty_context()
