"""Per-call ``transformer_options``: patch points a host application can use without subclassing.

The UNet's ``forward`` takes an optional plain ``dict`` (``transformer_options``). Without it (the
default) nothing on this page happens and the model is exactly the official one. With it, the model
follows the patch protocol that Stable-Diffusion-style UNets in ComfyUI use, so attention and block
patches written for those work here too. The protocol is plain Python — dictionary keys and callables —
and this package never imports ComfyUI.

Keys the model **writes** while it runs (like ComfyUI's SD UNet):

* ``"original_shape"``: ``[B * (F + 1), C, h, w]``, the per-frame trunk input (frame 0 of each video
  is the reference slot); ``"num_video_frames"``: ``F + 1``.
* ``"block"``: ``("input", i)``, ``("middle", 0)`` or ``("output", i)`` while block ``i`` runs;
  ``"transformer_index"``: counts the spatial transformers run so far in this forward;
  ``"block_index"``: index of the transformer block inside its spatial transformer (always 0 here);
  ``"activations_shape"``: ``[N, C, h, w]`` entering the current spatial transformer.

Keys the model **reads** (all optional):

* ``"patches"``: ``{name: [callable, ...]}`` with

  ====================================  ==========================================================
  ``"emb_patch"``                       ``emb = p(emb, model_channels, transformer_options)``
  ``"input_block_patch"``               ``h = p(h, transformer_options)`` after each input block
  ``"input_block_patch_after_skip"``    same, after the skip connection was stored
  ``"output_block_patch"``              ``h, skip = p(h, skip, transformer_options)`` before each
                                        output block concatenates its skip
  ``"attn1_patch"`` / ``"attn2_patch"`` ``n, context, value = p(n, context, value, extra_options)``
                                        before the self- / cross-attention of a spatial block
  ``"attn1_output_patch"`` /            ``n = p(n, extra_options)`` on the attention output
  ``"attn2_output_patch"``
  ``"middle_patch"``                    ``x = p(x, extra_options)`` between the two attentions
  ====================================  ==========================================================

* ``"patches_replace"``: ``{"attn1" | "attn2": {key: fn}}`` with ``key`` = ``(block_name, block_id,
  block_index)`` or ``(block_name, block_id)``; ``fn(q, k, v, extra_options) -> out`` replaces the
  attention of that spatial block (q/k/v already projected, ``to_out`` applied after).
* Everything is also handed to ``attention_fn`` as ``transformer_options=`` (ComfyUI's attention
  dispatcher reads its own override hooks from it), for spatial and temporal attention alike.

* ``"deep_cache"``: deep-feature reuse between adjacent sampling steps (DeepCache-style; the sampler's
  ``deep_cache_interval`` option builds it, see ``diffusion/deep_cache.py``). An object with

  ``depth`` (int, 1..len(input_blocks)): how many input blocks form the shallow part; the output
  blocks ``N - depth..N - 1`` mirror them (N = len(input_blocks) = len(output_blocks)).
  ``features`` (Tensor or None): the hidden state that entered output block ``N - depth`` in an
  earlier full call. When it fits this call (same rows and spatial size as the skip it meets, same
  dtype and device) the call is a *reuse* call: only input blocks ``:depth`` and output blocks
  ``N - depth:`` run and everything between is skipped. Otherwise the call runs in full.
  ``store(tensor)``: called by a full call with the hidden state entering output block ``N - depth``.

  Without this key the forward is exactly the ordinary one.

``extra_options`` = every key of ``transformer_options`` except the two patch dictionaries, plus
``n_heads``, ``dim_head`` and ``attn_precision`` (None).

Patches apply to the **spatial** transformers only (the Stable-Diffusion-like trunk, where such patches
are meaningful). The temporal layers attend across frames; patches written for image tokens would
misread them, so they only pass the options on to ``attention_fn``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..errors import InputError

TransformerOptions = dict[str, Any]


def patch_list(options: Optional[TransformerOptions], name: str) -> list[Callable]:
    """The callables registered under ``options["patches"][name]`` (empty without options)."""
    if not options:
        return []
    return list((options.get("patches") or {}).get(name, ()))


def replace_patch(options: Optional[TransformerOptions], which: str) -> Optional[Callable]:
    """The ``patches_replace[which]`` entry for the block being run, or None."""
    if not options:
        return None
    table = (options.get("patches_replace") or {}).get(which) or {}
    if not table:
        return None
    block = options.get("block")
    if block is not None:
        key = (block[0], block[1], options.get("block_index", 0))
        if key in table:
            return table[key]
    return table.get(block)


def extra_options(options: TransformerOptions, heads: int, head_dim: int) -> dict[str, Any]:
    """What attention patches receive: the options minus the patch tables, plus head geometry."""
    out = {k: v for k, v in options.items() if k not in ("patches", "patches_replace")}
    out.update(n_heads=heads, dim_head=head_dim, attn_precision=None)
    return out


def deep_cache_state(options: Optional[TransformerOptions], num_blocks: int) -> Any:
    """The ``"deep_cache"`` object of the options (None without one), its depth checked against the model."""
    if not options:
        return None
    state = options.get("deep_cache")
    if state is None:
        return None
    depth = getattr(state, "depth", None)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= num_blocks:
        raise InputError(
            f"transformer_options['deep_cache'].depth must be a whole number of input blocks in 1..{num_blocks} "
            f"(this model has {num_blocks}); got {depth!r}."
        )
    if not hasattr(state, "features") or not callable(getattr(state, "store", None)):
        raise InputError("transformer_options['deep_cache'] must have a 'features' attribute (Tensor or None) and a "
                         "'store(tensor)' method; build it with unianimate_core.diffusion.deep_cache.")
    return state
