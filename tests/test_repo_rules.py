"""House rules that keep the pack installable and the core reusable."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "nodes", "server",
                 "latent_preview", "node_helpers", "execution"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_comfyui():
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imported_roots(p) & COMFY_MODULES)
        for p in (ROOT / "unianimate_core").rglob("*.py")
        if _imported_roots(p) & COMFY_MODULES
    }
    assert offenders == {}


def test_core_uses_relative_imports_of_itself():
    """ComfyUI imports the pack under a path-derived name: absolute `unianimate_core` imports break there."""
    offenders = sorted(
        str(p.relative_to(ROOT)) for p in list((ROOT / "unianimate_core").rglob("*.py")) + list((ROOT / "nodes").rglob("*.py"))
        if "unianimate_core" in _imported_roots(p)
    )
    assert offenders == []


def test_requirements_leave_torch_onnxruntime_and_opencv_to_the_user():
    names = [re.split(r"[<>=~!\[; ]", line.strip(), maxsplit=1)[0].lower()
             for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert names, "requirements.txt is empty"
    forbidden = {"torch", "torchvision", "torchaudio", "onnxruntime", "onnxruntime-gpu",
                 "opencv-python", "opencv-python-headless", "opencv-contrib-python"}
    assert not set(names) & forbidden


def test_node_ids_are_the_published_ones():
    """Saved workflows refer to these ids: they must never change."""
    src = "\n".join(p.read_text() for p in (ROOT / "nodes").glob("*.py"))
    ids = set(re.findall(r'node_id\s*=\s*"([^"]+)"', src))
    assert ids == {"LoadUniAnimateModel", "UniAnimateSampler", "UniAnimatePoseExtractor",
                   "UniAnimatePoseAlign", "UniAnimateLongVideoLoop", "UniAnimateLoraLoader"}
