"""The parts of a task that callers use separately (issue 36): what a training step computes, how a run is
evaluated and summarised, how its outputs read, and how it is reported. :class:`facelab.training.tasks.Task` is all
four, with the task's name and data selection; each task (one module) overrides what it needs of each part, and a
caller takes the part it uses."""

from __future__ import annotations

from typing import ClassVar, TypedDict

import numpy as np
import torch

from ..data.faceset import FaceSet
from ..errors import FacelabError
from ..results import TrainSummary
from .batches import augment
from .sections import OptimSettings


class Augmentation(TypedDict):
    """The whole-batch augmentation's settings: :func:`~facelab.training.batches.augment`'s keywords."""

    flip: bool
    shift: float
    jitter: float


CAPABILITY_WORDS = {"labels": "a classification run", "binary": "an attribute run", "points": "a keypoint run"}


class TrainingStep:
    """What a training step computes: the targets, the loss (per image too, for group weighting), the metrics
    summed over batches, the augmentation, and where an untrained network starts. The Lightning module and the metric
    sums (:class:`~facelab.training.tasks.MetricSums`) use this part."""

    name: ClassVar[str]  # the task's (Task)
    weighs_images: ClassVar[bool] = False  # has a per-image loss (item_loss) that --balance reweight/groupdro weigh
    accuracy: ClassVar[bool] = True  # metrics are accuracies: their mean is reported as "acc"

    def targets(self, fs: FaceSet, cache=None, rows: np.ndarray | None = None) -> torch.Tensor:
        """Targets of the selected items (``cache`` and its ``rows`` for tasks whose labels live there)."""
        raise NotImplementedError

    def start_model(self, model: torch.nn.Module, train_targets: torch.Tensor) -> None:
        """Set an untrained network to where training should start from (keypoints: the mean shape); nothing by default."""

    def batch_augmentation(self, optim: OptimSettings) -> Augmentation | None:
        """The whole-batch augmentation's settings (labels unchanged), which the loop applies to the cache's bytes
        (:func:`~facelab.training.batches.augmented_input`); None for a task whose :meth:`augment` moves labels too."""
        return Augmentation(flip=optim.flip, shift=0.06, jitter=0.15)

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, optim: OptimSettings):
        """:meth:`batch_augmentation` on a normalised batch (one-channel networks); labels unchanged."""
        settings = self.batch_augmentation(optim)
        if settings is None:
            raise NotImplementedError(f"{self.name}: a task whose augmentation moves the labels overrides augment")
        return augment(x, gen, **settings), y

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each image's loss (B,), for losses that weigh images by group (--balance reweight / groupdro)."""
        raise FacelabError(f"--task {self.name}: --balance reweight and groupdro weigh images of attribute tasks only")

    def auxiliary_loss(self, model: torch.nn.Module, y: torch.Tensor) -> torch.Tensor | float:
        """A training-only term beside :meth:`loss` that needs more than the outputs (keypoint heatmaps)."""
        return 0.0

    def metric_sums(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-metric sums over the batch (shape: n_metrics); divided by the item count at the end."""
        raise NotImplementedError

    def metric_names(self) -> list[str]:
        return ["acc"]

    def finish(self, per: dict[str, float]) -> dict[str, float]:
        """Per-metric means, plus their mean as "acc" for accuracy tasks."""
        return per | {"acc": sum(per.values()) / len(per)} if self.accuracy else per


class RunSummary:
    """How a run is evaluated and summarised: which metric picks the best checkpoint, the summary's blocks and the
    task's own fields, and what ``facelab eval`` adds. The engine's summary and ``facelab eval`` use this part."""

    name: ClassVar[str]  # the task's (Task)
    monitor: ClassVar[tuple[str, str]] = ("val_acc", "max")  # what picks the best checkpoint (and a sweep's best)
    accuracy: ClassVar[bool]  # the task's (TrainingStep)

    def summary_block(self, row: dict) -> dict:
        """The summary's "final" / "best" fields from one validation row of metrics.csv."""
        return {"val_loss": row["loss"], "val_acc": row["acc"]}

    def summary_fields(self) -> dict:
        """Fields a run's summary.json carries besides final/best (a task's own settings)."""
        return {}

    def validation_outputs(self, module, data):
        """What the summary and the report need of the trained network beyond metrics.csv (None: nothing)."""
        return None

    def summary_extra(self, data, outputs=None) -> dict:
        """Fields that need the prepared data (e.g. a baseline on the validation split) or ``validation_outputs``."""
        return {}

    def eval_fields(self, per: dict[str, float]) -> dict:
        """What ``facelab eval`` reports besides n and loss."""
        return {"acc": per["acc"]} if self.accuracy else per

    def eval_extra(self, data, split: str, model: torch.nn.Module, channels: int) -> dict:
        """Fields ``facelab eval`` adds that need the data itself (e.g. a reference method on the same faces)."""
        return {}


class OutputReader:
    """How the network's outputs read: their names and number, probabilities, predicted labels, the output a probe
    explains, and what kind of run this is (``labels``, ``binary``, ``points``). The probes and the web page use this part."""

    name: ClassVar[str]  # the task's (Task)
    labels: ClassVar[bool] = True
    binary: ClassVar[bool] = False
    points: ClassVar[bool] = False

    @property
    def n_outputs(self) -> int:
        raise NotImplementedError

    def output_names(self) -> list[str]:
        return [str(k) for k in range(self.n_outputs)]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs) probabilities: sigmoid per output for binary tasks, softmax otherwise."""
        return torch.sigmoid(logits.float()) if self.binary else torch.softmax(logits.float(), -1)

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The network's outputs for evaluation (keypoints add the flip test)."""
        return model(x).float()

    def predicted(self, logits: torch.Tensor, output: int | None) -> np.ndarray:
        """Predicted label per image: 0/1 of ``output`` (binary), else the class."""
        return (logits[:, output] > 0).long().numpy() if self.binary else logits.argmax(1).numpy()

    def explained_output(self, target: str | None) -> int | None:
        """The output a probe explains: a named attribute or class (or a class number); by default the first
        output of a binary task, or None (the predicted class) for one-of-N tasks."""
        names = self.output_names()
        if target is None:
            return 0 if self.binary else None
        if target in names:
            return names.index(target)
        if not self.binary and target.isdigit() and int(target) < len(names):
            return int(target)
        raise FacelabError(f"--target {target!r}: the run predicts {', '.join(names[:20])}")

    def require(self, capability: str, command: str, run) -> None:
        """Stop with one line when ``command`` needs a kind of run this task is not (``labels``, ``binary``, ``points``)."""
        if not getattr(self, capability):
            raise FacelabError(f"{run}: {command} needs {CAPABILITY_WORDS[capability]} (this one was trained for {self.name})")


class RunReport:
    """How a run is reported: the curves drawn, the samples' captions, and the run report itself."""

    curve_metrics: ClassVar[tuple[str, ...]] = ("loss", "acc")
    caption_about: ClassVar[str] = "probability / true label (attr) or predicted / true identity; green correct, red wrong"

    def caption(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[str, bool]:
        """One validation image's prediction against its label, and whether it is right (the run report's samples)."""
        pred = int(logits.argmax())
        return f"pred {pred} / true {int(y)}", pred == int(y)

    def write_report(self, run, cfg, module, data, summary: TrainSummary, outputs=None) -> None:
        from ..report.run_report import write_run_report

        write_run_report(run, cfg, module, data, summary)
