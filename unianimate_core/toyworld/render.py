"""Rasterisation: a posed body in a scene -> RGB frame, label map and pixel keypoints.

Each frame is drawn as a *label map* at ``supersample`` times the output size with OpenCV
(sub-pixel coordinates, parts in depth order), coloured through the character's colour table
(shirt and sleeve patterns are computed in body-attached coordinates, so they move with the body),
then area-downsampled and composited over the scene's background (anti-aliased edges). The label
map at output size (the label at each pixel centre) gives the exact per-limb masks.

A scene is everything that is not the character: background (muted gradient, floor, a few shapes
and an optional low-contrast wallpaper), the orthographic camera (body scale and horizontal
offset), and optionally an occluder (a pillar, box or bush) in front of the body, static or sliding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose._deps import import_cv2
from .character import LIMBS, OTHER_MAX_CHROMA, CharacterSpec, _muted, limb_rgb
from .skeleton import (
    EYE, HAIR, HAND, LIMB_LABEL0, NUM_LABELS, OCCLUDER, SHIRT, SHOE, SHORTS, SKIN, Skeleton,
)

_SHIFT = 4                     # OpenCV fractional bits for sub-pixel drawing
_ONE = float(1 << _SHIFT)


@dataclass(frozen=True)
class Scene:
    """Background, camera and occluder of one clip (drawn from a scene seed)."""

    seed: int
    scale: float          # standing body height as a fraction of the frame height
    ground: float         # ground line, fraction of the frame height from the top
    offset: float         # stage centre, fraction of the frame width from the left
    wall: tuple[float, float, float]
    wall2: tuple[float, float, float]
    floor: tuple[float, float, float]
    shapes: tuple[tuple[str, float, float, float, float, tuple[float, float, float]], ...]
    wallpaper: float      # 0 = plain, else stripe period (fraction of width)
    occluder: tuple[str, float, float, float, float, float, tuple[float, float, float]] | None
    # occluder: (kind, x centre, width, top, bottom, velocity in frame widths per second, colour)


def sample_scene(scene_seed: int, seed: int = 0, occluder_prob: float = 0.25) -> Scene:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 4, int(scene_seed)]))
    u = rng.uniform
    shapes = []
    for _ in range(int(rng.integers(1, 6))):
        kind = str(rng.choice(["rect", "circle"]))
        shapes.append((kind, float(u(0, 1)), float(u(0.05, 0.7)), float(u(0.05, 0.3)), float(u(0.05, 0.3)),
                       _muted(rng, 0.1, 0.95, OTHER_MAX_CHROMA - 0.03)))
    occluder = None
    if rng.random() < occluder_prob:
        kind = str(rng.choice(["pillar", "box", "bush"]))
        x = float(u(0.2, 0.8))
        if kind == "pillar":
            geo = (x, float(u(0.06, 0.16)), 0.0, 1.0)
        elif kind == "box":
            geo = (x, float(u(0.2, 0.45)), float(u(0.55, 0.75)), 1.0)
        else:
            geo = (x, float(u(0.2, 0.35)), float(u(0.6, 0.8)), 1.0)
        vel = float(rng.choice([0.0, 0.0, u(-0.15, 0.15)]))
        occluder = (kind, *geo, vel, _muted(rng, 0.15, 0.85, OTHER_MAX_CHROMA - 0.03))
    return Scene(
        seed=int(scene_seed), scale=float(u(0.75, 0.95)), ground=float(u(0.88, 0.97)), offset=float(u(0.4, 0.6)),
        wall=_muted(rng, 0.25, 0.95), wall2=_muted(rng, 0.25, 0.95), floor=_muted(rng, 0.15, 0.8),
        shapes=tuple(shapes), wallpaper=float(rng.choice([0.0, 0.0, u(0.04, 0.12)])), occluder=occluder,
    )


def render_background(scene: Scene, width: int, height: int) -> np.ndarray:
    """The empty scene, float32 ``(H, W, 3)`` in [0, 1]."""
    cv2 = import_cv2()
    ys = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
    g = np.clip(ys / max(scene.ground, 1e-3), 0, 1)[..., None]
    img = (1 - g) * np.array(scene.wall, np.float32) + g * np.array(scene.wall2, np.float32)
    img = np.broadcast_to(img, (height, width, 3)).copy()
    if scene.wallpaper > 0:
        xs = (np.arange(width, dtype=np.float32) + 0.5) / width
        stripe = (np.floor(xs / scene.wallpaper) % 2)[None, :, None]
        img *= 1.0 - 0.06 * stripe
    for kind, cx, cy, sx, sy, col in scene.shapes:
        if kind == "rect":
            p0 = (int(round((cx - sx / 2) * width)), int(round((cy - sy / 2) * height)))
            p1 = (int(round((cx + sx / 2) * width)), int(round((cy + sy / 2) * height)))
            cv2.rectangle(img, p0, p1, col, thickness=-1, lineType=cv2.LINE_AA)
        else:
            cv2.circle(img, (int(round(cx * width)), int(round(cy * height))), max(1, int(round(sx * min(width, height)))),
                       col, thickness=-1, lineType=cv2.LINE_AA)
    gy = int(round(scene.ground * height))
    img[gy:] = np.array(scene.floor, np.float32)
    if gy < height:
        img[max(0, gy - 1):gy + 1] *= 0.85
    return np.clip(img, 0.0, 1.0)


def colour_table(spec: CharacterSpec, scene: Scene | None = None) -> np.ndarray:
    """``(NUM_LABELS, 3)`` float32 base colour of every label for this character (and occluder)."""
    t = np.zeros((NUM_LABELS, 3), np.float32)
    t[SHIRT], t[SHORTS], t[SKIN], t[HAIR] = spec.shirt, spec.shorts, spec.skin, spec.hair
    t[EYE] = (0.08, 0.08, 0.08)
    t[HAND], t[SHOE] = spec.skin, spec.shoes
    for k in range(len(LIMBS)):
        t[LIMB_LABEL0 + k] = limb_rgb(k, spec.sleeve_value)
    if scene is not None and scene.occluder is not None:
        t[OCCLUDER] = scene.occluder[-1]
    return t


@dataclass
class Camera:
    """Orthographic camera: body units -> output pixels (continuous, pixel edges at integers)."""

    width: int
    height: int
    px_per_unit: float
    cx: float
    ground_px: float

    @classmethod
    def for_scene(cls, scene: Scene, spec: CharacterSpec, width: int, height: int) -> "Camera":
        return cls(width, height, scene.scale * height / spec.height, scene.offset * width, scene.ground * height)

    def project(self, points: np.ndarray, x_offset: float) -> np.ndarray:
        """``(..., 3)`` body-frame points + the body's stage position -> ``(..., 2)`` pixels."""
        p = np.asarray(points)
        return np.stack([self.cx + self.px_per_unit * (p[..., 0] + x_offset), self.ground_px - self.px_per_unit * p[..., 1]], -1)


