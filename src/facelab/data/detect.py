"""Finding faces in the user's own photos: OpenCV's Haar cascade, shipped inside the opencv wheel."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..errors import FacelabError

CASCADE = "haarcascade_frontalface_default.xml"


@lru_cache(maxsize=1)
def _detector() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + CASCADE
    det = cv2.CascadeClassifier(path)
    if det.empty():
        raise FacelabError(
            f"{path}: OpenCV's face cascade is missing (opencv >= 5 wheels ship none); pip install 'opencv-python-headless<5'"
        )
    return det


DETECT_SIDE = 480  # photos are searched at most this big (faces under 8% of the short side are ignored anyway)


def detect_faces(image: np.ndarray, min_face: float = 0.08) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the faces in an RGB image, largest first; faces under ``min_face`` of the short side ignored."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, DETECT_SIDE / max(grey.shape))
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    side = max(16, int(min(grey.shape) * min_face))
    found = _detector().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    boxes = [tuple(int(round(v / scale)) for v in b) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def square_box(box: tuple[int, int, int, int], margin: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the detection grown by ``margin`` on every side."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    return x + w / 2, y + h / 2, side


def crop_face(image: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int], margin: float = 0.25):
    """The face resized to ``size`` (edges replicated where the margin leaves the photo), and the
    affine (scale, x0, y0) mapping crop pixels back to the photo: photo = crop * scale + (x0, y0)."""
    cx, cy, side = square_box(box, margin)
    tw, th = size
    scale = side / max(tw, th)
    x0, y0 = cx - tw * scale / 2, cy - th * scale / 2
    m = np.array([[1 / scale, 0, -x0 / scale], [0, 1 / scale, -y0 / scale]], dtype=np.float64)
    crop = cv2.warpAffine(image, m, (tw, th), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return crop, (scale, x0, y0)
