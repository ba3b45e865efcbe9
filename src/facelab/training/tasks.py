"""What a network is trained to predict, and everything that follows from it.

A task is a small plug-in: it picks its rows and targets from the data, defines the loss and the
metrics (one accumulator, :class:`MetricSums`, shared by training and ``eval``), names its outputs,
turns outputs into probabilities and labels, writes its summary fields and captions, and says what
it can be asked for (``labels``: a probe can explain a label; ``binary``: one yes/no per output;
``points``: landmark coordinates). Those four parts - what a training step computes, how a run is
summarised, how outputs read, how a run is reported - are separate classes (:mod:`.task_parts`) that
callers take one at a time. Nothing outside the task classes tests a task's name.
A new task is one module with its Task subclass plus one line in :mod:`facelab.training.task_registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..data.faceset import FaceSet
from ..data.select import identity_split, top_identities
from ..errors import FacelabError
from .batches import split_outputs
from .task_parts import OutputReader, RunReport, RunSummary, TrainingStep


@dataclass
class Task(TrainingStep, RunSummary, OutputReader, RunReport):
    """A task: its name, its options and defaults, the items it trains on, and (from its parts) the rest."""

    name: ClassVar[str] = ""
    about: ClassVar[str] = ""  # a few words for --task's help
    options: ClassVar[tuple[str, ...]] = ()  # TrainConfig fields that belong to this task
    # TrainConfig settings this task trains with when the user gives none (the rest: engine.GENERIC_DEFAULTS);
    # config.json lists the ones taken from here under "from_task".
    defaults: ClassVar[dict] = {}

    @classmethod
    def from_config(cls, cfg) -> "Task":
        """The task a TrainConfig describes (its own options only)."""
        return cls()

    def resolve_head(self, requested: str | None) -> str:
        """The network head this task trains (``--head``); only keypoints have a choice."""
        if requested not in (None, "regress"):
            raise FacelabError(f"--head {requested}: only --task keypoints has a heatmap head")
        return "regress"

    def select(self, fs: FaceSet, seed: int) -> FaceSet:
        """The items this task trains on; remembers what the outputs mean (attribute columns, class names)."""
        return fs

    def describe(self) -> dict:
        """What config.json keeps of the task, enough for :meth:`restore` to rebuild it without the data."""
        return {"task": self.name}

    def restore(self, description: dict) -> None:
        """State saved by :meth:`describe` (a trained run reopened)."""


class MetricSums:
    """Loss and per-metric sums over batches, as one float64 tensor that DDP ranks can add up.

    Layout: [loss x n, n, metric sums...]; the same for training, validation and ``facelab eval``."""

    def __init__(self, task: TrainingStep):
        self.task = task
        self.values = torch.zeros(len(task.metric_names()) + 2, dtype=torch.float64)

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """Adds on the batch's device without reading anything back: no host synchronisation per step on a GPU."""
        if self.values.device != loss.device:
            self.values = self.values.to(loss.device)
        b = y.shape[0]
        self.values[0] += loss.detach().double() * b
        self.values[1] += b
        self.values[2:] += self.task.metric_sums(out.detach(), y).double()

    def per_metric(self, values: torch.Tensor | None = None) -> dict[str, float]:
        values = self.values if values is None else values
        n = max(float(values[1]), 1.0)
        return {name: float(c) / n for name, c in zip(self.task.metric_names(), values[2:])}

    def result(self, values: torch.Tensor | None = None) -> dict[str, float]:
        """{"loss", "n", each metric, and "acc" for accuracy tasks} from ``values`` (default: these sums)."""
        values = self.values if values is None else values
        n = max(float(values[1]), 1.0)
        return {"loss": float(values[0]) / n, "n": int(values[1])} | self.task.finish(self.per_metric(values))


