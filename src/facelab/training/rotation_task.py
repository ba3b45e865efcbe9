"""Regression of the head's in-plane rotation (degrees), which the synthetic faces know exactly.

The example of a new task: this file plus its line in :mod:`facelab.training.task_registry`.
Flips are left out of the augmentation, because a mirrored face turns the other way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FacelabError
from .tasks import Task

DEGREES = 10.0  # targets are degrees / DEGREES, so they lie in about [-1, 1]


@dataclass
class RotationTask(Task):
    name: ClassVar[str] = "rotation"
    about: ClassVar[str] = "in-plane head rotation in degrees (synthetic faces)"
    monitor: ClassVar[tuple[str, str]] = ("val_loss", "min")
    accuracy: ClassVar[bool] = False
    labels: ClassVar[bool] = False
    curve_metrics: ClassVar[tuple[str, ...]] = ("loss", "mae_deg")
    caption_about: ClassVar[str] = "predicted / true rotation in degrees; green within 3 degrees"
    # With the generic SGD 0.05 it did not learn (MAE 4.92 deg against 4.93 for the mean; Adam: 1.35; synth:2000, 64 px, 5 epochs)
    defaults: ClassVar[dict] = {"opt": "adam", "lr": 1e-3, "epochs": 5}

    @property
    def n_outputs(self) -> int:
        return 1

    def select(self, fs, seed):
        if not hasattr(fs, "parts"):
            raise FacelabError(f"{fs.spec}: --task rotation needs faces whose rotation is known exactly: synth:N")
        return fs

    def targets(self, fs, cache=None, rows=None):
        angles = np.array([fs.parts(i)[1].angle for i in range(len(fs))], dtype=np.float32)
        return torch.from_numpy(angles / DEGREES)[:, None]

    def batch_augmentation(self, cfg):
        return {"flip": False, "shift": 0.06, "jitter": 0.15}  # no flips: see the module's docstring

    def loss(self, out, y):
        """Huber: bounded gradients, so the default SGD step does not blow up on the first, far-off outputs."""
        return F.smooth_l1_loss(out.float(), y, beta=0.1)

    def metric_sums(self, out, y):
        return (out.float() - y).abs().sum(0) * DEGREES

    def metric_names(self):
        return ["mae_deg"]

    def summary_block(self, row):
        return {"val_loss": row["loss"], "val_mae_deg": row["mae_deg"]}

    def summary_extra(self, data, outputs=None):
        """The error of always answering the training mean: what a network that learned nothing scores."""
        mean = data.targets[data.split_positions("train")].mean()
        valid = data.targets[data.split_positions("valid")]
        return {"baseline_mean": {"val_mae_deg": float((valid - mean).abs().mean()) * DEGREES}}

    def output_names(self):
        return ["rotation"]

    def caption(self, out, y):
        pred, true = float(out[0]) * DEGREES, float(y[0]) * DEGREES
        return f"{pred:+.1f} / {true:+.1f} deg", abs(pred - true) < 3.0
