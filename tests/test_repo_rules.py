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


OFFICIAL_DOC = ROOT / "docs" / "official_behaviour.md"
_TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".yaml", ".yml"}


def _project_text_files():
    skip = {".git", ".venv", ".venv-mediapipe", "fixtures", "__pycache__"}
    for p in ROOT.rglob("*"):
        if p.is_file() and p.suffix in _TEXT_SUFFIXES and not skip & set(p.relative_to(ROOT).parts):
            yield p


def test_official_behaviour_citations_resolve():
    """Code and docs cite the official behaviour as docs/official_behaviour.md#<anchor> (or, inside that
    file's neighbours, official_behaviour.md#<anchor>); every cited anchor must exist there."""
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', OFFICIAL_DOC.read_text()))
    assert len(anchors) > 30
    cited: dict[str, set[str]] = {}
    for p in _project_text_files():
        for anchor in re.findall(r"official_behaviour\.md#([a-z0-9-]+)", p.read_text(errors="replace")):
            cited.setdefault(anchor, set()).add(str(p.relative_to(ROOT)))
    assert cited, "nothing cites docs/official_behaviour.md"
    missing = {a: sorted(files) for a, files in cited.items() if a not in anchors}
    assert missing == {}


def test_no_citations_of_documents_outside_the_repository():
    """A reader must be able to follow every citation: no "spec G12" / "§5.1" style references."""
    pattern = re.compile(r"§|\bspec G\d+|\(G\d{1,2}\)|\bspec's\b")
    offenders = sorted(
        f"{p.relative_to(ROOT)}:{i}"
        for p in _project_text_files() if p != Path(__file__).resolve()
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)
    )
    assert offenders == []
