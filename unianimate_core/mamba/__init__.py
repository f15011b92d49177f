"""Temporal Mamba: a state-space replacement for the UNet's temporal transformers.

Public API:
* ``MambaConfig`` - hyper-parameters (mamba-ssm defaults) and backend switch.
* ``MambaMixer`` - Mamba-1 mixer with mamba-ssm's parameter names (weights interchangeable).
* ``TemporalMamba(channels, config, operations=None, device=None, dtype=None)`` - the UNet layer,
  (B, C, F', h, w) -> same shape, identity when freshly built.
* ``convert_temporal_to_mamba(model, config)``, ``is_mamba_state_dict(sd)``,
  ``mamba_config_from_state_dict(sd)`` - conversion and checkpoint recognition.
* ``selective_scan`` - the pure-PyTorch scan (inference in place, autograd with recomputation).
"""
from .config import MambaConfig
from .convert import convert_temporal_to_mamba, is_mamba_state_dict, mamba_config_from_state_dict
from .errors import MambaBackendError, MambaConfigError, MambaError, MambaInputError
from .fused import load_fused_kernels
from .layer import MambaBlock, TemporalMamba
from .mixer import MambaMixer
from .scan import selective_scan

__all__ = [
    "MambaConfig", "MambaMixer", "MambaBlock", "TemporalMamba", "selective_scan",
    "convert_temporal_to_mamba", "is_mamba_state_dict", "mamba_config_from_state_dict",
    "load_fused_kernels", "MambaError", "MambaConfigError", "MambaInputError",
    "MambaBackendError",
]
