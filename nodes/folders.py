"""Where the pack looks for model files: ComfyUI's ``folder_paths`` registry plus legacy locations.

Two folder names are registered (once, from ``comfy_entrypoint``):

* ``unianimate`` - the UNet checkpoints (``models/unianimate`` by default). Users can add folders
  with ``extra_model_paths.yaml`` (``unianimate: path``); ComfyUI applies that file before packs load,
  so an existing entry is extended, never replaced. Legacy folders: where an older UniAnimate pack
  (``custom_nodes/ComfyUI-UniAnimate*``) keeps ``unianimate_16f_32f_non_ema_223000.pth``
  (``checkpoints/``, ``UniAnimate/checkpoints/``, ``checkpoints/iic/unianimate/``).
* ``dwpose`` - the DWPose ONNX files ``yolox_l.onnx`` and ``dw-ll_ucoco_384.onnx``
  (``models/dwpose`` by default). Also searched: ``models/unianimate``, ``models/checkpoints``, the
  legacy folders above and comfyui_controlnet_aux's download cache (``ckpts/yzd-v/DWPose``, or
  ``$AUX_ANNOTATOR_CKPTS_PATH/yzd-v/DWPose``).

The legacy and controlnet_aux folders are the ones the headless pipeline searches
(``unianimate_core.pipeline.models``), so nodes and command line find the same files; only folders
that exist at startup are registered. A new folder entry gets ComfyUI's model extensions; ComfyUI's
own ``add_model_folder_path`` would create it with an empty extension set, which means "list every
file" (README.txt included).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import folder_paths

from ..unianimate_core.pipeline.models import controlnet_aux_dirs, legacy_pack_dirs

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
    shared = [os.path.join(models_dir, UNET_FOLDER), os.path.join(models_dir, "checkpoints")]
    for extra in [*shared, *legacy_unet_dirs(), *_existing(d for root in _custom_node_roots()
                                                           for d in controlnet_aux_dirs(root))]:
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
