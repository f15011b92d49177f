"""Identity: how much the generated person still looks like the reference.

Two measures, both against the *reference image* (not the ground truth):

* ``embedding_similarity``: cosine similarity of image embeddings (any ``ImageEncoder``: OpenCLIP
  ViT-H-14 on real data when its weights are at hand - the usual "CLIP-I" score - or the world's
  :class:`~unianimate_core.toyworld.ToyImageEncoder`), through the pipeline's CLIP input rule;
* ``colour_distance``: Hellinger distance between colour histograms of the *character* in the
  frame and in the reference (0 = same colours, 1 = disjoint). The character region is a mask when
  known (world reference), else the pixels that differ from a known background (world frames),
  else the pixels unlike the image border (real data).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..pipeline.conditioning import clip_input
from ..pipeline.encoders import ImageEncoder
from .errors import EvaluationError
from .frames import to_uint8_hwc

#: Colour distance (RGB in [0, 1]) beyond which a pixel differs from the background.
BACKGROUND_TAU = 0.06


@torch.no_grad()
def embedding_similarity(frames: Tensor, reference: Tensor, encoder: ImageEncoder, chunk: int = 16) -> Tensor:
    """``(F,)`` cosine similarity between each frame's embedding and the reference's."""
    ref = encoder.encode_image(clip_input(to_uint8_hwc(reference)[0])).float()
    u8 = to_uint8_hwc(frames)
    embs = []
    for i in range(0, len(u8), chunk):
        x = torch.cat([clip_input(im) for im in u8[i:i + chunk]])
        embs.append(encoder.encode_image(x).float())
    e = torch.cat(embs)
    return torch.nn.functional.cosine_similarity(e, ref.expand_as(e), dim=1)


def character_weights(frames: Tensor, background: Tensor | None = None, mask: Tensor | None = None,
                      exclude_chroma: float | None = None, exclude: Tensor | None = None) -> Tensor:
    """``(F, H*W)`` per-pixel weight of "character" (see the module docstring).

    ``exclude_chroma``: leave out pixels at least this colourful (the world's identity sleeves, which
    are the same on every character and so carry no identity). ``exclude``: ``(F, H, W)`` bool pixels
    to leave out (e.g. an occluder in front of the character).
    """
    f = frames.shape[0]
    if mask is not None:
        w = mask.reshape(f, -1).to(frames.dtype)
    elif background is not None:
        d = (frames - background.expand_as(frames)).pow(2).sum(1).sqrt()
        w = (1.0 - torch.exp(-(d / BACKGROUND_TAU) ** 2)).reshape(f, -1)
    else:
        from ..toyworld.clip import foreground_weights

        w = foreground_weights(frames)
    if exclude_chroma is not None:
        flat = frames.flatten(2)
        chroma = flat.amax(1) - flat.amin(1)
        w = w * (chroma < exclude_chroma).to(w.dtype)
    if exclude is not None:
        w = w * (~exclude.reshape(f, -1)).to(w.dtype)
    return w


def colour_histograms(frames: Tensor, weights: Tensor) -> Tensor:
    """``(F, 125)`` normalised soft RGB histograms (5 bins per channel) with per-pixel ``weights``."""
    from ..toyworld.clip import _soft_histogram

    return _soft_histogram(frames, weights)


def hellinger(p: Tensor, q: Tensor) -> Tensor:
    """Hellinger distance of normalised histograms (rows), in [0, 1]."""
    bc = (p.clamp_min(0) * q.clamp_min(0)).sqrt().sum(-1).clamp(max=1.0)
    return (1.0 - bc).clamp_min(0).sqrt()


def colour_distance(frames: Tensor, reference: Tensor, *, reference_mask: Tensor | None = None,
                    background: Tensor | None = None, exclude_chroma: float | None = None,
                    exclude: Tensor | None = None) -> Tensor:
    """``(F,)`` Hellinger distance between the character colours of each frame and of the reference."""
    if reference.ndim == 3:
        reference = reference[None]
    if reference.shape[1:] != frames.shape[1:] and reference_mask is not None:
        raise EvaluationError("the reference mask must match the reference image size.")
    wr = character_weights(reference, background=background if reference_mask is None else None,
                           mask=reference_mask, exclude_chroma=exclude_chroma)
    wf = character_weights(frames, background=background, exclude_chroma=exclude_chroma, exclude=exclude)
    if float(wr.sum()) <= 0:
        raise EvaluationError("no character pixels found in the reference image (mask empty or identical to the background).")
    href = colour_histograms(reference, wr)
    hf = colour_histograms(frames, wf)
    empty = wf.sum(1) <= 0
    d = hellinger(hf, href.expand_as(hf))
    d[empty] = 1.0  # no character at all: as far as it gets
    return d


