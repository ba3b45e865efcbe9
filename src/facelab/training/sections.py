"""The sections of a run's settings (:class:`~facelab.training.config.TrainConfig`): what the network is shown
(``DataSettings``), the network (``ModelSettings``), how it is trained (``OptimSettings``) and where
(``RuntimeSettings``). Each part of a training takes the section it uses. Each field's help text is its ``--option``'s,
so the commands declare none of them again; its name is the option's, and its key in config.json's "train" block."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import FacelabError
from ..hardware import DEVICES, PRECISIONS
from ..ranges import DETECTOR_SCORE_BOUNDS, SIZE_BOUNDS, Bounds, with_range
from .loggers import LOGGERS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "none")


def option(default, about: str, cli: type | None = None, bounds: Bounds | None = None):
    """A field that is also a command-line option: ``about`` is its --help, ``cli`` the type typed there (a list is
    typed as one comma-separated string), ``bounds`` the (lowest, highest or None) values it takes, checked wherever
    a config is made (the command line, --config, the API) and shown in the help."""
    about = with_range(about, bounds)
    meta = {"help": about, **({"cli": cli} if cli else {}), **({"bounds": bounds} if bounds else {})}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataSettings:
    """What the network is shown: the images (their source, framing and size), their labels, the split and the groups
    --balance evens out."""

    spec: str = "synth"
    attrs: list[str] = option(["Smiling"], "Attributes for --task attr, comma-separated.", cli=str)
    classes: int = option(20, "Identities for --task identity (top-N by image count).", bounds=(2, None))
    min_images: int = option(2, "Least images an identity needs to be chosen.", bounds=(1, None))
    points: str = option("all", "For --task keypoints: nose (the nose tip) or all (every landmark).")
    # None here and below: the task's default (Task.defaults), else GENERIC_DEFAULTS
    size: str | None = option(
        None, f"Input pixels (64) or WIDTHxHEIGHT (80x60), {SIZE_BOUNDS[0]} to {SIZE_BOUNDS[1]} a side. Default: the task's, else 64."
    )
    crop: str | None = option(
        None,
        "center, full, box, landmarks, detect (the detector's box, squared) or aligned (five points onto a template). "
        "Default: the task's (keypoints: landmarks), else per source (a folder of photos: detect with facelab[faces]).",
    )
    channels: int | None = option(None, "3 (RGB) or 1 (grey). Default: the task's, else 3.", bounds=(1, 3))
    min_score: float | None = option(
        None, "--crop detect/aligned: drop detections scoring below this (default: dlib-hog 0.1).", bounds=DETECTOR_SCORE_BOUNDS
    )
    cache: str | None = option(None, "Use this cache folder instead of the default one.")
    valid_share: float | None = option(
        None, "Pool the training and validation images and hold out this share for validation, seeded (0.1: a 90/10 split).", bounds=(0, 1)
    )  # None: the data source's own split
    balance: str | None = option(
        None,
        "none, undersample (every group of --groups cut to the smallest's size), reweight (every group weighs the same in the "
        "loss) or groupdro (the worst-off groups weigh most; Sagawa et al. 2020); an attribute name undersamples it, as before.",
    )
    groups: list[str] | None = option(
        None, "The groups --balance evens out: attributes, comma-separated (race: each of its values). Default: the first --attrs.", cli=str
    )

    def check(self) -> None:
        if self.valid_share is not None and not 0 < self.valid_share < 1:
            raise FacelabError(f"--valid-share {self.valid_share}: give a share between 0 and 1 (0.1 for a 90/10 split)")
        self.size = str(self.size)
        from ..data.cache import parse_size

        parse_size(self.size)  # within range on each side, before any cache is built

    def balancing(self) -> tuple[str, list[str]]:
        """(mode, grouping attributes) of --balance and --groups; an attribute given as --balance (as before groups
        had modes) undersamples that attribute."""
        if self.balance in (None, "none"):
            return "none", []
        if self.balance in ("undersample", "reweight", "groupdro"):
            return self.balance, list(self.groups or self.attrs[:1])
        return "undersample", [self.balance]


@dataclass
class ModelSettings:
    """The network and where its weights start."""

    arch: str | None = option(None, "Network (facelab models lists them). Default: darknet64.")
    weights: str | None = option(
        None, "imagenet (from the local torch cache, downloaded there when missing), a state-dict FILE, none, or auto (the task's)."
    )
    convs: int | None = option(None, "Conv layers of kpnet-small/kpnet-full (default 3 / 4).", bounds=(1, 6))
    head: str | None = option(
        None, "For --task keypoints: heatmap (per-point maps, soft-argmax; default for 68/58 points) or regress."
    )  # None: the task's default, recorded once resolved

    def check(self) -> None:
        from ..models.registry import check_arch

        assert self.arch is not None  # resolved before the check (a task's or GENERIC_DEFAULTS)
        check_arch(self.arch)  # before any cache is built
        if self.weights == "none":
            self.weights = None


@dataclass
class OptimSettings:
    """How the weights are moved: passes, batches, the optimiser and its schedule, augmentation and adversarial
    training."""

    epochs: int | None = option(
        None, "Passes over the training images. Default: the task's (keypoints: enough for --min-steps), else 3.", bounds=(1, 100000)
    )
    batch: int | None = option(None, "Images per step. Default: the task's, else 128.", bounds=(1, 65536))
    lr: float | None = option(None, "Default: the task's with its optimiser, else 0.05 for sgd, 1e-3 for adam/adamw.", bounds=(1e-12, None))
    opt: str | None = option(None, "sgd, adam or adamw. Default: the task's (keypoints, rotation: adam), else sgd.")
    momentum: float = option(0.9, "SGD momentum (Nesterov).", bounds=(0, 0.999))
    wd: float = option(5e-4, "Weight decay.", bounds=(0, 1))
    schedule: str | None = option(None, "onecycle, cosine or none. Default: the task's, else onecycle.")
    min_steps: int | None = option(
        None, "With --epochs left to the task: train at least this many optimiser steps (small sets).", bounds=(1, 10000000)
    )
    max_train_batches: int | None = None
    augment: bool = option(True, "Flips, small shifts, brightness/contrast on whole batches.")
    flip: bool = True
    inverted_fraction: float = option(0.0, "Fraction of training images shown upside down.", bounds=(0, 1))
    robust: float | None = option(
        None,
        "Adversarial training: each batch moved within this budget (pixel units; e.g. l2 0.5, linf 0.03) toward a higher loss.",
        bounds=(1e-6, None),
    )
    robust_norm: str = option("l2", "--robust's budget: l2 (per image) or linf (per value).")
    robust_steps: int = option(
        1,
        "--robust's attack: 1 step of 1.25 x budget (fast adversarial training), or this many PGD steps of 2.5 x budget / steps.",
        bounds=(1, 1000),
    )

    def check(self) -> None:
        if self.opt not in OPTIMIZERS:
            raise FacelabError(f"--opt {self.opt!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise FacelabError(f"--schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.robust_norm not in ("linf", "l2"):
            raise FacelabError(f"--robust-norm {self.robust_norm!r}: use linf or l2")
        if self.robust is not None and not (0 < self.robust < 1 or (self.robust_norm == "l2" and self.robust > 0)):
            raise FacelabError(f"--robust {self.robust}: give a budget above 0 in pixel units (e.g. l2 0.5; linf 0.03, under 1)")


@dataclass
class RuntimeSettings:
    """Where the run trains as asked (``auto`` kept as asked; :class:`facelab.hardware.Runtime` is what this machine
    resolves it to), across how many processes, and what logs it."""

    precision: str = "auto"
    device: str = "auto"
    devices: int = option(1, "Processes/GPUs per node (DDP when > 1).", bounds=(1, 1024))
    num_nodes: int = option(1, "Nodes (DDP).", bounds=(1, 100000))
    logger: str = option("csv", f"Experiment logger beside metrics.csv: {LOGGERS.choices()} (facelab[loggers]).")

    def check(self) -> None:
        LOGGERS.check(self.logger)
        if self.precision not in PRECISIONS:
            raise FacelabError(f"--precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise FacelabError(f"--device {self.device!r}: use one of {', '.join(DEVICES)}")

    @property
    def world(self) -> int:
        """Processes in all: devices x nodes."""
        return self.devices * self.num_nodes


Section = DataSettings | ModelSettings | OptimSettings | RuntimeSettings
SECTIONS: dict[str, type[Section]] = {"data": DataSettings, "model": ModelSettings, "optim": OptimSettings, "runtime": RuntimeSettings}
# Each section field's section, by the field's name (which is also its --option and its key in config.json's "train")
SECTION_OF = {f.name: name for name, kind in SECTIONS.items() for f in fields(kind)}
