"""Workflow checks shared by the node tests and the real-host tests (no ComfyUI needed).

* :func:`ui_to_api` converts a UI-format workflow (what the ComfyUI frontend saves and what the pack
  ships in workflows/) to the API format ``/prompt`` takes, the way the frontend's graphToPrompt
  does for plain graphs: notes and muted nodes dropped, links resolved, ``widgets_values``
  assigned to widget inputs in declaration order, skipping the frontend-only values that follow a
  seed's "control after generate" and an upload combo. Bypassed nodes (mode 4) are wired through like
  the frontend does: a link from a bypassed node's output continues from its first input of the same
  type, and is dropped when there is none. Subgraphs are not supported.
* :func:`validate_api` checks an API-format prompt against node interfaces in ``/object_info``
  form (the real server's, or the fake's ``GET_NODE_INFO_V1()`` plus the recorded core nodes):
  known node types, required inputs present, no unknown inputs, links to existing outputs of a
  compatible type, numbers in range, combo values among the options - except, as in ComfyUI, for the
  inputs a node's own ``validate_inputs`` takes (ComfyUI leaves their range and list checks to it;
  pass them as ``node_validated``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_KEYS = ("image_upload", "video_upload", "audio_upload", "file_upload")
CORE_OBJECT_INFO = Path(__file__).resolve().parents[1] / "nodes" / "data" / "core_object_info.json"


def load_core_object_info() -> dict[str, dict]:
    return json.loads(CORE_OBJECT_INFO.read_text())["nodes"]


def _specs(info: dict) -> list[tuple[str, str, Any, dict]]:
    """(section, name, type, options) for every input of a node, in declaration order."""
    out = []
    order = info.get("input_order") or {}
    for section in ("required", "optional"):
        specs = info["input"].get(section, {})
        for name in order.get(section) or list(specs):
            spec = specs[name]
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append((section, name, typ, opts))
    return out


def is_widget(typ: Any, opts: dict) -> bool:
    if opts.get("forceInput"):
        return False
    return isinstance(typ, list) or typ in WIDGET_TYPES


def ui_to_api(workflow: dict, object_info: dict[str, dict]) -> dict[str, dict]:
    links = {l[0]: l for l in workflow["links"]}
    nodes = {n["id"]: n for n in workflow["nodes"]}
    api: dict[str, dict] = {}

    def source(link_id: int) -> list | None:
        """[node id, slot] a link really comes from, through bypassed nodes; None when it leads nowhere."""
        _, src, slot, _, _, typ = links[link_id]
        node = nodes[src]
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) == 2:
            return None
        if node.get("mode", 0) == 4:
            through = next((i for i in node.get("inputs", []) if i.get("type") == typ and i.get("link") is not None),
                           None)
            return None if through is None else source(through["link"])
        return [str(src), slot]

    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):
            continue
        if node["type"] not in object_info:
            raise KeyError(f"unknown node type {node['type']!r} (node {node['id']})")
        info = object_info[node["type"]]
        inputs: dict[str, Any] = {}
        for inp in node.get("inputs", []):
            if inp.get("link") is None:
                continue
            origin = source(inp["link"])
            if origin is not None:
                inputs[inp["name"]] = origin
        values = iter(node.get("widgets_values") or [])
        for _, name, typ, opts in _specs(info):
            if not is_widget(typ, opts):
                continue
            try:
                value = next(values)
            except StopIteration:
                if "default" in opts:
                    value = opts["default"]
                else:
                    raise ValueError(f"node {node['id']} ({node['type']}): no widget value for {name!r}") from None
            if name not in inputs:
                inputs[name] = value
            if opts.get("control_after_generate"):
                next(values, None)
            if any(opts.get(k) for k in UPLOAD_KEYS):
                next(values, None)
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                "_meta": {"title": node.get("title") or info.get("display_name") or node["type"]}}
    return api


def strip_meta(api: dict[str, dict]) -> dict[str, dict]:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


def _types(t: Any) -> set[str]:
    if isinstance(t, list):
        return {"COMBO"}
    return set(str(t).split(","))


def validate_api(prompt: dict[str, dict], object_info: dict[str, dict],
                 file_inputs: Iterable[tuple[str, str]] = (),
                 node_validated: dict[str, Iterable[str]] | None = None) -> list[str]:
    """Problems of an API-format prompt; [] when it would pass ComfyUI's static validation.

    ``file_inputs``: (class, input) pairs whose combo lists files; any non-empty file name with an
    extension is accepted there (the real list depends on the user's folders). ``node_validated``:
    {class: input names its ``validate_inputs`` takes}; ComfyUI skips its own range and list checks
    for those (the caller runs the node's ``validate_inputs`` on them).
    """
    files = set(file_inputs)
    own = {cls: set(names) for cls, names in (node_validated or {}).items()}
    errors: list[str] = []
    for nid, node in prompt.items():
        cls = node.get("class_type")
        if cls not in object_info:
            errors.append(f"{nid}: unknown node type {cls!r}")
            continue
        info = object_info[cls]
        specs = {name: (section, typ, opts) for section, name, typ, opts in _specs(info)}
        for name, (section, _, _) in specs.items():
            if section == "required" and name not in node["inputs"]:
                errors.append(f"{nid} {cls}: required input {name!r} missing")
        for name, value in node["inputs"].items():
            if name not in specs:
                errors.append(f"{nid} {cls}: unknown input {name!r}")
                continue
            _, typ, opts = specs[name]
            if isinstance(value, list):
                errors += _check_link(nid, cls, name, typ, value, prompt, object_info)
            elif name in own.get(cls, ()):
                continue
            else:
                errors += _check_value(nid, cls, name, typ, opts, value, (cls, name) in files)
    return errors


def _check_link(nid, cls, name, typ, value, prompt, object_info) -> list[str]:
    if len(value) != 2 or str(value[0]) not in prompt:
        return [f"{nid} {cls}.{name}: link to missing node {value!r}"]
    src = prompt[str(value[0])]
    outputs = object_info.get(src["class_type"], {}).get("output", [])
    if not isinstance(value[1], int) or not 0 <= value[1] < len(outputs):
        return [f"{nid} {cls}.{name}: {src['class_type']} has no output {value[1]!r}"]
    out_type = outputs[value[1]]
    if "*" not in (out_type, typ) and not (_types(out_type) & _types(typ)):
        return [f"{nid} {cls}.{name}: expects {typ}, linked to a {out_type} output"]
    return []


def _check_value(nid, cls, name, typ, opts, value, is_file) -> list[str]:
    where = f"{nid} {cls}.{name}={value!r}"
    if isinstance(typ, list) or typ == "COMBO":
        options = typ if isinstance(typ, list) else opts.get("options", [])
        if is_file:
            ok = isinstance(value, str) and "." in value and not value.startswith("/")
            return [] if ok else [f"{where}: not a file name"]
        return [] if value in options else [f"{where}: not one of {options}"]
    if typ == "INT":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: not an integer"]
    elif typ == "FLOAT":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [f"{where}: not a number"]
    elif typ == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{where}: not a boolean"]
    elif typ == "STRING":
        return [] if isinstance(value, str) else [f"{where}: not a string"]
    else:
        return [f"{where}: a {typ} input needs a link, not a constant"]
    if "min" in opts and value < opts["min"]:
        return [f"{where}: below min {opts['min']}"]
    if "max" in opts and value > opts["max"]:
        return [f"{where}: above max {opts['max']}"]
    return []
