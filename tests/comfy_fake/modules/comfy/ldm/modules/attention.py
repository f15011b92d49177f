"""FAKE `comfy.ldm.modules.attention`: ComfyUI's attention dispatcher, plain SDPA here.

`optimized_attention(q, k, v, heads, mask=None, ...)` takes and returns (B, N, heads*d) like the
real dispatcher. `calls` counts invocations so tests can prove the nodes hand it to the model.
"""
from __future__ import annotations

import torch

calls = {"optimized_attention": 0}


def optimized_attention(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False,
                        skip_output_reshape=False, **kwargs):
    calls["optimized_attention"] += 1
    b, n, inner = q.shape
    d = inner // heads
    q, k, v = (t.reshape(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(b, n, heads * d)


def optimized_attention_for_device(device, mask=False, small_input=False):
    return optimized_attention
