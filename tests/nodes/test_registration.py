"""The pack registers like a ComfyUI V3 extension: stable node ids, tooltips, model folders."""
from __future__ import annotations

from pathlib import Path

import asyncio
import inspect
import os

import pytest


NODE_IDS = {
    "LoadUniAnimateModel": "LoadUniAnimateModel",
    "PoseExtractor": "UniAnimatePoseExtractor",
    "PoseAlign": "UniAnimatePoseAlign",
    "UniAnimateSampler": "UniAnimateSampler",
    "LongVideoLoop": "UniAnimateLongVideoLoop",
    "UniAnimateConditioning": "UniAnimateConditioning",
    "LoadUniAnimateLora": "UniAnimateLoraLoader",
}


def test_entrypoint_registers_the_nodes_under_fixed_ids(host):
    ext = asyncio.run(host.pack.comfy_entrypoint())
    assert isinstance(ext, host.fake["comfy_api.latest"].ComfyExtension)
    classes = asyncio.run(ext.get_node_list())
    assert {c.__name__: c.GET_SCHEMA().node_id for c in classes} == NODE_IDS


def test_pack_defines_no_v1_mappings(host):
    # ComfyUI only looks for comfy_entrypoint when NODE_CLASS_MAPPINGS is absent.
    assert not hasattr(host.pack, "NODE_CLASS_MAPPINGS")
    assert inspect.iscoroutinefunction(host.pack.comfy_entrypoint)


def test_every_node_documented(host):
    for node_id, cls in host.node_classes().items():
        schema = cls.GET_SCHEMA()
        assert schema.category.startswith("UniAnimate"), node_id
        assert len(schema.description) > 40, node_id
        assert schema.display_name, node_id
        for inp in schema.inputs:
            assert inp.tooltip and len(inp.tooltip) > 10, f"{node_id}.{inp.id} has no tooltip"
        for out in schema.outputs:
            assert out.tooltip, f"{node_id} output {out.display_name} has no tooltip"


def test_execute_and_validate_signatures_match_schema(host):
    """ComfyUI passes inputs by name: execute must accept every schema input, nothing more required."""
    for node_id, cls in host.node_classes().items():
        schema = cls.GET_SCHEMA()
        params = inspect.signature(cls.execute).parameters
        names = {i.id for i in schema.inputs}
        assert names <= set(params) or any(p.kind == p.VAR_KEYWORD for p in params.values()), node_id
        for name, p in params.items():
            if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD:
                inp = next(i for i in schema.inputs if i.id == name)
                assert not inp.optional, f"{node_id}.{name} is optional in the schema but required by execute"
        for i in schema.inputs:
            if i.optional:
                assert params[i.id].default is None or params[i.id].default is not inspect.Parameter.empty, i.id
        if "validate_inputs" in cls.__dict__:
            vparams = inspect.signature(cls.validate_inputs).parameters
            for name, p in vparams.items():
                assert name in names, f"{node_id}.validate_inputs takes unknown input {name}"
                # ComfyUI only passes constant (widget) values, linked ones arrive as None / absent
                assert p.default is not inspect.Parameter.empty, f"{node_id}.validate_inputs({name}) needs a default"


def test_unianimate_folder_created_with_model_extensions(host):
    fp = host.fake.folder_paths
    paths, exts = fp.folder_names_and_paths["unianimate"]
    assert paths[0] == os.path.join(fp.models_dir, "unianimate")
    assert ".safetensors" in exts and ".pth" in exts and ".txt" not in exts
    d = host.models / "unianimate"
    d.mkdir(parents=True)
    (d / "README.txt").write_text("put models here")
    (d / "a.pth").write_bytes(b"x")
    (d / "zero_y_openclip_vit_h14.npy").write_bytes(b"x")
    assert fp.get_filename_list("unianimate") == ["a.pth"]


def test_existing_folder_entry_is_extended_not_replaced(host, tmp_path):
    fp = host.fake.folder_paths
    user_dir = str(tmp_path / "my_models")
    fp.folder_names_and_paths.pop("unianimate")
    fp.add_model_folder_path("unianimate", user_dir)  # what extra_model_paths.yaml does (empty ext set)
    host.pack.nodes.folders.register_model_folders()
    host.pack.nodes.folders.register_model_folders()  # idempotent
    paths, exts = fp.folder_names_and_paths["unianimate"]
    assert paths == [user_dir, os.path.join(fp.models_dir, "unianimate")]
    assert ".safetensors" in exts


def test_legacy_locations_are_searched(host):
    fp = host.fake.folder_paths
    custom = host.base / "custom_nodes"
    old = custom / "ComfyUI-UniAnimate-W" / "checkpoints"
    old.mkdir(parents=True)
    (old / "unianimate_16f_32f_non_ema_223000.pth").write_bytes(b"x")
    (old / "open_clip_pytorch_model.bin").write_bytes(b"x")
    (old / "dw-ll_ucoco_384.onnx").write_bytes(b"x")
    aux = custom / "comfyui_controlnet_aux" / "ckpts" / "yzd-v" / "DWPose"
    aux.mkdir(parents=True)
    (aux / "yolox_l.onnx").write_bytes(b"x")
    (custom / "SomethingElse" / "checkpoints").mkdir(parents=True)
    host.pack.nodes.folders.register_model_folders()
    assert str(old) in fp.get_folder_paths("unianimate")
    assert not any("SomethingElse" in p for p in fp.get_folder_paths("unianimate"))
    # the likely UniAnimate file is offered first
    assert host.pack.nodes.folders.unet_files()[0] == "unianimate_16f_32f_non_ema_223000.pth"
    find = host.pack.nodes.pose_nodes.find_pose_model
    assert find("yolox_l.onnx") == aux / "yolox_l.onnx"
    assert find("dw-ll_ucoco_384.onnx") == old / "dw-ll_ucoco_384.onnx"
    with pytest.raises(ValueError, match="missing.onnx.*was not found"):
        find("missing.onnx")
    # the same folders in the same order as the core's one search (the command line's) below this ComfyUI
    core = host.pack.unianimate_core.model_files.search_dirs([], environ={"COMFYUI_PATH": str(host.base)},
                                                             official_layout=False)
    registered = [Path(p) for p in fp.get_folder_paths("dwpose")]
    assert old in core and aux in core
    assert [d for d in registered if d.is_dir()] == [d for d in core if d.is_dir()]
    assert registered[:5] == [host.models / s for s in ("dwpose", "unianimate", "checkpoints", "clip_vision", "vae")]


def test_dwpose_combo_lists_files_from_every_dwpose_folder(host):
    (host.models / "unianimate").mkdir(parents=True)
    (host.models / "unianimate" / "yolox_l.onnx").write_bytes(b"x")
    (host.models / "unianimate" / "unet.pth").write_bytes(b"x")
    host.pack.nodes.folders.register_model_folders()
    assert host.pack.nodes.folders.pose_files() == ["yolox_l.onnx"]  # .onnx only
