"""The tiny UniAnimate UNet of the golden fixtures, regenerated from its seeded recipe.

The official code's fixtures were computed with ``unet_tiny.safetensors`` (25 MB); instead of
committing it, the weights are regenerated here from the recipe its generator documented and checked
against the sha256 recorded with it (``tests/fixtures/unet_tiny_weights.json``). The key order comes
from the full model's manifest (the tiny config has the same keys minus one identity skip), so the
regeneration does not depend on our own model's registration order.
"""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).parent / "fixtures"
CACHE = Path(__file__).parent / ".cache"
TINY_FILE = CACHE / "unet_tiny.safetensors"


def tiny_recipe() -> dict:
    return json.loads((FIXTURES / "unet_tiny_weights.json").read_text())


def tiny_keys_and_shapes() -> list[tuple[str, list[int]]]:
    """Official state-dict order of the tiny model with its shapes."""
    from unianimate_core.config import UNetConfig
    from unianimate_core.unet import UNetSD_UniAnimate

    recipe = tiny_recipe()
    full_order = [k for k, _ in json.loads((FIXTURES / "unet_full_manifest.json").read_text())["keys"]]
    dropped = set(recipe["keys_absent_from_full_manifest"])
    order = [k for k in full_order if k not in dropped]
    # shapes of the tiny config from a meta-device build (costs no memory)
    meta = UNetSD_UniAnimate(UNetConfig.tiny(), device="meta").state_dict()
    return [(k, list(meta[k].shape)) for k in order]


def regenerate_tiny_state_dict(seed: Optional[int] = None) -> dict[str, torch.Tensor]:
    """Apply the documented recipe, key by key in state-dict order (fp16 values)."""
    recipe = tiny_recipe()
    seed = recipe["weight_seed"] if seed is None else seed
    keys = tiny_keys_and_shapes()
    one_d_weights = {k for k, s in keys if k.endswith(".weight") and len(s) == 1}
    out: dict[str, torch.Tensor] = {}
    for key, shape in keys:
        g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63 - 1))
        z = torch.randn(shape, generator=g, dtype=torch.float32)
        if key in one_d_weights:
            v = 1 + 0.1 * z
        elif key.endswith(".bias"):
            v = 0.1 * z if key[: -len(".bias")] + ".weight" in one_d_weights else 0.05 * z
        else:
            v = z / math.sqrt(math.prod(shape[1:]))
        out[key] = v.to(torch.float16)
    return out


def state_dict_sha256(sd: dict[str, torch.Tensor]) -> str:
    """The fixture generator's checksum: key, dtype string, shape string, raw bytes, in order."""
    h = hashlib.sha256()
    for key, t in sd.items():
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(list(t.shape)).encode())
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def tiny_checkpoint_path() -> Path:
    """Regenerate (once, cached under tests/.cache) and verify the tiny checkpoint; return its path."""
    expected = tiny_recipe()["sha256"]
    if TINY_FILE.exists():
        return TINY_FILE
    sd = regenerate_tiny_state_dict()
    got = state_dict_sha256(sd)
    if got != expected:
        raise AssertionError(f"regenerated tiny UNet sha256 {got} != recorded {expected}")
    CACHE.mkdir(exist_ok=True)
    tmp = TINY_FILE.with_suffix(".tmp")
    save_file(sd, str(tmp), metadata={"format": "unianimate-unet", "config": _tiny_config_json()})
    tmp.replace(TINY_FILE)
    return TINY_FILE


def _tiny_config_json() -> str:
    from unianimate_core.config import UNetConfig

    return UNetConfig.tiny().to_json()


def tiny_zero_y() -> torch.Tensor:
    return load_file(str(FIXTURES / "unet_tiny_cases.safetensors"))["zero_y"]


def load_tiny_unet(dtype: torch.dtype = torch.float32):
    """The tiny fixture UNet in eval mode with the fixtures' stand-in ``zero_y``."""
    from unianimate_core.checkpoint import load_unet

    model = load_unet(tiny_checkpoint_path(), dtype=dtype)
    model.set_zero_y(tiny_zero_y())
    return model.eval()
