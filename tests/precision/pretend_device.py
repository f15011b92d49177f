"""Device-placement checking without a GPU: tensors get a *pretend* device, and mixing devices fails.

``PretendDevice("cuda")`` is a ``TorchFunctionMode``. Inside it, asking for the pretend device (a
``device="cuda"`` factory argument, ``.to("cuda")``, ``.cuda()``, ``Module.to("cuda")``) really
computes on the CPU but tags the result as living on ``cuda:0``; ``tensor.device`` / ``.is_cuda``
report the tag, so code that follows ``x.device`` behaves as on a GPU. Every torch call then checks
its tensor arguments the way CUDA does and raises ``WrongDeviceError`` when they disagree:

* all tensor arguments on one device, except 0-dim CPU tensors (torch's scalar promotion) and the
  indices of ``tensor[index]`` (CPU indices are allowed for a CUDA tensor);
* cross-device copies only through ``.to / .cuda / .cpu / copy_ / __setitem__`` (which copy);
* a CPU ``torch.Generator`` cannot draw a pretend-device tensor; ``.numpy()`` of one fails.

Data-dependent code (``isfinite(...).all()``, ``.item()``, ``.tolist()``) runs for real, which the
``meta`` device cannot do. Tags live on tensor objects (not storages): an op's outputs inherit the
device of its inputs, ``param.data = t`` and ``nn.Parameter(t)`` inherit ``t``'s. Tensors created
where Python cannot see them (file loaders, C++ internals) are what they really are: CPU tensors.
"""
from __future__ import annotations

import weakref
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode

CPU = torch.device("cpu")


class WrongDeviceError(RuntimeError):
    """A tensor was used on another device than the one it (pretend-)lives on."""


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


