"""UniAnimate core: pure PyTorch, usable without ComfyUI.

    from unianimate_core import UNetConfig, load_unet
    model = load_unet("unianimate_16f_32f_non_ema_223000.pth", dtype="fp16", device="cuda")

Sub-packages: ``unet`` (the model), ``diffusion`` (sampling), ``pose`` (DWPose, rendering,
alignment), ``mamba`` (temporal state-space layers), ``pipeline`` (headless use / CLI).
"""
from .checkpoint import load_unet, read_state_dict
from .config import UNetConfig
from .errors import CheckpointError, InputError, UniAnimateError

__version__ = "0.1.0"

__all__ = ["UNetConfig", "load_unet", "read_state_dict", "UniAnimateError", "CheckpointError", "InputError", "__version__"]
