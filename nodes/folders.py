"""Where the pack looks for model files: ComfyUI's ``folder_paths`` registry plus legacy locations.

Two folder names are registered (once, from ``comfy_entrypoint``):

* ``unianimate`` - the UNet checkpoints (``models/unianimate`` by default). Users can add folders
  with ``extra_model_paths.yaml`` (``unianimate: path``); ComfyUI applies that file before packs load,
  so an existing entry is extended, never replaced. Legacy folder: ``checkpoints/`` of an older
  UniAnimate pack (``custom_nodes/ComfyUI-UniAnimate*/checkpoints``), where existing users keep
  ``unianimate_16f_32f_non_ema_223000.pth``.
* ``dwpose`` - the DWPose ONNX files ``yolox_l.onnx`` and ``dw-ll_ucoco_384.onnx``
  (``models/dwpose`` by default). Also searched: ``models/unianimate``, the legacy pack's
  ``checkpoints/`` and comfyui_controlnet_aux's download cache ``ckpts/yzd-v/DWPose``.

A new folder entry gets ComfyUI's model extensions; ComfyUI's own ``add_model_folder_path`` would
create it with an empty extension set, which means "list every file" (README.txt included).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

import folder_paths

log = logging.getLogger("UniAnimate")

UNET_FOLDER = "unianimate"
POSE_FOLDER = "dwpose"
POSE_EXTENSIONS = {".onnx"}
LEGACY_PACK_PREFIX = "comfyui-unianimate"
CONTROLNET_AUX_DWPOSE = ("ckpts", "yzd-v", "DWPose")


def register_model_folders() -> None:
    """Register ``unianimate`` and ``dwpose`` (idempotent: safe to call more than once)."""
    models_dir = folder_paths.models_dir
    _ensure_folder(UNET_FOLDER, os.path.join(models_dir, UNET_FOLDER), folder_paths.supported_pt_extensions)
    for legacy in legacy_unet_dirs():
        folder_paths.add_model_folder_path(UNET_FOLDER, legacy)
    _ensure_folder(POSE_FOLDER, os.path.join(models_dir, POSE_FOLDER), POSE_EXTENSIONS)
    for extra in [os.path.join(models_dir, UNET_FOLDER), *legacy_unet_dirs(), *controlnet_aux_dwpose_dirs()]:
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


def _custom_node_dirs() -> list[Path]:
    try:
        roots = folder_paths.get_folder_paths("custom_nodes")
    except KeyError:
        return []
    found = []
    for root in roots:
        try:
            found.extend(p for p in sorted(Path(root).iterdir()) if p.is_dir())
        except OSError:
            continue
    return found


def legacy_unet_dirs() -> list[str]:
    """``checkpoints/`` folders of older UniAnimate packs (any ``ComfyUI-UniAnimate*`` directory)."""
    return [str(d / "checkpoints") for d in _custom_node_dirs()
            if d.name.lower().startswith(LEGACY_PACK_PREFIX) and (d / "checkpoints").is_dir()]


def controlnet_aux_dwpose_dirs() -> list[str]:
    """comfyui_controlnet_aux's DWPose download cache, if that pack is installed and has used it."""
    return [str(d.joinpath(*CONTROLNET_AUX_DWPOSE)) for d in _custom_node_dirs()
            if "controlnet_aux" in d.name.lower() and d.joinpath(*CONTROLNET_AUX_DWPOSE).is_dir()]


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


def find_pose_file(filename: str) -> str | None:
    """Full path of a DWPose file by name (e.g. ``yolox_l.onnx``) in the ``dwpose`` folders."""
    direct = folder_paths.get_full_path(POSE_FOLDER, filename)
    if direct:
        return direct
    for name in pose_files():
        if os.path.basename(name) == filename:
            return folder_paths.get_full_path(POSE_FOLDER, name)
    return None
