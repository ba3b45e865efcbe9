"""Face crops found in the photos themselves, when the cache is built: ``--crop detect`` and ``--crop aligned``.

``detect``: the detector's box (the largest face scoring at least the detector's minimum), enlarged by the margin
and squared, as the 300-W protocol crops a face box. ``aligned``: a similarity transform (rotation, scale, shift)
of five points - eye centres, nose tip, mouth corners, from dlib's 68-point predictor on the detected box - onto
one canonical template, the way face-recognition pipelines align faces (the template is the usual 112 x 112 one
of ArcFace-style pipelines, scaled to the cache's size, with the margin around it). Photos where no face is found
are left out of the cache and listed (its ``failed`` list), never fatal. What was found is stored beside the
images (``faces.f32``: box x, y, w, h, score and where the template's five points fall in the photo, NaN where none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import cv2
import numpy as np

from ..errors import FacelabError
from .detect import FACES_EXTRA, Detector, dlib_installed, face_detector, face_transform, template, warp_to
from .images import UnreadableImage

FACE_CROPS = ("detect", "aligned")
FACE_COLUMNS = 15  # x, y, w, h, score, then five (x, y)


class FinderDescription(TypedDict):
    detector: str
    upsample: int | None
    min_score: float | None
    crop: str


@dataclass(frozen=True)
class FaceFinder:
    """How a face crop finds its face: a detector by name, its upsampling and its minimum score."""

    detector: str = "auto"
    upsample: int | None = None
    min_score: float | None = None

    def describe(self, crop: str) -> FinderDescription:
        """How faces were found, as a cache's fingerprint and meta.json keep it."""
        found = self.build()
        return FinderDescription(detector=found.name, upsample=found.upsample, min_score=found.min_score, crop=crop)

    def build(self) -> Detector:
        return face_detector(self.detector, self.upsample, self.min_score)


def check_face_crop(crop: str) -> None:
    if crop == "aligned" and not dlib_installed():
        raise FacelabError(f"--crop aligned needs dlib's 68-point predictor for the five points: {FACES_EXTRA}")


def decode_face(img: np.ndarray, pts, name: str, size: tuple[int, int], crop: str, margin: float, detector: Detector):
    """One photo's largest face cropped to ``size`` (``crop`` detect or aligned); returns the crop, ``pts`` (the photo's
    landmarks) in the crop's pixels (or None) and the stored row (box, score, five points)."""
    faces = detector.find(img)
    if not faces:
        raise UnreadableImage(f"{name}: no face found by {detector.describe()}")
    face = faces[0]
    m = face_transform(img, face.box, size, margin, align=crop == "aligned")
    row = np.full(FACE_COLUMNS, np.nan, dtype=np.float32)
    row[:4] = face.box
    row[4] = np.nan if face.score is None else face.score
    if crop == "aligned":  # where the template's five points fall in the photo
        row[5:] = warp_points(template(size, margin), cv2.invertAffineTransform(m)).flatten()
    moved = None if pts is None else warp_points(pts, m)
    return warp_to(img, m, size), moved, row


def warp_points(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (np.asarray(pts) @ m[:, :2].T + m[:, 2]).astype(np.float32)
