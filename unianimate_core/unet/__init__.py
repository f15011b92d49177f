"""The UniAnimate 3D UNet (official state-dict layout)."""
from .model import UNetSD_UniAnimate
from .resblock import ResBlock, TemporalConvBlock
from .transformer import SpatialTransformer, TemporalTransformer

__all__ = ["UNetSD_UniAnimate", "ResBlock", "TemporalConvBlock", "SpatialTransformer", "TemporalTransformer"]