class PretendDevice(TorchFunctionMode):
    def __init__(self, device: str = "cuda") -> None:
        super().__init__()
        d = torch.device(device)
        self.device = torch.device(d.type, 0 if d.index is None else d.index)
        self._tags: dict[int, tuple[weakref.ref, torch.device]] = {}
        self.calls = 0
        self._patches: list[tuple[Any, str, Any]] = []

    # ------------------------------------------------------------------ tags
    def device_of(self, t: torch.Tensor) -> torch.device:
        entry = self._tags.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        with torch._C.DisableTorchFunction():
            return t.device

    def _tag(self, t: torch.Tensor, device: torch.device) -> None:
        key = id(t)
        if device == self.device:
            tags = self._tags
            self._tags[key] = (weakref.ref(t, lambda _ref, k=key: tags.pop(k, None)), device)
        else:
            self._tags.pop(key, None)

    def is_pretend(self, device: Any) -> bool:
        if device is None:
            return False
        if isinstance(device, int):
            return True  # a bare index means a CUDA device
        return torch.device(device).type == self.device.type

    # ------------------------------------------------------------------ context
    def __enter__(self):
        mode = self
        original_new = torch.nn.Parameter.__new__

        def parameter_new(cls, data=None, requires_grad=True):
            p = original_new(cls, data, requires_grad)
            if isinstance(data, torch.Tensor):
                mode._tag(p, mode.device_of(data))
            return p

        self._patches = [(torch.nn.Parameter, "__new__", original_new),
                         (torch.cuda, "is_available", torch.cuda.is_available),
                         (torch.cuda, "current_device", torch.cuda.current_device),
                         (torch.cuda, "synchronize", torch.cuda.synchronize),
                         (torch.cuda, "empty_cache", torch.cuda.empty_cache)]
        torch.nn.Parameter.__new__ = staticmethod(parameter_new)
        torch.cuda.is_available = lambda: True
        torch.cuda.current_device = lambda: self.device.index
        torch.cuda.synchronize = lambda device=None: None
        torch.cuda.empty_cache = lambda: None
        return super().__enter__()

    def __exit__(self, *exc):
        for owner, name, value in self._patches:
            setattr(owner, name, staticmethod(value) if name == "__new__" else value)
        self._patches = []
        return super().__exit__(*exc)

    # ------------------------------------------------------------------ dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        self.calls += 1
        T = torch.Tensor
        # property accessors are new method-wrapper objects on every access: compare with ==, not is
        if func == T.device.__get__:
            return self.device_of(args[0])
        if func == T.is_cuda.__get__:
            return self.device_of(args[0]).type == "cuda"
        if func == T.is_cpu.__get__:
            return self.device_of(args[0]).type == "cpu"
        if func is T.get_device:
            d = self.device_of(args[0])
            return -1 if d.type == "cpu" else d.index
        if func == T.data.__set__:
            func(*args, **kwargs)
            self._tag(args[0], self.device_of(args[1]))
            return None
        if func in (T.numpy, T.__array__) and self.device_of(args[0]) != CPU:
            raise WrongDeviceError(f"can't convert {self.device_of(args[0])} device type tensor to numpy. Use "
                                   "Tensor.cpu() to copy the tensor to host memory first.")
        if func is T.to:
            return self._to(args, kwargs)
        if func is T.cuda:
            return self._move(args[0], self.device, None, copy=False)
        if func is T.cpu:
            return self._move(args[0], CPU, None, copy=False)
        if "device" in kwargs and kwargs["device"] is not None:
            return self._factory(func, args, kwargs)
        return self._checked(func, args, kwargs)

    def _checked(self, func, args, kwargs):
        T = torch.Tensor
        if func in (T.__getitem__, T.__setitem__):
            base = self.device_of(args[0])
            for idx in _tensors(args[1]):
                d = self.device_of(idx)
                if d != base and d != CPU:
                    raise WrongDeviceError(f"indices on {d} for a tensor on {base} ({_name(func)})")
            out = func(*args, **kwargs)
            if func is T.__getitem__:
                self._tag_all(out, base)
            return out
        if func is T.copy_ or func is torch._has_compatible_shallow_copy_type:
            return func(*args, **kwargs)  # copies across devices are legal; a type query is not a computation
        devices = []
        scalars = []
        for t in _tensors((args, kwargs)):
            d = self.device_of(t)
            with torch._C.DisableTorchFunction():
                is_scalar = d == CPU and t.dim() == 0
            (scalars if is_scalar else devices).append(d)
        unique = list(dict.fromkeys(devices))
        if len(unique) > 1:
            raise WrongDeviceError(f"Expected all tensors to be on the same device, but found at least two devices, "
                                   f"{unique[0]} and {unique[1]}! (in {_name(func)})")
        out = func(*args, **kwargs)
        target = unique[0] if unique else CPU
        self._tag_all(out, target)
        return out

    def _tag_all(self, out, device):
        for t in _tensors(out):
            self._tag(t, device)

    def _factory(self, func, args, kwargs):
        target = kwargs["device"]
        if not self.is_pretend(target):
            return self._checked(func, args, kwargs)
        gen = kwargs.get("generator")
        if gen is not None and gen.device.type != self.device.type:
            raise WrongDeviceError(f"Expected a '{self.device.type}' device type for generator but found "
                                   f"'{gen.device.type}' (in {_name(func)})")
        kwargs["device"] = CPU
        for t in _tensors(args):
            d = self.device_of(t)
            if func not in (torch.as_tensor, torch.tensor) and d != self.device and d != CPU:
                raise WrongDeviceError(f"argument on {d} for a {self.device} result (in {_name(func)})")
        out = func(*args, **kwargs)
        if func in (torch.as_tensor, torch.tensor) and isinstance(args[0], torch.Tensor) and out is args[0]:
            out = out.clone()
        self._tag_all(out, self.device)
        return out

    def _to(self, args, kwargs):
        t = args[0]
        rest = args[1:]
        if rest and isinstance(rest[0], torch.Tensor):
            other = rest[0]
            target, dtype = self.device_of(other), other.dtype
            nb, copy = kwargs.get("non_blocking", False), kwargs.get("copy", False)
        else:
            with torch._C.DisableTorchFunction():
                dev, dtype, nb, _fmt = torch._C._nn._parse_to(*rest, **{k: v for k, v in kwargs.items() if k != "copy"})
            target = None if dev is None else (self.device if self.is_pretend(dev) else torch.device(dev))
            copy = kwargs.get("copy", False)
        return self._move(t, target, dtype, copy=copy, non_blocking=nb)

    def _move(self, t, target, dtype, copy=False, non_blocking=False):
        current = self.device_of(t)
        target = current if target is None else target
        if target.type == self.device.type:
            target = self.device
        real = CPU if target == self.device else target
        changes = target != current
        with torch._C.DisableTorchFunction():
            out = t.to(device=real, dtype=dtype or t.dtype, non_blocking=non_blocking, copy=copy or changes)
        self._tag(out, target)
        return out
