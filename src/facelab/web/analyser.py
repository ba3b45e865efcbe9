"""One frame or photo through every loaded run: faces found, predictions, a CAM overlay, landmarks.

Shared by the web page and the webcam/video view. Runs are used under one lock: attribution
hooks sit on shared modules, so two requests must not interleave inside a network.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypedDict

import cv2
import numpy as np
import torch

from ..data.detect import Face, FaceCrop, crop_for_network, face_detector, face_margin
from ..errors import FacelabError
from ..hardware import Runtime
from ..keypoints.photos import predict_points
from ..models.heatmap import HeatmapNet, uncertainty_picture
from ..probes.cam import attribution_maps, head_layer, overlay
from ..probes.subject import named_probabilities
from ..progress import say
from ..run import Run

TOP_CLASSES = 5


@dataclass
class LoadedRun:
    run: Run
    cam_method: str

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def outputs(self) -> list[str]:
        """The outputs a visitor can ask about (none for keypoint runs)."""
        return self.run.outputs if self.run.task.labels else []


def load_runs(paths: Sequence[str | Path], *, runtime: Runtime | None = None) -> list[LoadedRun]:
    if not paths:
        raise FacelabError("give at least one RUN folder")
    runs = []
    for p in paths:
        run = Run.for_probes(p, runtime)  # a folder that is no run is one line before anything is said
        if not (Path(p) / "summary.json").exists():
            say(f"{p}: this run has not finished training (no summary.json); serving its latest checkpoint")
        try:
            head_layer(run.model)
            method = "cam"
        except FacelabError:
            method = "gradcam"
        runs.append(LoadedRun(run, method))
    return runs


def png_base64(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode("ascii")


class Analyser:
    """``detector``: how faces are found in each frame (:func:`facelab.data.detect.face_detector`)."""

    def __init__(self, runs: list[LoadedRun], detector: str = "auto", upsample: int | None = None, min_score: float | None = None):
        self.runs = runs
        self.detector = face_detector(detector, upsample, min_score)
        self.lock = threading.Lock()
        self.targets = [o for r in runs for o in r.outputs]

    @torch.no_grad()
    def analyse(self, image: np.ndarray, target: str | None = None, detect: bool = True, with_cam: bool = True) -> list[dict]:
        """Per face: box, predictions {name: prob}, the CAM overlay (face-sized RGB array) and landmarks in image pixels.
        Without a detected face (or ``detect``), the whole frame is analysed as one face."""
        found: list[Face | None] = list(self.detector.find(image)) if detect else []
        results = []
        with self.lock:
            for detected in found or [None]:
                crops = [
                    crop_for_network(image, detected, r.run.contract.size, face_margin(r.run.contract.crop), r.run.contract.aligned)
                    for r in self.runs
                ]
                face = {
                    "box": [int(v) for v in crops[0].face.box],
                    "detected": detected is not None,
                    "score": None if detected is None else detected.score,
                    "predictions": {},
                    "cam": None,
                    "cam_about": None,
                    "landmarks": None,
                    "heatmap": None,
                }
                for run, crop in zip(self.runs, crops):
                    self._apply(run, crop, face, target, with_cam)
                results.append(face)
        return results

    def _apply(self, loaded: LoadedRun, crop: FaceCrop, face: dict, target, with_cam: bool) -> None:
        run = loaded.run
        if run.task.points:
            face["landmarks"] = np.round(crop.points_to_photo(predict_points(run, crop.image)), 1).tolist()
            if isinstance(run.model, HeatmapNet) and face["heatmap"] is None:
                maps = run.model.point_maps(run.contract.image_input(crop.image))[0]
                h, w = crop.image.shape[:2]
                picture = cv2.resize(uncertainty_picture(maps).numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
                face["heatmap"] = overlay(crop.image, picture)
            return
        if not run.task.labels:  # e.g. a regression: nothing to show as probabilities or to explain
            return
        x = run.contract.image_input(crop.image)
        binary = run.task.binary
        output = run.task.explained_output(target if target in run.outputs else None)
        want_cam = with_cam and face["cam"] is None and (target is None or target in run.outputs)
        if want_cam:
            logits, tgt, _, norm = attribution_maps(run.model, x, loaded.cam_method, output, binary, runtime=run.runtime)
            face["cam"] = overlay(crop.image, norm[0].numpy())
            name = run.outputs[int(tgt.index[0])]
            face["cam_about"] = {
                "method": loaded.cam_method,
                "target": name,
                "explains": "absent" if binary and float(tgt.sign[0]) < 0 else "present",
            }
        else:
            logits = run.model(x).float()
        probs = named_probabilities(run, logits[0], TOP_CLASSES)
        face["predictions"].update({name: round(p, 4) for name, p in probs.items()})


class FaceAnswer(TypedDict):
    """One face of the /api/predict answer (docs/json.md)."""

    box: list[int]
    detected: bool
    score: float | None
    predictions: dict[str, float]
    cam_png: str | None  # base64 PNG of the CAM overlay
    cam_about: dict[str, str] | None
    landmarks: list[list[float]] | None
    heatmap_png: str | None


class Answer(TypedDict):
    """The /api/predict answer."""

    faces: list[FaceAnswer]


def to_json(faces: list[dict]) -> Answer:
    """The /api/predict answer: the CAM overlay as base64 PNG."""
    return {
        "faces": [
            {
                "box": f["box"],
                "detected": f["detected"],
                "score": f["score"],
                "predictions": f["predictions"],
                "cam_png": png_base64(f["cam"]) if f["cam"] is not None else None,
                "cam_about": f["cam_about"],
                "landmarks": f["landmarks"],
                "heatmap_png": png_base64(f["heatmap"]) if f["heatmap"] is not None else None,
            }
            for f in faces
        ]
    }


def draw(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    """The faces' CAM overlays pasted into their boxes, boxes, landmarks and the top predictions, on a copy of the frame."""
    out = image.copy()
    h, w = out.shape[:2]
    for f in faces:
        x, y, bw, bh = f["box"]
        if f["cam"] is not None:
            x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
            if x1 > x0 and y1 > y0:
                heat = cv2.resize(f["cam"], (bw, bh))
                out[y0:y1, x0:x1] = cv2.addWeighted(out[y0:y1, x0:x1], 0.4, heat[y0 - y : y1 - y, x0 - x : x1 - x], 0.6, 0)
        cv2.rectangle(out, (x, y), (x + bw, y + bh), (255, 200, 0), 2)
        for px, py in f["landmarks"] or []:
            cv2.circle(out, (int(px), int(py)), 2, (0, 255, 0), -1)
        top = sorted(f["predictions"].items(), key=lambda kv: -kv[1])[:3]
        for k, (name, p) in enumerate(top):
            cv2.putText(
                out, f"{name} {p:.2f}", (x, max(12, y - 6 - 16 * k)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
            )
    return out
