"""FAKE ComfyUI for the always-run node tests (CI has no ComfyUI).

`install_fake_comfy(base_dir)` imports the small stand-in modules in `modules/` under the names
ComfyUI uses (`comfy`, `comfy.model_management`, `comfy.model_patcher`, `comfy.utils`, `comfy.lora`, `comfy.ops`,
`comfy.latent_formats`, `comfy.conds`, `comfy.patcher_extension`, `comfy.model_sampling`,
`comfy.supported_models_base`, `comfy.model_base`, `comfy.ldm.modules.attention`, `comfy_api`, `comfy_api.latest`,
`folder_paths`, `latent_preview`) and returns a handle; `uninstall()` removes them again and
restores whatever was there before, so core tests that check "ComfyUI is never imported" are not
affected. `load_pack(name)` imports the repository root as a package under a fixed module name,
the way ComfyUI imports a custom-node directory (relative imports inside the pack work).

Signatures follow ComfyUI v0.8.0; `test_fake_matches_real_signatures` in `tests/host/test_comfy_host.py`
compares them with a real ComfyUI when one is available.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

MODULES_DIR = Path(__file__).parent / "modules"
REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_MODULE_NAME = "comfyui_unianimate_pack"

FAKE_MODULE_NAMES = (
    "folder_paths",
    "latent_preview",
    "comfy",
    "comfy.model_management",
    "comfy.model_patcher",
    "comfy.utils",
    "comfy.lora",
    "comfy.ops",
    "comfy.latent_formats",
    "comfy.conds",
    "comfy.patcher_extension",
    "comfy.model_sampling",
    "comfy.supported_models_base",
    "comfy.model_base",
    "comfy.ldm",
    "comfy.ldm.modules",
    "comfy.ldm.modules.attention",
    "comfy_api",
    "comfy_api.latest",
    "comfy_api.latest._io",
)


@dataclass
class FakeComfy:
    """Handle on the installed fake modules (attribute per module, plus bookkeeping)."""

    modules: dict[str, ModuleType]
    saved: dict[str, ModuleType | None] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ModuleType:
        return self.modules[name]

    @property
    def folder_paths(self) -> ModuleType:
        return self.modules["folder_paths"]

    @property
    def model_management(self) -> ModuleType:
        return self.modules["comfy.model_management"]

    @property
    def utils(self) -> ModuleType:
        return self.modules["comfy.utils"]

    @property
    def latent_preview(self) -> ModuleType:
        return self.modules["latent_preview"]

    @property
    def io(self) -> ModuleType:
        return self.modules["comfy_api.latest._io"]

    def reset(self, base_dir: Path) -> None:
        """Fresh model folders under `base_dir`, no hooks, no recorded calls, no interrupt."""
        self.folder_paths.reset(str(base_dir))
        self.model_management.reset_fake_state()
        self.utils.set_progress_bar_global_hook(None)
        self.latent_preview.preview_enabled = False
        self.latent_preview.previewed.clear()

    def uninstall(self) -> None:
        for name in FAKE_MODULE_NAMES:
            sys.modules.pop(name, None)
        for name, module in self.saved.items():
            if module is not None:
                sys.modules[name] = module


def install_fake_comfy(base_dir: Path) -> FakeComfy:
    """Import the fake modules under ComfyUI's module names; the search path is restored after."""
    saved = {name: sys.modules.pop(name, None) for name in FAKE_MODULE_NAMES}
    sys.path.insert(0, str(MODULES_DIR))
    try:
        modules = {name: importlib.import_module(name) for name in FAKE_MODULE_NAMES}
    finally:
        sys.path.remove(str(MODULES_DIR))
    for name, module in modules.items():
        if not str(getattr(module, "__file__", "")).startswith(str(MODULES_DIR)):
            raise RuntimeError(f"{name} did not come from the fake ({module!r}); is a real ComfyUI importable?")
    fake = FakeComfy(modules=modules, saved=saved)
    fake.reset(base_dir)
    return fake


def load_pack(name: str = PACK_MODULE_NAME) -> ModuleType:
    """Import the repository root as package `name` (spec_from_file_location, like ComfyUI)."""
    unload_pack(name)
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        unload_pack(name)
        raise
    return module


def unload_pack(name: str = PACK_MODULE_NAME) -> None:
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]
