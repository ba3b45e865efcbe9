"""Face regions (eyes, nose, mouth, face, background) drawn from five landmarks, so attribution maps can be
scored on real faces: CelebA ships the five points (eyes, nose tip, mouth corners); 68- and 58-point layouts
give them too.

The shapes scale with the inter-ocular distance ``d``: a disc of radius 0.3 d around each eye, one of 0.3 d
around the nose tip, an ellipse around the mouth corners (0.25 d beyond each corner, 0.3 d high), and a face
ellipse through the five points (half-width 1.1 d, half-height 1.5 x the eye-to-mouth distance). The
background is what lies outside the face ellipse.
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmark_layouts import EYE_POINTS

REGIONS = ("eyes", "nose", "mouth", "face", "background")

# The region whose pixels decide an attribute, where one does; the others are judged on the whole face.
ATTRIBUTE_REGION = {
    **dict.fromkeys(("Eyeglasses", "Narrow_Eyes", "Bags_Under_Eyes", "Arched_Eyebrows", "Bushy_Eyebrows"), "eyes"),
    **dict.fromkeys(("Big_Nose", "Pointy_Nose"), "nose"),
    **dict.fromkeys(("Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick", "Big_Lips", "Mustache"), "mouth"),
}

# Which of a layout's points are the five (left eye, right eye, nose tip, left and right mouth corner).
_IMM58 = {"eyes": EYE_POINTS[58], "nose": 52, "mouth": (39, 43)}
_IBUG68 = {"eyes": EYE_POINTS[68], "nose": 30, "mouth": (48, 54)}


def region_of(attribute: str) -> str:
    return ATTRIBUTE_REGION.get(attribute, "face")


def five_points(points: np.ndarray) -> np.ndarray | None:
    """(5, 2) eyes, nose tip, mouth corners from a 5-, 58- or 68-point layout; None for other layouts."""
    if len(points) == 5:
        return points.astype(np.float32)
    layout = {68: _IBUG68, 58: _IMM58}.get(len(points))
    if layout is None:
        return None
    eyes = [points[list(r)].mean(0) for r in layout["eyes"]]
    return np.stack([*eyes, points[layout["nose"]], *(points[k] for k in layout["mouth"])]).astype(np.float32)


def _disc(mask: np.ndarray, centre: np.ndarray, axes: tuple[float, float], angle: float = 0.0) -> None:
    scale = 16  # sub-pixel precision for OpenCV's integer drawing
    c = tuple(int(round(v * scale)) for v in centre)
    a = tuple(max(1, int(round(v * scale))) for v in axes)
    cv2.ellipse(mask, c, a, angle, 0, 360, 1, -1, cv2.LINE_8, shift=4)


def region_masks(five: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean (h, w) masks of each region for one face whose five points are in the image's pixels."""
    w, h = size
    left, right, nose, mouth_l, mouth_r = five.astype(np.float64)
    d = max(float(np.linalg.norm(right - left)), 1.0)
    angle = float(np.degrees(np.arctan2(*(right - left)[::-1])))
    eye_mid, mouth_mid = (left + right) / 2, (mouth_l + mouth_r) / 2
    masks = {name: np.zeros((h, w), np.uint8) for name in REGIONS[:-1]}
    for eye in (left, right):
        _disc(masks["eyes"], eye, (0.3 * d, 0.3 * d))
    _disc(masks["nose"], nose, (0.3 * d, 0.3 * d))
    mouth_half = float(np.linalg.norm(mouth_r - mouth_l)) / 2 + 0.25 * d
    _disc(masks["mouth"], mouth_mid, (mouth_half, 0.3 * d), angle)
    drop = max(float(np.linalg.norm(mouth_mid - eye_mid)), 0.5 * d)
    _disc(masks["face"], (eye_mid + mouth_mid) / 2, (1.1 * d, 1.5 * drop), angle)
    out = {k: v.astype(bool) for k, v in masks.items()}
    out["background"] = ~out["face"]
    return out
