"""Node tests run the pack against the FAKE ComfyUI in tests/comfy_fake (CI has no ComfyUI).

`comfy` (module scope) installs the fake modules and imports the repository root as a package the
way ComfyUI imports a custom-node directory; everything is removed again after the module, so
tests elsewhere still see a Python without `comfy`. `host` (per test) gives a fresh models folder
tree, no progress hook, no interrupt, and the pack's folders registered.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from comfy_fake import FakeComfy, install_fake_comfy, load_pack, unload_pack


@dataclass
class Host:
    fake: FakeComfy
    pack: ModuleType
    base: Path

    @property
    def models(self) -> Path:
        return self.base / "models"

    def node_classes(self) -> dict[str, type]:
        ext = asyncio.run(self.pack.comfy_entrypoint())
        return {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(ext.get_node_list())}

    def put_model(self, src: Path, folder: str = "unianimate", name: str | None = None) -> Path:
        dst = self.models / folder / (name or src.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        return dst


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_base")
    fake = install_fake_comfy(base)
    try:
        pack = load_pack()
    except BaseException:
        fake.uninstall()
        raise
    yield Host(fake=fake, pack=pack, base=base)
    unload_pack()
    fake.uninstall()


@pytest.fixture
def host(comfy: Host, tmp_path: Path) -> Host:
    base = tmp_path / "comfy"
    comfy.fake.reset(base)
    comfy.pack.nodes.folders.register_model_folders()
    return Host(fake=comfy.fake, pack=comfy.pack, base=base)


@pytest.fixture(scope="session")
def tiny_ckpt() -> Path:
    from tiny_unet import tiny_checkpoint_path

    return tiny_checkpoint_path()


@pytest.fixture(scope="session")
def tiny_zero_y():
    from tiny_unet import tiny_zero_y

    return tiny_zero_y()


@pytest.fixture
def model(host: Host, tiny_ckpt: Path, tiny_zero_y):
    """The tiny UNet loaded through Load UniAnimate Model (a UNIANIMATE_MODEL value)."""
    from node_helpers import install_tiny_model

    return install_tiny_model(host, tiny_ckpt, tiny_zero_y)
