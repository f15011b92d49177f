"""Training-memory estimate of the UNet from a shape-only (meta-device) forward — no GPU needed.

Per training setting (mode, precision, optimizer, gradient checkpointing, EMA, LoRA rank):

* **weights**: trainable weights in fp32 (the master copy), frozen ones in their storage dtype,
  plus autocast's half-precision copies of the trainable weights, which it keeps for the whole
  forward/backward;
* **gradients**: fp32, one per trainable weight;
* **optimizer**: AdamW's two fp32 moments (8 bytes per trainable weight), or 2 bytes with the 8-bit
  AdamW of bitsandbytes;
* **EMA**: one fp32 copy of the trainable weights;
* **activations**: every tensor autograd saves for the backward, measured by running the forward
  on the ``meta`` device with ``saved_tensors_hooks`` (distinct storages counted once, parameters
  excluded). With gradient checkpointing, only each block's input (plus the shared timestep
  embedding and text/image context) stays saved, and one block's activations exist at a time
  while it is recomputed. Attention is counted as a fused kernel (flash / memory-efficient) saves
  it; on the CPU this method matches the activation memory measured with the PyTorch profiler on
  the tiny config within a few percent (tests/train/test_memory.py).

Not counted: the CUDA context and allocator fragmentation (typically 0.5-1.5 GB), the CLIP/VAE
(not loaded while training: latents and embeddings are cached), and transient workspaces (the
largest activation gradients alive during the backward). Treat the totals as lower bounds with
about 10 % margin, and check with ``torch.cuda.max_memory_allocated`` on the first real run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from ..config import UNetConfig

GB = 1e9
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class MemorySetting:
    mode: str = "full"  # full | temporal | mamba | lora
    precision: str = "bf16"  # fp32 | bf16 | fp16
    optimizer: str = "adamw"  # adamw | adamw8bit
    gradient_checkpointing: bool = False
    ema: bool = False
    lora_rank: int = 16

    def label(self) -> str:
        parts = [self.mode + (f" r{self.lora_rank}" if self.mode == "lora" else ""), self.precision,
                 "AdamW8bit" if self.optimizer == "adamw8bit" else "AdamW"]
        if self.gradient_checkpointing:
            parts.append("ckpt")
        if self.ema:
            parts.append("EMA")
        return ", ".join(parts)


@dataclass(frozen=True)
class MemoryEstimate:
    setting: MemorySetting
    total_params: int
    trainable_params: int
    weights: float
    gradients: float
    optimizer: float
    ema: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.ema + self.activations

    def fits(self, gb: float, margin: float = 1.1, overhead_gb: float = 1.0) -> bool:
        """Whether ``total * margin + overhead`` fits in ``gb`` (decimal GB of device memory)."""
        return self.total * margin + overhead_gb * GB <= gb * GB


class _FusedAttention(torch.autograd.Function):
    """Shape stand-in of a fused attention kernel (flash / memory-efficient, what CUDA SDPA runs).

    It saves what those kernels save for the backward: q, k, v, the output and one float32
    log-sum-exp per query and head, never the (Nq x Nk) attention matrix. On the meta device
    torch would otherwise pick the math path, which stores that matrix (6.4 GB per spatial layer at
    full resolution) and inflates the estimate far beyond what a GPU run uses.
    """

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
        out = torch.empty_like(q)
        lse = q.new_empty(q.shape[0], heads, q.shape[1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # pragma: no cover - never run (shapes only)
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), None


def fused_attention_shapes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    return _FusedAttention.apply(q, k, v, heads)


class _SavedTensors:
    """Counts distinct storages saved for backward; attributes them to the block running at the time."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.param_storages = {p.untyped_storage()._cdata for p in params}
        self.seen: dict[int, int] = {}
        self.block: Optional[int] = None
        self.by_block: dict[Optional[int], int] = {}
        self._keep: list[torch.Tensor] = []

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self.param_storages and key not in self.seen:
            self.seen[key] = storage.nbytes()
            self.by_block[self.block] = self.by_block.get(self.block, 0) + storage.nbytes()
            self._keep.append(t)  # keep it alive: a freed storage's address could be reused
        return t

    @staticmethod
    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t


def _blocks(unet: nn.Module) -> list[nn.Module]:
    return list(unet.input_blocks) + [unet.middle_block] + list(unet.output_blocks)


def _apply_mode(unet: nn.Module, setting: MemorySetting) -> int:
    """Set requires_grad as the mode does; returns the number of LoRA parameters (not in the UNet)."""
    from ..mamba.layer import TemporalMamba
    from ..unet.resblock import TemporalConvBlock
    from ..unet.transformer import TemporalTransformer
    from .modes import lora_targets

    if setting.mode == "full":
        unet.requires_grad_(True)
        return 0
    unet.requires_grad_(False)
    if setting.mode in ("temporal", "mamba"):
        for m in unet.modules():
            if isinstance(m, TemporalMamba) or (setting.mode == "temporal" and isinstance(m, (TemporalTransformer, TemporalConvBlock))):
                m.requires_grad_(True)
        return 0
    lora = 0
    modules = dict(unet.named_modules())
    for name in lora_targets(unet, ["attention"]):
        w = modules[name].weight
        lora += setting.lora_rank * (w.shape[0] + w[0].numel())
    return lora


