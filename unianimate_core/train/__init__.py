"""Training and fine-tuning of the UniAnimate UNet (headless; ComfyUI is not needed).

``python -m unianimate_core train CONFIG`` runs :func:`train` on a JSON config (docs/training.md):
data preparation with caching, the diffusion objective with condition dropping, the modes
full / temporal / mamba / lora, mixed precision, gradient checkpointing, EMA, gradient
accumulation, torchrun data parallelism, atomic resumable checkpoints, loss plots and validation
clips. Every module here imports torch lazily enough to keep ``import unianimate_core`` light.
"""
from .config import TrainConfig, load_config, parse_config
from .errors import DataError, TrainConfigError, TrainError

__all__ = ["TrainConfig", "load_config", "parse_config", "train", "DataError", "TrainConfigError", "TrainError"]


def train(cfg, log=print, stream=None):  # noqa: ANN001, ANN201 - thin lazy wrapper
    """Run a training; see :func:`unianimate_core.train.trainer.train`."""
    from .trainer import train as _train

    return _train(cfg, log, stream)
