"""The pack must import the way ComfyUI imports it: as a package under a path-derived name, with the
repository root NOT on sys.path (ComfyUI does not add custom-node folders to it). Absolute imports of
`unianimate_core` inside the core would only work in tests, where pytest puts the root on sys.path.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

SCRIPT = textwrap.dedent("""
    import asyncio, sys, tempfile
    from pathlib import Path
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path({repo!r})]
    sys.path.insert(0, {tests!r})
    from comfy_fake import install_fake_comfy, load_pack
    fake = install_fake_comfy(Path(tempfile.mkdtemp()))
    sys.path.remove({tests!r})
    pack = load_pack("custom_nodes_x_ComfyUI-UniAnimate")
    ext = asyncio.run(pack.comfy_entrypoint())
    ids = sorted(c.GET_SCHEMA().node_id for c in asyncio.run(ext.get_node_list()))
    stray = sorted(m for m in sys.modules if m == "unianimate_core" or m.startswith("unianimate_core."))
    print("IDS", ids)
    print("STRAY", stray)
""")


def test_pack_imports_as_comfyui_imports_it():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = SCRIPT.format(repo=str(REPO), tests=str(TESTS))
    res = subprocess.run([sys.executable, "-c", script], cwd=str(TESTS.parent.parent), env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "IDS ['LoadUniAnimateModel'" in res.stdout
    # the core must be loaded once, as the pack's subpackage, never again under a top-level name
    assert "STRAY []" in res.stdout, res.stdout


STRAY_COMFY = textwrap.dedent("""
    import importlib.util, sys
    sys.path.insert(0, {stray!r})
    import comfy  # a folder named comfy that is not ComfyUI (pytest puts such parents on sys.path)
    spec = importlib.util.spec_from_file_location("stray_check_pack", {init!r}, submodule_search_locations=[{repo!r}])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    spec.loader.exec_module(pack)
    print("ENTRYPOINT", hasattr(pack, "comfy_entrypoint"))
    print("NODES", any(m.startswith("stray_check_pack.nodes") for m in sys.modules))
    print("WEB", pack.WEB_DIRECTORY)
""")


def test_a_stray_comfy_folder_is_not_taken_for_comfyui(tmp_path):
    """Only a running ComfyUI (its V3 API, model management and folder_paths already imported) makes
    the pack register nodes; an importable ``comfy/`` folder next to the checkout does not."""
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "__init__.py").write_text("")
    script = STRAY_COMFY.format(stray=str(tmp_path), init=str(REPO / "__init__.py"), repo=str(REPO))
    res = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "ENTRYPOINT False" in res.stdout and "NODES False" in res.stdout, res.stdout
    assert "WEB ./web" in res.stdout
