"""What is trained: the UNet to start from, the trainable parameters of each mode, and the exports.

| mode | trainable | loss | exported |
|---|---|---|---|
| full | every UNet weight | diffusion | ``model.safetensors`` (whole UNet) |
| temporal | temporal layers (+ the temporal convs in the ResBlocks) | diffusion | whole UNet |
| mamba | fresh ``TemporalMamba`` layers (or everything) | diffusion (scratch) or distillation | whole UNet with Mamba layers |
| lora | peft LoRA adapters on the chosen layers | diffusion | ``lora.safetensors`` (ComfyUI LoRA layout) |

Whole-UNet exports carry the architecture in their metadata, so ``load_unet`` and ComfyUI's
``Load UniAnimate Model`` load them directly (a Mamba export is recognised by its ``*.A_log`` keys
and its metadata).
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..checkpoint import load_unet
from ..config import UNetConfig
from ..diffusion.schedule import NoiseSchedule
from ..mamba.config import MambaConfig
from ..mamba.layer import TemporalMamba
from ..unet import UNetSD_UniAnimate
from ..unet.resblock import TemporalConvBlock
from ..unet.transformer import SpatialTransformer, TemporalTransformer
from .config import TrainConfig
from .errors import TrainError
from .objective import DiffusionLoss, LayerDistillLoss, OutputDistillLoss, install, temporal_slots

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainModel:
    """The model of a run: the UNet, the loss module that wraps it, and how to export it."""

    unet: nn.Module
    loss: nn.Module
    kind: str
    export: Callable[[], tuple[dict[str, Tensor], dict[str, str]]]
    sampling_model: Callable[[], nn.Module]

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        """Trainable parameters by name (names relative to the loss module), in a stable order."""
        return [(n, p) for n, p in self.loss.named_parameters() if p.requires_grad]


# ------------------------------------------------------------------------------------------ base UNet
def fresh_unet(config: UNetConfig, seed: int, zero_init: bool) -> UNetSD_UniAnimate:
    """A new UNet with PyTorch's default initialisation from ``seed`` (and diffusion-style zero layers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNetSD_UniAnimate(config)
    if zero_init:
        with torch.no_grad():
            for name, module in unet.named_modules():
                last = None
                if name.endswith("out_layers") or name == "out":
                    last = module[-1]
                elif isinstance(module, TemporalConvBlock):
                    last = module.conv4[-1]
                elif isinstance(module, (SpatialTransformer, TemporalTransformer)):
                    last = module.proj_out
                if last is not None:
                    for p in last.parameters():
                        p.zero_()
    return unet


def base_unet(cfg: TrainConfig) -> UNetSD_UniAnimate:
    if cfg.model.init:
        unet = load_unet(cfg.model.init, dtype=torch.float32)
    else:
        arch = cfg.model.architecture
        config = UNetConfig.full() if arch == "full" else UNetConfig.tiny() if arch == "tiny" else UNetConfig.from_dict(arch)  # type: ignore[arg-type]
        unet = fresh_unet(config, cfg.seed, cfg.model.zero_init)
    return unet.train().requires_grad_(True)


def set_dropout(unet: nn.Module, p: float) -> None:
    """The official training's dropout places: the ResBlocks' out branch and the temporal convs."""
    for name, module in unet.named_modules():
        if isinstance(module, nn.Dropout) and (".out_layers." in f".{name}." or "temopral_conv" in name):
            module.p = float(p)


# ------------------------------------------------------------------------------------------ LoRA
_PROJ = re.compile(r"\.transformer_blocks\.\d+\.(?P<attn>attn[12])\.(to_q|to_k|to_v|to_out\.0)$")
_FF = re.compile(r"\.transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)$")


