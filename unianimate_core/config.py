"""Typed configuration of the UniAnimate UNet.

Only the arguments that change the architecture or the numerics are kept; the official
constructor's unused ones (``y_dim``, ``hist_dim``, fps/sim-mask switches, training-time dropout
probabilities) are gone. The default is the *effective* official model: the official inference
merges its yaml into a base config whose ``attn_scales`` is ``[1, 1/2, 1/4]``
(docs/official_behaviour.md#attn-scales), so
attention sits at latent scales 1, 1/2, 1/4 — not at the class default ``[1/2, 1/4, 1/8]``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .mamba.config import MambaConfig

TemporalKind = Literal["attention", "mamba"]

#: Channels of the hidden layers inside the pixel/latent condition embedders (fixed in the design).
EMBEDDER_HIDDEN = 32


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of ``UNetSD_UniAnimate``.

    Attributes:
        in_dim: latent channels of the noisy input (SD VAE: 4).
        dim: base width; level widths are ``dim * dim_mult[i]``. Must be a multiple of 32 (GroupNorm).
        context_dim: width of the cross-attention context (OpenCLIP-H: 1024).
        out_dim: output channels (the v-prediction, 4).
        dim_mult: width multipliers per level; ``len(dim_mult) - 1`` downsamplings.
        num_heads: heads of the very first temporal transformer only (the official model uses
            ``num_heads * head_dim = 512`` inner channels there on a 320-wide input).
        head_dim: width of every attention head; other transformers use ``C // head_dim`` heads.
        num_res_blocks: ResBlocks per encoder level (the decoder has one more per level).
        attn_scales: latent scales (1, 1/2, ...) whose blocks get spatial+temporal transformers.
        concat_dim: channels of the pose / first-frame embeddings concatenated to the latent.
        num_tokens: image-embedding tokens appended to the 77 text tokens.
        text_tokens: length of the empty-prompt context ``zero_y``.
        temporal: ``"attention"`` (the released model) or ``"mamba"`` (state-space temporal layers).
        mamba: settings of the Mamba layers when ``temporal == "mamba"`` (defaults when None).
    """

    in_dim: int = 4
    dim: int = 320
    context_dim: int = 1024
    out_dim: int = 4
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_heads: int = 8
    head_dim: int = 64
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = (1.0, 0.5, 0.25)
    concat_dim: int = 8
    num_tokens: int = 4
    text_tokens: int = 77
    temporal: TemporalKind = "attention"
    mamba: "MambaConfig | None" = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim_mult", tuple(int(m) for m in self.dim_mult))
        object.__setattr__(self, "attn_scales", tuple(float(s) for s in self.attn_scales))
        if self.dim <= 0 or self.dim % 32:
            raise InputError(f"UNetConfig.dim must be a positive multiple of 32 (GroupNorm(32)); got {self.dim}.")
        if not self.dim_mult or any(m <= 0 for m in self.dim_mult):
            raise InputError(f"UNetConfig.dim_mult must be non-empty positive integers; got {self.dim_mult}.")
        if self.head_dim <= 0 or self.num_heads <= 0 or self.num_res_blocks <= 0:
            raise InputError("UNetConfig.head_dim, num_heads and num_res_blocks must be positive.")
        for m in self.dim_mult:
            if (self.dim * m) % self.head_dim:
                raise InputError(
                    f"level width {self.dim * m} is not a multiple of head_dim {self.head_dim}; "
                    "choose dim/dim_mult/head_dim so every level width divides into whole heads."
                )
        if self.temporal not in ("attention", "mamba"):
            raise InputError(f"UNetConfig.temporal must be 'attention' or 'mamba'; got {self.temporal!r}.")

    # ------------------------------------------------------------------ presets
    @classmethod
    def full(cls, **overrides: Any) -> "UNetConfig":
        """The released model (1544 keys, 1,416,564,300 parameters)."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "UNetConfig":
        """The tiny config of the golden fixtures (same module types and block indices, 12.4 M params)."""
        base: dict[str, Any] = dict(dim=32, dim_mult=(1, 2, 2, 2), num_heads=2, head_dim=32)
        base.update(overrides)
        return cls(**base)

    # ------------------------------------------------------------------ derived
    @property
    def num_levels(self) -> int:
        return len(self.dim_mult)

    @property
    def embed_dim(self) -> int:
        """Width of the timestep embedding (4 x dim)."""
        return 4 * self.dim

    @property
    def latent_multiple(self) -> int:
        """Latent height/width must be a multiple of this (one halving per downsampling)."""
        return 2 ** (self.num_levels - 1)

    @property
    def pixel_multiple(self) -> int:
        """Pixel height/width must be a multiple of this (VAE factor 8 x latent multiple)."""
        return 8 * self.latent_multiple

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dim_mult"] = list(self.dim_mult)
        d["attn_scales"] = list(self.attn_scales)
        if self.mamba is None:
            d.pop("mamba")
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown UNetConfig fields {unknown}; known fields: {sorted(known)}.")
        d = dict(d)
        if d.get("mamba") is not None and isinstance(d["mamba"], dict):
            from .mamba.config import MambaConfig

            d["mamba"] = MambaConfig(**d["mamba"])
        return cls(**d)
