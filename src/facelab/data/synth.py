"""Procedural faces whose ground truth is exact: identity, attributes, 68 + 58 landmarks,
the image region that decides each attribute, and injected biases.

Every face is drawn in a canonical frame (face centre at the origin, face half-width
about 1, y pointing down) and mapped to pixels by one similarity transform (position,
scale and in-plane rotation jitter), so landmarks and region masks are exact by
construction. Three independent random streams (identity, image nuisances, attributes)
make "flip one attribute, keep everything else" a one-argument change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, NamedTuple

import cv2
import numpy as np

from ..errors import FacelabError
from .faceset import FaceSet
from .landmark_layouts import IBUG68_MIRROR, IMM58_MIRROR
from .sources import data_source, spec_options

ATTRIBUTES = [
    "Male",
    "Young",
    "Smiling",
    "Eyeglasses",
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Gray_Hair",
    "Mustache",
    "No_Beard",
    "Wearing_Lipstick",
    "Heavy_Makeup",
    "Pale_Skin",
    "Mouth_Slightly_Open",
    "Narrow_Eyes",
    "Big_Nose",
]
A = {name: k for k, name in enumerate(ATTRIBUTES)}
BASE_RATE = {
    "Male": 0.5,
    "Young": 0.7,
    "Smiling": 0.5,
    "Eyeglasses": 0.3,
    "Bald": 0.08,
    "Bangs": 0.2,
    "Mustache": 0.15,
    "No_Beard": 0.8,
    "Wearing_Lipstick": 0.4,
    "Heavy_Makeup": 0.35,
    "Pale_Skin": 0.2,
    "Mouth_Slightly_Open": 0.45,
    "Narrow_Eyes": 0.2,
    "Big_Nose": 0.25,
}
HAIR_COLOURS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]
HAIR_RATES = [0.25, 0.2, 0.25, 0.1]  # the remaining 0.2: red hair, no colour attribute
HAIR_RGB = {
    "Black_Hair": (28, 24, 24),
    "Blond_Hair": (222, 190, 112),
    "Brown_Hair": (105, 64, 36),
    "Gray_Hair": (170, 170, 176),
    None: (160, 58, 28),
}
# Attributes fixed per person when the set has a number of identities.
IDENTITY_LEVEL = {"Male", "Young", "Pale_Skin", "Big_Nose", "Narrow_Eyes", "Bald", *HAIR_COLOURS}
DEFAULT_N = 2000
RENDERER_VERSION = 2  # part of every cache fingerprint: caches of older renderings are rebuilt
BG_CLASSES = ("cool", "warm")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
_SPLIT_NAMES = ("train", "valid", "test")
_STREAM_IDENTITY, _STREAM_NUISANCE, _STREAM_ATTR, _STREAM_ID_ATTR, _STREAM_BG = 1, 2, 3, 4, 5


# ----------------------------------------------------------------------------- bias knobs
@dataclass(frozen=True)
class Knob:
    """One injected bias: ``kind`` is correlate, spurious or imbalance."""

    kind: str
    target: str
    other: str | None
    p: float
    splits: tuple[str, ...] = ("train",)

    @classmethod
    def parse(cls, kind: str, text: str) -> "Knob":
        """``Male:Bald=0.9``, ``Male:background=0.95`` or ``Male=0.3``, optionally ``@train,valid``."""
        body, _, where = text.partition("@")
        splits = tuple(s for s in where.split(",") if s) or ("train",)
        lhs, _, p = body.partition("=")
        target, _, other = lhs.partition(":")
        try:
            prob = float(p)
        except ValueError:
            prob = -1.0
        form = {"correlate": "A:B=P", "spurious": "A:background=P", "imbalance": "A=P"}[kind]
        if not 0.0 <= prob <= 1.0 or (kind == "imbalance") == bool(other):
            raise FacelabError(f"--{kind} {text!r}: expected {form} with P in [0, 1]")
        if kind == "spurious" and other != "background":
            raise FacelabError(f"--spurious {text!r}: only 'background' can be made spurious ({form})")
        for name in (target, other if kind == "correlate" else None):
            if name is not None and name not in A:
                raise FacelabError(f"--{kind} {text!r}: unknown attribute {name}; valid: {', '.join(ATTRIBUTES)}")
        bad = [s for s in splits if s not in _SPLIT_NAMES]
        if bad:
            raise FacelabError(f"--{kind} {text!r}: unknown split {bad[0]}; use train, valid, test")
        return cls(kind, target, other or None, prob, splits)

    def text(self) -> str:
        lhs = self.target + (f":{self.other}" if self.other else "")
        return f"{lhs}={self.p}@{','.join(self.splits)}"


@dataclass(frozen=True)
class SynthConfig:
    n: int = DEFAULT_N
    ids: int | None = None
    seed: int = 0
    knobs: tuple[Knob, ...] = ()
    points: int = 68  # landmark layout: 68 (iBUG 300-W) or 58 (IMM)
    pose: str = "studio"  # studio: faces near the centre; wide: moved, scaled and turned enough that no fixed map fits

    def spec(self) -> str:
        parts = [f"synth:{self.n}"]
        if self.ids:
            parts.append(f"ids={self.ids}")
        if self.seed:
            parts.append(f"seed={self.seed}")
        if self.points != 68:
            parts.append(f"points={self.points}")
        if self.pose != "studio":
            parts.append(f"pose={self.pose}")
        parts += [f"{k.kind}={k.text()}" for k in self.knobs]
        return ",".join(parts)


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


# ----------------------------------------------------------------------------- labels
def make_labels(cfg: SynthConfig) -> dict[str, np.ndarray]:
    """Attributes, identities, splits and background classes of every item, vectorised."""
    n = cfg.n
    bounds = np.cumsum(np.array(SPLIT_FRACTIONS) * n).astype(int)
    split = np.searchsorted(bounds, np.arange(n), side="right").clip(0, 2).astype(np.int8)
    identities = np.arange(n) % cfg.ids if cfg.ids else np.arange(n)
    u = np.random.default_rng([cfg.seed, _STREAM_ATTR]).random((n, len(ATTRIBUTES) + 1))
    if cfg.ids:
        per_id = np.random.default_rng([cfg.seed, _STREAM_ID_ATTR]).random((cfg.ids, len(ATTRIBUTES) + 1))
        cols = [A[a] for a in IDENTITY_LEVEL] + [len(ATTRIBUTES)]  # last column: hair colour draw
        u[:, cols] = per_id[identities][:, cols]
        for knob in cfg.knobs:
            touched = {knob.target, knob.other} & IDENTITY_LEVEL
            if touched:
                raise FacelabError(
                    f"--{knob.kind} {knob.text()}: with ids={cfg.ids} the attribute {touched.pop()} is fixed per "
                    "person; bias knobs act per image, so leave ids unset (each image its own person)"
                )
    attrs = np.zeros((n, len(ATTRIBUTES)), dtype=np.uint8)
    for name, rate in BASE_RATE.items():
        attrs[:, A[name]] = u[:, A[name]] < rate
    hair = np.searchsorted(np.cumsum(HAIR_RATES), u[:, -1], side="right")
    for k, name in enumerate(HAIR_COLOURS):
        attrs[:, A[name]] = hair == k
    bg = np.random.default_rng([cfg.seed, _STREAM_BG]).random(n)
    background = (bg < 0.5).astype(np.uint8)
    for knob in cfg.knobs:
        rows = np.isin(split, [_SPLIT_NAMES.index(s) for s in knob.splits])
        t = A[knob.target]
        if knob.kind == "imbalance":
            attrs[rows, t] = u[rows, t] < knob.p
        elif knob.kind == "correlate":
            given = rows & (attrs[:, t] == 1)
            attrs[given, A[knob.other]] = u[given, A[knob.other]] < knob.p
            if knob.other in HAIR_COLOURS:
                for name in HAIR_COLOURS:
                    if name != knob.other:
                        attrs[given & (attrs[:, A[knob.other]] == 1), A[name]] = 0
        else:  # spurious background: its class agrees with the label with probability p
            agree = bg < knob.p
            background[rows] = np.where(agree[rows], attrs[rows, t], 1 - attrs[rows, t])
    _enforce_exclusions(attrs)
    return {"attributes": attrs, "identities": identities.astype(np.int64), "split": split, "background": background}


def _enforce_exclusions(attrs: np.ndarray) -> None:
    """A bald head shows no hair colour and no bangs."""
    bald = attrs[:, A["Bald"]] == 1
    for name in HAIR_COLOURS + ["Bangs"]:
        attrs[bald, A[name]] = 0


# ----------------------------------------------------------------------------- geometry
@dataclass
class Identity:
    face_w: float
    chin: float
    crown: float
    eye_sep: float
    eye_w: float
    nose_len: float
    nose_w: float
    mouth_w: float
    mouth_y: float
    brow_arch: float
    hairline: float
    long_hair: bool
    ear: float
    skin: np.ndarray
    lip: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    hair_tint: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Identity":
        u = rng.uniform
        tone = u(0, 1)
        skin = np.array([95, 62, 40]) + tone * np.array([140, 135, 120])
        return cls(
            face_w=u(0.84, 1.0),
            chin=u(1.08, 1.25),
            crown=u(1.05, 1.2),
            eye_sep=u(0.33, 0.42),
            eye_w=u(0.14, 0.19),
            nose_len=u(0.85, 1.1),
            nose_w=u(0.15, 0.22),
            mouth_w=u(0.32, 0.42),
            mouth_y=u(0.55, 0.62),
            brow_arch=u(0.02, 0.1),
            hairline=u(-0.82, -0.66),
            long_hair=bool(rng.random() < 0.5),
            ear=u(0.14, 0.2),
            skin=skin,
            lip=np.array([170, 90, 90]) * u(0.8, 1.05),
            brow=np.array([45, 35, 30]) * u(0.7, 1.6),
            iris=np.array(rng.choice([[70, 45, 25], [60, 110, 160], [80, 120, 70], [40, 30, 25]])),
            hair_tint=rng.normal(0, 8, 3),
        )


# (scale range, centre shift x/y as a fraction of the image, largest turn in degrees)
POSES = {"studio": ((0.85, 1.12), (0.1, 0.08), 10), "wide": ((0.6, 1.0), (0.22, 0.2), 25)}


@dataclass
class Nuisance:
    scale: float
    centre: tuple[float, float]
    angle: float
    light_dir: float
    light_amp: float
    noise: float
    bg_hue: float
    bg_sat: float
    bg_val: float
    texture: np.ndarray
    brow_raise: float
    gaze: tuple[float, float]
    noise_seed: int

    @classmethod
    def draw(cls, rng: np.random.Generator, background: int, pose: str = "studio") -> "Nuisance":
        """``pose`` wide: the face anywhere within a 0.44-wide square around the centre, 0.6-1.0 of the studio size, turned
        up to 25 degrees (the same draws as studio, wider ranges), so regions move more than a region's own size."""
        u = rng.uniform
        hue = u(0, 50) if background else u(90, 140)  # OpenCV hue: warm 0-50, cool 90-140
        (s0, s1), (dx, dy), turn = POSES[pose]
        return cls(
            scale=u(s0, s1),
            centre=(0.5 + u(-dx, dx), 0.52 + u(-dy, dy)),
            angle=u(-turn, turn),
            light_dir=u(0, 2 * np.pi),
            light_amp=u(0.0, 0.25),
            noise=u(2, 6),
            bg_hue=hue,
            bg_sat=u(90, 200),
            bg_val=u(110, 230),
            texture=rng.normal(0, 1, (5, 5)).astype(np.float32),
            brow_raise=u(-0.03, 0.03),
            gaze=(u(-0.3, 0.3), u(-0.2, 0.2)),
            noise_seed=int(rng.integers(2**31)),
        )


