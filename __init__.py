"""ComfyUI-UniAnimate: one reference photo + a driving pose sequence -> a video of that person moving.

ComfyUI imports this directory as a package and calls ``comfy_entrypoint()`` (V3 node API). The
pack deliberately defines no ``NODE_CLASS_MAPPINGS``: ComfyUI ignores ``comfy_entrypoint`` when
that name exists. The nodes are in ``nodes/``; the model, sampler and pose code in
``unianimate_core/`` (usable without ComfyUI).

Outside ComfyUI (e.g. pytest collecting the repository, which imports this file as a package) there
is nothing to register, so the node modules are only imported when ComfyUI's ``comfy`` package is
importable.
"""
import importlib.util

if importlib.util.find_spec("comfy") is not None:
    from .nodes import comfy_entrypoint

    __all__ = ["comfy_entrypoint"]