def lora_targets(unet: nn.Module, targets: list[str]) -> list[str]:
    """Full names of the layers the LoRA adapts, resolved by the owning module's type.

    ``attention``: q/k/v/out of every spatial and temporal transformer; ``spatial_attention`` /
    ``temporal_attention``: of one kind only; ``cross_attention``: the spatial transformers'
    ``attn2`` (the temporal ``attn2`` is a second self-attention, docs/official_behaviour.md#temporal-attention);
    ``feedforward``: the
    transformers' GEGLU and output projections; ``regex:P``: names that fully match P.
    """
    owners = {name: ("spatial" if isinstance(m, SpatialTransformer) else "temporal")
              for name, m in unet.named_modules() if isinstance(m, (SpatialTransformer, TemporalTransformer))}
    regexes = [re.compile(t[len("regex:"):]) for t in targets if t.startswith("regex:")]
    names = []
    for name, module in unet.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            continue
        owner = next((kind for prefix, kind in owners.items() if name.startswith(prefix + ".")), None)
        proj = _PROJ.search(name) if owner else None
        hit = any(r.fullmatch(name) for r in regexes)
        hit |= proj is not None and "attention" in targets
        hit |= proj is not None and f"{owner}_attention" in targets
        hit |= proj is not None and owner == "spatial" and proj.group("attn") == "attn2" and "cross_attention" in targets
        hit |= owner is not None and _FF.search(name) is not None and "feedforward" in targets
        if hit:
            names.append(name)
    return names


# ------------------------------------------------------------------------------------------ build
def _freeze_all(unet: nn.Module) -> None:
    unet.requires_grad_(False)


def _cast_frozen(module: nn.Module, dtype: torch.dtype) -> None:
    if dtype == torch.float32:
        return
    for name, p in module.named_parameters():
        if not p.requires_grad and p.is_floating_point() and not (name.endswith("A_log") or name.endswith(".D")):
            p.data = p.data.to(dtype)


def build_train_model(cfg: TrainConfig, zero_y: Tensor, schedule: Optional[NoiseSchedule] = None) -> TrainModel:
    """Build the UNet and loss module of ``cfg`` (CPU, fp32 trainable weights); deterministic for a seed."""
    schedule = schedule or NoiseSchedule.unianimate()
    unet = base_unet(cfg)
    unet.set_zero_y(zero_y)
    set_dropout(unet, cfg.objective.model_dropout)
    kind = cfg.mode.kind
    base_config = unet.config

    def whole_unet_export(model: nn.Module, config: UNetConfig) -> Callable[[], tuple[dict[str, Tensor], dict[str, str]]]:
        def export() -> tuple[dict[str, Tensor], dict[str, str]]:
            sd = {k: v.detach() for k, v in model.state_dict().items()}
            return sd, {"format": "unianimate-unet", "config": config.to_json(), "trained_mode": kind}

        return export

    if kind == "full":
        loss: nn.Module = DiffusionLoss(unet, schedule)
        return TrainModel(unet, loss, kind, whole_unet_export(unet, base_config), lambda: unet)

    if kind == "temporal":
        _freeze_all(unet)
        for name, module in unet.named_modules():
            if isinstance(module, (TemporalTransformer, TemporalMamba)) or (
                    cfg.mode.temporal_convs and isinstance(module, TemporalConvBlock)):
                module.requires_grad_(True)
        loss = DiffusionLoss(unet, schedule)
        return TrainModel(unet, loss, kind, whole_unet_export(unet, base_config), lambda: unet)

    if kind == "mamba":
        return _mamba(cfg, unet, schedule, whole_unet_export)

    if kind == "lora":
        return _lora(cfg, unet, schedule)
    raise TrainError(f"unknown mode {kind!r}")  # pragma: no cover - the config validates it


