"""Faces and landmarks in photo collections: ``facelab detect`` (boxes, a contact sheet) and ``facelab data label``
(dlib's 68 points for every photo, in dlib's XML layout, so any photo collection becomes a 300-W-style training set).

``data label`` keeps a journal (``labels.partial.jsonl``, one line per photo done): an interrupted run, started
again with the same ``--out``, goes on where it stopped; ``labels.xml`` is written (atomically) only at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict
from xml.sax.saxutils import quoteattr

import numpy as np

from ..data import detect as finding
from ..data.detect import FACES_EXTRA, dlib_landmarks, face_detector
from ..data.photos import Photos
from ..errors import FacelabError
from ..files import atomic_write, prepare_output, record_entries, write_csv, write_json
from ..probes.output import write_probe_output
from ..progress import progress_bar
from ..report.figures import image_grid
from ..results import Summary
from .photos import draw_points

SHEET_COLUMNS = 6
SHEET_SIDE = 256
LANDMARKER = "dlib shape_predictor_68_face_landmarks (iBUG 300-W layout)"
MACHINE_LABELS = "machine labels"  # how labels.xml's comment starts; the 300-W reader reports it


def _thumbnail(photo: np.ndarray, faces: list, points: list[np.ndarray] | None = None) -> np.ndarray:
    """The photo with its faces' boxes and scores (and points) drawn, shrunk to SHEET_SIDE on its long side."""
    import cv2

    drawn = photo
    for k, face in enumerate(faces):
        drawn = draw_points(drawn, points[k] if points else np.zeros((0, 2)), face.box, face.score)
    scale = SHEET_SIDE / max(drawn.shape[:2])
    return cv2.resize(drawn, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else drawn


class FacesFile(TypedDict):
    """``faces.json`` of ``facelab detect``: the detector, its score threshold and each photo's faces."""

    detector: str
    min_score: float | None
    images: list[dict[str, Any]]


@dataclass
class Detections(Summary):
    """``facelab detect``: the faces found in each photo (``faces.json`` holds detector, min_score and images), and
    how many photos, faces and unreadable files there were (summary.json holds every field)."""

    detector: str
    min_score: float | None
    images: list[dict[str, Any]]  # {"file", "faces": [{"box": [x, y, w, h], "score"}]}, the photo's pixels
    data: str
    n_images: int
    n_faces: int
    unreadable: list[str]

    def faces_json(self) -> FacesFile:
        return FacesFile(detector=self.detector, min_score=self.min_score, images=self.images)


@dataclass
class Labels(Summary):
    """``facelab data label``'s summary.json: photos seen, faces labelled, photos skipped and why, and by what."""

    n_images: int
    n_faces: int
    skipped: list[str]
    landmarker: str
    detector: str


def detect(
    source: str,
    *,
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    out: str | Path = "runs/detect",
    strict: bool = False,
    quiet: bool = True,
) -> Detections:
    """Faces in every photo of ``source`` (a file, a folder or a SPEC): ``faces.json`` (``{"detector", "images":
    [{"file", "faces": [{"box": [x, y, w, h], "score"}]}]}``, the photo's pixels), ``faces.csv``, a contact sheet."""
    folder = prepare_output(out, "detect")
    finder = face_detector(detector, upsample, min_score)
    photos = Photos(source, strict)
    images: list[dict[str, Any]] = []
    tiles, captions = [], []
    with progress_bar("detect", len(photos), quiet) as advance:
        for _, name, photo in photos:
            faces = finder.find(photo)
            images.append({"file": name, "faces": [f.as_dict() for f in faces]})
            tiles.append(_thumbnail(photo, faces))
            captions.append(f"{name[-16:]}: {len(faces)}")
            advance()
    unreadable = photos.skipped.say()
    n_faces = sum(len(im["faces"]) for im in images)
    result = Detections(finder.name, finder.min_score, images, source, len(photos), n_faces, unreadable)
    write_json(folder / "faces.json", result.faces_json())
    rows = ([im["file"], k, *f["box"], "" if f["score"] is None else f["score"]] for im in images for k, f in enumerate(im["faces"]))
    write_csv(folder / "faces.csv", ["file", "face", "x", "y", "w", "h", "score"], rows)
    if tiles:
        image_grid(tiles, captions, folder / "faces.png", cols=min(SHEET_COLUMNS, len(tiles)))
    facts: list[list] = [
        ["photos", len(photos)],
        ["faces", n_faces],
        ["detector", finder.name],
        ["unreadable", ", ".join(unreadable) or "none"],
    ]
    return write_probe_output(
        folder, f"facelab detect: {source}", result, [("faces.png", "each photo with the faces found")] if tiles else [], facts
    )


# ----------------------------------------------------------------------------- data label
JOURNAL = "labels.partial.jsonl"


class Labelled(TypedDict, total=False):
    """One photo's entry in the labelling journal: its file and either its face's box and 68 points, or why it was
    skipped."""

    file: str
    box: list[int]
    points: list[list[float]]
    skipped: str


def _journal(folder: Path) -> dict[str, Labelled]:
    """What an interrupted run already did, by photo name (a torn last line is dropped)."""
    done = {}
    path = folder / JOURNAL
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[entry["file"]] = entry
    return done


def _label_one(photo: np.ndarray, finder) -> Labelled:
    faces = finder.find(photo)
    if len(faces) != 1:
        return Labelled(skipped=f"{len(faces)} faces found (exactly one is labelled)")
    box = faces[0].box
    return Labelled(box=list(box), points=np.round(dlib_landmarks(photo, box), 2).tolist())


def _xml_path(photo: Path | None, name: str, folder: Path) -> str:
    """The image's path as labels.xml names it: relative to the XML's folder when possible, else absolute."""
    if photo is None:
        return name
    try:
        return os.path.relpath(photo.resolve(), folder.resolve())
    except ValueError:  # another drive
        return str(photo.resolve())


def _write_xml(path: Path, entries: list[dict], comment: str) -> None:
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<dataset>", "<name>facelab data label</name>"]
    lines += [f"<comment>{comment}</comment>", "<images>"]
    for e in entries:
        x, y, w, h = e["box"]
        lines.append(f"  <image file={quoteattr(e['xml_file'])}>")
        lines.append(f"    <box top='{y}' left='{x}' width='{w}' height='{h}'>")
        lines += [f"      <part name='{k:02d}' x='{px:.2f}' y='{py:.2f}'/>" for k, (px, py) in enumerate(e["points"])]
        lines += ["    </box>", "  </image>"]
    lines += ["</images>", "</dataset>"]
    with atomic_write(path) as fh:
        fh.write("\n".join(lines) + "\n")


def label(
    source: str,
    *,
    out: str | Path,
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    strict: bool = False,
    quiet: bool = True,
) -> Labels:
    """dlib's 68 points for every photo of ``source`` with exactly one face: ``OUT/labels.xml`` (dlib's layout, read by
    ``300w:OUT/labels.xml``) and ``OUT/summary.json`` ``{"n_images", "n_faces", "skipped", "landmarker"}``."""
    if not finding.dlib_installed():  # before anything is written
        raise FacelabError(f"data label writes dlib's 68 points, and dlib is not installed: {FACES_EXTRA}")
    folder = prepare_output(out, "label", owned=("labels.xml", "summary.json", JOURNAL))
    finder = face_detector(detector, upsample, min_score)
    photos = Photos(source, strict)
    done = _journal(folder)
    with open(folder / JOURNAL, "a") as journal, progress_bar("label", len(photos), quiet) as advance:
        advance(sum(name in done for name in photos.names))
        for k, name in enumerate(photos.names):
            if name in done:
                continue
            photo = photos.read(k)
            entry = {"skipped": "unreadable"} if photo is None else _label_one(photo, finder)
            entry["file"] = name
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            done[name] = entry
            advance()
    files: list[Path | None] = list(photos.paths) if photos.paths else [None] * len(photos)
    paths = dict(zip(photos.names, files))
    labelled = [e | {"xml_file": _xml_path(paths.get(e["file"]), e["file"], folder)} for e in done.values() if "points" in e]
    if not labelled:
        raise FacelabError(f"{source}: no photo had exactly one face that {finder.name} could find; nothing to label")
    comment = f"{MACHINE_LABELS}: {LANDMARKER} on faces found by {finder.name}; not manual annotations"
    _write_xml(folder / "labels.xml", labelled, comment)
    skipped = sorted(f"{e['file']}: {e['skipped']}" for e in done.values() if "skipped" in e)
    summary = Labels(len(done), len(labelled), skipped, LANDMARKER, finder.name)
    write_json(folder / "summary.json", summary.to_json())
    (folder / JOURNAL).unlink()
    record_entries(folder)
    return summary
