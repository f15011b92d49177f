"""A synthetic animation world with exact ground truth, and the stand-ins that let UniAnimate train on it.

    from unianimate_core.toyworld import World, WorldConfig, load_toy_codec, ToyImageEncoder
    world = World(WorldConfig(width=128, height=128, frames=16))
    clip = world.clip("train", 0)       # frames, reference, poses, keypoints, limb masks
    codec = load_toy_codec()            # LatentCodec: the SD VAE's exact stand-in (8x, 4 channels)
    clip_encoder = ToyImageEncoder()    # ImageEncoder: the OpenCLIP stand-in (identity embedding)

See docs/observatory.md. Pure numpy/PyTorch + OpenCV (for drawing); never imports ComfyUI.
"""
from .character import LIMB_HUES, LIMBS, CharacterSpec, sample_character
from .clip import ToyImageEncoder
from .codec import BlockCodec, load_toy_codec
from .conditioning import clip_conditions, decode_latents, encode_frames
from .dataset import ToyWorldDataset
from .detector import Detection, detect, detect_frames, limb_masks
from .errors import ToyWorldError
from .generate import GenerateOptions, generate
from .motion import Motion
from .world import REFERENCE_RULES, SPLITS, ToyClip, World, WorldConfig, nth_id, split_of

__all__ = [
    "BlockCodec", "CharacterSpec", "Detection", "GenerateOptions", "generate", "LIMBS", "LIMB_HUES", "Motion", "REFERENCE_RULES", "SPLITS",
    "ToyClip", "ToyImageEncoder", "ToyWorldDataset", "ToyWorldError", "World", "WorldConfig",
    "clip_conditions", "decode_latents", "detect", "detect_frames", "encode_frames", "limb_masks", "load_toy_codec",
    "nth_id", "sample_character", "split_of",
]