def _mamba(cfg: TrainConfig, unet: UNetSD_UniAnimate, schedule: NoiseSchedule, whole_unet_export: Callable) -> TrainModel:
    m = cfg.mode.mamba
    mcfg = MambaConfig(**m.config)
    slots = temporal_slots(unet)
    if not slots:
        raise TrainError("the UNet has no temporal layers to convert to Mamba.")
    teachers = [getattr(p, n) for p, n in slots]
    if m.source == "distill" and not all(isinstance(t, TemporalTransformer) for t in teachers):
        raise TrainError("mode.mamba.source = distill needs a teacher with temporal attention layers, but "
                         f"{cfg.model.init} already has Mamba layers; use source = scratch to continue training it.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        students = [t if isinstance(t, TemporalMamba) else TemporalMamba(_channels(t), mcfg) for t in teachers]
    export_config = dataclasses.replace(unet.config, temporal="mamba", mamba=mcfg)
    train_all = m.train == "all"

    def install_students() -> None:
        """Put the Mamba layers in place; only they train unless mode.mamba.train = all."""
        install(slots, students)
        unet.config = export_config
        if not train_all:
            _freeze_all(unet)
            for s in students:
                s.requires_grad_(True)

    if m.source == "scratch":
        install_students()
        loss: nn.Module = DiffusionLoss(unet, schedule)
        return TrainModel(unet, loss, "mamba", whole_unet_export(unet, export_config), lambda: unet)

    for t in teachers:
        t.requires_grad_(False)
    if m.distill == "output":
        install_students()
        loss = OutputDistillLoss(unet, teachers, schedule, m.diffusion_weight)
        return TrainModel(unet, loss, "mamba", whole_unet_export(unet, export_config), lambda: unet)

    if train_all:
        raise TrainError("mode.mamba.train = all needs a loss through the whole UNet: use distill = output (or "
                         "source = scratch); layer distillation only trains the Mamba layers.")
    _freeze_all(unet)
    layer_loss = LayerDistillLoss(unet, students, schedule, m.diffusion_weight)
    for s in students:
        s.requires_grad_(True)

    def export() -> tuple[dict[str, Tensor], dict[str, str]]:
        layer_loss.student_state()
        try:
            sd = {k: v.detach() for k, v in unet.state_dict().items()}
        finally:
            layer_loss.teacher_state()
        return sd, {"format": "unianimate-unet", "config": export_config.to_json(), "trained_mode": "mamba"}

    def sampling() -> nn.Module:
        return _Swapped(unet, layer_loss)

    return TrainModel(unet, layer_loss, "mamba", export, sampling)


class _Swapped(nn.Module):
    """Calls the UNet with the student layers installed, restoring the teachers afterwards."""

    def __init__(self, unet: nn.Module, distiller: LayerDistillLoss) -> None:
        super().__init__()
        self.inner = [unet]
        self.distiller = [distiller]
        self.supports_cond_mask = True

    def forward(self, *args, **kwargs):  # noqa: ANN002, ANN003
        self.distiller[0].student_state()
        try:
            return self.inner[0](*args, **kwargs)
        finally:
            self.distiller[0].teacher_state()


def _channels(layer: nn.Module) -> int:
    norm = getattr(layer, "norm", None)
    return int(norm.num_channels)  # type: ignore[union-attr]


def _lora(cfg: TrainConfig, unet: UNetSD_UniAnimate, schedule: NoiseSchedule) -> TrainModel:
    try:
        from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    except ImportError as exc:
        raise TrainError(f"mode lora needs peft ({exc}); install it with `pip install peft` "
                         "(or the pack's `train` extra).") from exc
    from ..lora import lora_metadata, to_comfy_lora

    lc = cfg.mode.lora
    names = lora_targets(unet, lc.targets)
    if not names:
        raise TrainError(f"mode.lora.targets {lc.targets} match no layer of this UNet; see docs/training.md for "
                         "the layer names.")
    _freeze_all(unet)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 2)
        unet = inject_adapter_in_model(LoraConfig(r=lc.rank, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                  target_modules=names), unet)
    for name, p in unet.named_parameters():
        p.requires_grad_(".lora_" in name)
    loss = DiffusionLoss(unet, schedule)
    base = cfg.model.init or json.dumps(unet.config.to_dict())

    def export() -> tuple[dict[str, Tensor], dict[str, str]]:
        sd = to_comfy_lora(get_peft_model_state_dict(unet), lc.alpha)
        return sd, lora_metadata(lc.rank, lc.alpha, names, str(base))

    return TrainModel(unet, loss, "lora", export, lambda: unet)


def finalize(model: TrainModel, cfg: TrainConfig, device: torch.device) -> TrainModel:
    """Frozen weights to their storage dtype, gradient checkpointing, everything to ``device``."""
    frozen = cfg.train.frozen_dtype if cfg.train.frozen_dtype != "precision" else cfg.train.precision
    _cast_frozen(model.loss, DTYPES[frozen])
    for m in model.loss.modules():
        if isinstance(m, UNetSD_UniAnimate):
            m.gradient_checkpointing = cfg.train.gradient_checkpointing
    model.loss.to(device)
    return model
