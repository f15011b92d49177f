"""Replay models: stand-ins for the UNet that return the official UNet outputs recorded in the
golden DDIM fixtures, after checking that the sampler called them with the right inputs.

A call is described per batch sample by ``(step, window, is_cond)``. The fake checks t, the noisy
latent (against the official state before that step, sliced to the window), every condition
(window slicing of dwpose with the reference pose first, randomref/local_image slicing, image
repetition; all None for the unconditional branch) and then returns the recorded prediction(s).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

Sample = tuple[int, tuple[int, ...], bool]  # (step index, frame window, is_cond)
CONDITION_KEYS = ("image", "local_image", "dwpose", "randomref")


@dataclass
class ExpectedCall:
    t: int
    samples: list[Sample]


@dataclass
class ReplayModel:
    """Replays ``output(step, window, is_cond) -> (1, 4, len(window), h, w)`` for an expected call list.

    state_before[s]: the official latent (1, 4, F, h, w) before step s; full_cond: the full-length
    condition tensors as the official code received them (float); batched: accept ``cond_mask``.
    """

    expected: list[ExpectedCall]
    output: Callable[[int, tuple[int, ...], bool], Tensor]
    state_before: Sequence[Tensor]
    full_cond: dict[str, Tensor | None]
    batched: bool = False
    x_atol: float = 1e-4
    calls: int = 0
    max_batch: int = 0
    max_frames: int = 0
    max_x_diff: float = 0.0
    seen: list[ExpectedCall] = field(default_factory=list)

    @property
    def supports_cond_mask(self) -> bool:
        return self.batched

    def __call__(self, x: Tensor, t: Tensor, image: Tensor | None = None, local_image: Tensor | None = None,
                 dwpose: Tensor | None = None, randomref: Tensor | None = None,
                 cond_mask: Tensor | None = None) -> Tensor:
        assert self.calls < len(self.expected), f"unexpected extra model call #{self.calls}"
        exp = self.expected[self.calls]
        self.calls += 1
        self.max_batch = max(self.max_batch, x.shape[0])
        self.max_frames = max(self.max_frames, x.shape[2])
        assert x.shape[0] == len(exp.samples), (x.shape, exp.samples)
        assert t.shape == (x.shape[0],) and t.dtype == torch.int64 and bool((t == exp.t).all()), (t, exp.t)
        is_cond = [s[2] for s in exp.samples]
        if cond_mask is None:
            assert not self.batched or len(set(is_cond)) == 1
            assert len(set(is_cond)) == 1, "a call without cond_mask must be all-cond or all-uncond"
        else:
            assert self.batched, "cond_mask passed to a model that did not declare support"
            assert cond_mask.dtype == torch.bool and cond_mask.tolist() == is_cond, (cond_mask, is_cond)
        for i, (step, window, _) in enumerate(exp.samples):
            want = self.state_before[step][:, :, list(window)]
            diff = (x[i:i + 1].float() - want).abs().max().item()
            self.max_x_diff = max(self.max_x_diff, diff)
            assert diff <= self.x_atol, f"call {self.calls - 1} sample {i}: x differs by {diff}"
        cond_rows = [i for i, s in enumerate(exp.samples) if s[2]]
        got = dict(image=image, local_image=local_image, dwpose=dwpose, randomref=randomref)
        if not cond_rows:
            assert all(v is None for v in got.values()), "unconditional call must drop every condition"
        else:
            # UNet contract: condition tensors carry the full batch; rows with cond_mask False are ignored
            rows = {k: None if v is None else v[cond_rows] for k, v in got.items()}
            self._check_conditions(rows, [exp.samples[i][1] for i in cond_rows])
        return torch.cat([self.output(*s) for s in exp.samples]).to(x.dtype)

    def _check_conditions(self, got: dict[str, Tensor | None], windows: list[tuple[int, ...]]) -> None:
        for key in CONDITION_KEYS:
            full = self.full_cond.get(key)
            if full is None:
                assert got[key] is None, f"{key} passed but the run does not use it"
                continue
            assert got[key] is not None, f"{key} missing from a conditional call"
            parts = []
            for window in windows:
                if key == "image":
                    parts.append(full)
                elif key == "dwpose":
                    parts.append(full[:, :, [0] + [i + 1 for i in window]])
                else:
                    parts.append(full[:, :, list(window)] if full.shape[2] > 1 else full)
            want = torch.cat(parts)
            value = got[key]
            if key == "randomref" and value.shape[2] == 1:  # type: ignore[union-attr]
                want = want[:, :, :1]  # the UNet only reads frame 0
            assert value.shape == want.shape, (key, value.shape, want.shape)  # type: ignore[union-attr]
            assert torch.equal(value.float(), want), f"{key} differs from the official model input"  # type: ignore[union-attr]


def official_call_sequence(timesteps: Sequence[int], batches: Sequence[Sequence[Sequence[int]]],
                           batched: bool, guided: bool = True) -> list[ExpectedCall]:
    """Calls the sampler should make: per step, per window group: cond then uncond (or one batched call)."""
    calls: list[ExpectedCall] = []
    for step, t in enumerate(timesteps):
        for group in batches:
            cond = [(step, tuple(w), True) for w in group]
            uncond = [(step, tuple(w), False) for w in group]
            if not guided:
                calls.append(ExpectedCall(t, cond))
            elif batched:
                calls.append(ExpectedCall(t, cond + uncond))
            else:
                calls += [ExpectedCall(t, cond), ExpectedCall(t, uncond)]
    return calls


def recorded_outputs(calls_v: Tensor, calls_t: Tensor, calls_is_cond: Tensor, timesteps: Sequence[int],
                     windows: Sequence[Sequence[int]]) -> dict[Sample, Tensor]:
    """Index the official per-call outputs (one window per call, cond then uncond) by sample."""
    table: dict[Sample, Tensor] = {}
    i = 0
    for step, t in enumerate(timesteps):
        for window in windows:
            for is_cond in (True, False):
                assert int(calls_t[i]) == t and bool(calls_is_cond[i]) == is_cond
                table[(step, tuple(window), is_cond)] = calls_v[i:i + 1]
                i += 1
    assert i == calls_v.shape[0]
    return table
