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
STEMS = ["01_short_clip", "02_long_video_sliding_windows", "03_long_video_first_frame_continuation",
         "04_single_image_repose", "05_ksampler_native", "06_long_video_context_windows"]
FILE_INPUTS = [("LoadImage", "image"), ("LoadVideo", "file"), ("CheckpointLoaderSimple", "ckpt_name"),
               ("CLIPVisionLoader", "clip_name"), ("VAELoader", "vae_name")]
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
        assert node.get("mode", 0) == 0, f"node {node['id']} is muted/bypassed"
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
    assert validate_api(prompt, info, FILE_INPUTS) == []
    # and our nodes' own validate_inputs, with the constants ComfyUI would pass (links arrive as None)
    for nid, node in prompt.items():
        cls = ours.get(node["class_type"])
        if cls is None or "validate_inputs" not in cls.__dict__:
            continue
        wanted = inspect.signature(cls.validate_inputs).parameters
        constants = {k: v for k, v in node["inputs"].items() if k in wanted and not isinstance(v, list)}
        assert cls.validate_inputs(**constants) is True, (stem, nid, node["class_type"])


def test_validation_catches_broken_workflows(object_info):
    """The checker itself must fail on the mistakes it is there to catch."""
    info, _ = object_info
    prompt = json.loads((WORKFLOWS / "api" / "01_short_clip.json").read_text())
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
