"""A run's settings (``TrainConfig``), saved as config.json: enough to reproduce the run. Each field's help text is
its ``--option``'s, so the commands declare none of them again."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from types import UnionType
from typing import NamedTuple, TypedDict, Union, get_args, get_origin, get_type_hints

from ..errors import FacelabError
from ..hardware import DEVICES, PRECISIONS
from ..ranges import DETECTOR_SCORE_BOUNDS, SEED_BOUNDS, SIZE_BOUNDS, Bounds, check_range, with_range
from .loggers import LOGGERS

FEW_VALID = 20
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
# What a run trains with where neither the user nor its task (``Task.defaults``) says otherwise.
GENERIC_DEFAULTS = {"arch": "darknet64", "epochs": 3, "batch": 128, "opt": "sgd", "schedule": "onecycle", "size": "64", "channels": 3}
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


class CliOption(NamedTuple):
    """One of TrainConfig's command-line options: the type typed, the default (a list's joined), help and range."""

    kind: object
    default: object
    help: str
    bounds: Bounds | None


def cli_options() -> dict[str, CliOption]:
    """TrainConfig's command-line options by field name."""
    hints = get_type_hints(TrainConfig)
    made = {}
    for f in fields(TrainConfig):
        if "help" in f.metadata:
            default = f.default if f.default is not MISSING else ",".join(f.default_factory())
            made[f.name] = CliOption(f.metadata.get("cli", hints[f.name]), default, f.metadata["help"], f.metadata.get("bounds"))
    return made


def _type_name(kind) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(kind, "a list of names")


