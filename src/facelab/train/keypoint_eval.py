"""Keypoint predictions on a split and their per-image errors (beside the keypoint task; the report draws them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .batches import to_input


@dataclass
class SplitPredictions:
    positions: np.ndarray  # positions in the prepared selection
    pred: np.ndarray  # (N, K, 2) pixels of the cached image
    true: np.ndarray
    px_err: np.ndarray  # (N,)
    nme: np.ndarray | None


@torch.no_grad()
def predict_split(model: torch.nn.Module, data, split: str, channels: int, batch: int = 256) -> SplitPredictions:
    pos = data.split_positions(split)
    outs, ys = [], []
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(pos), batch):
        x8, y = data.batch(pos[start : start + batch])
        outs.append(model(to_input(x8.to(device), channels, channels_last=False)).float().cpu())
        ys.append(y.cpu())
    out, y = torch.cat(outs), torch.cat(ys)
    errors = data.task.errors(out, y)
    return SplitPredictions(
        pos,
        data.task.to_pixels(out).numpy(),
        data.task.to_pixels(y).numpy(),
        errors["px_err"].numpy(),
        errors["nme"].numpy() if "nme" in errors else None,
    )


REFERENCE_LIMIT = 300  # faces dlib is run on (at full resolution, about 5 ms each)


def dlib_reference(data, split: str, limit: int = REFERENCE_LIMIT) -> dict:
    """NME (outer eye corners) of dlib's 68-point predictor on the first ``limit`` faces of ``split``, at the photos'
    full resolution, in the data set's boxes (else the box around the true points)."""
    from ..data.detect import dlib_landmarks
    from ..data.landmark_layouts import IBUG68_OUTER_EYE_CORNERS

    fs, (a, b) = data.faceset, IBUG68_OUTER_EYE_CORNERS
    errors = []
    for i in data.split_positions(split)[:limit]:
        image, _, true = fs.load_item(int(i))
        if fs.boxes is not None:
            box = tuple(int(v) for v in fs.boxes[i])
        else:
            (x0, y0), (x1, y1) = true.min(0), true.max(0)
            box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
        pred = dlib_landmarks(image, box)
        errors.append(np.linalg.norm(pred - true, axis=1).mean() / max(np.linalg.norm(true[a] - true[b]), 1e-6))
    return {"landmarker": "dlib shape_predictor_68_face_landmarks", "n": len(errors), "nme": float(np.mean(errors))}
