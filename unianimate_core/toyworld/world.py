"""The synthetic world: clips of a character moving in a scene, with exact ground truth.

    from unianimate_core.toyworld import World, WorldConfig
    world = World(WorldConfig(width=128, height=128, frames=16))
    clip = world.clip("train", 0)          # deterministic for (config, split, index)
    clip.frames            # (F, H, W, 3) uint8 ground-truth frames
    clip.reference         # (H, W, 3) uint8 reference image (same character and scene, another time)
    clip.pose_images()     # (F, H, W, 3) uint8 driving poses, drawn by unianimate_core.pose.render
    clip.reference_pose_image()
    clip.keypoints, clip.scores   # (F, 134, 2) normalised Wholebody-134 keypoints, (F, 134) 1/0
    clip.limb_masks()      # (F, 8, H, W) bool exact visible masks of the eight identity limbs

Splits are by character identity *and* by motion: character and motion ids whose last decimal
digit is 0-7 are training ids, 8 validation, 9 test (:func:`split_of`), and a clip of a split only
uses characters and motions of that split. Everything is a pure function of the config's ``seed``
and the ids, so any clip can be regenerated anywhere, in any order, in parallel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..pose.keypoints import Person, PoseFrame
from .character import LIMBS, CharacterSpec, sample_character
from .errors import ToyWorldError, check_count, check_size
from .motion import Motion
from .render import Camera, Scene, colour_frame, colour_table, draw_labels, render_background, sample_scene
from .skeleton import LIMB_LABEL0, OCCLUDER, pose_body

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_DIGITS = {"train": tuple(range(8)), "val": (8,), "test": (9,)}
REFERENCE_RULES: tuple[str, ...] = ("random", "first")
RENDER_MODES: tuple[str, ...] = ("blocks", "sharp")
#: The clip's start time is redrawn (up to this many draws) until the body's centre comes within
#: ON_STAGE body heights of the stage centre during the clip, and the random reference time until it
#: is there at that time: a clip never misses its character entirely and the reference shows it.
REFERENCE_TRIES = 16
ON_STAGE = 0.5
#: Side of the constant blocks of ``render="blocks"`` frames (the codec's reduction factor).
BLOCK = 8


def split_of(identity: int) -> str:
    """The split a character or motion id belongs to (last decimal digit 0-7 train, 8 val, 9 test)."""
    d = int(identity) % 10
    return "train" if d < 8 else ("val" if d == 8 else "test")


def nth_id(split: str, n: int) -> int:
    """The ``n``-th character/motion id of ``split`` (0, 1, ..., 7, 10, 11, ... for train; 8, 18, ... for val)."""
    digits = _SPLIT_DIGITS[_check_split(split)]
    return 10 * (int(n) // len(digits)) + digits[int(n) % len(digits)]


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ToyWorldError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    return split


@dataclass(frozen=True)
class WorldConfig:
    """Options of the world.

    width/height: frame size in pixels (multiples of 8; the UNet needs multiples of 64).
    frames: frames per clip (any length: long clips extend the same motion). fps: frames per
    second of the motion clock (8: a walk cycle takes ~8 frames). seed: world seed (changes every
    character, motion and scene). supersample: drawing resolution factor for anti-aliasing (2;
    1 is faster and aliased). occluder_prob: share of scenes with an object in front of the body.
    reference: "random" (a frame at a random time of the same motion and scene, as a frame picked
    from a real video - a time at which the body is on the stage) or "first" (the clip's first frame). characters/motions: how many ids each
    split draws from (train, val, test). render: "blocks" (every 8x8 block of a frame is one colour,
    the area average of the anti-aliased drawing: exactly what the world's codec represents, so
    encoding and decoding ground truth is lossless) or "sharp" (the anti-aliased drawing itself).
    Keypoints, label maps and masks are the exact geometry in both modes.
    """

    width: int = 128
    height: int = 128
    frames: int = 16
    fps: float = 8.0
    seed: int = 0
    supersample: int = 2
    occluder_prob: float = 0.25
    reference: str = "random"
    characters: tuple[int, int, int] = (2000, 100, 100)
    motions: tuple[int, int, int] = (2000, 100, 100)
    render: str = "blocks"

    def __post_init__(self) -> None:
        check_size(self.width, self.height)
        check_count(self.frames, "frames")
        check_count(self.supersample, "supersample")
        if self.supersample > 4:
            raise ToyWorldError(f"supersample must be 1..4, got {self.supersample}.")
        if not (isinstance(self.fps, (int, float)) and 0 < float(self.fps) <= 120):
            raise ToyWorldError(f"fps must be a number in (0, 120], got {self.fps!r}.")
        if not (isinstance(self.occluder_prob, (int, float)) and 0.0 <= float(self.occluder_prob) <= 1.0):
            raise ToyWorldError(f"occluder_prob must be in [0, 1], got {self.occluder_prob!r}.")
        if self.render not in RENDER_MODES:
            raise ToyWorldError(f"render must be one of {', '.join(RENDER_MODES)}, got {self.render!r}.")
        if self.reference not in REFERENCE_RULES:
            raise ToyWorldError(f"reference must be one of {', '.join(REFERENCE_RULES)}, got {self.reference!r}.")
        for name in ("characters", "motions"):
            v = getattr(self, name)
            if len(v) != 3:
                raise ToyWorldError(f"{name} must be three pool sizes (train, val, test), got {v!r}.")
            for n in v:
                check_count(n, f"{name} pool size")


@dataclass
class ToyClip:
    """One rendered clip and its ground truth (see the module docstring)."""

    frames: np.ndarray              # (F, H, W, 3) uint8
    reference: np.ndarray           # (H, W, 3) uint8
    keypoints: np.ndarray           # (F, 134, 2) normalised (x / W, y / H)
    scores: np.ndarray              # (F, 134) 1.0 visible, 0.0 not (facing away, outside, occluded)
    reference_keypoints: np.ndarray  # (134, 2)
    reference_scores: np.ndarray    # (134,)
    labels: np.ndarray              # (F, H, W) uint8 label map (see skeleton.LABEL_NAMES)
    reference_labels: np.ndarray    # (H, W) uint8
    background: np.ndarray          # (H, W, 3) uint8 the scene without the character
    character: CharacterSpec
    motion_id: int
    scene: Scene
    times: np.ndarray               # (F,) seconds on the motion clock
    reference_time: float
    motion_kinds: list[str]
    split: str | None = None
    index: int | None = None
    torso_px: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (F,) neck-to-mid-hip length in pixels
    limb_visibility: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))  # (F, 8) visible / full limb area
    _pose_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    # ---------------------------------------------------------------- poses
    def pose_frames(self) -> list[PoseFrame]:
        """Ground-truth keypoints as pose-pipeline :class:`PoseFrame` objects (one person each)."""
        return [PoseFrame(self.width, self.height, [Person(k, s)]) for k, s in zip(self.keypoints, self.scores)]

    def reference_pose_frame(self) -> PoseFrame:
        return PoseFrame(self.width, self.height, [Person(self.reference_keypoints, self.reference_scores)])

    def pose_images(self, colors: str = "unianimate") -> np.ndarray:
        """Driving pose images ``(F, H, W, 3)`` uint8, drawn by the pose pipeline exactly as for real videos."""
        from ..pose.render import render_poses

        key = ("frames", colors)
        if key not in self._pose_cache:
            self._pose_cache[key] = render_poses(self.pose_frames(), self.width, self.height, colors=colors)
        return self._pose_cache[key]

    def reference_pose_image(self, colors: str = "unianimate") -> np.ndarray:
        from ..pose.render import render_pose

        key = ("reference", colors)
        if key not in self._pose_cache:
            self._pose_cache[key] = render_pose(self.reference_pose_frame(), self.width, self.height, colors=colors)
        return self._pose_cache[key]

    def pose_keypoint(self) -> list[dict[str, Any]]:
        """The driving keypoints as ComfyUI ``POSE_KEYPOINT`` (pixels of the clip's canvas)."""
        from ..pose.pose_keypoint import to_pose_keypoint

        return to_pose_keypoint(self.pose_frames())

    # ---------------------------------------------------------------- masks
    def limb_masks(self) -> np.ndarray:
        """``(F, 8, H, W)`` bool: visible pixels of each identity limb (order :data:`LIMBS`)."""
        return self.labels[:, None] == (LIMB_LABEL0 + np.arange(len(LIMBS)))[None, :, None, None]

    def body_mask(self) -> np.ndarray:
        """``(F, H, W)`` bool: visible pixels of the character (not background, not occluder)."""
        return (self.labels > 0) & (self.labels != OCCLUDER)

    # ---------------------------------------------------------------- training
    def to_tensors(self) -> dict[str, Any]:
        """Float tensors for training: frames ``(F, 3, H, W)``, reference ``(3, H, W)``, poses ``(F, 3, H, W)``,
        reference_pose ``(3, H, W)`` (all in [0, 1]) and the identity of the clip."""
        import torch

        def t(a: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32) / 255.0
            return x.permute(0, 3, 1, 2) if x.ndim == 4 else x.permute(2, 0, 1)

        return {
            "frames": t(self.frames), "reference": t(self.reference), "poses": t(self.pose_images()),
            "reference_pose": t(self.reference_pose_image()), "character_id": self.character.character_id,
            "motion_id": self.motion_id, "scene_seed": self.scene.seed,
        }


def _blocks(img: np.ndarray) -> np.ndarray:
    """Replace every BLOCK x BLOCK block of ``(H, W, 3)`` by its mean colour."""
    h, w = img.shape[:2]
    m = img.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3).mean(axis=(1, 3))
    return np.repeat(np.repeat(m, BLOCK, axis=0), BLOCK, axis=1)


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


class World:
    """Renders clips of the world described by a :class:`WorldConfig`."""

    def __init__(self, config: WorldConfig | None = None, **overrides: Any) -> None:
        config = config or WorldConfig()
        self.config = replace(config, **overrides) if overrides else config

    def __repr__(self) -> str:
        return f"World({self.config})"

    # ---------------------------------------------------------------- ids
    def character(self, character_id: int) -> CharacterSpec:
        return sample_character(character_id, self.config.seed)

    def motion(self, motion_id: int) -> Motion:
        return Motion(motion_id, self.config.seed)

    def clip_ids(self, split: str, index: int) -> dict[str, Any]:
        """Character id, motion id, scene seed, start time and reference time of clip ``index`` of ``split``."""
        _check_split(split)
        index = check_count(index, "clip index", 0)
        c = self.config
        k = SPLITS.index(split)
        rng = np.random.default_rng(np.random.SeedSequence([c.seed, 3, k, index]))
        character_id = nth_id(split, int(rng.integers(c.characters[k])))
        motion_id = nth_id(split, int(rng.integers(c.motions[k])))
        duration = c.frames / c.fps
        motion = self.motion(motion_id)
        # a start time at which the body is on the stage during the clip (it may walk out, not be absent)
        starts = rng.uniform(0.0, 2.0, size=REFERENCE_TRIES)
        start = 0.0  # the motion starts on the stage
        for s0 in starts:
            window = float(s0) + np.arange(min(c.frames, 64)) * (duration / c.frames) * max(1.0, c.frames / 64)
            if np.abs(motion.x(window)).min() <= ON_STAGE:
                start = float(s0)
                break
        if c.reference == "first":
            ref = start
        else:  # a time at which the body stands on the stage (not walked out of the frame)
            tries = rng.uniform(0.0, start + duration + 2.0, size=REFERENCE_TRIES)
            xs = np.abs(motion.x(tries))
            on = np.nonzero(xs <= ON_STAGE)[0]
            ref = float(tries[on[0]] if on.size else tries[int(xs.argmin())])
        return dict(character_id=character_id, motion_id=motion_id, scene_seed=(k << 40) + index,
                    start=start, reference_time=ref)

    def clip(self, split: str, index: int) -> ToyClip:
        """Clip ``index`` of ``split`` (deterministic)."""
        ids = self.clip_ids(split, index)
        clip = self.render(**ids)
        clip.split, clip.index = split, int(index)
        return clip

    # ---------------------------------------------------------------- rendering
    def render(self, character_id: int, motion_id: int, scene_seed: int, start: float = 0.0,
               reference_time: float | None = None, frames: int | None = None) -> ToyClip:
        """Render ``frames`` frames (default: the config's) of a chosen character, motion and scene."""
        c = self.config
        n = c.frames if frames is None else check_count(frames, "frames")
        if not (isinstance(start, (int, float)) and math.isfinite(start) and start >= 0):
            raise ToyWorldError(f"start must be a time >= 0 in seconds, got {start!r}.")
        spec = self.character(character_id)
        motion = self.motion(motion_id)
        scene = sample_scene(scene_seed, c.seed, c.occluder_prob)
        cam = Camera.for_scene(scene, spec, c.width, c.height)
        bg = render_background(scene, c.width, c.height)
        bg_out = _blocks(bg) if c.render == "blocks" else bg
        table = colour_table(spec, scene)
        times = start + np.arange(n) / c.fps
        ref_t = float(start if reference_time is None else reference_time)
        all_t = np.concatenate([times, [ref_t]])
        poses = motion.pose(all_t)
        xs = motion.x(all_t)
        out_img = np.empty((n + 1, c.height, c.width, 3), np.uint8)
        out_lab = np.empty((n + 1, c.height, c.width), np.uint8)
        kps = np.empty((n + 1, 134, 2))
        scores = np.empty((n + 1, 134))
        torso = np.empty(n + 1)
        limb_vis = np.empty((n + 1, len(LIMBS)))
        radii = np.array([spec.arm_r if "arm" in name else spec.leg_r for name in LIMBS]) * cam.px_per_unit
        ss = c.supersample
        for i in range(n + 1):
            skel = pose_body(spec, poses[i])
            lab = draw_labels(skel, cam, float(xs[i]), ss, scene, float(all_t[i]))
            img = colour_frame(lab, skel, spec, cam, float(xs[i]), ss, table, bg)
            small = lab[ss // 2::ss, ss // 2::ss]
            out_img[i] = _to_u8(_blocks(img) if c.render == "blocks" else img)
            out_lab[i] = small
            px = cam.project(skel.keypoints, float(xs[i]))
            inside = (px[:, 0] >= 0) & (px[:, 0] < c.width) & (px[:, 1] >= 0) & (px[:, 1] < c.height)
            vis = skel.facing & inside
            if scene.occluder is not None:
                ix = np.clip(px[:, 0].astype(int), 0, c.width - 1)
                iy = np.clip(px[:, 1].astype(int), 0, c.height - 1)
                vis &= small[iy, ix] != OCCLUDER
            kps[i] = px / np.array([c.width, c.height], dtype=np.float64)
            scores[i] = vis.astype(np.float64)
            nk, hp = cam.project(skel.neck, float(xs[i])), cam.project(skel.mid_hip, float(xs[i]))
            torso[i] = float(np.linalg.norm(nk - hp))
            axes = cam.project(skel.limb_axes, float(xs[i]))  # (8, 2, 2)
            full = 2 * radii * np.linalg.norm(axes[:, 0] - axes[:, 1], axis=1) + np.pi * radii ** 2
            seen = np.bincount(small.ravel(), minlength=OCCLUDER + 1)[LIMB_LABEL0:LIMB_LABEL0 + len(LIMBS)]
            limb_vis[i] = np.clip(seen / np.maximum(full, 1e-6), 0.0, 1.0)
        return ToyClip(
            frames=out_img[:n], reference=out_img[n], keypoints=kps[:n], scores=scores[:n],
            reference_keypoints=kps[n], reference_scores=scores[n], labels=out_lab[:n], reference_labels=out_lab[n],
            background=_to_u8(bg_out), character=spec, motion_id=int(motion_id), scene=scene, times=times,
            reference_time=ref_t, motion_kinds=motion.kinds(times), torso_px=torso[:n], limb_visibility=limb_vis[:n],
        )
