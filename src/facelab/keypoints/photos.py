"""``facelab landmarks RUN folder:PATH``: a keypoint model on the user's own photos.

Faces are found with OpenCV's Haar cascade, cropped square with a margin (as the training
crops were), predicted, and the points mapped back to the full photo and drawn there.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.detect import crop_face, detect_faces
from ..data.images import SkippedImages, read_rgb
from ..probes.output import probe_folder, write_probe_output
from ..probes.subject import open_probe, photo_files
from ..report.figures import save_png
from ..run import Run

DEFAULT_FACE_MARGIN = {"box": 0.15, "landmarks": 0.3, "full": 0.25, "center": 0.25}


def draw_points(image: np.ndarray, pts: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    out = image.copy()
    r = max(1, round(min(image.shape[:2]) / 150))
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 200, 0), r)
    for x, y in pts:
        cv2.circle(out, (int(round(x)), int(round(y))), r + 1, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    return out


@torch.no_grad()
def predict_points(run: Run, face: np.ndarray) -> np.ndarray:
    """(K, 2) points in the pixels of ``face`` (the network's input size)."""
    h, w = face.shape[:2]
    rel = run.model(run.contract.image_input(face)).float().view(-1, 2)
    return (rel * torch.tensor([w, h]) - 0.5).numpy()


def landmarks(run: str | Path, source: str, *, margin: float | None = None, out: str | Path | None = None, strict: bool = False) -> dict:
    """Detect faces in every photo of ``source`` (folder:PATH), predict their landmarks, draw them on the photo."""
    opened, _ = open_probe(run)
    opened.require("points", "landmarks")
    folder = probe_folder(out, run, "landmarks")
    margin = DEFAULT_FACE_MARGIN.get(opened.contract.crop or "full", 0.25) if margin is None else margin
    size = opened.contract.size
    faces, no_face, figures = [], [], []
    skipped = SkippedImages(strict)
    for path in photo_files(source):
        read = skipped.call(path.name, read_rgb, path)
        if read is None:
            continue
        photo = read[0]
        boxes = detect_faces(photo)
        if not boxes:
            no_face.append(path.name)
            continue
        drawn = photo
        for box in boxes:
            crop, (scale, x0, y0) = crop_face(photo, box, size, margin)
            pts = predict_points(opened, crop) * scale + np.array([x0, y0])
            faces.append({"image": path.name, "box": list(box), "points": np.round(pts, 2).tolist()})
            drawn = draw_points(drawn, pts, box)
        file = f"landmarks_{path.stem}.png"
        save_png(drawn, folder / file)
        figures.append((file, f"{path.name}: {len(boxes)} face(s)"))
    unreadable = skipped.say()
    summary = {
        "data": source,
        "margin": margin,
        "n_images": len(figures) + len(no_face) + len(unreadable),
        "n_faces": len(faces),
        "no_face": no_face,
        "unreadable": unreadable,
        "faces": faces,
    }
    facts = [
        ["photos", summary["n_images"]],
        ["faces", len(faces)],
        ["no face found", ", ".join(no_face) or "none"],
        ["unreadable", ", ".join(unreadable) or "none"],
    ]
    return write_probe_output(folder, f"facelab landmarks: {source}", summary, figures, facts)
