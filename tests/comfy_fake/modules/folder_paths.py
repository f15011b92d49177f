"""FAKE `folder_paths` (tests only): ComfyUI's model-folder registry, rooted in a temp directory.

Same names and semantics as ComfyUI v0.8.0 for what packs use: `folder_names_and_paths`
(name -> ([dirs], {extensions}); an empty extension set means "every file"),
`add_model_folder_path` (creates a new entry with an EMPTY extension set, like the real one),
`get_folder_paths`, `get_filename_list`, `get_full_path`, `get_full_path_or_raise`, and the
input/output/temp directories. `reset(base)` (test helper, not in ComfyUI) re-roots everything.
"""
from __future__ import annotations

import os

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}
base_path = ""
models_dir = ""
output_directory = ""
temp_directory = ""
input_directory = ""


def reset(base: str) -> None:
    """Re-root the registry in `base` with ComfyUI's standard folders (test helper)."""
    global base_path, models_dir, output_directory, temp_directory, input_directory
    base_path = os.path.abspath(base)
    models_dir = os.path.join(base_path, "models")
    folder_names_and_paths.clear()
    for name in ("checkpoints", "vae", "clip_vision", "vae_approx", "loras"):
        folder_names_and_paths[name] = ([os.path.join(models_dir, name)], supported_pt_extensions)
    folder_names_and_paths["custom_nodes"] = ([os.path.join(base_path, "custom_nodes")], set())
    output_directory = os.path.join(base_path, "output")
    temp_directory = os.path.join(base_path, "temp")
    input_directory = os.path.join(base_path, "input")
    for d in (models_dir, output_directory, temp_directory, input_directory):
        os.makedirs(d, exist_ok=True)


def map_legacy(folder_name: str) -> str:
    return {"unet": "diffusion_models", "clip": "text_encoders"}.get(folder_name, folder_name)


def get_output_directory() -> str:
    return output_directory


def get_temp_directory() -> str:
    return temp_directory


def get_input_directory() -> str:
    return input_directory


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    folder_name = map_legacy(folder_name)
    if folder_name in folder_names_and_paths:
        paths, _ = folder_names_and_paths[folder_name]
        if full_folder_path in paths:
            if is_default and paths[0] != full_folder_path:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name: str) -> list[str]:
    return folder_names_and_paths[map_legacy(folder_name)][0][:]


def _walk(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    found = []
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True):
        subdirs[:] = [d for d in subdirs if d != ".git"]
        found.extend(os.path.relpath(os.path.join(dirpath, f), directory) for f in filenames)
    return found


def filter_files_extensions(files, extensions) -> list[str]:
    return sorted(f for f in files if os.path.splitext(f)[-1].lower() in extensions or len(extensions) == 0)


def get_filename_list(folder_name: str) -> list[str]:
    paths, exts = folder_names_and_paths[map_legacy(folder_name)]
    out: set[str] = set()
    for d in paths:
        out.update(filter_files_extensions(_walk(d), exts))
    return sorted(out)


def get_full_path(folder_name: str, filename: str) -> str | None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for d in folder_names_and_paths[folder_name][0]:
        full = os.path.join(d, filename)
        if os.path.isfile(full):
            return full
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0) -> tuple[str, str, int, str, str]:
    """(folder, file name, counter, subfolder, prefix) for the next numbered output file, as ComfyUI does:
    the prefix may contain a subfolder, the counter is one more than the highest ``<name>_<NNNNN>_...``
    already there (1 when none); paths outside ``output_dir`` are refused. (%date% variables: not faked.)"""
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception("Saving image outside the output folder is not allowed.")
    counters = [0]
    if os.path.isdir(full_output_folder):
        for entry in os.listdir(full_output_folder):
            head, _, rest = entry[len(filename):].partition("_")
            if entry.startswith(filename + "_") and head == "" and rest.split("_")[0].isdigit():
                counters.append(int(rest.split("_")[0]))
    else:
        os.makedirs(full_output_folder, exist_ok=True)
    return full_output_folder, filename, max(counters) + 1, subfolder, filename_prefix
