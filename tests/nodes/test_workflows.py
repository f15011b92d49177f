"""The shipped workflows only use existing node types and valid inputs of our schemas (no ComfyUI needed).

Our node interfaces come from the pack's V3 schemas (through the fake API, which the host tests
compare with a real ComfyUI); the core nodes' interfaces are those of ComfyUI v0.8.0 recorded in
tests/nodes/data/core_object_info.json.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from comfy_fake.workflow_tools import FRONTEND_ONLY, load_core_object_info, strip_meta, ui_to_api, validate_api

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
#: The shipped workflows as they were before the combos got short keys (they store display labels);
#: saved workflows like these must keep validating and running.
LEGACY = Path(__file__).resolve().parent / "data" / "legacy_workflows"
LEGACY_STEMS = ["01_short_clip", "02_long_video_sliding_windows", "03_long_video_first_frame_continuation",
                "04_single_image_repose"]
#: The shipped workflows: the file name is the title the Templates browser shows (numbered for A -> Z).
STEMS = ["1 - Short clip", "2 - Long video, sliding windows", "3 - Long video, continuation",
         "4 - Repose a single image", "5 - Short clip, small downloads", "6 - Short clip, KSampler",
         "7 - Long video, context windows"]
FILE_INPUTS = [("LoadImage", "image"), ("LoadVideo", "file"), ("CheckpointLoaderSimple", "ckpt_name"),
               ("CLIPVisionLoader", "clip_name"), ("VAELoader", "vae_name"), ("CLIPLoader", "clip_name")]
# model files the workflows name; created as empty placeholders so our nodes' own checks can run
PLACEHOLDERS = {"unianimate": ["unianimate_16f_32f_non_ema_223000.pth"],
                "dwpose": ["yolox_l.onnx", "dw-ll_ucoco_384.onnx"]}


@pytest.fixture
def object_info(host):
    for folder, names in PLACEHOLDERS.items():
        for name in names:
            path = host.models / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"placeholder")
    info = load_core_object_info()
    ours = {cls.GET_SCHEMA().node_id: cls for cls in host.node_classes().values()}
    info.update({node_id: cls.GET_NODE_INFO_V1() for node_id, cls in ours.items()})
    return info, ours


def node_validated(ours: dict) -> dict[str, list[str]]:
    """{node id: inputs its validate_inputs takes} - ComfyUI leaves their range/list checks to the node."""
    return {nid: list(inspect.signature(cls.validate_inputs).parameters) for nid, cls in ours.items()
            if "validate_inputs" in cls.__dict__}


def check_prompt(prompt: dict, info: dict, ours: dict) -> list:
    """validate_api plus our nodes' own validate_inputs on their constant inputs (links arrive as None)."""
    problems = validate_api(prompt, info, FILE_INPUTS, node_validated(ours))
    for nid, node in prompt.items():
        cls = ours.get(node["class_type"])
        if cls is None or "validate_inputs" not in cls.__dict__:
            continue
        wanted = inspect.signature(cls.validate_inputs).parameters
        constants = {k: v for k, v in node["inputs"].items() if k in wanted and not isinstance(v, list)}
        verdict = cls.validate_inputs(**constants)
        if verdict is not True:
            problems.append((nid, node["class_type"], verdict))
    return problems


def test_every_shipped_workflow_has_an_api_copy():
    assert sorted(p.stem for p in WORKFLOWS.glob("*.json")) == STEMS
    assert sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json")) == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_ui_workflow_is_well_formed(stem, object_info):
    info, _ = object_info
    wf = json.loads((WORKFLOWS / f"{stem}.json").read_text())
    assert wf["version"] == 0.4 and wf["last_node_id"] == max(n["id"] for n in wf["nodes"])
    nodes = {n["id"]: n for n in wf["nodes"]}
    for node in wf["nodes"]:
        assert node["type"] in info or node["type"] in FRONTEND_ONLY, node["type"]
        # bypassed only: the light workflow's first-run text encoder, feeding nothing but an optional input
        if node.get("mode", 0) == 4:
            assert node["type"] == "CLIPLoader" and stem.startswith("5 - "), node["id"]
            targets = [(l[3], l[4]) for l in wf["links"] if l[1] == node["id"]]
            assert all(nodes[t]["inputs"][slot].get("shape") == 7 for t, slot in targets)  # optional sockets
        else:
            assert node.get("mode", 0) == 0, f"node {node['id']} is muted"
    for link_id, src, slot, dst, dst_slot, typ in wf["links"]:
        assert nodes[src]["outputs"][slot]["type"] == typ and link_id in nodes[src]["outputs"][slot]["links"]
        assert nodes[dst]["inputs"][dst_slot]["link"] == link_id
        if nodes[src]["type"] in info:
            assert info[nodes[src]["type"]]["output"][slot] == typ


