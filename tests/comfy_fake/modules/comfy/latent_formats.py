"""FAKE `comfy.latent_formats` (tests only): the SD1.x/2.x latent format the nodes preview with."""
from __future__ import annotations


class LatentFormat:
    scale_factor = 1.0
    latent_channels = 4
    latent_dimensions = 2
    latent_rgb_factors = None
    latent_rgb_factors_bias = None
    latent_rgb_factors_reshape = None
    taesd_decoder_name = None

    def process_in(self, latent):
        return latent * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor


class SD15(LatentFormat):
    def __init__(self, scale_factor=0.18215):
        self.scale_factor = scale_factor
        # Placeholder linear latent->RGB map (the real factors are not needed by the tests).
        self.latent_rgb_factors = [[0.3, 0.2, 0.3], [0.3, 0.5, 0.2], [-0.3, 0.2, 0.3], [-0.2, -0.3, -0.7]]
        self.taesd_decoder_name = "taesd_decoder"
