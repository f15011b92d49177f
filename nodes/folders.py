"""Where the pack looks for model files: ComfyUI's ``folder_paths`` registry, filled from the core's
one model-file search (``unianimate_core.model_files``).

Two folder names are registered (once, from ``comfy_entrypoint``):

* ``unianimate`` - the UNet checkpoints (``models/unianimate`` by default), plus the model folders of
  installed older UniAnimate packs (``custom_nodes/ComfyUI-UniAnimate*``: ``checkpoints/``,
  ``UniAnimate/checkpoints/``, ``checkpoints/iic/unianimate/``). Users can add folders with
  ``extra_model_paths.yaml`` (``unianimate: path``); ComfyUI applies that file before packs load,
  so an existing entry is extended, never replaced.
* ``dwpose`` - the DWPose ONNX files (``models/dwpose`` by default), then exactly the folders and the
  order of the core's search below this ComfyUI (``model_files.comfyui_dirs``): ``models/{dwpose,
  unianimate, checkpoints, clip_vision, vae}``, the older packs' folders and comfyui_controlnet_aux's
  download cache (``ckpts/yzd-v/DWPose``, or ``$AUX_ANNOTATOR_CKPTS_PATH/yzd-v/DWPose``).

The command line searches the same folders in the same order (``model_files.search_dirs``), so nodes
and command line find the same files; legacy and controlnet_aux folders are registered when they
exist at startup. A new folder entry gets ComfyUI's model extensions; ComfyUI's own
``add_model_folder_path`` would create it with an empty extension set, which means "list every
file" (README.txt included).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import folder_paths

from ..unianimate_core.model_files import comfyui_dirs, legacy_pack_dirs

UNET_FOLDER = "unianimate"
POSE_FOLDER = "dwpose"
POSE_EXTENSIONS = {".onnx"}


def register_model_folders() -> None:
    """Register ``unianimate`` and ``dwpose`` (idempotent: safe to call more than once)."""
    models_dir = folder_paths.models_dir
    _ensure_folder(UNET_FOLDER, os.path.join(models_dir, UNET_FOLDER), folder_paths.supported_pt_extensions)
    for legacy in legacy_unet_dirs():
        folder_paths.add_model_folder_path(UNET_FOLDER, legacy)
    _ensure_folder(POSE_FOLDER, os.path.join(models_dir, POSE_FOLDER), POSE_EXTENSIONS)
    below_models = [str(d) for d in comfyui_dirs(models_dir, None)]
    elsewhere = _existing(d for root in _custom_node_roots() for d in comfyui_dirs(None, root))
    for extra in [*below_models, *elsewhere]:
        folder_paths.add_model_folder_path(POSE_FOLDER, extra)


def _ensure_folder(name: str, default_dir: str, extensions: Iterable[str]) -> None:
    """Create ``name`` with ``default_dir`` and ``extensions``, or extend an existing entry."""
    if name not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[name] = ([default_dir], set(extensions))
        return
    paths, exts = folder_paths.folder_names_and_paths[name]
    if default_dir not in paths:
        paths.append(default_dir)
    folder_paths.folder_names_and_paths[name] = (paths, set(exts) | set(extensions))


def _custom_node_roots() -> list[Path]:
    return [Path(d) for d in searched_folders("custom_nodes")]


def _existing(dirs: Iterable[Path]) -> list[str]:
    out: list[str] = []
    for d in dirs:
        if d.is_dir() and str(d) not in out:
            out.append(str(d))
    return out


def legacy_unet_dirs() -> list[str]:
    """Model folders of installed older UniAnimate packs (any ``ComfyUI-UniAnimate*`` directory)."""
    return _existing(d for root in _custom_node_roots() for d in legacy_pack_dirs(root))


def searched_folders(name: str) -> list[str]:
    """The folders a file of kind ``name`` is looked up in, for error messages."""
    try:
        return folder_paths.get_folder_paths(name)
    except KeyError:
        return []


def unet_files() -> list[str]:
    """UNet checkpoint names for the loader's combo box; likely UniAnimate files first."""
    names = folder_paths.get_filename_list(UNET_FOLDER)
    return sorted(names, key=lambda n: ("unianimate" not in n.lower(), n.lower()))


def pose_files() -> list[str]:
    return folder_paths.get_filename_list(POSE_FOLDER)
