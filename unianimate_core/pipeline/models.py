"""Finding the model files for headless runs, in the same places the ComfyUI nodes look.

The folders and their order are the package's one model-file search
(:func:`unianimate_core.model_files.search_dirs`): ``--models DIR`` (each as itself and with the
``dwpose``, ``unianimate``, ``checkpoints``, ``clip_vision``, ``vae`` sub-folders),
``$UNIANIMATE_MODELS``, the ComfyUI this pack is installed in or ``$COMFYUI_PATH`` (its ``models``
sub-folders, older UniAnimate packs' ``checkpoints`` folders, comfyui_controlnet_aux's DWPose cache),
then ``./checkpoints`` (the official repository layout). File names and download pages come from
the one table, :data:`unianimate_core.model_files.DOWNLOADS`.

Nothing is downloaded: a missing file is reported with every searched path and where to get it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..model_files import (
    DOWNLOADS, LEGACY_PACK_PREFIX, LEGACY_SUBDIRS, MODEL_SUBDIRS, comfyui_roots, controlnet_aux_dirs, find_first,
    legacy_pack_dirs,
)
from ..model_files import search_dirs as _search_dirs

from .errors import PipelineError

UNET_NAMES = DOWNLOADS["unet"].names
OPENCLIP_NAMES = DOWNLOADS["openclip"].names
CLIP_VISION_NAMES = DOWNLOADS["clip_vision"].names
SD21_NAMES = DOWNLOADS["sd21"].names
ZERO_Y_NAME = "zero_y_openclip_vit_h14.npy"
DWPOSE_NAMES = (DOWNLOADS["dwpose_detector"].name, DOWNLOADS["dwpose_pose"].name)

__all__ = ["CLIP_VISION_NAMES", "DWPOSE_NAMES", "LEGACY_PACK_PREFIX", "LEGACY_SUBDIRS", "MODEL_SUBDIRS", "ModelFiles",
           "OPENCLIP_NAMES", "SD21_NAMES", "UNET_NAMES", "ZERO_Y_NAME", "comfyui_roots", "controlnet_aux_dirs",
           "find_first", "find_models", "legacy_pack_dirs", "search_dirs"]


def search_dirs(models: Iterable[str | os.PathLike] = (), environ: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> list[Path]:
    """Every folder searched for model files, in order (existing or not; duplicates removed)."""
    return _search_dirs(models, environ, cwd)


@dataclass
class ModelFiles:
    """The files found for a real run (None = not found) and the folders that were searched."""

    unet: Path | None = None
    clip_vision: Path | None = None
    clip_text: Path | None = None
    zero_y: Path | None = None
    vae: Path | None = None
    dwpose: tuple[Path, Path] | None = None
    searched: list[Path] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """Roles still missing for a real video (the DWPose files are optional: there are fallbacks)."""
        out = []
        if self.unet is None:
            out.append("unet")
        if self.clip_vision is None:
            out.append("clip")
        if self.zero_y is None and self.clip_text is None:
            out.append("clip text tower (or a cached zero_y)")
        if self.vae is None:
            out.append("vae")
        return out

    @property
    def complete(self) -> bool:
        return not self.missing

    def describe_missing(self) -> str:
        """One paragraph naming each missing file, where it was looked for and where to get it."""
        names = {
            "unet": f"UniAnimate UNet ({UNET_NAMES[0]}) - {DOWNLOADS['unet'].url}",
            "clip": (f"OpenCLIP ViT-H-14 ({OPENCLIP_NAMES[0]} - {DOWNLOADS['openclip'].url}, or "
                     f"{CLIP_VISION_NAMES[0]} - {DOWNLOADS['clip_vision'].url})"),
            "clip text tower (or a cached zero_y)": (
                f"the OpenCLIP-H text tower for the empty-prompt context: {OPENCLIP_NAMES[0]} or the SD 2.1 "
                f"checkpoint ({SD21_NAMES[0]}), or a cached {ZERO_Y_NAME}"),
            "vae": f"SD 2.1 VAE ({SD21_NAMES[0]}) - {DOWNLOADS['sd21'].url}",
        }
        lines = [f"  - {names[m]}" for m in self.missing]
        shown = [str(d) for d in self.searched[:12]]
        more = f" (+{len(self.searched) - 12} more)" if len(self.searched) > 12 else ""
        return ("missing model files:\n" + "\n".join(lines) + "\nsearched: " + ", ".join(shown) + more
                + "\nput them in one folder and pass --models FOLDER (or ComfyUI/models/unianimate).")


def find_models(models: Iterable[str | os.PathLike] = (), unet: str | None = None, clip: str | None = None,
                vae: str | None = None, environ: Mapping[str, str] | None = None) -> ModelFiles:
    """Locate every file of a real run; explicit ``unet``/``clip``/``vae`` paths win over the search.

    An explicit path that is not a file is an error at once (not a failure after minutes of loading).
    """
    for flag, value in (("--unet", unet), ("--clip", clip), ("--vae", vae)):
        if value and not Path(value).is_file():
            raise PipelineError(f"{flag} {value}: no such file. Give the path of an existing file, or leave "
                                f"{flag} out to search the model folders (--models DIR).")
    dirs = search_dirs(models, environ)
    found = ModelFiles(searched=dirs)
    found.unet = Path(unet) if unet else find_first(UNET_NAMES, dirs) or _any_unianimate_file(dirs)
    openclip = Path(clip) if clip else find_first(OPENCLIP_NAMES, dirs)
    sd21 = Path(vae) if vae and Path(vae).name in SD21_NAMES else find_first(SD21_NAMES, dirs)
    found.clip_vision = openclip or find_first(CLIP_VISION_NAMES, [d for d in dirs if d.name == "clip_vision"])
    if openclip is not None and openclip.name.endswith(".bin"):
        found.clip_text = openclip  # the official OpenCLIP file holds both towers
    elif sd21 is not None:
        found.clip_text = sd21
    found.zero_y = find_first((ZERO_Y_NAME,), dirs if found.unet is None else [found.unet.parent, *dirs])
    found.vae = Path(vae) if vae else sd21
    det, pose = (find_first((n,), dirs) for n in DWPOSE_NAMES)
    found.dwpose = (det, pose) if det is not None and pose is not None else None
    return found


def _any_unianimate_file(dirs: Sequence[Path]) -> Path | None:
    """Any ``unianimate*`` checkpoint in a ``unianimate`` folder (e.g. a converted/renamed file)."""
    suffixes = {".pth", ".pt", ".ckpt", ".safetensors"}
    for d in dirs:
        if d.name != "unianimate" or not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.is_file() and p.suffix.lower() in suffixes and p.name.lower().startswith("unianimate"):
                return p
    return None