@dataclass
class AttrTask(Task):
    name: ClassVar[str] = "attr"
    about: ClassVar[str] = "attributes (yes/no each)"
    options: ClassVar[tuple[str, ...]] = ("attrs", "balance", "groups")
    weighs_images: ClassVar[bool] = True
    binary: ClassVar[bool] = True
    attrs: list[str] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg):
        if not cfg.data.attrs:
            raise FacelabError("--task attr needs --attrs, e.g. --attrs Male,Young")
        return cls(attrs=list(cfg.data.attrs))

    @property
    def n_outputs(self):
        return len(self.attrs)

    def select(self, fs, seed):
        self.columns = fs.attr_index(self.attrs)
        return fs

    def describe(self):
        return {"task": "attr", "attrs": self.attrs}

    def targets(self, fs, cache=None, rows=None):
        return torch.from_numpy(fs.attributes[:, self.columns].astype(np.float32))

    def loss(self, logits, y):
        return F.binary_cross_entropy_with_logits(logits.float(), y)

    def item_loss(self, logits, y):
        return F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none").mean(1)

    def metric_sums(self, logits, y):
        return ((logits > 0).float() == y).float().sum(0)

    def metric_names(self):
        return [f"acc_{a}" for a in self.attrs]

    def summary_block(self, row):
        return super().summary_block(row) | {"val_acc_per_attr": {a: row[f"acc_{a}"] for a in self.attrs}}

    def eval_fields(self, per):
        return super().eval_fields(per) | {"acc_per_attr": {a: per[f"acc_{a}"] for a in self.attrs}}

    def validation_outputs(self, module, data):
        return split_outputs(module.model.float(), data, "valid", module.cfg.data.channels)

    def summary_extra(self, data, outputs=None):
        """What always answering each attribute's majority value scores on the validation split (the chance level) and,
        with the final network's ``outputs``, each attribute's balanced accuracy and ROC AUC beside it."""
        y = data.targets[data.split_positions("valid")].float().mean(0)
        extra = {"chance": {a: round(float(max(p, 1 - p)), 6) for a, p in zip(self.attrs, y.tolist())}}
        if outputs is not None:
            logits, truth = outputs
            extra["final"] = {
                "val_balanced_acc_per_attr": {a: balanced_accuracy(truth[:, j], logits[:, j] > 0) for j, a in enumerate(self.attrs)},
                "val_auc_per_attr": {a: roc_auc(truth[:, j], logits[:, j]) for j, a in enumerate(self.attrs)},
            }
        return extra

    def output_names(self):
        return list(self.attrs)

    def caption(self, logits, y):
        p = torch.sigmoid(logits.float()).numpy()
        shown = range(min(4, len(self.attrs)))
        parts = [f"{self.attrs[j][:10]} {p[j]:.2f}/{int(y[j])}" for j in shown]
        return "\n".join(parts), all((p[j] > 0.5) == (y[j] > 0.5) for j in shown)


def balanced_accuracy(truth: torch.Tensor, said: torch.Tensor) -> float | None:
    """The mean of the recall of each class present (None without images): 0.5 for a constant answer."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(truth.numpy().astype(int), said.numpy().astype(int))) if len(truth) else None


def roc_auc(truth: torch.Tensor, score: torch.Tensor) -> float | None:
    """ROC AUC of ``score`` for the binary ``truth`` (None where only one class is present: it is undefined)."""
    from sklearn.metrics import roc_auc_score

    labels = truth.numpy().astype(int)
    return float(roc_auc_score(labels, score.float().numpy())) if len(set(labels.tolist())) == 2 else None


@dataclass
class IdentityTask(Task):
    name: ClassVar[str] = "identity"
    about: ClassVar[str] = "one of N persons"
    options: ClassVar[tuple[str, ...]] = ("classes", "min_images")
    classes: int = 20
    min_images: int = 2
    class_names: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg):
        return cls(classes=cfg.data.classes, min_images=cfg.data.min_images)

    @property
    def n_outputs(self):
        return self.classes

    def select(self, fs, seed):
        sel = top_identities(fs, self.classes, self.min_images)
        train_ids = set(sel.identities[sel.split == 0].tolist())
        if not set(sel.identities[sel.split == 1].tolist()) <= train_ids or not (sel.split == 1).any():
            sel = identity_split(sel, 0.2, seed)  # the official split keeps persons apart
        self.class_names = [str(c) for c in sel.classes or []]
        return sel

    def describe(self):
        return {"task": "identity", "classes": self.classes, "min_images": self.min_images, "class_names": self.class_names}

    def restore(self, description):
        self.class_names = [str(c) for c in description.get("class_names") or []]

    def targets(self, fs, cache=None, rows=None):
        return torch.from_numpy(fs.identities.astype(np.int64))

    def loss(self, logits, y):
        return F.cross_entropy(logits.float(), y)

    def metric_sums(self, logits, y):
        return (logits.argmax(1) == y).float().sum(0, keepdim=True)

    def output_names(self):
        return self.class_names or super().output_names()

    def summary_extra(self, data, outputs=None):
        """What always answering the most frequent person scores on the validation split: the chance level."""
        counts = torch.bincount(data.targets[data.split_positions("valid")].long().cpu(), minlength=self.classes)
        return {"chance": {"acc": round(float(counts.max()) / max(1, int(counts.sum())), 6)}}
