"""Characters: body proportions and clothing, drawn from an integer character id.

Colour rule that the detector relies on (see :mod:`.detector`):

* the eight limb segments wear *identity sleeves/leggings*: a fixed, fully saturated hue per limb
  (:data:`LIMB_HUES`, the same for every character; chroma >= :data:`LIMB_MIN_CHROMA`), with a
  per-character brightness and an optional darker band pattern of the same hue;
* everything else - skin, hair, shirt, shorts, shoes, background, occluders - has chroma
  (max - min of RGB in [0, 1]) <= :data:`OTHER_MAX_CHROMA`.

So a pixel's chroma says "limb or not" and its hue says which limb, for any character. Identity
(what makes one character recognisable) lives in the proportions, skin, hair, shirt colour and
pattern, shorts and shoes.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

#: Limb segments in label order: (name, side, part). Label value = LIMB_LABEL0 + index.
LIMBS: tuple[str, ...] = (
    "r_upper_arm", "r_forearm", "l_upper_arm", "l_forearm",
    "r_thigh", "r_shin", "l_thigh", "l_shin",
)
#: Hue (degrees) of each limb's sleeve. The two segments of one arm or leg are complementary (180
#: degrees apart), so the anti-aliased pixels where they meet mix to grey (no chroma) instead of
#: to the hue of a third limb.
LIMB_HUES: tuple[float, ...] = (0.0, 180.0, 90.0, 270.0, 45.0, 225.0, 135.0, 315.0)
LIMB_MIN_CHROMA = 0.5
OTHER_MAX_CHROMA = 0.25

SHIRT_PATTERNS: tuple[str, ...] = ("plain", "hstripes", "vstripes", "dots", "checker")
SLEEVE_PATTERNS: tuple[str, ...] = ("plain", "bands")
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bald")


def _muted(rng: np.random.Generator, lo_v: float = 0.15, hi_v: float = 0.95, max_chroma: float = 0.22) -> tuple[float, float, float]:
    """A random RGB colour in [0, 1] whose chroma (max - min) is at most ``max_chroma``."""
    h = rng.uniform(0.0, 1.0)
    v = rng.uniform(lo_v, hi_v)
    s = min(1.0, rng.uniform(0.0, max_chroma) / max(v, 1e-6))
    return colorsys.hsv_to_rgb(h, s, v)


def limb_rgb(index: int, value: float = 1.0, saturation: float = 1.0) -> tuple[float, float, float]:
    """The sleeve colour of limb ``index`` at brightness ``value``."""
    return colorsys.hsv_to_rgb(LIMB_HUES[index] / 360.0, saturation, value)


@dataclass(frozen=True)
class CharacterSpec:
    """Everything that makes one character: proportions (body heights) and colours (RGB in [0, 1])."""

    character_id: int
    # proportions, in units of a standard body height
    head_r: float
    neck: float
    torso: float
    shoulder: float      # half shoulder width
    hip: float           # half hip width
    depth: float         # half torso depth (profile width)
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    foot: float
    arm_r: float         # limb radius (arms)
    leg_r: float         # limb radius (legs)
    hand_r: float
    # colours and patterns
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: str
    shirt: tuple[float, float, float]
    shirt2: tuple[float, float, float]
    shirt_pattern: str
    shirt_period: float  # pattern period, body heights
    shorts: tuple[float, float, float]
    shoes: tuple[float, float, float]
    sleeve_value: float
    sleeve_pattern: str

    @property
    def height(self) -> float:
        """Standing height from the soles to the top of the head (body heights)."""
        return self.shin + self.thigh + self.torso + self.neck + 2 * self.head_r + 0.02

    def appearance_vector(self) -> np.ndarray:
        """A plain description of the identity (colours + proportions), for tests and reports."""
        return np.array([*self.skin, *self.hair, *self.shirt, *self.shirt2, *self.shorts, *self.shoes,
                         self.sleeve_value, self.head_r, self.shoulder, self.hip, self.torso, self.thigh + self.shin,
                         self.upper_arm + self.forearm, self.arm_r, self.leg_r])


def sample_character(character_id: int, seed: int = 0) -> CharacterSpec:
    """The character with this id in world ``seed`` (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1, int(character_id)]))
    u = rng.uniform
    limbs_k = u(0.88, 1.12)
    legs_k = u(0.88, 1.12)
    thick = u(1.2, 1.5)
    skin_v = u(0.35, 0.95)
    skin = colorsys.hsv_to_rgb(u(0.04, 0.1), min(0.95, u(0.12, 0.22) / skin_v), skin_v)
    shirt = _muted(rng)
    shirt2 = _muted(rng)
    # keep the two shirt colours apart so the pattern is visible
    for _ in range(8):
        if np.abs(np.array(shirt) - np.array(shirt2)).sum() > 0.45:
            break
        shirt2 = _muted(rng)
    return CharacterSpec(
        character_id=int(character_id),
        head_r=0.08 * u(0.85, 1.2), neck=0.03 * u(0.7, 1.3), torso=0.28 * u(0.9, 1.12),
        shoulder=0.115 * u(0.8, 1.2), hip=0.07 * u(0.85, 1.25), depth=0.06 * u(0.8, 1.3),
        upper_arm=0.165 * limbs_k, forearm=0.15 * limbs_k, thigh=0.235 * legs_k, shin=0.225 * legs_k,
        foot=0.075 * u(0.85, 1.2), arm_r=0.036 * thick, leg_r=0.044 * thick, hand_r=0.034 * u(0.85, 1.2),
        skin=skin, hair=_muted(rng, 0.05, 0.8), hair_style=str(rng.choice(HAIR_STYLES, p=[0.5, 0.35, 0.15])),
        shirt=shirt, shirt2=shirt2, shirt_pattern=str(rng.choice(SHIRT_PATTERNS)), shirt_period=u(0.05, 0.1),
        shorts=_muted(rng, 0.1, 0.8), shoes=_muted(rng, 0.05, 0.6),
        sleeve_value=u(0.7, 1.0), sleeve_pattern=str(rng.choice(SLEEVE_PATTERNS)),
    )
