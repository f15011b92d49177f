"""Combo values of the nodes: short stable keys, plus the display labels older workflows saved.

A combo's value is what a workflow stores, so it is a short key that never changes ("unianimate",
"openpose"); what each key means is in the input's tooltip. Before the keys, the colour combos
stored long labels (and the two nodes used different labels for the same choice). Saved workflows
with those labels keep loading and running: a node that has such a combo names it in
``validate_inputs``, which makes ComfyUI leave the list check to the node (ComfyUI skips its own
"value not in list" check for every input a ``validate_inputs`` takes), and :func:`resolve` maps an
old label to its key before the node runs.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from ..unianimate_core.errors import InputError
from ..unianimate_core.pipeline.conditioning import size_problem

#: Pose colour conventions: the R/B-swapped colours UniAnimate was trained on, or standard OpenPose.
COLOR_KEYS = ("unianimate", "openpose")
COLOR_LEGACY = {
    "UniAnimate (as rendered by this pack)": "unianimate",  # UniAnimate Sampler / Long Video Loop
    "OpenPose (other packs, e.g. controlnet_aux)": "openpose",
    "UniAnimate (trained colours)": "unianimate",  # Pose Extractor / Pose Align
    "OpenPose (standard colours)": "openpose",
}
#: The multiple every output size must be (released model: VAE factor 8 x 2**3 UNet halvings).
SIZE_MULTIPLE = 64
MAX_SIZE = 4096


def problem(name: str, value: Any, keys: tuple[str, ...], legacy: Mapping[str, str]) -> Optional[str]:
    """The validation message for a combo value (None = fine, also for an old label)."""
    if value is None or value in keys or value in legacy:
        return None
    return f"{name} = {value!r} is not one of {', '.join(keys)}."


def resolve(name: str, value: Any, keys: tuple[str, ...], legacy: Mapping[str, str]) -> str:
    """The key for ``value`` (an old label becomes its key); anything else is an InputError."""
    if value in keys:
        return value
    if value in legacy:
        return legacy[value]
    raise InputError(f"{name} must be one of {', '.join(keys)}; got {value!r}.")


def color_problem(name: str, value: Any) -> Optional[str]:
    return problem(name, value, COLOR_KEYS, COLOR_LEGACY)


def color_key(name: str, value: Any) -> str:
    return resolve(name, value, COLOR_KEYS, COLOR_LEGACY)


def size_problems(width: Any = None, height: Any = None, max_size: int = MAX_SIZE) -> list[str]:
    """Messages for a widget width/height that cannot be used (None = linked: checked at run time)."""
    out = []
    for name, value in (("width", width), ("height", height)):
        if value is None:
            continue
        msg = size_problem(name, value, SIZE_MULTIPLE)
        if msg is None and value > max_size:
            msg = f"{name} = {value} is above the maximum of {max_size} pixels."
        if msg:
            out.append(msg)
    return out


def verdict(problems: list[Optional[str]]) -> bool | str:
    """What ``validate_inputs`` returns: True, or every problem in one text (each names its input).

    ComfyUI shows the text under every input the node's ``validate_inputs`` takes, so each message
    starts with the name of the input it is about.
    """
    found = [p for p in problems if p]
    return True if not found else " ".join(found)
