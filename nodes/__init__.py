"""ComfyUI glue for UniAnimate (V3 node schema). All math lives in ``unianimate_core``.

ComfyUI imports the pack directory as a package, finds ``comfy_entrypoint`` (re-exported by the
pack's top-level ``__init__.py``) and registers the classes returned by ``get_node_list`` under
their ``node_id``. Node ids never change once shipped: saved workflows refer to them.
"""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .folders import register_model_folders
from .loader import LoadUniAnimateModel
from .long_video import LongVideoLoop
from .lora import LoadUniAnimateLora
from .native_nodes import UniAnimateConditioning
from .pose_nodes import PoseAlign, PoseExtractor
from .sampler import UniAnimateSampler

NODES: list[type[io.ComfyNode]] = [LoadUniAnimateModel, LoadUniAnimateLora, PoseExtractor, PoseAlign, UniAnimateSampler,
                                   LongVideoLoop, UniAnimateConditioning]


class UniAnimateExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> UniAnimateExtension:
    """Called once by ComfyUI at startup: register the model folders, hand over the nodes."""
    register_model_folders()
    return UniAnimateExtension()
