"""The training objective: v-prediction MSE on the zero-terminal-SNR schedule, condition dropping,
and the two Mamba distillation targets.

Recipe (docs/official_behaviour.md#condition-drops and #schedule, and the UniAnimate paper, arXiv 2406.01188;
what is unknown is chosen and documented in docs/training.md):

* ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise`` with the official schedule (``NoiseSchedule.unianimate``:
  linear_sd 0.00085..0.012, 1000 steps, zero terminal SNR) and offset noise in ``noise``;
* target ``v = sqrt(ab_t) noise - sqrt(1 - ab_t) x0``; loss = mean squared error per sample;
* condition drop-path: per sample, the CLIP image tokens, the driving-pose features and the
  first-frame features are zeroed independently (p 0.5 each); 10 % of samples drop all (the
  unconditional branch of guidance, by default including the reference slot exactly as the
  inference's unconditional pass), 10 % keep all. Features are zeroed *after* their embedders
  (a zero input would still add the embedders' biases), through forward hooks, so the UNet code is
  untouched.

Every loss module takes a batch already on the device and returns the loss per sample ``(B,)``;
the trainer wraps it in DistributedDataParallel.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..diffusion.schedule import NoiseSchedule


def v_target(schedule: NoiseSchedule, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """``sqrt(ab_t) * noise - sqrt(1 - ab_t) * x0`` (schedule values gathered in float64, then cast)."""
    return (schedule.gather(schedule.sqrt_alphas_cumprod, t, noise) * noise
            - schedule.gather(schedule.sqrt_one_minus_alphas_cumprod, t, noise) * x0)


def per_sample_mse(pred: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)


class ConditionDrop:
    """Per-sample keep masks on the condition *features*, set around one forward.

    Hooks: ``pre_image_condition`` output (B, tokens*C); ``dwpose_embedding_after`` and
    ``local_image_embedding_after`` outputs (B*h*w, F, C) whose rows are batch-major. ``masks``:
    (B, 3) bool for [image, pose, first frame]; rows where ``cond`` is False are handled by the
    UNet's own ``cond_mask`` (every condition and the reference slot dropped).
    """

    def __init__(self, unet: nn.Module) -> None:
        self.masks: Optional[Tensor] = None
        self.handles = [
            unet.pre_image_condition.register_forward_hook(self._hook(0)),
            unet.dwpose_embedding_after.register_forward_hook(self._hook(1)),
            unet.local_image_embedding_after.register_forward_hook(self._hook(2)),
        ]

    def _hook(self, slot: int) -> Any:
        def hook(module: nn.Module, args: Any, out: Tensor) -> Optional[Tensor]:
            if self.masks is None:
                return None
            keep = self.masks[:, slot]
            b = keep.shape[0]
            shaped = out.reshape(b, -1)
            return (shaped * keep.to(out.dtype).view(b, 1)).reshape(out.shape)

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def model_inputs(batch: dict[str, Tensor], schedule: NoiseSchedule, frames: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """(x_t, t, UNet keyword arguments incl. ``cond_mask``) of a device batch (see dataset.py)."""
    x0, noise, t = batch["x0"], batch["noise"], batch["t"]
    x_t = schedule.q_sample(x0, t, noise)
    local = batch["local_image"].float().div(255.0).expand(-1, -1, frames, -1, -1)
    kwargs = {
        "image": batch["image"].float(),
        "dwpose": batch["dwpose"].float().div(255.0),
        "randomref": batch["randomref"].float(),
        "local_image": local,
        "cond_mask": batch["keep"][:, 0],
    }
    return x_t, t.to(x_t.device), kwargs


class DiffusionLoss(nn.Module):
    """The plain objective (modes full / temporal / lora / mamba from scratch)."""

    def __init__(self, unet: nn.Module, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.unet = unet
        self.schedule = schedule
        self.drop = ConditionDrop(unet)

    def predict(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        frames = batch["x0"].shape[2]
        x_t, t, kwargs = model_inputs(batch, self.schedule, frames)
        self.drop.masks = batch["keep"][:, 1:]
        try:
            pred = self.unet(x_t, t, **kwargs)
        finally:
            self.drop.masks = None
        return pred, v_target(self.schedule, batch["x0"], batch["noise"], batch["t"])

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        pred, target = self.predict(batch)
        return per_sample_mse(pred, target)


# ------------------------------------------------------------------------------------------ Mamba
def temporal_slots(unet: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every temporal layer, in module order."""
    from ..mamba.layer import TemporalMamba
    from ..unet.transformer import TemporalTransformer

    slots = []
    for parent in unet.modules():
        for name, child in parent.named_children():
            if isinstance(child, (TemporalTransformer, TemporalMamba)):
                slots.append((parent, name))
    return slots


