"""Half-precision and device-placement tests: the fake ComfyUI is installed for the module that asks for it."""
from __future__ import annotations

import pytest

from comfy_fake import install_fake_comfy, load_pack, unload_pack


@pytest.fixture(scope="module")
def fake_comfy(tmp_path_factory):
    """The fake ComfyUI modules (``comfy.ops``, ``comfy.model_management`` ...) for one test module."""
    fake = install_fake_comfy(tmp_path_factory.mktemp("comfy_base"))
    yield fake
    fake.uninstall()


@pytest.fixture(scope="module")
def comfy_pack(fake_comfy):
    """The repository imported as a ComfyUI custom-node package against the fake ComfyUI."""
    pack = load_pack()
    yield pack
    unload_pack()


@pytest.fixture
def node_host(comfy_pack, fake_comfy, tmp_path):
    """A fresh models folder tree, the CPU device profile, the pack's folders registered."""
    fake_comfy.reset(tmp_path / "comfy")
    comfy_pack.nodes.folders.register_model_folders()
    comfy_pack.nodes.loader._loaded.clear()
    return fake_comfy
