"""FAKE `comfy_api.latest`: only the parts the UniAnimate nodes use (`io`, `ComfyExtension`).

Mirrors ComfyUI v0.8.0 `comfy_api/latest/__init__.py`: `io` is a module of V3 schema classes and
`ComfyExtension` is an ABC whose async `get_node_list()` returns node classes. Written for the
tests from the public signatures; it contains no ComfyUI code.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from . import _io as io

IO = io


class ComfyExtension(ABC):
    """Same contract as the real class: ComfyUI awaits `on_load()` then `get_node_list()`."""

    async def on_load(self) -> None:
        """Called once when the extension is loaded."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """Return the V3 node classes this extension provides."""


__all__ = ["ComfyExtension", "io", "IO"]