def _pt(xy: np.ndarray, ss: int) -> tuple[int, int]:
    # continuous pixel coordinate (edges at integers) -> OpenCV fixed-point centre coordinates
    return int(round((xy[0] * ss - 0.5) * _ONE)), int(round((xy[1] * ss - 0.5) * _ONE))


def draw_labels(skel: Skeleton, cam: Camera, x_offset: float, ss: int, scene: Scene | None, t: float) -> np.ndarray:
    """The label map ``(H*ss, W*ss)`` uint8 of one posed body (and the occluder in front)."""
    cv2 = import_cv2()
    hs, ws = cam.height * ss, cam.width * ss
    lab = np.zeros((hs, ws), np.uint8)
    s = cam.px_per_unit * ss
    for part in skel.parts:
        pts = cam.project(part.points, x_offset)
        if part.kind == "capsule":
            a, b = _pt(pts[0], ss), _pt(pts[1], ss)
            thick = max(1, int(round(2 * part.radius * s)))
            cv2.line(lab, a, b, int(part.label), thickness=thick, lineType=cv2.LINE_8, shift=_SHIFT)
            # OpenCV's thick lines have round caps only approximately; add exact end discs
            for p in (a, b):
                cv2.circle(lab, p, int(round(part.radius * s * _ONE)), int(part.label), -1, cv2.LINE_8, _SHIFT)
        elif part.kind == "disc":
            cv2.circle(lab, _pt(pts[0], ss), max(1, int(round(part.radius * s * _ONE))), int(part.label), -1, cv2.LINE_8, _SHIFT)
        else:
            fixed = np.array([_pt(p, ss) for p in pts], np.int32)
            hull = cv2.convexHull(fixed)
            cv2.fillConvexPoly(lab, hull, int(part.label), cv2.LINE_8, _SHIFT)
    if scene is not None and scene.occluder is not None:
        mask = occluder_mask(scene, cam.width * ss, cam.height * ss, t)
        lab[mask] = OCCLUDER
    return lab