class Batching(TypedDict):
    """What one optimiser step sees under DDP (config.json's ``batching``)."""

    world: int  # processes: devices x nodes
    batch_per_process: int
    effective_batch: int
    lr_rule: str


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as config.json and enough to reproduce it."""

    spec: str = "synth"
    out: str = "runs/train"
    task: str = option(
        "attr",
        "attr (yes/no attributes), identity (one of N persons), keypoints (landmarks) or rotation "
        "(head rotation in degrees, synthetic faces).",
    )
    attrs: list[str] = option(["Smiling"], "Attributes for --task attr, comma-separated.", cli=str)
    classes: int = option(20, "Identities for --task identity (top-N by image count).", bounds=(2, None))
    min_images: int = option(2, "Least images an identity needs to be chosen.", bounds=(1, None))
    # None here and below: the task's default (Task.defaults), else GENERIC_DEFAULTS
    arch: str | None = option(None, "Network (facelab models lists them). Default: darknet64.")
    epochs: int | None = option(
        None, "Passes over the training images. Default: the task's (keypoints: enough for --min-steps), else 3.", bounds=(1, 100000)
    )
    batch: int | None = option(None, "Images per step. Default: the task's, else 128.", bounds=(1, 65536))
    lr: float | None = option(None, "Default: the task's with its optimiser, else 0.05 for sgd, 1e-3 for adam/adamw.", bounds=(1e-12, None))
    opt: str | None = option(None, "sgd, adam or adamw. Default: the task's (keypoints, rotation: adam), else sgd.")
    momentum: float = option(0.9, "SGD momentum (Nesterov).", bounds=(0, 0.999))
    wd: float = option(5e-4, "Weight decay.", bounds=(0, 1))
    schedule: str | None = option(None, "onecycle, cosine or none. Default: the task's, else onecycle.")
    size: str | None = option(
        None, f"Input pixels (64) or WIDTHxHEIGHT (80x60), {SIZE_BOUNDS[0]} to {SIZE_BOUNDS[1]} a side. Default: the task's, else 64."
    )
    crop: str | None = option(
        None,
        "center, full, box, landmarks, detect (the detector's box, squared) or aligned (five points onto a template). "
        "Default: the task's (keypoints: landmarks), else per source (a folder of photos: detect with facelab[faces]).",
    )
    channels: int | None = option(None, "3 (RGB) or 1 (grey). Default: the task's, else 3.", bounds=(1, 3))
    seed: int = field(default=0, metadata={"bounds": SEED_BOUNDS})
    weights: str | None = option(
        None, "imagenet (from the local torch cache, downloaded there when missing), a state-dict FILE, none, or auto (the task's)."
    )
    balance: str | None = option(
        None,
        "none, undersample (every group of --groups cut to the smallest's size), reweight (every group weighs the same in the "
        "loss) or groupdro (the worst-off groups weigh most; Sagawa et al. 2020); an attribute name undersamples it, as before.",
    )
    groups: list[str] | None = option(
        None, "The groups --balance evens out: attributes, comma-separated (race: each of its values). Default: the first --attrs.", cli=str
    )
    inverted_fraction: float = option(0.0, "Fraction of training images shown upside down.", bounds=(0, 1))
    valid_share: float | None = option(
        None, "Pool the training and validation images and hold out this share for validation, seeded (0.1: a 90/10 split).", bounds=(0, 1)
    )  # None: the data source's own split
    augment: bool = option(True, "Flips, small shifts, brightness/contrast on whole batches.")
    flip: bool = True
    precision: str = "auto"
    device: str = "auto"
    devices: int = option(1, "Processes/GPUs per node (DDP when > 1).", bounds=(1, 1024))
    num_nodes: int = option(1, "Nodes (DDP).", bounds=(1, 100000))
    cache: str | None = option(None, "Use this cache folder instead of the default one.")
    max_train_batches: int | None = None
    points: str = option("all", "For --task keypoints: nose (the nose tip) or all (every landmark).")
    convs: int | None = option(None, "Conv layers of kpnet-small/kpnet-full (default 3 / 4).", bounds=(1, 6))
    head: str | None = option(
        None, "For --task keypoints: heatmap (per-point maps, soft-argmax; default for 68/58 points) or regress."
    )  # None: the task's default, recorded once resolved
    min_score: float | None = option(
        None, "--crop detect/aligned: drop detections scoring below this (default: dlib-hog 0.1).", bounds=DETECTOR_SCORE_BOUNDS
    )
    min_steps: int | None = option(
        None, "With --epochs left to the task: train at least this many optimiser steps (small sets).", bounds=(1, 10000000)
    )
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
    logger: str = option("csv", f"Experiment logger beside metrics.csv: {LOGGERS.choices()} (facelab[loggers]).")
    from_task: list[str] | None = None  # the settings the task chose because none was given (recorded in config.json)

    def __post_init__(self):
        self._check_types_and_bounds()
        self._take_task_defaults()
        if self.opt not in OPTIMIZERS:
            raise FacelabError(f"--opt {self.opt!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise FacelabError(f"--schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.robust_norm not in ("linf", "l2"):
            raise FacelabError(f"--robust-norm {self.robust_norm!r}: use linf or l2")
        if self.robust is not None and not (0 < self.robust < 1 or (self.robust_norm == "l2" and self.robust > 0)):
            raise FacelabError(f"--robust {self.robust}: give a budget above 0 in pixel units (e.g. l2 0.5; linf 0.03, under 1)")
        LOGGERS.check(self.logger)
        if self.precision not in PRECISIONS:
            raise FacelabError(f"--precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise FacelabError(f"--device {self.device!r}: use one of {', '.join(DEVICES)}")
        if self.valid_share is not None and not 0 < self.valid_share < 1:
            raise FacelabError(f"--valid-share {self.valid_share}: give a share between 0 and 1 (0.1 for a 90/10 split)")
        from ..models.registry import check_arch
        from .task_registry import task_class

        check_arch(self.arch)  # before any cache is built
        if self.balance in ("reweight", "groupdro") and not task_class(self.task).weighs_images:
            raise FacelabError(f"--balance {self.balance}: --task {self.task} has no per-image loss to weigh; use it with --task attr")
        if self.epochs < 1 or self.batch < 1:
            raise FacelabError("--epochs and --batch must be at least 1")
        if self.weights == "none":
            self.weights = None
        self.size = str(self.size)
        from ..data.cache import parse_size

        parse_size(self.size)  # within range on each side, before any cache is built

    def _check_types_and_bounds(self) -> None:
        """Each option of the wrong type (``epochs = "lots"`` in a --config file, a string from a notebook) or out of
        its bounds is one line naming the option, the value and what it takes, before anything is written."""
        hints = get_type_hints(TrainConfig)
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            flag = f"--{f.name.replace('_', '-')}"
            hint = hints[f.name]
            union = get_origin(hint) in (Union, UnionType)
            expected = next(k for k in get_args(hint) if k is not type(None)) if union else hint
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, value := float(value))
            if f.name == "size" and isinstance(value, int) and not isinstance(value, bool):
                continue  # 64 or "64" or "80x60"
            origin = get_origin(expected) or expected
            if not isinstance(value, origin) or (origin in (int, float) and isinstance(value, bool)):
                raise FacelabError(f"{flag} {value!r}: expected {_type_name(expected)}")
            check_range(flag, value, f.metadata.get("bounds"))

    def balancing(self) -> tuple[str, list[str]]:
        """(mode, grouping attributes) of --balance and --groups; an attribute given as --balance (as before groups
        had modes) undersamples that attribute."""
        if self.balance in (None, "none"):
            return "none", []
        if self.balance in ("undersample", "reweight", "groupdro"):
            return self.balance, list(self.groups or self.attrs[:1])
        return "undersample", [self.balance]

    @classmethod
    def saved(cls, train: dict) -> "TrainConfig":
        """A run's TrainConfig from config.json's "train" block. Runs saved before tasks had defaults took none: their
        unset settings (a crop left to the data source) keep the meaning they had."""
        return cls(**{"from_task": [], **train})

    def _take_task_defaults(self) -> None:
        """Fill what the user left unset from the task's defaults (listed in ``from_task``), then the generic ones. A
        task's learning rate goes with its optimiser: given another --opt, the lr is that optimiser's default."""
        if self.from_task is not None:  # resolved before (a config.json read back)
            return
        from .task_registry import task_class

        own = task_class(self.task).defaults
        self.from_task = []
        for name in (*GENERIC_DEFAULTS, "crop", "weights", "min_steps"):
            if getattr(self, name) is None and name in own:
                setattr(self, name, own[name])
                self.from_task.append(name)
            elif getattr(self, name) is None:
                setattr(self, name, GENERIC_DEFAULTS.get(name))
        if self.lr is None and "lr" in own and "opt" in self.from_task:
            self.lr = own["lr"]
            self.from_task.append("lr")
        if self.lr is None:
            self.lr = DEFAULT_LR.get(self.opt)

    def batching(self) -> Batching:
        """What one optimiser step sees under DDP: each of the ``devices x num_nodes`` processes takes ``batch``
        images, so the effective batch is their product; the learning rate is used as given, not scaled with it."""
        world = self.devices * self.num_nodes
        return Batching(
            world=world,
            batch_per_process=self.batch,
            effective_batch=self.batch * world,
            lr_rule="as given: --lr is not scaled with the effective batch (scale it yourself, e.g. linearly, when adding processes)",
        )

    def settings(self) -> dict:
        """The options that apply to this run (a report's settings table): other tasks' options, momentum
        without SGD and unset options are left out."""
        from .task_registry import TASKS

        others = {o for e in TASKS.entries() for o in e.item.options} - set(TASKS.get(self.task).options if self.task in TASKS else ())
        if self.opt != "sgd":
            others.add("momentum")
        if self.robust is None:
            others |= {"robust_norm", "robust_steps"}
        return {k: v for k, v in asdict(self).items() if k not in others and v is not None}
