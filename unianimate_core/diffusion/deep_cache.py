"""Deep-feature reuse between adjacent denoising steps (DeepCache, Ma et al. 2023), for our own sampler.

Between two adjacent steps the UNet's deep, low-resolution features change little. With
``SamplerOptions(deep_cache_interval=N)`` every N-th step runs the UNet in full and keeps, per model
call, the hidden state that enters output block ``len(output_blocks) - depth``; the steps in between
run only the shallow part (input blocks ``:depth`` and output blocks ``-depth:``, joined by their skip
connections) and take the deep part's result from that cache. ``interval = 1`` (the default) never
wraps the model: the sampler is exactly the official one.

Which calls share an entry: the calls of one step are numbered in the order they are made (the
conditional then the unconditional call in sequential guidance, one call per window group in sliding
windows) and call k of a reuse step takes call k's entry of the last full step. A call whose input
does not match its entry (a different shape or batch, e.g. the first conditional-only step after
batched guidance, or other conditions left out) runs in full and replaces the entry. Each sampling
run (each continuation segment) has its own cache, emptied when the run ends, so no tensor outlives
a run.

The model must take ``transformer_options`` (``UNetSD_UniAnimate`` does; the protocol is in
``unet/options.py``). Quality cost: measured on the observatory model by
``benchmarks/solver_quality.py`` (docs/performance.md); the option stays off by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .errors import check
from .guidance import supports_cond_mask, takes_keyword

#: Shallow input blocks kept on reuse steps by default: conv_in + the first full-resolution block, the
#: place DeepCache's Stable Diffusion setting branches off (after the first down block's first layer).
DEFAULT_DEPTH = 2


@dataclass
class DeepCacheSlot:
    """What one model call receives as ``transformer_options["deep_cache"]``.

    depth: shallow input blocks; features: the cached deep result (None = run in full); stored: set
    by the model (through ``store``) when the call ran in full.
    """

    depth: int
    features: Tensor | None = None
    stored: Tensor | None = None

    def store(self, tensor: Tensor) -> None:
        self.stored = tensor


def supports_deep_cache(model: Any) -> bool:
    """Whether ``model`` takes ``transformer_options`` (an explicit ``supports_deep_cache`` attribute wins)."""
    return takes_keyword(model, "transformer_options", "supports_deep_cache")


class DeepCache:
    """A model wrapper for one sampling run: full calls every ``interval`` steps, reuse calls between.

    Call ``begin_step(i)`` before the calls of step i (0-based); ``clear()`` when the run ends.
    ``full_calls`` / ``reuse_calls`` count what the model actually did.
    """

    def __init__(self, model: Any, interval: int, depth: int) -> None:
        self.model = model
        self.interval = int(interval)
        self.depth = int(depth)
        self.supports_cond_mask = supports_cond_mask(model)
        self.supports_deep_cache = True
        self.full_calls = 0
        self.reuse_calls = 0
        self._entries: list[tuple[tuple, Tensor] | None] = []
        self._call = 0
        self._full_step = True

    @classmethod
    def for_run(cls, model: Any, options: Any) -> "DeepCache | None":
        """The wrapper the options ask for (None when ``deep_cache_interval`` is 1), checked against the model."""
        interval, depth = int(options.deep_cache_interval), int(options.deep_cache_depth)
        if interval == 1:
            return None
        check(supports_deep_cache(model),
              f"deep_cache_interval={interval} needs a model whose forward takes transformer_options (the "
              f"UniAnimate UNet does); {type(model).__name__} does not. Set deep_cache_interval to 1 for this model.")
        blocks = getattr(model, "input_blocks", None)
        if blocks is not None:
            check(depth <= len(blocks),
                  f"deep_cache_depth {depth} is more than this model's {len(blocks)} input blocks; use 1..{len(blocks)} "
                  f"(smaller = fewer blocks run on reuse steps: faster, further from the full result).")
        return cls(model, interval, depth)

    def begin_step(self, index: int) -> None:
        """Start step ``index`` of the run: a full step when ``index % interval == 0``."""
        self._call = 0
        self._full_step = index % self.interval == 0

    def __call__(self, x: Tensor, t: Tensor, **kwargs: Any) -> Tensor:
        k = self._call
        self._call += 1
        while len(self._entries) <= k:
            self._entries.append(None)
        key = _call_key(x, kwargs)
        entry = self._entries[k]
        features = entry[1] if not self._full_step and entry is not None and entry[0] == key else None
        slot = DeepCacheSlot(self.depth, features)
        out = self.model(x, t, transformer_options={"deep_cache": slot}, **kwargs)
        if slot.stored is not None:
            self.full_calls += 1
            self._entries[k] = (key, slot.stored)
        elif features is not None:
            self.reuse_calls += 1
        else:  # a model that took the options but not the protocol: every call is a full one
            self.full_calls += 1
        return out

    def clear(self) -> None:
        """Drop every cached tensor (the end of a run)."""
        self._entries = []


def _call_key(x: Tensor, kwargs: dict[str, Any]) -> tuple:
    """What must match for call k of a reuse step to use call k's entry of the full step."""
    given = tuple(sorted(k for k, v in kwargs.items() if v is not None))
    return tuple(x.shape), x.dtype, x.device, given
