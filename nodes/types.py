"""Socket types shared by the nodes, and the payload of the UNIANIMATE_MODEL socket."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from comfy_api.latest import io

#: The loaded UniAnimate UNet (a :class:`UniAnimateModel`).
UniAnimateModelType = io.Custom("UNIANIMATE_MODEL")
#: Pose keypoints in comfyui_controlnet_aux's format (a list with one dict per frame), so poses flow
#: between this pack, controlnet_aux's DWPose Estimator and pose editors.
PoseKeypoint = io.Custom("POSE_KEYPOINT")


@dataclass(frozen=True)
class UniAnimateModel:
    """What LoadUniAnimateModel hands to the samplers.

    patcher: ComfyUI ``ModelPatcher`` around the UNet (``patcher.model`` is the ComfyUI BaseModel,
        ``patcher.model.diffusion_model`` the ``UNetSD_UniAnimate``); ComfyUI's memory manager
        (``load_models_gpu``) moves it to the GPU for sampling and offloads it afterwards, together
        with the VAE, CLIP vision and any other model in the workflow.
    zero_y: (1, 77, 1024) float32 CPU - the empty-prompt OpenCLIP text context the UNet attends to.
    source: the checkpoint file it came from (for messages).
    compute_dtype: dtype the UNet computes in (= weight dtype unless ComfyUI asked for manual casting).
    """

    patcher: Any
    zero_y: torch.Tensor
    source: str
    compute_dtype: torch.dtype

    @property
    def unet(self) -> Any:
        return self.patcher.model.diffusion_model

    @property
    def config(self) -> Any:
        return self.unet.config

    @property
    def weight_dtype(self) -> torch.dtype:
        return self.unet.time_embed[0].weight.dtype
