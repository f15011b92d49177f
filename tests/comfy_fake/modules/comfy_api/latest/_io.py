"""FAKE subset of ComfyUI's V3 node schema API (`comfy_api.latest.io`), for CI without ComfyUI.

Only what the UniAnimate nodes and the workflow checks need: `Schema`, `ComfyNode`, `NodeOutput`,
`Hidden`, `Custom`, and the input/output types Boolean, Int, Float, String, Combo, Image, Mask,
Latent, Vae, Clip, ClipVision, ClipVisionOutput, Model, Conditioning, Video. Constructor parameters have the
same names, order and defaults as ComfyUI v0.8.0 (`comfy_api/latest/_io.py`), and
`INPUT_TYPES()` / `GET_NODE_INFO_V1()` produce the same V1 dictionaries the real server publishes
in `/object_info`, so tests can validate workflows against either. Behaviour that the real API
has and the nodes do not use (dynamic inputs, lazy evaluation, node expansion, ui outputs) is
left out on purpose. This file was written for the tests; it contains no ComfyUI code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def _prune(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class _classproperty:
    """Read-only class-level property (the real API exposes RETURN_TYPES etc. this way)."""

    def __init__(self, fget):
        self.fget = fget

    def __get__(self, obj, owner):
        return self.fget(owner)


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


# --------------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------------
class Input:
    """Base class of a socket input (same fields as the real `Input`)."""

    io_type: str = None

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                 lazy: bool = None, extra_dict=None, raw_link: bool = None):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}
        self.rawLink = raw_link

    def as_dict(self) -> dict:
        return _prune({
            "display_name": self.display_name,
            "optional": self.optional,
            "tooltip": self.tooltip,
            "lazy": self.lazy,
            "rawLink": self.rawLink,
        }) | _prune(self.extra_dict)

    def get_io_type(self) -> str:
        return self.io_type

    def get_all(self) -> list["Input"]:
        return [self]


class WidgetInput(Input):
    """Input that is a widget by default (number, text, combo ...)."""

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                 lazy: bool = None, default: Any = None, socketless: bool = None,
                 widget_type: str = None, force_input: bool = None, extra_dict=None,
                 raw_link: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self) -> dict:
        return super().as_dict() | _prune({
            "default": self.default,
            "socketless": self.socketless,
            "widgetType": self.widget_type,
            "forceInput": self.force_input,
        })

    def get_io_type(self) -> str:
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output:
    io_type: str = None

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None,
                 is_output_list=False):
        self.id = id
        self.display_name = display_name if display_name else id
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict:
        return _prune({
            "display_name": self.display_name if self.display_name else self.id,
            "tooltip": self.tooltip,
            "is_output_list": self.is_output_list,
        })

    def get_io_type(self) -> str:
        return self.io_type


def _socket_type(io_type: str, input_base: type = Input, type_name: str | None = None) -> type:
    """Build a type class with nested `Input`/`Output` bound to `io_type` (like `@comfytype`)."""
    inp = type("Input", (input_base,), {"io_type": io_type})
    out = type("Output", (Output,), {"io_type": io_type})
    return type(type_name or io_type.title(), (), {"io_type": io_type, "Input": inp, "Output": out})


def Custom(io_type: str) -> type:
    """A socket type for a custom `io_type` string (e.g. "UNIANIMATE_MODEL")."""
    return _socket_type(io_type, type_name="CustomComfyType")


class Boolean:
    io_type = "BOOLEAN"

    class Input(WidgetInput):
        io_type = "BOOLEAN"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, default: bool = None, label_on: str = None,
                     label_off: str = None, socketless: bool = None, force_input: bool = None,
                     extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link)
            self.label_on = label_on
            self.label_off = label_off

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({"label_on": self.label_on,
                                               "label_off": self.label_off})

    class Output(Output):
        io_type = "BOOLEAN"


class Int:
    io_type = "INT"

    class Input(WidgetInput):
        io_type = "INT"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, default: int = None, min: int = None, max: int = None,
                     step: int = None, control_after_generate: bool = None,
                     display_mode: NumberDisplay = None, socketless: bool = None,
                     force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link)
            self.min = min
            self.max = max
            self.step = step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({
                "min": self.min,
                "max": self.max,
                "step": self.step,
                "control_after_generate": self.control_after_generate,
                "display": self.display_mode.value if self.display_mode else None,
            })

    class Output(Output):
        io_type = "INT"


class Float:
    io_type = "FLOAT"

    class Input(WidgetInput):
        io_type = "FLOAT"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, default: float = None, min: float = None,
                     max: float = None, step: float = None, round: float = None,
                     display_mode: NumberDisplay = None, socketless: bool = None,
                     force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link)
            self.min = min
            self.max = max
            self.step = step
            self.round = round
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({
                "min": self.min,
                "max": self.max,
                "step": self.step,
                "round": self.round,
                "display": self.display_mode,
            })

    class Output(Output):
        io_type = "FLOAT"


class String:
    io_type = "STRING"

    class Input(WidgetInput):
        io_type = "STRING"

        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, multiline=False, placeholder: str = None,
                     default: str = None, dynamic_prompts: bool = None, socketless: bool = None,
                     force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             force_input, extra_dict, raw_link)
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({
                "multiline": self.multiline,
                "placeholder": self.placeholder,
                "dynamicPrompts": self.dynamic_prompts,
            })

    class Output(Output):
        io_type = "STRING"


class Combo:
    io_type = "COMBO"

    class Input(WidgetInput):
        io_type = "COMBO"

        def __init__(self, id: str, options: list[str] | list[int] | type[Enum] = None,
                     display_name: str = None, optional=False, tooltip: str = None,
                     lazy: bool = None, default: str | int | Enum = None,
                     control_after_generate: bool = None, upload: UploadType = None,
                     image_folder: FolderType = None, remote=None, socketless: bool = None,
                     extra_dict=None, raw_link: bool = None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [v.value for v in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None,
                             None, extra_dict, raw_link)
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self) -> dict:
            return super().as_dict() | _prune({
                "multiselect": self.multiselect,
                "options": self.options,
                "control_after_generate": self.control_after_generate,
                **({self.upload.value: True} if self.upload is not None else {}),
                "image_folder": self.image_folder.value if self.image_folder else None,
            })

    class Output(Output):
        io_type = "COMBO"


Image = _socket_type("IMAGE", type_name="Image")
Mask = _socket_type("MASK", type_name="Mask")
Latent = _socket_type("LATENT", type_name="Latent")
Vae = _socket_type("VAE", type_name="Vae")
Clip = _socket_type("CLIP", type_name="Clip")
ClipVision = _socket_type("CLIP_VISION", type_name="ClipVision")
ClipVisionOutput = _socket_type("CLIP_VISION_OUTPUT", type_name="ClipVisionOutput")
Model = _socket_type("MODEL", type_name="Model")
Conditioning = _socket_type("CONDITIONING", type_name="Conditioning")
Video = _socket_type("VIDEO", type_name="Video")


class MultiType:
    """An input socket that accepts several types (shown as "T1,T2" to the frontend)."""

    class Input(Input):
        def __init__(self, id: str, types: list, display_name: str = None, optional=False,
                     tooltip: str = None, lazy: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
            self._io_types = types

        def get_io_type(self) -> str:
            return ",".join(dict.fromkeys(t.io_type for t in self._io_types))


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """Values of the hidden inputs; every unknown attribute reads as None, like the real one."""

    def __init__(self, unique_id: str = None, prompt: Any = None, extra_pnginfo: Any = None,
                 dynprompt: Any = None, auth_token_comfy_org: str = None,
                 api_key_comfy_org: str = None, **kwargs):
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org

    def __getattr__(self, key: str):
        return None


# --------------------------------------------------------------------------------------------
# Schema, node base class, node output
# --------------------------------------------------------------------------------------------
@dataclass
class Schema:
    """Definition of V3 node properties (same fields and defaults as the real dataclass)."""

    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self) -> None:
        """Input ids and output ids must each be unique (the real check)."""
        input_ids = [i.id for i in self.inputs]
        output_ids = [o.id for o in self.outputs]
        issues = []
        if len(set(input_ids)) != len(input_ids):
            issues.append(f"Input ids must be unique, but {input_ids} are not.")
        if len(set(output_ids)) != len(output_ids):
            issues.append(f"Output ids must be unique, but {output_ids} are not.")
        if issues:
            raise ValueError("\n".join(issues))

    def finalize(self) -> None:
        """Add hidden inputs implied by flags and give outputs without ids default ids."""
        self.inputs = self.inputs or []
        self.outputs = self.outputs or []
        self.hidden = self.hidden or []
        if self.is_output_node:
            for h in (Hidden.prompt, Hidden.extra_pnginfo):
                if h not in self.hidden:
                    self.hidden.append(h)
        for i, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{i}_{output.io_type}_"

    def v1_inputs(self) -> dict:
        """The `input` dictionary of `/object_info` (required/optional/hidden)."""
        d: dict = {"required": {}}
        for i in self.inputs:
            spec = i.as_dict()
            spec.pop("optional", None)
            d.setdefault("optional" if i.optional else "required", {})[i.id] = (i.get_io_type(), spec)
        for h in self.hidden:
            d.setdefault("hidden", {})[h.name] = (h.value,)
        return d


class NodeOutput:
    """Standardised node result: positional outputs plus an optional `ui` payload."""

    def __init__(self, *args: Any, ui: Any = None, expand: dict = None, block_execution: str = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    def __getitem__(self, index) -> Any:
        return self.args[index]


class ComfyNode:
    """Base class of V3 nodes: classmethods only, no instance state."""

    hidden: HiddenHolder = HiddenHolder()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.finalize()
        schema.validate()
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return cls.GET_SCHEMA().v1_inputs()

    @_classproperty
    def RETURN_TYPES(cls):  # noqa: N802 - the real attribute name
        return [o.io_type for o in cls.GET_SCHEMA().outputs]

    @_classproperty
    def RETURN_NAMES(cls):  # noqa: N802
        return [o.display_name if o.display_name else o.io_type for o in cls.GET_SCHEMA().outputs]

    @_classproperty
    def DESCRIPTION(cls):  # noqa: N802
        return cls.GET_SCHEMA().description

    @_classproperty
    def CATEGORY(cls):  # noqa: N802
        return cls.GET_SCHEMA().category

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict:
        """One entry of `/object_info`, in the shape the real server sends."""
        schema = cls.GET_SCHEMA()
        inputs = schema.v1_inputs()
        return {
            "input": inputs,
            "input_order": {k: list(v.keys()) for k, v in inputs.items()},
            "output": [o.io_type for o in schema.outputs],
            "output_is_list": [o.is_output_list for o in schema.outputs],
            "output_name": [o.display_name if o.display_name else o.io_type for o in schema.outputs],
            "output_tooltips": [o.tooltip if o.tooltip else None for o in schema.outputs],
            "name": schema.node_id,
            "display_name": schema.display_name,
            "description": schema.description,
            "category": schema.category,
            "output_node": schema.is_output_node,
            "deprecated": schema.is_deprecated,
            "experimental": schema.is_experimental,
        }
