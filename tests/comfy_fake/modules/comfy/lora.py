"""FAKE `comfy.lora` (tests only): `load_lora` for the plain LoRA layouts (lora_A/B, lora_up/down).

Returns ComfyUI's shape of result - {model key: ("lora", (up, down, alpha, mid, dora_scale, reshape))} -
without ComfyUI's adapter classes (the real-host tests run the real one).
"""
from __future__ import annotations


def load_lora(lora, to_load, log_missing=True):
    patch_dict = {}
    for x, key in to_load.items():
        for up_name, down_name in ((f"{x}.lora_B.weight", f"{x}.lora_A.weight"),
                                   (f"{x}.lora_up.weight", f"{x}.lora_down.weight")):
            if up_name in lora and down_name in lora:
                alpha = lora[f"{x}.alpha"].item() if f"{x}.alpha" in lora else None
                patch_dict[key] = ("lora", (lora[up_name], lora[down_name], alpha, None, None, None))
    return patch_dict