@lru_cache(maxsize=256)
def _unit_arc(n: int, t0: float, t1: float) -> np.ndarray:
    t = np.linspace(t0, t1, n, endpoint=t1 - t0 < 2 * np.pi - 1e-9)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _ellipse(cx, cy, rx, ry, n=24, t0=0.0, t1=2 * np.pi) -> np.ndarray:
    return _unit_arc(n, t0, t1) * (rx, ry) + (cx, cy)


@lru_cache(maxsize=64)
def _ramp(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n)


EYE_68_ANGLES = np.array([np.pi, 4 * np.pi / 3, 5 * np.pi / 3, 0.0, np.pi / 3, 2 * np.pi / 3])
EYE_58_ANGLES = np.pi + np.arange(8) * np.pi / 4
EAR_Y = -0.15


class Face:
    """Canonical geometry of one face: landmarks and drawing shapes, before the pixel transform."""

    def __init__(self, ident: Identity, nuis: Nuisance, attrs: np.ndarray):
        self.i, self.nu, self.a = ident, nuis, attrs
        on = lambda name: bool(attrs[A[name]])  # noqa: E731
        self.smile, self.open = on("Smiling"), on("Mouth_Slightly_Open")
        self.eye_h = ident.eye_w * (0.24 if on("Narrow_Eyes") else 0.5)
        big = 1.0 + 0.35 * on("Big_Nose")
        self.nose_w = ident.nose_w * big
        self.nose_tip = -0.33 + (0.55 * ident.nose_len) * (1.0 + 0.12 * on("Big_Nose"))
        # Shapes around the nose and mouth hang on the neutral features, so that Big_Nose
        # and Smiling change pixels only inside their own regions.
        self.neutral_tip = -0.33 + 0.55 * ident.nose_len
        self.brow_y = -0.5 + nuis.brow_raise + 0.03 * on("Male")
        self.mouth_w = ident.mouth_w * (1.2 if self.smile else 1.0)
        self.corner_dy = -0.13 if self.smile else 0.0
        self.gap = (0.1 if self.open else 0.0) + (0.05 if self.smile else 0.0)

    # --- contours ---------------------------------------------------------------
    def jaw(self, n: int) -> np.ndarray:
        arc = _unit_arc(n, 0.0, np.pi)
        return np.stack([-self.i.face_w * arc[:, 0], EAR_Y + self.i.chin * np.abs(arc[:, 1]) ** 0.9], axis=1)

    def face_outline(self) -> np.ndarray:
        top = _ellipse(0, EAR_Y, self.i.face_w, self.i.crown, 24, np.pi, 2 * np.pi)
        return np.concatenate([self.jaw(25), top[::-1][1:-1]])

    def eye_centres(self) -> np.ndarray:
        return np.array([[-self.i.eye_sep, -0.25], [self.i.eye_sep, -0.25]])

    def eye(self, k: int, angles: np.ndarray) -> np.ndarray:
        cx, cy = self.eye_centres()[k]
        return np.stack([cx + self.i.eye_w * np.cos(angles), cy + self.eye_h * np.sin(angles)], axis=1)

    def brow(self, side: int, n: int) -> np.ndarray:
        """Brow points from image-left to image-right end."""
        t = _ramp(n)
        x = -0.78 + 0.6 * t if side == 0 else 0.18 + 0.6 * t
        y = self.brow_y - self.i.brow_arch * np.sin(np.pi * t) - 0.02 * (t if side == 0 else 1 - t)
        return np.stack([x, y], axis=1)

    def mouth_outer(self) -> np.ndarray:
        """12 points: left corner, upper lip left to right, right corner, lower lip right to left."""
        my, w, dy, ul, ll = self.i.mouth_y, self.mouth_w, self.corner_dy, 0.075, 0.09
        f_up = np.array([-2, -1, 0, 1, 2]) / 3
        bow = np.array([0.85, 1.0, 0.8, 1.0, 0.85])
        upper = np.stack([f_up * w, my - ul * bow + dy * f_up**2], axis=1)
        f_lo = np.array([2, 1, 0, -1, -2]) / 3
        lower = np.stack([f_lo * w, my + self.gap + ll * (1 - f_lo**2) + dy * f_lo**2], axis=1)
        return np.concatenate([[[-w, my + dy]], upper, [[w, my + dy]], lower])

    def mouth_inner(self) -> np.ndarray:
        my, w, dy = self.i.mouth_y, self.mouth_w * 0.82, self.corner_dy * 0.8
        f = np.array([-1, 0, 1]) / 3
        upper = np.stack([f * w * 1.2, my + dy * f**2 + 0.01], axis=1)
        lower = np.stack([-f * w * 1.2, my + self.gap + dy * f**2 + 0.01], axis=1)
        return np.concatenate([[[-w, my + dy]], upper, [[w, my + dy]], lower])

    # --- landmark sets ------------------------------------------------------------
    def landmarks68(self) -> np.ndarray:
        tip = self.nose_tip
        bridge = np.stack([np.zeros(4), np.linspace(-0.3, tip, 4)], axis=1)
        nw = self.nose_w
        base = np.array([[-nw, tip + 0.04], [-nw / 2, tip + 0.08], [0, tip + 0.1], [nw / 2, tip + 0.08], [nw, tip + 0.04]])
        return np.concatenate(
            [
                self.jaw(17),
                self.brow(0, 5),
                self.brow(1, 5),
                bridge,
                base,
                self.eye(0, EYE_68_ANGLES),
                self.eye(1, EYE_68_ANGLES),
                self.mouth_outer(),
                self.mouth_inner(),
            ]
        )

    def landmarks58(self) -> np.ndarray:
        tip, nw = self.nose_tip, self.nose_w
        outer = self.mouth_outer()
        mouth8 = outer[[0, 2, 3, 4, 6, 8, 9, 10]]  # corner, upper, corner, lower: clockwise
        nose = np.array(
            [
                [-0.1, -0.25],
                [-0.12, -0.05],
                [-0.7 * nw, tip - 0.05],
                [-nw, tip + 0.04],
                [-nw / 2, tip + 0.08],
                [0, tip],
                [nw / 2, tip + 0.08],
                [nw, tip + 0.04],
                [0.7 * nw, tip - 0.05],
                [0.12, -0.05],
                [0.1, -0.25],
            ]
        )
        return np.concatenate(
            [
                self.jaw(13),
                self.eye(0, EYE_58_ANGLES),
                self.eye(1, EYE_58_ANGLES),
                self.brow(0, 5),
                self.brow(1, 5),
                mouth8,
                nose,
            ]
        )

    def celeba5(self) -> np.ndarray:
        outer = self.mouth_outer()
        return np.concatenate([self.eye_centres(), [[0, self.nose_tip]], outer[[0, 6]]])


