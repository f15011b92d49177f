"""Temporal Mamba: a state-space replacement for the UNet's temporal transformers."""
from .config import MambaConfig, MambaConfigError

__all__ = ["MambaConfig", "MambaConfigError"]
