"""The UNet's optional ``context`` and ``transformer_options`` (patch points for host applications).

Each patch is checked against an independent construction of what it should do (an equivalent
model edit, a hand-written attention), never against the patched code path itself.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tiny_unet import load_tiny_unet, tiny_zero_y
from unianimate_core.errors import InputError
from unianimate_core.unet.transformer import SpatialTransformer, TemporalTransformer

B, FR, H, W = 2, 3, 64, 64


@pytest.fixture(scope="module")
def unet():
    m = load_tiny_unet()
    m.set_zero_y(tiny_zero_y())
    return m


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return dict(x=torch.randn(B, 4, FR, H // 8, W // 8, generator=g), t=torch.tensor([900, 120]),
                image=torch.randn(B, 1, 1024, generator=g), dwpose=torch.rand(B, 3, FR + 1, H, W, generator=g),
                randomref=torch.randn(B, 4, 1, H // 8, W // 8, generator=g))


def run(model, inputs, **kw):
    with torch.no_grad():
        return model(inputs["x"], inputs["t"], image=inputs["image"], dwpose=inputs["dwpose"],
                     randomref=inputs["randomref"], **kw)


def spatial_blocks(model):
    names = []
    for name, blocks in (("input", model.input_blocks), ("middle", [model.middle_block]), ("output", model.output_blocks)):
        for i, blk in enumerate(blocks):
            layers = blk if isinstance(blk, torch.nn.ModuleList) else [blk]
            if any(isinstance(layer, SpatialTransformer) for layer in layers):
                names.append((name, i, 0))
    return names


def test_empty_options_and_explicit_zero_y_change_nothing(unet, inputs):
    ref = run(unet, inputs)
    assert torch.equal(run(unet, inputs, transformer_options={}), ref)
    assert torch.equal(run(unet, inputs, context=unet.zero_y), ref)


def test_context_replaces_the_empty_prompt(unet, inputs):
    """Another text context = a model whose zero_y is that context (the 4 image tokens still appended)."""
    ctx = torch.randn(1, 77, 1024, generator=torch.Generator().manual_seed(1))
    other = copy.deepcopy(unet)
    other.set_zero_y(ctx)
    torch.testing.assert_close(run(unet, inputs, context=ctx.expand(B, -1, -1)), run(other, inputs), rtol=0, atol=0)
    # a shorter context works too (cross-attention over 10 + 4 tokens) and differs
    short = run(unet, inputs, context=torch.randn(B, 10, 1024))
    assert short.shape == inputs["x"].shape and not torch.allclose(short, run(unet, inputs))
    with pytest.raises(InputError, match="context"):
        run(unet, inputs, context=torch.randn(B, 77, 768))


def test_attn1_replace_sees_every_spatial_block_and_plain_attention_is_identical(unet, inputs):
    seen = []

    def replace(q, k, v, extra):
        seen.append((*extra["block"], extra["block_index"]))
        heads = extra["n_heads"]
        b, n, inner = q.shape
        split = lambda t: t.view(b, -1, heads, inner // heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return out.transpose(1, 2).reshape(b, n, inner)

    blocks = spatial_blocks(unet)
    to = {"patches_replace": {"attn1": {blk: replace for blk in blocks}}}
    out = run(unet, inputs, transformer_options=to)
    torch.testing.assert_close(out, run(unet, inputs), rtol=1e-5, atol=1e-5)
    assert seen == blocks  # once per spatial transformer, in execution order; temporal layers untouched
    assert to["original_shape"] == [B * (FR + 1), 4 + unet.config.concat_dim, H // 8, W // 8]
    assert to["transformer_index"] == len(blocks)


def test_attention_output_patch_equals_zeroed_output_weights(unet, inputs):
    """attn2_output_patch n -> 0 == the same model with every spatial cross-attention's to_out zeroed."""
    edited = copy.deepcopy(unet)
    for m in edited.modules():
        if isinstance(m, SpatialTransformer):
            for blk in m.transformer_blocks:
                torch.nn.init.zeros_(blk.attn2.to_out[0].weight)
                torch.nn.init.zeros_(blk.attn2.to_out[0].bias)
    patched = run(unet, inputs, transformer_options={"patches": {"attn2_output_patch": [lambda n, extra: n * 0]}})
    torch.testing.assert_close(patched, run(edited, inputs), rtol=1e-6, atol=1e-6)


