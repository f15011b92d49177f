"""FAKE `comfy.model_patcher` (tests only): the ModelPatcher surface the nodes touch.

Like the real class it stores the module, its load/offload devices, sets `model.device` when the
module has none, and adds the bookkeeping attributes ComfyUI writes onto wrapped modules (so a
module that cannot take them fails here too). Weight patches are recorded like the real
`add_patches` does (only keys of the model's state dict, one entry per patch); applying them on load
and partial loading are not faked (the real-host tests apply them).
"""
from __future__ import annotations

import copy
import uuid

from . import model_management


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if not hasattr(self.model, "device"):
            self.model.device = offload_device
        elif self.model.device is None:
            self.model.device = offload_device
        self.patches = {}
        self.object_patches = {}
        self.model_options = {"transformer_options": {}}
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update
        self.patches_uuid = uuid.uuid4()
        self.parent = None
        self.wrappers = {}
        self.callbacks = {}
        for attr, value in (("model_loaded_weight_memory", 0), ("lowvram_patch_counter", 0),
                            ("model_lowvram", False), ("current_weight_patches_uuid", None),
                            ("model_offload_buffer_memory", 0)):
            if not hasattr(self.model, attr):
                setattr(self.model, attr, value)

    def model_size(self):
        if self.size > 0:
            return self.size
        self.size = model_management.module_size(self.model)
        return self.size

    def clone(self):
        n = self.__class__(self.model, self.load_device, self.offload_device, self.model_size(),
                           weight_inplace_update=self.weight_inplace_update)
        n.parent = self
        n.patches = {k: list(v) for k, v in self.patches.items()}
        n.model_options = copy.deepcopy(self.model_options)
        n.wrappers = {t: {k: list(v) for k, v in by_key.items()} for t, by_key in self.wrappers.items()}
        return n

    def add_wrapper_with_key(self, wrapper_type, key, wrapper):
        self.wrappers.setdefault(wrapper_type, {}).setdefault(key, []).append(wrapper)

    def remove_wrappers_with_key(self, wrapper_type, key):
        self.wrappers.get(wrapper_type, {}).pop(key, None)

    def get_all_wrappers(self, wrapper_type):
        return [w for ws in self.wrappers.get(wrapper_type, {}).values() for w in ws]

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        model_sd = self.model.state_dict()
        added = set()
        for key, patch in patches.items():
            if key in model_sd:
                added.add(key)
                self.patches.setdefault(key, []).append((strength_patch, patch, strength_model, None, None))
        self.patches_uuid = uuid.uuid4()
        return list(added)

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def model_dtype(self):
        if hasattr(self.model, "get_dtype"):
            return self.model.get_dtype()

    def get_model_object(self, name):
        obj = self.model
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def model_patches_models(self):
        return []

    def loaded_size(self):
        return self.model.model_loaded_weight_memory
