"""Procedural motion: a timeline of motion primitives (walk, dance, jumping jack, turn, wave, idle).

A motion is identified by an integer id; the id seeds a generator that draws primitives one after
another, each with its own random parameters and a duration of 1.5-4 s, so the same id always
gives the same motion and a longer request only *extends* it (the prefix never changes). Two
primitives are blended over :data:`BLEND_S` seconds with a smoothstep weight, so a walk that
reverses direction turns round, a wave rises out of a walk, and so on.

A pose is a vector of :data:`POSE_DIM` numbers (angles in radians; see the ``I_*`` indices):
body yaw (0 = facing the camera, +pi/2 = facing image right), forward/side lean, head tilt and
yaw, per arm ``(flex, abduction, elbow, elbow_side)``, per leg ``(flex, abduction, knee)``, the
horizontal velocity ``vx`` (body heights per second; the position is its integral) and a vertical
``lift`` (jumps, body heights).

Some walks head out of the stage on purpose (``exits``), so bodies leave the frame and come back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# ---- pose vector layout ------------------------------------------------------------------
I_YAW, I_LEAN_F, I_LEAN_S, I_HEAD_TILT, I_HEAD_YAW = 0, 1, 2, 3, 4
I_ARM = {"R": 5, "L": 9}   # + (0 flex forward, 1 abduction outwards, 2 elbow flex, 3 elbow bend in the frontal plane)
I_LEG = {"R": 13, "L": 16}  # + (0 flex forward, 1 abduction outwards, 2 knee flex)
I_VX, I_LIFT = 19, 20
POSE_DIM = 21

PRIMITIVES: tuple[str, ...] = ("walk", "dance", "jack", "turn", "wave", "idle")
#: Draw probabilities of the primitives (walks dominate: they move the body across the frame).
PRIMITIVE_WEIGHTS = np.array([0.32, 0.2, 0.1, 0.14, 0.14, 0.10])
BLEND_S = 0.5
#: Half-width of the stage (body heights from the centre) that non-exiting walks stay within.
STAGE_HALF = 0.45
_GRID_HZ = 64.0  # integration grid of the horizontal position


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Primitive:
    """One primitive of a timeline: ``kind`` with parameters ``p`` active on ``[t0, t0 + duration)``."""

    kind: str
    t0: float
    duration: float
    p: dict = field(default_factory=dict)

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        """Pose vectors ``(N, POSE_DIM)`` at absolute times ``t`` (``(N,)`` seconds); periodic beyond the end."""
        tl = np.asarray(t, dtype=np.float64) - self.t0
        out = np.zeros((tl.shape[0], POSE_DIM))
        p = self.p
        rest_arm = p.get("rest_arm", 0.12)
        for s in ("R", "L"):
            out[:, I_ARM[s] + 1] = rest_arm
            out[:, I_ARM[s] + 2] = 0.15
        out[:, I_YAW] = p.get("yaw", 0.0)
        getattr(self, "_" + self.kind)(tl, out, p)
        return out

    # Each primitive writes its angles into ``out`` (N, POSE_DIM) for local times ``t``.
    @staticmethod
    def _walk(t: np.ndarray, out: np.ndarray, p: dict) -> None:
        ph = 2 * math.pi * p["freq"] * t + p["phase"]
        s = np.sin(ph)
        out[:, I_LEG["R"]] = p["hip"] * s
        out[:, I_LEG["L"]] = -p["hip"] * s
        out[:, I_LEG["R"] + 2] = p["knee"] * np.maximum(0.0, np.sin(ph + 0.6 * math.pi)) + 0.05
        out[:, I_LEG["L"] + 2] = p["knee"] * np.maximum(0.0, np.sin(ph + 1.6 * math.pi)) + 0.05
        out[:, I_ARM["R"]] = -p["arm"] * s
        out[:, I_ARM["L"]] = p["arm"] * s
        out[:, I_ARM["R"] + 2] = p["elbow"] + 0.3 * p["arm"] * np.maximum(0.0, -s)
        out[:, I_ARM["L"] + 2] = p["elbow"] + 0.3 * p["arm"] * np.maximum(0.0, s)
        out[:, I_LEAN_F] = p["lean"]
        out[:, I_VX] = p["vx"]

    @staticmethod
    def _dance(t: np.ndarray, out: np.ndarray, p: dict) -> None:
        w = 2 * math.pi * p["freq"]
        for s, sign in (("R", 1.0), ("L", -1.0)):
            a = I_ARM[s]
            out[:, a + 1] = p["abd0"] + p["abd"] * np.sin(w * t + p["arm_phase"] * (sign > 0))
            out[:, a] = p["flex"] * np.sin(w * t / 2 + (0 if sign > 0 else math.pi))
            out[:, a + 2] = p["elbow"] * (0.5 + 0.5 * np.sin(w * t + p["elbow_phase"]))
            out[:, a + 3] = p["elbow_side"] * (0.5 + 0.5 * np.sin(w * t + 1.0 + sign))
        squat = p["squat"] * (0.5 - 0.5 * np.cos(w * t))
        for s, sign in (("R", 1.0), ("L", -1.0)):
            l_ = I_LEG[s]
            out[:, l_] = 0.5 * squat
            out[:, l_ + 1] = 0.08 + p["leg_abd"] * (0.5 + 0.5 * np.sin(w * t / 2 + (sign > 0) * math.pi))
            out[:, l_ + 2] = squat
        out[:, I_LEAN_S] = p["sway"] * np.sin(w * t / 2)
        out[:, I_YAW] = p["yaw"] + p["yaw_amp"] * np.sin(w * t / 4)
        out[:, I_HEAD_TILT] = 0.6 * p["sway"] * np.sin(w * t / 2 + 0.5)
        out[:, I_VX] = p["shift"] * (w / 2) * np.cos(w * t / 2)

    @staticmethod
    def _jack(t: np.ndarray, out: np.ndarray, p: dict) -> None:
        w = 2 * math.pi * p["freq"]
        c = 0.5 - 0.5 * np.cos(w * t)
        for s in ("R", "L"):
            out[:, I_ARM[s] + 1] = 0.15 + p["arm"] * c
            out[:, I_ARM[s] + 2] = 0.1
            out[:, I_LEG[s] + 1] = 0.04 + p["leg"] * c
            out[:, I_LEG[s] + 2] = 0.15 * (1 - c)
        out[:, I_LIFT] = p["hop"] * np.abs(np.sin(w * t))

    @staticmethod
    def _turn(t: np.ndarray, out: np.ndarray, p: dict) -> None:
        out[:, I_YAW] = p["yaw"] + p["rate"] * t
        ph = 2 * math.pi * 1.6 * t
        out[:, I_LEG["R"]] = 0.15 * np.maximum(0.0, np.sin(ph))
        out[:, I_LEG["L"]] = 0.15 * np.maximum(0.0, -np.sin(ph))
        out[:, I_LEG["R"] + 2] = 0.3 * np.maximum(0.0, np.sin(ph))
        out[:, I_LEG["L"] + 2] = 0.3 * np.maximum(0.0, -np.sin(ph))
        for s in ("R", "L"):
            out[:, I_ARM[s] + 1] = p["arm"]
            out[:, I_ARM[s] + 2] = p["elbow"]

    @staticmethod
    def _wave(t: np.ndarray, out: np.ndarray, p: dict) -> None:
        w = 2 * math.pi * p["freq"]
        a = I_ARM[p["side"]]
        out[:, a + 1] = p["raise"]
        out[:, a] = 0.2
        out[:, a + 3] = p["bend"] + p["amp"] * np.sin(w * t)
        o = I_ARM["L" if p["side"] == "R" else "R"]
        out[:, o + 1] = 0.12 + 0.05 * np.sin(w * t / 2)
        out[:, o + 2] = p["other_elbow"]
        out[:, I_LEAN_S] = 0.05 * np.sin(w * t / 2) * (1 if p["side"] == "R" else -1)
        out[:, I_HEAD_TILT] = 0.08 * np.sin(w * t / 2)

    @staticmethod
    def _idle(t: np.ndarray, out: np.ndarray, p: dict) -> None:
        b = np.sin(2 * math.pi * 0.4 * t)
        for s, sign in (("R", 1), ("L", -1)):
            out[:, I_ARM[s]] = p["flex"] * sign
            out[:, I_ARM[s] + 1] = 0.12 + 0.03 * b
            out[:, I_ARM[s] + 2] = p["elbow"]
            out[:, I_LEG[s] + 1] = 0.06
        out[:, I_HEAD_YAW] = p["look"] * b
        out[:, I_LEAN_S] = 0.03 * b


class Motion:
    """The motion with id ``motion_id`` (of world ``seed``): ``pose(t)`` for any times ``t >= 0``."""

    def __init__(self, motion_id: int, seed: int = 0) -> None:
        self.motion_id = int(motion_id)
        self.seed = int(seed)
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 2, self.motion_id]))
        self.primitives: list[Primitive] = []
        # The first primitive starts with the body at a random stage position and heading.
        self._x_end = float(self._rng.uniform(-0.3, 0.3))
        self._x0 = self._x_end
        self._yaw_end = float(self._rng.choice([0.0, 0.0, 0.5, -0.5, math.pi / 2, -math.pi / 2]))
        self._t_end = 0.0
        self._x_grid = np.zeros(1)

    # ---------------------------------------------------------------- timeline building
    def _draw(self) -> Primitive:
        rng, x, yaw0 = self._rng, self._x_end, self._yaw_end
        first = not self.primitives
        kind = str(rng.choice(PRIMITIVES, p=PRIMITIVE_WEIGHTS / PRIMITIVE_WEIGHTS.sum()))
        dur = float(rng.uniform(1.5, 4.0))
        p: dict = {}
        if kind == "walk":
            exits = bool(rng.random() < (0.35 if first else 0.15)) and abs(x) < 1.0
            if abs(x) > STAGE_HALF:  # off stage or at its edge: come back towards the centre
                exits = False
            direction = (1.0 if x >= 0 else -1.0) if exits else (-1.0 if x > 0 else 1.0)
            if not exits and abs(x) < 0.1:
                direction = float(rng.choice([-1.0, 1.0]))
            yaw_mag = float(rng.uniform(0.7, 1.0)) * math.pi / 2
            speed = float(rng.uniform(0.25, 0.6))
            vx = direction * speed * math.sin(yaw_mag)
            if not exits:  # stop at the far edge of the stage
                room = STAGE_HALF - direction * x + STAGE_HALF * (direction * x < 0)
                dur = float(min(dur, max(1.0, room / max(abs(vx), 1e-3))))
            p = dict(freq=float(rng.uniform(0.6, 1.0)), phase=float(rng.uniform(0, 2 * math.pi)),
                     hip=float(rng.uniform(0.3, 0.5)), knee=float(rng.uniform(0.4, 0.9)),
                     arm=float(rng.uniform(0.25, 0.6)), elbow=float(rng.uniform(0.1, 0.5)),
                     lean=float(rng.uniform(0.0, 0.1)), vx=vx, yaw=direction * yaw_mag, exits=exits)
        elif kind == "dance":
            p = dict(freq=float(rng.uniform(0.4, 0.9)), abd0=float(rng.uniform(0.3, 1.2)),
                     abd=float(rng.uniform(0.4, 1.2)), arm_phase=float(rng.choice([0.0, math.pi, math.pi / 2])),
                     flex=float(rng.uniform(0.0, 0.6)), elbow=float(rng.uniform(0.2, 1.6)),
                     elbow_phase=float(rng.uniform(0, 2 * math.pi)), elbow_side=float(rng.uniform(0.0, 1.2)),
                     squat=float(rng.uniform(0.0, 0.7)), leg_abd=float(rng.uniform(0.0, 0.35)),
                     sway=float(rng.uniform(0.0, 0.15)), yaw=float(rng.uniform(-0.6, 0.6)),
                     yaw_amp=float(rng.uniform(0.0, 0.6)), shift=float(rng.uniform(0.0, 0.12)))
        elif kind == "jack":
            p = dict(freq=float(rng.uniform(0.4, 0.8)), arm=float(rng.uniform(1.8, 2.8)),
                     leg=float(rng.uniform(0.2, 0.45)), hop=float(rng.uniform(0.0, 0.05)),
                     yaw=float(rng.uniform(-0.5, 0.5)))
        elif kind == "turn":
            rate = float(rng.uniform(1.0, 3.0)) * float(rng.choice([-1.0, 1.0]))
            p = dict(rate=rate, arm=float(rng.uniform(0.1, 0.6)), elbow=float(rng.uniform(0.1, 0.8)))
        elif kind == "wave":
            p = dict(freq=float(rng.uniform(0.8, 1.5)), side=str(rng.choice(["R", "L"])),
                     raise_=0.0, bend=float(rng.uniform(0.1, 0.6)), amp=float(rng.uniform(0.25, 0.6)),
                     other_elbow=float(rng.uniform(0.1, 0.6)), yaw=float(rng.uniform(-0.6, 0.6)))
            p["raise"] = float(rng.uniform(1.9, 2.7))
            del p["raise_"]
        else:  # idle
            p = dict(flex=float(rng.uniform(-0.15, 0.15)), elbow=float(rng.uniform(0.1, 0.5)),
                     look=float(rng.uniform(0.0, 0.5)), yaw=float(rng.uniform(-0.8, 0.8)))
        if kind == "turn":
            p["yaw"] = yaw0
        else:  # the equivalent heading nearest the current one (no spinning the long way round)
            p["yaw"] = p["yaw"] + 2 * math.pi * round((yaw0 - p["yaw"]) / (2 * math.pi))
        return Primitive(kind, self._t_end, dur, p)

    def _extend(self, duration: float) -> None:
        while self._t_end < duration + BLEND_S:
            prim = self._draw()
            self.primitives.append(prim)
            self._t_end = prim.t0 + prim.duration
            self._integrate()
            end = self._raw(np.array([self._t_end - 1e-6]))[0]
            self._yaw_end = float(end[I_YAW])
            self._x_end = float(self.x(np.array([self._t_end - 1e-6]))[0])

    def _integrate(self) -> None:
        n = int(math.ceil(self._t_end * _GRID_HZ)) + 2
        ts = np.arange(n) / _GRID_HZ
        vx = self._raw(ts)[:, I_VX]
        self._x_grid = self._x0 + np.concatenate([[0.0], np.cumsum(0.5 * (vx[1:] + vx[:-1]) / _GRID_HZ)])

    def _raw(self, t: np.ndarray) -> np.ndarray:
        """Blended pose vectors of the primitives drawn so far (no extension)."""
        t = np.asarray(t, dtype=np.float64)
        starts = np.array([p.t0 for p in self.primitives])
        k = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(self.primitives) - 1)
        out = np.empty((t.shape[0], POSE_DIM))
        for i in np.unique(k):
            sel = k == i
            cur = self.primitives[i].evaluate(t[sel])
            if i > 0:
                w = _smoothstep((t[sel] - self.primitives[i].t0) / BLEND_S)[:, None]
                cur = w * cur + (1 - w) * self.primitives[i - 1].evaluate(t[sel])
            out[sel] = cur
        return out

    # ---------------------------------------------------------------- queries
    def pose(self, t: np.ndarray) -> np.ndarray:
        """Pose vectors ``(N, POSE_DIM)`` at times ``t`` (seconds, ``>= 0``)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        self._extend(float(t.max(initial=0.0)))
        return self._raw(t)

    def x(self, t: np.ndarray) -> np.ndarray:
        """Horizontal body position (body heights from the stage centre) at times ``t``."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if self._t_end < float(t.max(initial=0.0)):
            self._extend(float(t.max(initial=0.0)))
        return np.interp(t * _GRID_HZ, np.arange(self._x_grid.size), self._x_grid)

    def kinds(self, t: np.ndarray) -> list[str]:
        """The primitive active at each time (for reports and tests)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        self.pose(t)
        starts = np.array([p.t0 for p in self.primitives])
        return [self.primitives[int(i)].kind for i in np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)]
