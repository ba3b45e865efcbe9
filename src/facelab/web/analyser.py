"""One frame or photo through every loaded run: faces found, predictions, a CAM overlay, landmarks.

Shared by the web page and the webcam/video view. Runs are used under one lock: attribution
hooks sit on shared modules, so two requests must not interleave inside a network.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.detect import crop_face, detect_faces
from ..errors import FacelabError
from ..keypoints.photos import predict_points
from ..probes.cam import attribution_maps, head_layer, overlay
from ..probes.subject import named_probabilities
from ..progress import say
from ..run import Run

FACE_MARGIN = 0.25
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


def load_runs(paths: list[str | Path]) -> list[LoadedRun]:
    if not paths:
        raise FacelabError("give at least one RUN folder")
    runs = []
    for p in paths:
        if not (Path(p) / "summary.json").exists():
            say(f"{p}: this run has not finished training (no summary.json); serving its latest checkpoint")
        run = Run.open(p, probe=True)
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
    def __init__(self, runs: list[LoadedRun]):
        self.runs = runs
        self.lock = threading.Lock()
        self.targets = [o for r in runs for o in r.outputs]

    def faces(self, image: np.ndarray, detect: bool = True) -> tuple[list[tuple[int, int, int, int]], bool]:
        """Detected face boxes, or the whole image when none is found (second value: whether detection found them)."""
        boxes = detect_faces(image) if detect else []
        if boxes:
            return boxes, True
        h, w = image.shape[:2]
        side = min(w, h)
        return [((w - side) // 2, (h - side) // 2, side, side)], False

    @torch.no_grad()
    def analyse(self, image: np.ndarray, target: str | None = None, detect: bool = True, with_cam: bool = True) -> list[dict]:
        """Per face: box, predictions {name: prob}, the CAM overlay (face-sized RGB array) and landmarks in image pixels."""
        boxes, found = self.faces(image, detect)
        results = []
        with self.lock:
            for box in boxes:
                face = {
                    "box": [int(v) for v in box],
                    "detected": found,
                    "predictions": {},
                    "cam": None,
                    "cam_about": None,
                    "landmarks": None,
                }
                for run in self.runs:
                    self._apply(run, image, box, face, target, with_cam, margin=FACE_MARGIN if found else 0.0)
                results.append(face)
        return results

    def _apply(self, loaded: LoadedRun, image, box, face: dict, target, with_cam: bool, margin: float) -> None:
        run = loaded.run
        crop, (scale, x0, y0) = crop_face(image, box, run.contract.size, margin)
        if run.task.points:
            pts = predict_points(run, crop) * scale + np.array([x0, y0])
            face["landmarks"] = np.round(pts, 1).tolist()
            return
        if not run.task.labels:  # e.g. a regression: nothing to show as probabilities or to explain
            return
        x = run.contract.image_input(crop)
        binary = run.task.binary
        output = run.task.explained_output(target if target in run.outputs else None)
        want_cam = with_cam and face["cam"] is None and (target is None or target in run.outputs)
        if want_cam:
            logits, tgt, _, norm = attribution_maps(run.model, x, loaded.cam_method, output, binary)
            face["cam"] = overlay(crop, norm[0].numpy())
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


def to_json(faces: list[dict]) -> dict:
    """The /api/predict answer: the CAM overlay as base64 PNG."""
    return {
        "faces": [
            {
                "box": f["box"],
                "detected": f["detected"],
                "predictions": f["predictions"],
                "cam_png": png_base64(f["cam"]) if f["cam"] is not None else None,
                "cam_about": f["cam_about"],
                "landmarks": f["landmarks"],
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
