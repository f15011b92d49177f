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


# --- Rounding bound of a replayed DDIM run -------------------------------------------------------------
#
# With the UNet replaced by recorded outputs, a DDIM run is a fixed chain of float32 element-wise
# operations: CFG ``u + g (c - u)``, the window average (sum / count), ``x0 = a x - b v``,
# ``eps = (r x - x0) / q``, ``x' = c x0 + d eps`` (docs/official_behaviour.md#ddim-step). Two
# implementations of that chain can differ only by rounding (float32 operation order, fused multiply-add,
# the last bit of a float64 schedule value before its cast). ``Bounded`` carries, next to the value
# computed in float64, a running bound on |float32 result - exact result| that holds for any order of
# evaluation and with or without FMA: every float32 operation adds at most ``U32 |result|`` (IEEE
# round-to-nearest), and input errors propagate through the first-order terms below. A float32 run, ours
# or the official one, then lies within ``err`` of ``val``; two such runs lie within 2 err of each other.

U32 = 2.0 ** -24  # unit roundoff of float32
SCHEDULE_RTOL = 1e-12  # float64 schedule values: ours vs the official arrays (test_sampling_schedule.py)


@dataclass
class Bounded:
    val: Tensor  # float64, the exact-arithmetic value (up to float64 rounding, 2^-53, negligible)
    err: Tensor  # float64 >= 0, bound on |a float32 implementation's value - val|

    @staticmethod
    def exact(x: Tensor) -> "Bounded":
        """A float32 input both runs share bit for bit (recorded noise or UNet output)."""
        return Bounded(x.double(), torch.zeros_like(x, dtype=torch.float64))

    @staticmethod
    def coefficient(value: float) -> "Bounded":
        """A float64 schedule value cast to float32 (plus the schedule's own cross-machine tolerance)."""
        v = torch.tensor(value, dtype=torch.float64)
        return Bounded(v, abs(v) * (U32 + SCHEDULE_RTOL))

    def _round(self, val: Tensor, err: Tensor) -> "Bounded":
        return Bounded(val, err + U32 * val.abs())

    def __add__(self, o: "Bounded") -> "Bounded":
        return self._round(self.val + o.val, self.err + o.err)

    def __sub__(self, o: "Bounded") -> "Bounded":
        return self._round(self.val - o.val, self.err + o.err)

    def __mul__(self, o: "Bounded") -> "Bounded":
        return self._round(self.val * o.val, self.val.abs() * o.err + o.val.abs() * self.err + self.err * o.err)

    def __truediv__(self, o: "Bounded") -> "Bounded":
        val = self.val / o.val
        assert bool((o.err < o.val.abs()).all()), "divisor not bounded away from zero"
        return self._round(val, (self.err + val.abs() * o.err) / (o.val.abs() - o.err))

    def sqrt(self) -> "Bounded":
        val = self.val.sqrt()
        assert bool((self.err < self.val).all()), "sqrt argument not bounded away from zero"
        return self._round(val, self.err / (self.val - self.err).sqrt().clamp_min(0).add(val))  # |sqrt(a+e)-sqrt(a)|

    @staticmethod
    def total(parts: list["Bounded"]) -> "Bounded":
        """Sum in any order: each partial sum rounds once, |partial| <= sum of |terms|."""
        val = sum(p.val for p in parts)
        err = sum(p.err for p in parts) + (len(parts) - 1) * U32 * sum(p.val.abs() for p in parts)
        return Bounded(val, err)


def bounded_ddim_run(start: Tensor, alphas_cumprod: Tensor, timesteps: Sequence[int],
                     predictions: Callable[[int], list[tuple[list[int], Tensor, Tensor]]],
                     guide_scale: float) -> Bounded:
    """The final latent of an eta-0 DDIM run with recorded predictions, with its float32 rounding bound.

    predictions(step) -> [(window frame indices, cond (1, 4, len, h, w), uncond)]: every window's recorded
    outputs at that step (one window covering all frames for the short sampler). alphas_cumprod: the
    float64 schedule (official arrays). The last step lands on alpha_bar[0].
    """
    x = Bounded.exact(start)
    frames = start.shape[2]
    g = Bounded.exact(torch.tensor(guide_scale))
    one = Bounded.exact(torch.tensor(1.0))
    for step, t in enumerate(timesteps):
        t_prev = timesteps[step + 1] if step + 1 < len(timesteps) else 0
        per_frame: dict[int, list[tuple[Bounded, Bounded]]] = {f: [] for f in range(frames)}
        for window, cond, uncond in predictions(step):
            for j, f in enumerate(window):
                per_frame[f].append((Bounded.exact(cond[:, :, j]), Bounded.exact(uncond[:, :, j])))
        v_frames = []
        for f in range(frames):
            parts = per_frame[f]
            if len(parts) == 1:
                c, u = parts[0]
            else:
                n = Bounded.exact(torch.tensor(float(len(parts))))
                c = Bounded.total([p[0] for p in parts]) / n
                u = Bounded.total([p[1] for p in parts]) / n
            v_frames.append(u + g * (c - u))
        v = Bounded(torch.stack([b.val for b in v_frames], 2), torch.stack([b.err for b in v_frames], 2))
        ab, ab_prev = float(alphas_cumprod[t]), float(alphas_cumprod[t_prev])
        a, b = Bounded.coefficient(ab ** 0.5), Bounded.coefficient((1 - ab) ** 0.5)
        r, q = Bounded.coefficient((1 / ab) ** 0.5), Bounded.coefficient((1 / ab - 1) ** 0.5)
        ab_prev32 = Bounded.coefficient(ab_prev)  # cast to float32, then sqrt / 1 - in float32
        x0 = a * x - b * v
        eps = (r * x - x0) / q
        x = ab_prev32.sqrt() * x0 + (one - ab_prev32).sqrt() * eps
    return x