@pytest.mark.parametrize("stem", STEMS)
def test_api_copy_is_the_conversion_of_the_ui_workflow(stem, object_info):
    info, _ = object_info
    api = ui_to_api(json.loads((WORKFLOWS / f"{stem}.json").read_text()), info)
    assert strip_meta(api) == strip_meta(json.loads((WORKFLOWS / "api" / f"{stem}.json").read_text()))


@pytest.mark.parametrize("stem", STEMS)
def test_api_workflow_passes_validation(stem, object_info):
    info, ours = object_info
    prompt = json.loads((WORKFLOWS / "api" / f"{stem}.json").read_text())
    assert check_prompt(prompt, info, ours) == []


@pytest.mark.parametrize("stem", LEGACY_STEMS)
def test_workflows_saved_with_old_combo_labels_still_validate(stem, object_info):
    info, ours = object_info
    ui = json.loads((LEGACY / f"{stem}.json").read_text())
    assert "(trained colours)" in json.dumps(ui)  # really the old labels
    api = ui_to_api(ui, info)
    saved = strip_meta(json.loads((LEGACY / "api" / f"{stem}.json").read_text()))
    # inputs added after the workflow was saved come in with their defaults (what the frontend does)
    for nid, node in strip_meta(api).items():
        added = {k: v for k, v in node["inputs"].items() if k not in saved[nid]["inputs"]}
        for name, value in added.items():
            spec = info[node["class_type"]]["input"]["optional"][name]
            assert value == spec[1]["default"], (nid, name)
        assert {k: v for k, v in node["inputs"].items() if k not in added} == saved[nid]["inputs"]
    assert check_prompt(api, info, ours) == []
    # and without the node's own check (what ComfyUI does for inputs validate_inputs does not take) they fail
    assert any("not one of" in p for p in validate_api(api, info, FILE_INPUTS))


def test_validation_catches_broken_workflows(object_info):
    """The checker itself must fail on the mistakes it is there to catch."""
    info, _ = object_info
    prompt = json.loads((WORKFLOWS / "api" / "1 - Short clip.json").read_text())
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "UniAnimateSampler")
    broken = json.loads(json.dumps(prompt))
    broken[sampler]["inputs"]["steps"] = 0
    broken[sampler]["inputs"]["condition_mode"] = "magic"
    broken[sampler]["inputs"]["poses"] = [next(k for k, v in prompt.items() if v["class_type"] == "CLIPVisionLoader"), 0]
    del broken[sampler]["inputs"]["reference_image"]
    broken["99"] = {"class_type": "NoSuchNode", "inputs": {}}
    errors = "\n".join(validate_api(broken, info, FILE_INPUTS))
    for expected in ("below min", "not one of", "expects IMAGE,POSE_KEYPOINT", "reference_image' missing",
                     "unknown node type 'NoSuchNode'"):
        assert expected in errors


def test_every_workflow_has_a_thumbnail_for_the_templates_browser():
    """ComfyUI's Templates browser shows ``<workflow name>.jpg`` (from tests/make_workflow_thumbnails.py)."""
    from PIL import Image

    for stem in STEMS:
        with Image.open(WORKFLOWS / f"{stem}.jpg") as img:
            assert img.format == "JPEG" and img.size == (512, 512), stem


def test_every_node_has_a_help_page(object_info):
    """The frontend's "?" asks for /extensions/<pack>/docs/<node id>/en.md (served from WEB_DIRECTORY)."""
    _, ours = object_info
    web = WORKFLOWS.parent / "web" / "docs"
    for node_id, cls in ours.items():
        text = (web / node_id / "en.md").read_text()
        assert text.startswith(f"# {cls.GET_SCHEMA().display_name}\n"), node_id
    assert sorted(p.name for p in web.iterdir()) == sorted(ours)


@pytest.mark.parametrize("stem", STEMS)
def test_notes_name_the_download_pages_of_the_one_table(stem):
    """Every download page a workflow note names comes from unianimate_core.model_files.DOWNLOADS."""
    import re

    from unianimate_core.model_files import DOWNLOADS

    pages = {row.url.replace("https://", "") for row in DOWNLOADS.values()}
    wf = json.loads((WORKFLOWS / f"{stem}.json").read_text())
    notes = " ".join(n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "Note")
    named = set(re.findall(r"huggingface\.co/[^\s),;]+", notes))
    assert named and named <= pages, named - pages