def install(slots: list[tuple[nn.Module, str]], layers: list[nn.Module]) -> None:
    for (parent, name), layer in zip(slots, layers):
        setattr(parent, name, layer)


class LayerDistillLoss(nn.Module):
    """Each Mamba layer learns to reproduce its attention layer on the teacher's own activations.

    One teacher forward (no gradients through the UNet); at every temporal layer a hook runs the
    matching student on the same input and adds ``mse(student(x), teacher(x))`` per sample. With
    ``diffusion_weight`` > 0 a student forward with the ordinary diffusion loss is added.
    """

    def __init__(self, unet: nn.Module, students: list[nn.Module], schedule: NoiseSchedule,
                 diffusion_weight: float = 0.0) -> None:
        super().__init__()
        self.unet = unet
        self.students = nn.ModuleList(students)
        self.schedule = schedule
        self.diffusion_weight = float(diffusion_weight)
        self.drop = ConditionDrop(unet)
        self.slots = temporal_slots(unet)
        self.teachers = [getattr(p, n) for p, n in self.slots]
        self._losses: list[Tensor] = []
        self._handles = [t.register_forward_hook(self._hook(i)) for i, t in enumerate(self.teachers)]
        self._active = False

    def _hook(self, i: int) -> Any:
        def hook(module: nn.Module, args: Any, out: Tensor) -> None:
            if not self._active:
                return
            with torch.enable_grad():
                pred = self.students[i](args[0].detach())
                self._losses.append(per_sample_mse(pred, out.detach()))

        return hook

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        frames = batch["x0"].shape[2]
        x_t, t, kwargs = model_inputs(batch, self.schedule, frames)
        self.drop.masks = batch["keep"][:, 1:]
        self._losses, self._active = [], True
        try:
            with torch.no_grad():
                self.unet(x_t, t, **kwargs)
        finally:
            self._active = False
        loss = torch.stack(self._losses).mean(0)
        self._losses = []
        if self.diffusion_weight > 0:
            install(self.slots, list(self.students))
            try:
                pred = self.unet(x_t, t, **kwargs)
            finally:
                install(self.slots, self.teachers)
            loss = loss + self.diffusion_weight * per_sample_mse(pred, v_target(self.schedule, batch["x0"],
                                                                                 batch["noise"], batch["t"]))
        self.drop.masks = None
        return loss

    def student_state(self) -> None:
        """Put the students into the UNet for good (export / sampling)."""
        install(self.slots, list(self.students))

    def teacher_state(self) -> None:
        install(self.slots, self.teachers)


class OutputDistillLoss(nn.Module):
    """The student UNet (Mamba layers installed) learns the teacher UNet's v-prediction.

    The teacher is the same UNet with its attention layers swapped back in for one no-grad forward.
    """

    def __init__(self, unet: nn.Module, teachers: list[nn.Module], schedule: NoiseSchedule,
                 diffusion_weight: float = 0.0) -> None:
        super().__init__()
        self.unet = unet
        self.teachers = nn.ModuleList(teachers)
        self.schedule = schedule
        self.diffusion_weight = float(diffusion_weight)
        self.drop = ConditionDrop(unet)
        self.slots = temporal_slots(unet)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        frames = batch["x0"].shape[2]
        x_t, t, kwargs = model_inputs(batch, self.schedule, frames)
        self.drop.masks = batch["keep"][:, 1:]
        students = [getattr(p, n) for p, n in self.slots]
        try:
            install(self.slots, list(self.teachers))
            with torch.no_grad():
                target = self.unet(x_t, t, **kwargs)
            install(self.slots, students)
            pred = self.unet(x_t, t, **kwargs)
        finally:
            install(self.slots, students)
            self.drop.masks = None
        loss = per_sample_mse(pred, target)
        if self.diffusion_weight > 0:
            loss = loss + self.diffusion_weight * per_sample_mse(
                pred, v_target(self.schedule, batch["x0"], batch["noise"], batch["t"]))
        return loss
