"""Keypoint predictions on a split, their per-image errors, and the 300-W protocol (beside the keypoint task; the
report draws them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, NotRequired, TypedDict, TypeVar

import numpy as np
import torch

from .batches import split_outputs

SUBSETS_300W = {"common": ("lfpw", "helen"), "challenging": ("ibug",)}  # by the images' first folder; full = all
REFERENCE_LIMIT = 300  # faces dlib is run on (at full resolution, about 5 ms each)


@dataclass
class SplitPredictions:
    positions: np.ndarray  # positions in the prepared selection
    pred: np.ndarray  # (N, K, 2) pixels of the cached image
    true: np.ndarray
    px_err: np.ndarray  # (N,)
    nme: np.ndarray | None  # by the outer eye corners (68 points)
    nme_ip: np.ndarray | None = None  # by the pupils


@torch.no_grad()
def predict_split(model: torch.nn.Module, data, split: str, channels: int, batch: int = 128) -> SplitPredictions:
    pos = data.split_positions(split)
    out, y = split_outputs(model, data, split, channels, batch)
    errors = as_arrays(data.task.errors(out, y))
    return SplitPredictions(
        pos, data.task.to_pixels(out).numpy(), data.task.to_pixels(y).numpy(), errors["px_err"], errors.get("nme"), errors.get("nme_ip")
    )


def mean_shape_errors(data, split: str) -> PointErrors[np.ndarray] | None:
    """Per image of ``split``: the task's errors of always answering the training split's mean shape (None without
    a training split)."""
    train = data.split_positions("train")
    if not train.size:
        return None
    mean = data.targets[train].mean(0, keepdim=True)
    target = data.targets[data.split_positions(split)]
    return as_arrays(data.task.errors(mean.expand_as(target), target))


def as_arrays(errors: PointErrors[torch.Tensor]) -> PointErrors[np.ndarray]:
    return PointErrors(**{k: v.numpy() for k, v in errors.items()})  # type: ignore[typeddict-item]


def mean_shape_nme(data, split: str) -> np.ndarray:
    """Per image of ``split``: the NME of always answering the training split's mean shape (NaN without one)."""
    errors = mean_shape_errors(data, split)
    return errors["nme"] if errors is not None else np.full(len(data.split_positions(split)), np.nan)


def dlib_nme(data, split: str, limit: int = REFERENCE_LIMIT) -> np.ndarray:
    """Per image of ``split`` (NaN past the first ``limit``): the NME of dlib's 68-point predictor at the photos' full
    resolution, in the box dlib's own HOG detector gives the face (the box the predictor was trained on), else in the
    data set's box, else in the square around the true points."""
    from ..data.detect import dlib_landmarks, face_detector
    from ..data.landmark_layouts import IBUG68_OUTER_EYE_CORNERS

    fs, (a, b) = data.faceset, IBUG68_OUTER_EYE_CORNERS
    hog = face_detector("dlib-hog")
    positions = data.split_positions(split)
    errors = np.full(len(positions), np.nan)
    for k, i in enumerate(positions[:limit]):
        image, _, true = fs.load_item(int(i))
        pred = dlib_landmarks(image, _reference_box(hog, image, true, None if fs.boxes is None else fs.boxes[i]))
        errors[k] = np.linalg.norm(pred - true, axis=1).mean() / max(np.linalg.norm(true[a] - true[b]), 1e-6)
    return errors


def _reference_box(hog, image: np.ndarray, true: np.ndarray, given) -> tuple[int, int, int, int]:
    cx, cy = true.mean(0)
    found = [f.box for f in hog.find(image) if f.box[0] <= cx <= f.box[0] + f.box[2] and f.box[1] <= cy <= f.box[1] + f.box[3]]
    if found:
        return found[0]
    if given is not None:
        return tuple(int(v) for v in given)
    side = float((true.max(0) - true.min(0)).max())
    return int(cx - side / 2), int(cy - side / 2), int(side), int(side)


def subsets(names: list[str]) -> dict[str, np.ndarray]:
    """Masks of 300-W's common (lfpw, helen) and challenging (ibug) subsets among ``names`` when laid out as 300-W is,
    and of the full set."""
    first = np.array([Path(n).parts[0].lower() if len(Path(n).parts) > 1 else "" for n in names])
    found = {name: np.isin(first, folders) for name, folders in SUBSETS_300W.items()}
    return {k: m for k, m in found.items() if m.any()} | {"full": np.ones(len(names), dtype=bool)}


E = TypeVar("E")


class PointErrors(TypedDict, Generic[E]):
    """Per image (a tensor or an array): MSE of the relative coordinates, mean point error in pixels and, for 68 and 58
    points, NME by the outer eye corners and by the pupils. In the order of the task's metric names."""

    mse: E
    px_err: E
    nme: NotRequired[E]
    nme_ip: NotRequired[E]


class DlibReference(TypedDict):
    """dlib's 68-point predictor on the same faces (summary.json's ``dlib_reference``)."""

    landmarker: str
    n: int
    nme: float


class SubsetScores(TypedDict):
    """One subset's row of the 300-W protocol (docs/json.md)."""

    n: int
    nme: float  # normalised by the outer eye corners
    nme_interpupil: float
    auc_008: float
    failure_rate_008: float
    baseline_nme: float | None  # the training set's mean shape
    dlib_nme: NotRequired[float]  # dlib's 68-point predictor on the same faces, where facelab[faces] is installed


def protocol(p: SplitPredictions, names: list[str], baseline: np.ndarray, reference: np.ndarray | None) -> dict[str, SubsetScores]:
    """The 300-W protocol per subset: NME by the outer eye corners and by the pupils, AUC and failure rate at NME 0.08,
    the mean-shape baseline's NME and (``reference``) dlib's on the same faces."""
    from ..report.keypoint_report import CED

    rows: dict[str, SubsetScores] = {}
    for subset, m in subsets(names).items():
        curve = CED.of(p.nme[m], 0.08)
        rows[subset] = SubsetScores(
            n=int(m.sum()),
            nme=float(p.nme[m].mean()),
            nme_interpupil=float(p.nme_ip[m].mean()),
            auc_008=curve.auc,
            failure_rate_008=curve.failure_rate,
            baseline_nme=float(baseline[m].mean()) if np.isfinite(baseline[m]).all() else None,
        )
        if reference is not None and np.isfinite(reference[m]).any():
            rows[subset]["dlib_nme"] = float(np.nanmean(reference[m]))
    return rows
