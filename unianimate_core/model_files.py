"""Where model files come from and where they are looked for - the one table and the one search.

Every message that names a download page, every tooltip and every search (the command line, the
DWPose loader, the ComfyUI folder registration in ``nodes/folders.py``) reads this module, so a
moved download or a new legacy folder is changed in one place.

:data:`DOWNLOADS` - one row per file role: accepted file names (the first is the one to download),
the download page, the ComfyUI ``models`` sub-folder it belongs in and what it is.

:func:`search_dirs` - the folders searched, in order (first hit wins):

1. folders the caller names (``--models DIR`` on the command line; the DWPose loader's
   ``extra_dirs``), each as itself and with the sub-folders :data:`MODEL_SUBDIRS`;
2. ``$UNIANIMATE_MODELS`` (same layout, ``os.pathsep``-separated);
3. below each ComfyUI root (``$COMFYUI_PATH``, the ComfyUI this pack is installed in, or the
   ``models_dir`` / ``custom_nodes_dir`` a caller passes): ``models/<MODEL_SUBDIRS>``, the model
   folders of older UniAnimate packs (:func:`legacy_pack_dirs`) and comfyui_controlnet_aux's DWPose
   cache (:func:`controlnet_aux_dirs`, ``$AUX_ANNOTATOR_CKPTS_PATH`` first);
4. ``./checkpoints`` (the official repository layout) when asked for.

Nothing is downloaded: a missing file is reported with every searched path and its download page.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .errors import ModelFileNotFoundError
from .paths import unique_paths


@dataclass(frozen=True)
class ModelDownload:
    """One kind of model file: accepted names (first = the one to download), page, folder, description."""

    names: tuple[str, ...]
    url: str
    folder: str
    what: str

    @property
    def name(self) -> str:
        return self.names[0]

    def hint(self) -> str:
        """"<name> from <url> into models/<folder>" - the sentence every missing-file message uses."""
        return f"{self.name} from {self.url} into models/{self.folder}"


UNIANIMATE_PAGE = "https://huggingface.co/camenduru/unianimate/tree/main"
DWPOSE_PAGE = "https://huggingface.co/yzd-v/DWPose/tree/main"

#: The one table of download locations (roles -> files).
DOWNLOADS: dict[str, ModelDownload] = {
    "unet": ModelDownload(("unianimate_16f_32f_non_ema_223000.pth", "unianimate_16f_32f_non_ema_223000.safetensors",
                           "unianimate_16f_32f_non_ema_223000_fp16.safetensors"),
                          UNIANIMATE_PAGE, "unianimate", "UniAnimate UNet (or a .safetensors converted from it)"),
    "openclip": ModelDownload(("open_clip_pytorch_model.bin", "open_clip_pytorch_model.safetensors"),
                              UNIANIMATE_PAGE, "clip_vision",
                              "OpenCLIP ViT-H-14, image and text towers (the command line's CLIP)"),
    "clip_vision": ModelDownload(("clip_vision_h.safetensors", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
                                  "model.safetensors"),
                                 "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/tree/main/split_files/"
                                 "clip_vision", "clip_vision", "OpenCLIP ViT-H-14 image encoder (the file Wan 2.1 uses)"),
    "sd21": ModelDownload(("v2-1_512-ema-pruned.ckpt", "v2-1_512-ema-pruned.safetensors", "v2-1_768-ema-pruned.ckpt",
                           "v2-1_768-ema-pruned.safetensors"),
                          "https://huggingface.co/stabilityai/stable-diffusion-2-1-base", "checkpoints",
                          "Stable Diffusion 2.1 (its VAE, and its text encoder once for the empty-prompt context)"),
    "sd_vae": ModelDownload(("vae-ft-mse-840000-ema-pruned.safetensors",),
                            "https://huggingface.co/stabilityai/sd-vae-ft-mse-original", "vae",
                            "Stable Diffusion KL-f8 VAE as its own file (decoder fine-tuned, encoder unchanged)"),
    "dwpose_detector": ModelDownload(("yolox_l.onnx",), DWPOSE_PAGE, "dwpose", "DWPose person detector (YOLOX-L)"),
    "dwpose_pose": ModelDownload(("dw-ll_ucoco_384.onnx",), DWPOSE_PAGE, "dwpose", "DWPose whole-body pose model"),
}

#: ``models`` sub-folders searched below every base folder, in order.
MODEL_SUBDIRS: tuple[str, ...] = ("dwpose", "unianimate", "checkpoints", "clip_vision", "vae")
#: Older UniAnimate packs (``custom_nodes/ComfyUI-UniAnimate*``, any case) and where they keep files.
LEGACY_PACK_PREFIX = "comfyui-unianimate"
LEGACY_SUBDIRS: tuple[str, ...] = ("checkpoints", "UniAnimate/checkpoints", "checkpoints/iic/unianimate")
#: comfyui_controlnet_aux's DWPose download cache below its pack folder or ``$AUX_ANNOTATOR_CKPTS_PATH``.
AUX_PACK = "controlnet_aux"
AUX_DWPOSE = "yzd-v/DWPose"


def download_for(file_name: str) -> ModelDownload | None:
    """The table row that accepts ``file_name`` (None for a file the table does not know)."""
    for row in DOWNLOADS.values():
        if file_name in row.names:
            return row
    return None


def _packs(custom_nodes: Path) -> list[Path]:
    try:
        return sorted(p for p in Path(custom_nodes).iterdir() if p.is_dir())
    except OSError:  # no such folder (yet)
        return []


def legacy_pack_dirs(custom_nodes: str | os.PathLike) -> list[Path]:
    """Model folders of installed older UniAnimate packs (any ``ComfyUI-UniAnimate*`` folder, any case)."""
    return [pack / sub for pack in _packs(Path(custom_nodes)) if pack.name.lower().startswith(LEGACY_PACK_PREFIX)
            for sub in LEGACY_SUBDIRS]


def controlnet_aux_dirs(custom_nodes: str | os.PathLike, environ: Mapping[str, str] | None = None) -> list[Path]:
    """comfyui_controlnet_aux's DWPose download cache (``$AUX_ANNOTATOR_CKPTS_PATH`` first)."""
    env = os.environ if environ is None else environ
    dirs = [Path(env["AUX_ANNOTATOR_CKPTS_PATH"]) / AUX_DWPOSE] if env.get("AUX_ANNOTATOR_CKPTS_PATH") else []
    return dirs + [pack / "ckpts" / AUX_DWPOSE for pack in _packs(Path(custom_nodes))
                   if AUX_PACK in pack.name.lower()]