def occluder_mask(scene: Scene, width: int, height: int, t: float) -> np.ndarray:
    """``(H, W)`` bool: pixels covered by the scene's occluder at time ``t``."""
    cv2 = import_cv2()
    m = np.zeros((height, width), np.uint8)
    if scene.occluder is None:
        return m.astype(bool)
    kind, x, w, top, bottom, vel, _ = scene.occluder
    x = x + vel * t
    if kind == "bush":
        rng = np.random.default_rng(np.random.SeedSequence([scene.seed, 5]))
        for _ in range(5):
            cx = (x + rng.uniform(-w / 2, w / 2) * 0.7) * width
            cy = (top + rng.uniform(0.1, 0.6) * (bottom - top)) * height
            r = rng.uniform(0.25, 0.45) * w * width
            cv2.circle(m, (int(round(cx)), int(round(cy))), max(1, int(round(r))), 1, -1)
        cv2.rectangle(m, (int(round((x - w * 0.35) * width)), int(round((top + 0.3 * (bottom - top)) * height))),
                      (int(round((x + w * 0.35) * width)), height), 1, -1)
    else:
        cv2.rectangle(m, (int(round((x - w / 2) * width)), int(round(top * height))),
                      (int(round((x + w / 2) * width)), int(round(bottom * height))), 1, -1)
    return m.astype(bool)


def colour_frame(lab: np.ndarray, skel: Skeleton, spec: CharacterSpec, cam: Camera, x_offset: float, ss: int,
                 table: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Colour a supersampled label map, downsample (area) and composite over ``background``: float32 (H, W, 3)."""
    cv2 = import_cv2()
    col = table[lab]
    s = cam.px_per_unit * ss
    # shirt pattern in torso coordinates (origin at the neck, v along the spine)
    if spec.shirt_pattern != "plain":
        ys, xs = np.nonzero(lab == SHIRT)
        if ys.size:
            neck = cam.project(skel.neck, x_offset) * ss
            hip = cam.project(skel.mid_hip, x_offset) * ss
            axis = hip - neck
            axis = axis / max(np.linalg.norm(axis), 1e-6)
            rel = np.stack([xs + 0.5, ys + 0.5], 1) - neck
            v = rel @ axis / (spec.shirt_period * s)
            uu = (rel[:, 0] * axis[1] - rel[:, 1] * axis[0]) / (spec.shirt_period * s)
            if spec.shirt_pattern == "hstripes":
                on = np.floor(v) % 2 == 1
            elif spec.shirt_pattern == "vstripes":
                on = np.floor(uu + 0.5) % 2 == 1
            elif spec.shirt_pattern == "dots":
                on = ((uu % 1) - 0.5) ** 2 + ((v % 1) - 0.5) ** 2 < 0.09
            else:
                on = (np.floor(uu) + np.floor(v)) % 2 == 1
            col[ys[on], xs[on]] = spec.shirt2
    if spec.sleeve_pattern == "bands":
        for k in range(len(LIMBS)):
            ys, xs = np.nonzero(lab == LIMB_LABEL0 + k)
            if not ys.size:
                continue
            a, b = cam.project(skel.limb_axes[k], x_offset) * ss
            d = b - a
            n2 = max(float(d @ d), 1e-6)
            tpar = ((np.stack([xs + 0.5, ys + 0.5], 1) - a) @ d) / n2
            on = np.floor(tpar * 4.0) % 2 == 1
            col[ys[on], xs[on]] *= 0.72
    fg = (lab > 0).astype(np.float32)
    if ss > 1:
        size = (cam.width, cam.height)
        col = cv2.resize(col * fg[..., None], size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(fg, size, interpolation=cv2.INTER_AREA)[..., None]
    else:
        col = col * fg[..., None]
        alpha = fg[..., None]
    return col + (1.0 - alpha) * background


def hsv_chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue in degrees [0, 360) and chroma (max - min) of RGB in [0, 1] (any leading shape)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    c = mx - mn
    safe = np.where(c > 1e-6, c, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return (60.0 * h) % 360.0, c