def estimate(config: UNetConfig, frames: int, height: int, width: int, setting: MemorySetting,
             batch: int = 1) -> MemoryEstimate:
    """Estimate the training memory of ``config`` on clips of ``frames`` x ``height`` x ``width``."""
    from ..unet import UNetSD_UniAnimate

    if setting.mode == "mamba" and config.temporal != "mamba":
        from ..mamba.config import MambaConfig

        config = dataclasses.replace(config, temporal="mamba", mamba=config.mamba or MambaConfig())
    compute = DTYPES[setting.precision]
    unet = UNetSD_UniAnimate(config, attention_fn=fused_attention_shapes, device="meta", dtype=compute)
    unet.set_zero_y(torch.zeros(1, config.text_tokens, config.context_dim, device="meta"))
    lora_params = _apply_mode(unet, setting)
    params = list(unet.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad) + lora_params
    frozen = total - (trainable - lora_params)
    half = setting.precision != "fp32"
    frozen_bytes = BYTES[setting.precision]
    weights = trainable * 4 + frozen * frozen_bytes + (trainable * 2 if half else 0)
    gradients = trainable * 4
    optimizer = trainable * (2 if setting.optimizer == "adamw8bit" else 8)
    ema = trainable * 4 if setting.ema else 0
    activations = _activations(unet, frames, height, width, batch, compute, setting.gradient_checkpointing,
                               needs_input_grad=setting.mode == "lora")
    return MemoryEstimate(setting, total + lora_params, trainable, weights, gradients, optimizer, ema, activations)


def _activations(unet: nn.Module, frames: int, height: int, width: int, batch: int, dtype: torch.dtype,
                 checkpointing: bool, needs_input_grad: bool) -> float:
    h, w = height // 8, width // 8
    meta = dict(device="meta", dtype=dtype)
    x = torch.zeros(batch, 4, frames, h, w, **meta)
    kwargs = dict(image=torch.zeros(batch, unet.config.context_dim, **meta),
                  dwpose=torch.zeros(batch, 3, frames + 1, height, width, **meta),
                  randomref=torch.zeros(batch, 4, 1, h, w, **meta))
    if needs_input_grad:  # LoRA: the adapters' inputs need the graph even though every base weight is frozen
        x.requires_grad_(True)
    tracker = _SavedTensors(list(unet.parameters()))
    inputs: dict[int, int] = {}
    handles = []
    for i, block in enumerate(_blocks(unet)):
        first = block[0] if isinstance(block, nn.ModuleList) else block
        layers = list(block) if isinstance(block, nn.ModuleList) else [block]

        def enter(module: nn.Module, args: Any, i: int = i) -> None:
            tracker.block = i
            inputs.setdefault(i, args[0].untyped_storage().nbytes())

        handles.append(first.register_forward_pre_hook(enter))
        handles.append(layers[-1].register_forward_hook(lambda m, a, o: setattr(tracker, "block", None)))
    try:
        with torch.autograd.graph.saved_tensors_hooks(tracker.pack, tracker.unpack):
            out = unet(x, torch.zeros(batch, dtype=torch.long, device="meta"), **kwargs)
    finally:
        for hnd in handles:
            hnd.remove()
    global LAST_BREAKDOWN
    saved = sum(tracker.seen.values()) + out.untyped_storage().nbytes()
    outside = tracker.by_block.get(None, 0) + out.untyped_storage().nbytes()
    in_blocks = [v for k, v in tracker.by_block.items() if k is not None]
    cfg = unet.config
    shared = batch * (frames + 1) * ((cfg.text_tokens + cfg.num_tokens) * cfg.context_dim + cfg.embed_dim) * x.element_size()
    LAST_BREAKDOWN = {"saved": saved, "outside_blocks": outside, "block_inputs": sum(inputs.values()) + shared,
                      "largest_block": max(in_blocks) if in_blocks else 0}
    if not checkpointing:
        return float(saved)
    # Each checkpointed block keeps its inputs (x; emb and context are shared and small); while one block
    # is recomputed its activations exist again.
    return float(outside + LAST_BREAKDOWN["block_inputs"] + LAST_BREAKDOWN["largest_block"])


#: The parts of the last activation estimate (bytes), for tests and curious users.
LAST_BREAKDOWN: dict[str, int] = {}


DEFAULT_SETTINGS = (
    MemorySetting("full", "fp32", "adamw", False),
    MemorySetting("full", "bf16", "adamw", False),
    MemorySetting("full", "bf16", "adamw", True),
    MemorySetting("full", "bf16", "adamw8bit", True),
    MemorySetting("full", "bf16", "adamw", True, ema=True),
    MemorySetting("temporal", "bf16", "adamw", False),
    MemorySetting("temporal", "bf16", "adamw", True),
    MemorySetting("mamba", "bf16", "adamw", False),
    MemorySetting("mamba", "bf16", "adamw", True),
    MemorySetting("lora", "bf16", "adamw", False, lora_rank=16),
    MemorySetting("lora", "bf16", "adamw", True, lora_rank=16),
)


def memory_table(config: UNetConfig, frames: int, height: int, width: int,
                 settings: tuple[MemorySetting, ...] = DEFAULT_SETTINGS, batch: int = 1,
                 budgets: tuple[int, ...] = (24, 48, 80)) -> str:
    """A Markdown table of :func:`estimate` for each setting, with what fits in each budget (GB)."""
    head = ("| setting | trainable | weights | grads | optimizer | EMA | activations | total | "
            + " | ".join(f"{b} GB" for b in budgets) + " |")
    lines = [f"UNet dim {config.dim}, {frames} frames x {height}x{width}, batch {batch} "
             "(GB = 1e9 bytes; fits = total x 1.1 + 1 GB CUDA context <= budget)", "", head,
             "|" + "---|" * (8 + len(budgets))]
    for s in settings:
        e = estimate(config, frames, height, width, s, batch)
        cells = [s.label(), f"{e.trainable_params / 1e6:,.1f} M"] + [
            f"{v / GB:.1f}" for v in (e.weights, e.gradients, e.optimizer, e.ema, e.activations, e.total)]
        cells += ["yes" if e.fits(b) else "no" for b in budgets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