# ----------------------------------------------------------------------------- pixels
class Canvas:
    """Maps canonical points to pixels and draws with sub-pixel precision and anti-aliasing."""

    SHIFT = 4

    def __init__(self, size: int, nu: Nuisance):
        self.size = size
        s = 0.3 * nu.scale * size
        th = np.deg2rad(nu.angle)
        self.m = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        self.t = np.array(nu.centre) * size - 0.5
        self.unit = s

    def px(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.m.T + self.t

    def _fixed(self, pts: np.ndarray) -> np.ndarray:
        return np.round(self.px(pts) * (1 << self.SHIFT)).astype(np.int32)

    def poly(self, img, pts, colour, aa=True):
        cv2.fillPoly(img, [self._fixed(pts)], _c(colour), cv2.LINE_AA if aa else cv2.LINE_8, self.SHIFT)

    def line(self, img, pts, colour, width, aa=True):
        t = max(1, int(round(width * self.unit)))
        cv2.polylines(img, [self._fixed(pts)], False, _c(colour), t, cv2.LINE_AA if aa else cv2.LINE_8, self.SHIFT)


def _c(colour):
    if np.ndim(colour) == 0:
        return float(colour)
    return tuple(min(255.0, max(0.0, float(v))) for v in colour)


def _background(size: int, nu: Nuisance) -> np.ndarray:
    hsv = np.array([[[nu.bg_hue, nu.bg_sat, nu.bg_val]]], dtype=np.uint8)
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    tex = cv2.resize(nu.texture, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(base[None, None, :] * (1.0 + 0.12 * tex[:, :, None]), 0, 255).astype(np.uint8)


def hair_colour(ident: Identity, attrs: np.ndarray) -> np.ndarray:
    name = next((h for h in HAIR_COLOURS if attrs[A[h]]), None)
    return np.array(HAIR_RGB[name]) + ident.hair_tint


def skin_colour(ident: Identity, attrs: np.ndarray) -> np.ndarray:
    return ident.skin * 0.55 + 255 * 0.45 if attrs[A["Pale_Skin"]] else ident.skin


class Shapes:
    """The drawing shapes of one face, shared by the renderer and the region masks."""

    def __init__(self, f: Face):
        i = f.i
        self.head = _ellipse(0, EAR_Y, i.face_w * 1.0, i.crown * 1.0, 32)
        cap_outer = _ellipse(0, EAR_Y - 0.02, i.face_w * 1.1, i.crown * 1.14, 32, np.pi, 2 * np.pi)
        hl = np.stack([np.linspace(i.face_w * 1.08, -i.face_w * 1.08, 9), np.zeros(9)], axis=1)
        hl[:, 1] = i.hairline + 0.18 * (np.abs(hl[:, 0]) / i.face_w) ** 2
        self.cap = np.concatenate([cap_outer, [[i.face_w * 1.1, EAR_Y - 0.02]], hl])
        w = i.face_w * 1.28
        self.long = np.array([[-w, EAR_Y - 0.6], [-w, 1.25], [w, 1.25], [w, EAR_Y - 0.6], [0, EAR_Y - i.crown * 1.2]])
        self.bangs = np.concatenate(
            [
                np.stack([np.linspace(-0.72, 0.72, 9), i.hairline + 0.1 + np.zeros(9) - 0.05 * np.cos(np.linspace(-1.5, 1.5, 9))], 1),
                np.stack([np.linspace(0.7, -0.7, 7), np.array([-0.6, -0.56, -0.6, -0.55, -0.6, -0.56, -0.6])], 1),
            ]
        )
        self.neck = np.array([[-0.42, 0.5], [0.42, 0.5], [0.5, 1.9], [-0.5, 1.9]])
        self.ears = [_ellipse(s * (i.face_w - 0.02), -0.2, i.ear * 0.7, i.ear * 1.3, 16) for s in (-1, 1)]
        self.face = f.face_outline()
        jaw = f.jaw(21)[3:18]
        centre = np.array([0.0, i.mouth_y - 0.1])
        self.beard = np.concatenate([jaw, centre + (jaw[::-1] - centre) * 0.72])
        tip = f.neutral_tip
        self.mustache = np.array(
            [[-0.36, i.mouth_y - 0.02], [-0.2, tip + 0.14], [0.2, tip + 0.14], [0.36, i.mouth_y - 0.02], [0, i.mouth_y - 0.06]]
        )


def render(ident: Identity, nuis: Nuisance, attrs: np.ndarray, size: int) -> tuple[np.ndarray, Face]:
    """One face as an HxWx3 uint8 RGB image, and its geometry (for landmarks)."""
    f = Face(ident, nuis, attrs)
    sh = Shapes(f)
    cv = Canvas(size, nuis)
    on = lambda name: bool(attrs[A[name]])  # noqa: E731
    img = _background(size, nuis)
    skin, hair = skin_colour(ident, attrs), hair_colour(ident, attrs)
    bald = on("Bald")
    if ident.long_hair and not bald:
        cv.poly(img, sh.long, hair)
    cv.poly(img, sh.neck, skin * 0.88)
    for ear in sh.ears:
        cv.poly(img, ear, skin * 0.95)
    cv.poly(img, sh.head, skin)
    cv.poly(img, sh.face, skin)
    if not on("Young"):
        for y in (-0.78, -0.7, -0.62):
            cv.line(img, _ellipse(0, y + 0.35, 0.38, 0.35, 9, 1.25 * np.pi, 1.75 * np.pi), skin * 0.6, 0.04)
        for s in (-1, 1):
            cv.line(img, _fold(f, s), skin * 0.6, 0.045)
    if on("Heavy_Makeup"):
        for s in (-1, 1):
            cv.poly(img, _ellipse(s * 0.55, 0.18, 0.16, 0.11, 16), skin * 0.6 + np.array([230, 90, 120]) * 0.4)
            cv.poly(img, _ellipse(s * ident.eye_sep, -0.29, ident.eye_w + 0.06, 0.11, 16), np.array([120, 60, 130]))
    if not bald:
        cv.poly(img, sh.cap, hair)
        if on("Bangs"):
            cv.poly(img, sh.bangs, hair * 0.92)
    brow_w = 0.11 if on("Male") else 0.04
    for side in (0, 1):
        cv.line(img, f.brow(side, 7), ident.brow, brow_w)
    for k in (0, 1):
        cv.poly(img, f.eye(k, np.linspace(0, 2 * np.pi, 20, endpoint=False)), (245, 245, 240))
        cx, cy = f.eye_centres()[k]
        r = min(ident.eye_w * 0.55, f.eye_h * 0.95)
        g = np.array(nuis.gaze) * ident.eye_w * 0.4
        cv.poly(img, _ellipse(cx + g[0], cy + g[1] * f.eye_h, r, r, 12), ident.iris)
        cv.poly(img, _ellipse(cx + g[0], cy + g[1] * f.eye_h, r * 0.45, r * 0.45, 8), (15, 12, 12))
    tip, nw = f.nose_tip, f.nose_w
    cv.line(img, np.array([[-0.08, -0.2], [-0.1, tip - 0.05], [-nw, tip + 0.04]]), skin * 0.78, 0.025)
    cv.line(img, np.array([[0.08, -0.2], [0.1, tip - 0.05], [nw, tip + 0.04]]), skin * 0.78, 0.025)
    for s in (-1, 1):
        cv.poly(img, _ellipse(s * nw * 0.5, tip + 0.07, nw * 0.3, 0.035, 10), skin * 0.4)
    if not on("No_Beard"):
        cv.poly(img, sh.beard, ident.brow * 0.9)
    if on("Mustache"):
        cv.poly(img, sh.mustache, ident.brow * 0.85)
    lip = np.array([200, 20, 45]) if on("Wearing_Lipstick") else ident.lip
    cv.poly(img, f.mouth_outer(), lip)
    if f.open or f.smile:
        inner = f.mouth_inner()
        cv.poly(img, inner, (60, 20, 25))
        if f.smile:  # a smile shows the upper teeth
            cv.poly(img, np.concatenate([inner[:5], inner[4:5] + [0, 0.05], inner[:1] + [0, 0.05]]), (240, 240, 230))
    else:
        cv.line(img, f.mouth_inner()[:5], lip * 0.55, 0.02)
    if on("Eyeglasses"):
        for c in f.eye_centres():
            ring = _ellipse(c[0], c[1], 0.24, 0.2, 24)
            cv.line(img, np.concatenate([ring, ring[:1]]), (20, 20, 25), 0.035)
        cv.line(img, np.array([[-ident.eye_sep + 0.24, -0.27], [ident.eye_sep - 0.24, -0.27]]), (20, 20, 25), 0.035)
    return _light_and_noise(img, nuis), f


def _fold(f: Face, side: int) -> np.ndarray:
    """The nasolabial fold of an older face, from beside the nose to past the mouth corner."""
    return np.array([[side * (f.i.nose_w + 0.08), f.neutral_tip], [side * (f.i.mouth_w + 0.1), f.i.mouth_y + 0.12]])


def _light_and_noise(img: np.ndarray, nu: Nuisance) -> np.ndarray:
    size = img.shape[0]
    r = np.linspace(-1, 1, size, dtype=np.float32)
    gain = 1.0 + nu.light_amp * (np.cos(nu.light_dir) * r[None, :] + np.sin(nu.light_dir) * r[:, None])
    out = img.astype(np.float32)
    out *= gain[:, :, None]
    noise = np.random.default_rng(nu.noise_seed).standard_normal((size, size, 3), dtype=np.float32)
    noise *= nu.noise
    out += noise
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


# ----------------------------------------------------------------------------- masks
def region_masks(ident: Identity, nuis: Nuisance, attrs: np.ndarray, size: int) -> np.ndarray:
    """(18, size, size) bool: for each attribute, the pixels that decide it.

    Each region covers the attribute's shapes in both of its states (e.g. the mouth closed
    and smiling), dilated by 2 px for anti-aliasing, so flipping the attribute changes
    pixels only inside it.
    """
    cv = Canvas(size, nuis)
    f = {v: Face(ident, nuis, _with(attrs, v)) for v in (0, 1)}
    sh = Shapes(f[0])
    out = np.zeros((len(ATTRIBUTES), size, size), dtype=np.uint8)
    m = lambda name: out[A[name]]  # noqa: E731
    # Hair: where hair would be (visible long hair, cap, bangs).
    hair = m("Bald")
    if ident.long_hair:
        cv.poly(hair, sh.long, 1, aa=False)
        for shape in [sh.neck, sh.head, sh.face, *sh.ears]:
            cv.poly(hair, shape, 0, aa=False)
    cv.poly(hair, sh.cap, 1, aa=False)
    cv.poly(hair, sh.bangs, 1, aa=False)
    for name in HAIR_COLOURS:
        out[A[name]] = hair
    cv.poly(m("Bangs"), sh.bangs, 1, aa=False)
    for shape in [sh.neck, sh.head, sh.face, *sh.ears]:
        cv.poly(m("Pale_Skin"), shape, 1, aa=False)
    for side in (0, 1):
        for v in (0, 1):
            cv.line(m("Male"), f[v].brow(side, 7), 1, 0.14, aa=False)
    for k, c in enumerate(f[0].eye_centres()):
        cv.poly(m("Eyeglasses"), _ellipse(c[0], c[1], 0.29, 0.25, 24), 1, aa=False)
        cv.poly(m("Narrow_Eyes"), _ellipse(c[0], c[1], ident.eye_w + 0.04, ident.eye_w * 0.5 + 0.04, 20), 1, aa=False)
        cv.poly(m("Heavy_Makeup"), _ellipse(c[0], -0.29, ident.eye_w + 0.09, 0.14, 16), 1, aa=False)
        cv.poly(m("Heavy_Makeup"), _ellipse(-0.55 if k == 0 else 0.55, 0.18, 0.2, 0.15, 16), 1, aa=False)
    cv.line(m("Eyeglasses"), np.array([[-ident.eye_sep + 0.2, -0.27], [ident.eye_sep - 0.2, -0.27]]), 1, 0.1, aa=False)
    for name in ("Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick"):
        cv.poly(m(name), _ellipse(0, ident.mouth_y + 0.04, ident.mouth_w * 1.2 + 0.1, 0.28, 24), 1, aa=False)
    cv.poly(m("Mustache"), sh.mustache, 1, aa=False)
    cv.poly(m("No_Beard"), sh.beard, 1, aa=False)
    cv.line(m("Young"), _ellipse(0, -0.7 + 0.35, 0.42, 0.35, 9, 1.2 * np.pi, 1.8 * np.pi), 1, 0.3, aa=False)
    for s in (-1, 1):
        cv.line(m("Young"), _fold(f[0], s), 1, 0.12, aa=False)
    for v in (0, 1):
        lo = f[v].nose_tip
        nose = np.array(
            [
                [-0.16, -0.24],
                [0.16, -0.24],
                [0.16, lo - 0.05],
                [f[v].nose_w + 0.04, lo + 0.03],
                [f[v].nose_w * 0.5, lo + 0.13],
                [-f[v].nose_w * 0.5, lo + 0.13],
                [-f[v].nose_w - 0.04, lo + 0.03],
                [-0.16, lo - 0.05],
            ]
        )
        cv.poly(m("Big_Nose"), nose, 1, aa=False)
    kernel = np.ones((5, 5), np.uint8)
    return np.stack([cv2.dilate(ch, kernel) for ch in out]).astype(bool)


def _with(attrs: np.ndarray, value: int) -> np.ndarray:
    """All attributes of the face set to ``value``: the union of both states covers every shape."""
    return np.full_like(attrs, value)


# ----------------------------------------------------------------------------- data set
@dataclass
class SynthFaceSet(FaceSet):
    """Faces rendered on demand at whatever size is asked for (no disk)."""

    renders: ClassVar[bool] = True
    config: SynthConfig = field(default_factory=SynthConfig)
    items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    background: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    render_size: int = 128

    def _take_extra(self, idx):
        return {"items": self.items[idx], "background": self.background[idx]}

    @property
    def n_landmarks(self) -> int:
        return self.config.points

    def parts(self, i: int, attrs: np.ndarray | None = None):
        item = int(self.items[i])
        ident = Identity.draw(_rng(self.config.seed, _STREAM_IDENTITY, int(self.identities[i])))
        nuis = Nuisance.draw(_rng(self.config.seed, _STREAM_NUISANCE, item), int(self.background[i]), self.config.pose)
        return ident, nuis, self.attributes[i] if attrs is None else attrs

    def load(self, i, min_size=None):
        size = int(max(min_size)) if min_size else self.render_size
        img, _ = render(*self.parts(i), size)
        return img, (size, size)

    def load_item(self, i, min_size=None):
        size = int(max(min_size)) if min_size else self.render_size
        img, face = render(*self.parts(i), size)
        points = face.landmarks58() if self.config.points == 58 else face.landmarks68()
        return img, (size, size), Canvas(size, self.parts(i)[1]).px(points).astype(np.float32)

    def image_size(self, i):
        return (self.render_size, self.render_size)

    def masks(self, i: int, size: int) -> np.ndarray:
        return region_masks(*self.parts(i), size)

    def geometry(self, i: int, size: int) -> Geometry:
        """All landmark sets of item ``i`` in pixels of a ``size`` render."""
        ident, nuis, attrs = self.parts(i)
        face, cv = Face(ident, nuis, attrs), Canvas(size, nuis)
        return Geometry(cv.px(face.landmarks68()), cv.px(face.landmarks58()), cv.px(face.celeba5()))

    def fingerprint(self) -> str:
        import hashlib

        key = f"renderer {RENDERER_VERSION} {self.config.spec()} {self.items.tolist()}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]


class Geometry(NamedTuple):
    """A synthetic face's landmark sets, (K, 2) in pixels: iBUG's 68, IMM's 58 and CelebA's five."""

    landmarks68: np.ndarray
    landmarks58: np.ndarray
    celeba5: np.ndarray


def synth_faceset(cfg: SynthConfig, spec: str | None = None) -> SynthFaceSet:
    if cfg.n < 1:
        raise FacelabError(f"synth: the number of images must be at least 1, got {cfg.n}")
    labels = make_labels(cfg)
    return SynthFaceSet(
        spec=spec or cfg.spec(),
        source="synth",
        names=[f"{k + 1:06d}.png" for k in range(cfg.n)],
        split=labels["split"],
        attr_names=list(ATTRIBUTES),
        attributes=labels["attributes"],
        identities=labels["identities"],
        mirror=IMM58_MIRROR if cfg.points == 58 else IBUG68_MIRROR,
        default_crop="full",
        config=cfg,
        items=np.arange(cfg.n),
        background=labels["background"],
    )


SYNTH_KEYS = ("ids", "seed", "points", "pose", "correlate", "spurious", "imbalance")


def synth_config_from(parts: list[str], spec: str):
    n = DEFAULT_N
    if parts and parts[0].isdigit():
        n, parts = int(parts[0]), parts[1:]
    opts = spec_options(parts, spec, SYNTH_KEYS)
    try:
        ids = int(opts["ids"][0]) if "ids" in opts else None
        seed = int(opts.get("seed", ["0"])[0])
        points = int(opts.get("points", ["68"])[0])
    except ValueError:
        raise FacelabError(f"{spec!r}: ids, seed and points must be integers") from None
    if points not in (68, 58):
        raise FacelabError(f"{spec!r}: points={points}; synthetic faces carry 68 (iBUG 300-W layout) or 58 (IMM layout) points")
    pose = opts.get("pose", ["studio"])[0]
    if pose not in POSES:
        raise FacelabError(f"{spec!r}: pose={pose}; use {' or '.join(POSES)}")
    knobs = tuple(Knob.parse(k, v) for k in ("correlate", "spurious", "imbalance") for v in opts.get(k, []))
    return SynthConfig(n=n, ids=ids, seed=seed, points=points, knobs=knobs, pose=pose)


def with_pose(spec: str, pose: str) -> str:
    """``spec`` with its synthetic faces drawn in ``pose`` where it names no pose; any other SPEC as it is."""
    kind, _, rest = spec.partition(":")
    if kind != "synth" or any(p.startswith("pose=") for p in rest.split(",")):
        return spec
    return f"synth:{rest},pose={pose}" if rest else f"synth:pose={pose}"


@data_source("synth", "synth[:N]", needs_path=False)
def open_synth(rest: str, spec: str) -> SynthFaceSet:
    return synth_faceset(synth_config_from([p for p in rest.split(",") if p], spec), spec)
