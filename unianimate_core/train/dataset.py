"""Training samples drawn from the prepared videos, each one a pure function of (seed, sample index).

Sample ``s`` of a run is fully determined by the seed and ``s``: which video (epoch ``s // V`` is a
seeded permutation of the V videos, so every video is seen once per epoch), where the clip starts,
the reference frame, the timestep, the noise mode, the condition drops and every noise tensor come
from one generator seeded with ``(seed, s)``, always drawn in the same order. Three consequences:

* resuming at sample ``s`` continues exactly the same stream (no data-loader state to save);
* N processes that split a global batch by index see exactly the samples one process would see
  with the whole batch (the data-parallel equivalence test relies on it);
* DataLoader workers need no coordination.

A sample (all CPU tensors; pixels stay uint8 until they reach the device):

| key | shape | content |
|---|---|---|
| ``x0`` | (4, F, h, w) f32 | clip latent: VAE posterior sample x 0.18215 |
| ``noise`` | (4, F, h, w) f32 | N(0, 1) + offset_noise x N(0, 1) per (channel, frame) |
| ``t`` | () int64 | training timestep |
| ``image`` | (1024,) f32 | CLIP embedding of the reference |
| ``dwpose`` | (3, F+1, H, W) u8 | reference pose, then one pose per clip frame |
| ``randomref`` | (4, 1, h, w) f32 | reference latent (posterior sample x 0.18215) |
| ``local_image`` | (3, 1, H, W) u8 | the clip's first frame (zeros outside the first-frame mode) |
| ``keep`` | (4,) bool | [condition slot kept (False = all dropped), image, pose, first frame] |
| ``index`` | () int64 | the sample index ``s`` |
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..pipeline.conditioning import LATENT_SCALE, posterior_sample
from ..pose.render import render_pose
from .config import DataConfig, ObjectiveConfig
from .data import PreparedVideo, person_of

KEEP_SLOTS = ("cond", "image", "pose", "first_frame")


def sample_generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator for ``(seed, *stream)`` (SeedSequence mixing: nearby indices are independent)."""
    state = np.random.SeedSequence([int(seed), *[int(s) for s in stream]]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


@dataclass(frozen=True)
class SampleSettings:
    frames: int
    width: int
    height: int
    reference: str
    reference_image: str
    max_missing_poses: int
    offset_noise: float
    first_frame_prob: float
    drop_image: float
    drop_pose: float
    drop_first_frame: float
    drop_all: float
    keep_all: float
    drop_all_includes_reference: bool
    t_min: int
    t_max: int

    @classmethod
    def from_config(cls, data: DataConfig, objective: ObjectiveConfig) -> "SampleSettings":
        return cls(data.frames, data.width, data.height, data.reference, data.reference_image,
                   data.max_missing_poses, objective.offset_noise, objective.first_frame_prob, objective.drop_image,
                   objective.drop_pose, objective.drop_first_frame, objective.drop_all, objective.keep_all,
                   objective.drop_all_includes_reference, objective.t_min, objective.t_max)


@dataclass(frozen=True)
class Decisions:
    """The per-sample choices: video, clip start, reference row, timestep, noise mode, kept conditions."""

    video: int
    start: int
    reference_row: int
    t: int
    first_frame: bool
    keep: Tensor  # (4,) bool: cond slot, image, pose, first frame


def valid_starts(present: np.ndarray, frames: int, max_missing: int) -> np.ndarray:
    """Clip start indices whose ``frames`` frames lack a person at most ``max_missing`` times."""
    n = len(present)
    if n < frames:
        return np.zeros(0, dtype=np.int64)
    missing = np.concatenate([[0], np.cumsum(~present)])
    counts = missing[frames:] - missing[:-frames]
    return np.flatnonzero(counts <= max_missing).astype(np.int64)


class _VideoData:
    """Lazily opened arrays of one prepared video (per process: DataLoader workers open their own)."""

    def __init__(self, video: PreparedVideo) -> None:
        from safetensors import safe_open

        self.video = video
        self.frames = video.frames()
        poses = video.poses()
        self.keypoints, self.scores = poses["keypoints"], poses["scores"]
        self.reference = video.reference()
        self._latents = safe_open(str(video.latents), framework="pt")
        with safe_open(str(video.clip), framework="pt") as f:
            self.embeds = f.get_tensor("embeds")

    def moments(self, rows: Sequence[int]) -> Tensor:
        sl = self._latents.get_slice("moments")
        return torch.stack([sl[int(r)] for r in rows]).float()


class ClipDataset(torch.utils.data.Dataset):
    """Map-style dataset indexed by the global sample index ``s`` (any non-negative integer)."""

    def __init__(self, videos: Sequence[PreparedVideo], settings: SampleSettings, seed: int,
                 with_frames: bool = False) -> None:
        self.settings = settings
        self.seed = int(seed)
        self.with_frames = with_frames
        self.videos: list[PreparedVideo] = []
        self.starts: list[np.ndarray] = []
        self.dropped: list[str] = []
        for v in videos:
            starts = valid_starts(v.present, settings.frames, settings.max_missing_poses)
            if len(starts):
                self.videos.append(v)
                self.starts.append(starts)
            else:
                self.dropped.append(v.name)
        self._open: dict[int, _VideoData] = {}
        self._perms: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def video_for(self, s: int) -> int:
        epoch, pos = divmod(int(s), len(self.videos))
        perm = self._perms.get(epoch)
        if perm is None:
            perm = torch.randperm(len(self.videos), generator=sample_generator(self.seed, 1, epoch))
            self._perms = {epoch: perm}
        return int(perm[pos])

    def _data(self, i: int) -> _VideoData:
        if i not in self._open:
            self._open[i] = _VideoData(self.videos[i])
        return self._open[i]

    def decisions(self, s: int) -> "Decisions":
        """The random choices of sample ``s`` (the first draws of its stream; ``__getitem__`` uses them)."""
        return self._decisions(self.video_for(s), sample_generator(self.seed, 0, int(s)))

    def _decisions(self, vi: int, g: torch.Generator) -> "Decisions":
        st = self.settings
        video, starts = self.videos[vi], self.starts[vi]
        start = int(starts[int(torch.randint(len(starts), (1,), generator=g))])
        ref_row = self._reference_row(video, start, g)
        t = int(torch.randint(st.t_min, st.t_max + 1, (1,), generator=g))
        first_frame = bool(torch.rand(1, generator=g) < st.first_frame_prob)
        u = float(torch.rand(1, generator=g))
        per = torch.rand(3, generator=g)
        drop_all = u < st.drop_all
        keep_all = st.drop_all <= u < st.drop_all + st.keep_all
        keep = per >= torch.tensor([st.drop_image, st.drop_pose, st.drop_first_frame])
        if keep_all:
            keep[:] = True
        if drop_all:
            keep[:] = False
        keep[2] &= first_frame
        cond = not (drop_all and st.drop_all_includes_reference)
        return Decisions(vi, start, ref_row, t, first_frame, torch.cat([torch.tensor([cond]), keep]))

    def __getitem__(self, s: int) -> dict[str, Tensor]:
        st = self.settings
        vi = self.video_for(s)
        data = self._data(vi)
        g = sample_generator(self.seed, 0, int(s))
        f = st.frames
        d = self._decisions(vi, g)
        start, ref_row, t, first_frame = d.start, d.reference_row, d.t, d.first_frame

        rows = list(range(start, start + f))
        x0 = posterior_sample(data.moments(rows), g).mul(LATENT_SCALE).permute(1, 0, 2, 3).contiguous()
        ref = posterior_sample(data.moments([ref_row]), g).mul(LATENT_SCALE).permute(1, 0, 2, 3).contiguous()
        noise = torch.randn(x0.shape, generator=g)
        offset = torch.randn((x0.shape[0], f, 1, 1), generator=g)
        noise = noise + st.offset_noise * offset

        poses = [self._ref_pose(data, ref_row)] + [self._pose(data, r) for r in rows]
        dwpose = torch.from_numpy(np.stack(poses)).permute(3, 0, 1, 2).contiguous()
        if first_frame:
            first = torch.from_numpy(np.array(data.frames[start])).permute(2, 0, 1)[:, None].contiguous()
        else:
            first = torch.zeros((3, 1, st.height, st.width), dtype=torch.uint8)
        sample = {
            "x0": x0, "noise": noise, "t": torch.tensor(t, dtype=torch.int64),
            "image": data.embeds[ref_row].float().clone(), "dwpose": dwpose, "randomref": ref, "local_image": first,
            "keep": d.keep, "index": torch.tensor(int(s), dtype=torch.int64),
        }
        if self.with_frames:
            sample["frames"] = torch.from_numpy(np.asarray(data.frames[start:start + f]).copy())
            sample["reference_pixels"] = torch.from_numpy(self._ref_pixels(data, ref_row).copy())
        return sample

    # ------------------------------------------------------------------ reference
    def _reference_row(self, video: PreparedVideo, start: int, g: torch.Generator) -> int:
        """Row of the reference in the moments/embeddings (row N = the video's reference image)."""
        st = self.settings
        draw = int(torch.randint(1 << 30, (1,), generator=g))  # always drawn: keeps the stream aligned
        if video.has_reference_image and st.reference_image == "prefer":
            return video.num_frames
        if st.reference == "first":
            return start
        candidates = np.flatnonzero(video.present)
        if st.reference == "random_outside_clip":
            outside = candidates[(candidates < start) | (candidates >= start + st.frames)]
            if len(outside):
                candidates = outside
        return int(candidates[draw % len(candidates)])

    def _ref_pose(self, data: _VideoData, row: int) -> np.ndarray:
        if row == data.video.num_frames:
            assert data.reference is not None
            return render_pose(person_of(data.reference["keypoints"], data.reference["scores"]),
                               self.settings.width, self.settings.height)
        return self._pose(data, row)

    def _ref_pixels(self, data: _VideoData, row: int) -> np.ndarray:
        if row == data.video.num_frames:
            assert data.reference is not None
            return data.reference["image"]
        return np.asarray(data.frames[row])

    def _pose(self, data: _VideoData, row: int) -> np.ndarray:
        if not data.video.present[row]:
            return np.zeros((self.settings.height, self.settings.width, 3), dtype=np.uint8)
        return render_pose(person_of(data.keypoints[row], data.scores[row]), self.settings.width, self.settings.height)


class SampleIndexBatches(torch.utils.data.Sampler):
    """Batches of global sample indices for one process: micro-step ``m`` of optimizer step ``k``.

    Global sample indices of optimizer step k: ``base_k + [0, G)`` with G = world x batch x accum and
    ``base_k`` = samples seen before step k. Micro-step m of rank r takes
    ``base_k + m*world*batch + r*batch + [0, batch)``.
    """

    def __init__(self, first_step: int, steps: int, samples_before: int, batch: int, accum: int, world: int,
                 rank: int) -> None:
        self.first_step, self.steps = first_step, steps
        self.samples_before = samples_before
        self.batch, self.accum, self.world, self.rank = batch, accum, world, rank

    @property
    def global_batch(self) -> int:
        return self.world * self.batch * self.accum

    def __len__(self) -> int:
        return (self.steps - self.first_step) * self.accum

    def __iter__(self):
        base = self.samples_before
        for _ in range(self.first_step, self.steps):
            for m in range(self.accum):
                first = base + m * self.world * self.batch + self.rank * self.batch
                yield list(range(first, first + self.batch))
            base += self.global_batch


def collate(samples: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def make_loader(dataset: ClipDataset, batches: SampleIndexBatches, workers: int) -> Any:
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate,
                                       persistent_workers=False, pin_memory=False)
