"""ComfyUI-UniAnimate: one reference photo + a driving pose sequence -> a video of that person moving.

ComfyUI imports this directory as a package and calls ``comfy_entrypoint()`` (V3 node API). The
pack deliberately defines no ``NODE_CLASS_MAPPINGS``: ComfyUI ignores ``comfy_entrypoint`` when
that name exists. The nodes are in ``nodes/``; the model, sampler and pose code in
``unianimate_core/`` (usable without ComfyUI). ``WEB_DIRECTORY`` serves the nodes' help pages
(``web/docs/<node id>/en.md``, the frontend's "?" button).

Outside ComfyUI (e.g. pytest collecting the repository, which imports this file as a package) there
is nothing to register. ComfyUI is recognised by what it has already imported before it loads any
custom node - its V3 API (``comfy_api.latest`` with ``ComfyExtension``), ``comfy.model_management``
and ``folder_paths`` - not by whether some folder named ``comfy`` is importable (a stray ``comfy/``
next to the checkout would make that test lie).
"""
import sys

WEB_DIRECTORY = "./web"


def _loaded_by_comfyui() -> bool:
    api = sys.modules.get("comfy_api.latest")
    return (api is not None and hasattr(api, "ComfyExtension") and "comfy.model_management" in sys.modules
            and "folder_paths" in sys.modules)


if _loaded_by_comfyui():
    from .nodes import comfy_entrypoint

    __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