def comfyui_dirs(models_dir: str | os.PathLike | None, custom_nodes_dir: str | os.PathLike | None,
                 environ: Mapping[str, str] | None = None) -> list[Path]:
    """The part of the search below one ComfyUI installation: models/<sub-folders>, legacy packs, aux."""
    dirs: list[Path] = []
    if models_dir is not None:
        dirs += [Path(models_dir) / sub for sub in MODEL_SUBDIRS]
    if custom_nodes_dir is not None:
        dirs += legacy_pack_dirs(custom_nodes_dir)
        dirs += controlnet_aux_dirs(custom_nodes_dir, environ)
    return dirs


def _pack_root() -> Path:
    return Path(__file__).resolve().parents[1]


def comfyui_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """ComfyUI installations to search: ``$COMFYUI_PATH`` and the one this pack is installed in."""
    env = os.environ if environ is None else environ
    roots: list[Path] = []
    if env.get("COMFYUI_PATH"):
        roots.append(Path(env["COMFYUI_PATH"]))
    pack = _pack_root()
    if pack.parent.name.lower() == "custom_nodes":
        roots.append(pack.parent.parent)
    return roots


def search_dirs(models: Iterable[str | os.PathLike] = (), environ: Mapping[str, str] | None = None,
                cwd: Path | None = None, *, models_dir: str | os.PathLike | None = None,
                custom_nodes_dir: str | os.PathLike | None = None, installed: bool = True,
                official_layout: bool = True) -> list[Path]:
    """Every folder searched for model files, in order (existing or not; duplicates removed).

    models: folders named by the user (each as itself and with :data:`MODEL_SUBDIRS`).
    models_dir / custom_nodes_dir: one more ComfyUI installation's folders (e.g. the ones ComfyUI
    itself reports). installed: also search ``$COMFYUI_PATH`` and the ComfyUI this pack is in.
    official_layout: also ``./checkpoints`` (``cwd``), where the official repository keeps its files.
    """
    env = os.environ if environ is None else environ
    dirs: list[Path] = []
    bases = [Path(d) for d in ([models] if isinstance(models, (str, os.PathLike)) else models)]
    bases += [Path(d) for d in env.get("UNIANIMATE_MODELS", "").split(os.pathsep) if d]
    for base in bases:
        dirs += [base] + [base / sub for sub in MODEL_SUBDIRS]
    dirs += comfyui_dirs(models_dir, custom_nodes_dir, env)
    if installed:
        for root in comfyui_roots(env):
            dirs += comfyui_dirs(root / "models", root / "custom_nodes", {})
    if env.get("AUX_ANNOTATOR_CKPTS_PATH"):
        dirs.append(Path(env["AUX_ANNOTATOR_CKPTS_PATH"]) / AUX_DWPOSE)
    if official_layout:
        dirs.append((cwd or Path.cwd()) / "checkpoints")
    return unique_paths(dirs)


def find_first(names: Sequence[str], dirs: Sequence[str | os.PathLike]) -> Path | None:
    """The first ``dir/name`` that is a file, trying every name in every folder (folder order first)."""
    for d in dirs:
        for name in names:
            p = Path(d) / name
            if p.is_file():
                return p
    return None


def missing_file_message(name: str, dirs: Sequence[str | os.PathLike]) -> str:
    """"model file 'x' was not found. Searched: ... Download it from <page> into <first folder>"."""
    searched = [Path(d) / name for d in dirs]
    listing = "\n".join(f"  - {p}" for p in searched) or "  (no folders were given)"
    row = download_for(name)
    where = f"Download it from {row.url} " if row else "Put it "
    target = f"into {Path(dirs[0])}" if dirs else f"into your models/{row.folder if row else 'unianimate'} folder"
    return f"model file '{name}' was not found. Searched:\n{listing}\n{where}{target} (any folder above works)."


def find_model_file(name: str, dirs: Sequence[str | os.PathLike],
                    error: type[ModelFileNotFoundError] = ModelFileNotFoundError) -> Path:
    """The first ``<dir>/<name>`` that is a file, else ``error`` naming every searched path and the page."""
    found = find_first((name,), dirs)
    if found is None:
        raise error(missing_file_message(name, dirs))
    return found
