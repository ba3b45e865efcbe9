"""What a network is trained to predict: targets from the data, the loss, and the metrics.

A task is a small plug-in: ``targets`` picks labels for the selected rows, ``loss`` and
``update``/``compute`` define training and evaluation. Keypoints add their own class.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.faceset import FaceSet
from ..data.select import identity_split, top_identities
from .batches import augment


@dataclass
class Task:
    name: str = ""
    n_outputs: int = 0

    monitor = ("val_acc", "max")  # what picks the best checkpoint
    accuracy = True  # metrics are accuracies: their mean is reported as "acc"

    def select(self, fs: FaceSet, seed: int) -> FaceSet:
        return fs

    def targets(self, fs: FaceSet, cache=None, rows: np.ndarray | None = None) -> torch.Tensor:
        """Targets of the selected items (``cache`` and its ``rows`` for tasks whose labels live there)."""
        raise NotImplementedError

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, cfg: dict):
        """Whole-batch flips, shifts and brightness/contrast; labels unchanged."""
        return augment(x, gen, flip=cfg["flip"], shift=0.06, jitter=0.15), y

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-output count of correct predictions in the batch (shape: n_metrics)."""
        raise NotImplementedError

    def metric_names(self) -> list[str]:
        return ["acc"]

    def describe(self) -> dict:
        return {"task": self.name}


@dataclass
class AttrTask(Task):
    attrs: list[str] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)

    def select(self, fs, seed):
        self.columns = fs.attr_index(self.attrs)
        self.name, self.n_outputs = "attr", len(self.attrs)
        return fs

    def targets(self, fs, cache=None, rows=None):
        return torch.from_numpy(fs.attributes[:, self.columns].astype(np.float32))

    def loss(self, logits, y):
        return F.binary_cross_entropy_with_logits(logits.float(), y)

    def correct(self, logits, y):
        return ((logits > 0).float() == y).float().sum(0)

    def metric_names(self):
        return [f"acc_{a}" for a in self.attrs]

    def describe(self):
        return {"task": "attr", "attrs": self.attrs}


@dataclass
class IdentityTask(Task):
    classes: int = 20
    min_images: int = 2
    class_names: list[str] = field(default_factory=list)

    def select(self, fs, seed):
        sel = top_identities(fs, self.classes, self.min_images)
        train_ids = set(sel.identities[sel.split == 0].tolist())
        if not set(sel.identities[sel.split == 1].tolist()) <= train_ids or not (sel.split == 1).any():
            sel = identity_split(sel, 0.2, seed)  # the official split keeps persons apart
        self.name, self.n_outputs, self.class_names = "identity", self.classes, list(sel.classes or [])
        return sel

    def targets(self, fs, cache=None, rows=None):
        return torch.from_numpy(fs.identities.astype(np.int64))

    def loss(self, logits, y):
        return F.cross_entropy(logits.float(), y)

    def correct(self, logits, y):
        return (logits.argmax(1) == y).float().sum(0, keepdim=True)

    def describe(self):
        return {"task": "identity", "classes": self.classes, "min_images": self.min_images}
