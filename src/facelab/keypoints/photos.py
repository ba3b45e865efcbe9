"""``facelab landmarks RUN folder:PATH``: a keypoint model on the user's own photos.

Faces are found with OpenCV's Haar cascade, cropped square with a margin (as the training
crops were), predicted, and the points mapped back to the full photo and drawn there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.detect import dlib_landmarks, face_detector, face_margin, faces_for_network
from ..data.photos import FacesFound, Photos
from ..errors import FacelabError
from ..hardware import Runtime
from ..probes.output import probe_folder, write_probe_output
from ..report.figures import save_png
from ..run import Run

LANDMARKERS = ("net", "dlib")


def draw_points(image: np.ndarray, pts: np.ndarray, box: tuple[int, int, int, int] | None = None, score: float | None = None) -> np.ndarray:
    """The photo with a face's box (and the detector's score above it, where it gives one) and points drawn."""
    out = image.copy()
    r = max(1, round(min(image.shape[:2]) / 150))
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 200, 0), r)
        if score is not None:
            cv2.putText(out, f"{score:.2f}", (x, max(12 * r, y - 3 * r)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * r, (255, 200, 0), r, cv2.LINE_AA)
    for x, y in pts:
        cv2.circle(out, (int(round(x)), int(round(y))), r + 1, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    return out


@torch.no_grad()
def predict_points(run: Run, face: np.ndarray) -> np.ndarray:
    """(K, 2) points in the pixels of ``face`` (the network's input size)."""
    h, w = face.shape[:2]
    rel = run.model(run.contract.image_input(face)).float().view(-1, 2)
    return (rel * torch.tensor([w, h]) - 0.5).numpy()


@dataclass
class Landmarks(FacesFound):
    """``facelab landmarks``' summary.json: each face found in the user's photos and its points on the photo."""

    margin: float
    landmarker: str


def landmarks(
    run: str | Path,
    source: str,
    *,
    margin: float | None = None,
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    landmarker: str = "net",
    out: str | Path | None = None,
    strict: bool = False,
    runtime: Runtime | None = None,
) -> Landmarks:
    """Detect faces in every photo of ``source`` (folder:PATH), predict their landmarks with the run's network (or
    dlib's 68-point predictor, ``landmarker="dlib"``), draw them on the photo and list them in summary.json."""
    if landmarker not in LANDMARKERS:
        raise FacelabError(f"--landmarker {landmarker!r}: use net (the run's network) or dlib (dlib's 68-point predictor)")
    opened = Run.for_probes(run, runtime)
    opened.require("points", "landmarks")
    folder = probe_folder(out, run, "landmarks")
    margin = face_margin(opened.contract.crop) if margin is None else margin
    finder = face_detector(detector, upsample, min_score)
    photos = Photos(source, strict)
    faces: list[dict] = []
    no_face: list[str] = []
    figures: list[tuple[str, str]] = []
    for _, name, photo in photos:
        crops = faces_for_network(
            photo, opened.contract.size, detector=finder, margin=margin, whole_if_none=False, align=opened.contract.aligned
        )
        if not crops:
            no_face.append(name)
            continue
        drawn = photo
        for crop in crops:
            box = crop.face.box
            pts = dlib_landmarks(photo, box) if landmarker == "dlib" else crop.points_to_photo(predict_points(opened, crop.image))
            faces.append({"image": name, "box": list(box), "score": crop.face.score, "points": np.round(pts, 2).tolist()})
            drawn = draw_points(drawn, pts, box)
        file = f"landmarks_{Path(name).stem}.png"
        save_png(drawn, folder / file)
        figures.append((file, f"{name}: {len(crops)} face(s)"))
    unreadable = photos.skipped.say()
    summary = Landmarks(source, finder.name, len(photos), len(faces), no_face, unreadable, faces, margin, landmarker)
    facts: list[list] = [
        ["photos", summary.n_images],
        ["faces", len(faces)],
        ["face detector", finder.name],
        ["landmarks from", "dlib's 68-point predictor" if landmarker == "dlib" else f"the run's network ({run})"],
        ["no face found", ", ".join(no_face) or "none"],
        ["unreadable", ", ".join(unreadable) or "none"],
    ]
    return write_probe_output(folder, f"facelab landmarks: {source}", summary, figures, facts)