def test_attn2_patch_can_swap_the_context(unet, inputs):
    """attn2_patch returning another context == running with that context (for every spatial block)."""
    ctx = torch.randn(B, 81, 1024, generator=torch.Generator().manual_seed(3))
    base_ctx = torch.randn(B, 77, 1024, generator=torch.Generator().manual_seed(4))

    def swap(n, context, value, extra):
        return n, ctx.repeat_interleave(FR + 1, dim=0), ctx.repeat_interleave(FR + 1, dim=0)

    patched = run(unet, inputs, context=base_ctx, transformer_options={"patches": {"attn2_patch": [swap]}})
    # reference: every spatial transformer handed ctx directly (no patch machinery involved)
    other = copy.deepcopy(unet)
    for m in other.modules():
        if isinstance(m, SpatialTransformer):
            orig = m.forward

            def fwd(x, context, transformer_options=None, _orig=orig):
                return _orig(x, ctx.repeat_interleave(FR + 1, dim=0), transformer_options)

            m.forward = fwd
    torch.testing.assert_close(patched, run(other, inputs), rtol=1e-5, atol=1e-5)


def test_block_patches_see_the_trunk_and_can_change_it(unet, inputs):
    seen_in, seen_out = [], []

    def in_patch(h, to):
        seen_in.append((to["block"], tuple(h.shape)))
        return h

    def out_patch(h, skip, to):
        seen_out.append(to["block"])
        return h, skip

    to = {"patches": {"input_block_patch": [in_patch], "output_block_patch": [out_patch]}}
    torch.testing.assert_close(run(unet, inputs, transformer_options=to), run(unet, inputs), rtol=0, atol=0)
    assert [b for b, _ in seen_in] == [("input", i) for i in range(len(unet.input_blocks))]
    assert seen_out == [("output", i) for i in range(len(unet.output_blocks))]
    assert all(shape[0] == B * (FR + 1) for _, shape in seen_in)
    zero_skip = {"patches": {"output_block_patch": [lambda h, skip, to: (h, skip * 0)]}}
    assert not torch.allclose(run(unet, inputs, transformer_options=zero_skip), run(unet, inputs))


def test_emb_patch(unet, inputs):
    """emb_patch emb -> emb * 0 == a model whose time embedding's last layer is zeroed."""
    edited = copy.deepcopy(unet)
    torch.nn.init.zeros_(edited.time_embed[2].weight)
    torch.nn.init.zeros_(edited.time_embed[2].bias)
    patched = run(unet, inputs, transformer_options={"patches": {"emb_patch": [lambda emb, ch, to: emb * 0]}})
    torch.testing.assert_close(patched, run(edited, inputs), rtol=1e-6, atol=1e-6)


def test_options_reach_an_attention_fn_that_takes_them(inputs):
    calls = {"with": 0, "without": 0}

    def attention(q, k, v, heads, transformer_options=None):
        calls["with" if transformer_options is not None else "without"] += 1
        b, n, inner = q.shape
        split = lambda t: t.view(b, -1, heads, inner // heads).transpose(1, 2)  # noqa: E731
        return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(b, n, inner)

    from tiny_unet import tiny_checkpoint_path
    from unianimate_core.checkpoint import load_unet

    model = load_unet(str(tiny_checkpoint_path()), dtype="fp32", attention_fn=attention)
    model.set_zero_y(tiny_zero_y())
    run(model, inputs)
    n_attn = 2 * sum(isinstance(m, (SpatialTransformer, TemporalTransformer)) for m in model.modules())
    assert calls == {"with": 0, "without": n_attn}
    run(model, inputs, transformer_options={})
    assert calls == {"with": n_attn, "without": n_attn}  # spatial and temporal attention alike
