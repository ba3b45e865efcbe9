"""``facelab.train``: data -> cache -> model -> Lightning -> one self-describing run folder."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..data.cache import FaceCache, build_cache, cache_request, parse_size
from ..data.face_crops import FaceFinder
from ..data.faceset import SPLITS, FaceSet
from ..data.images import SkippedImages
from ..data.select import balanced
from ..data.spec import open_spec
from ..errors import FacelabError, RunStopped
from ..files import prepare_output, write_csv, write_json
from ..hardware import DEVICES, PRECISIONS, Runtime, requested_device, requested_precision, runtime
from ..models import build_model
from ..models.registry import check_arch, weights_if_available
from ..progress import say
from .batches import CachedItems, gather_images, loader
from .signals import StopAtBatchEnd, StopFlag, StopRequested, stop_requests
from .task_registry import TASKS, task_class, task_for
from .tasks import Task

FEW_VALID = 20
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
# What a run trains with where neither the user nor its task (``Task.defaults``) says otherwise.
GENERIC_DEFAULTS = {"arch": "darknet64", "epochs": 3, "batch": 128, "opt": "sgd", "schedule": "onecycle", "size": "64", "channels": 3}
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "none")


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as config.json and enough to reproduce it."""

    spec: str = "synth"
    out: str = "runs/train"
    task: str = "attr"
    attrs: list[str] = field(default_factory=lambda: ["Smiling"])
    classes: int = 20
    min_images: int = 2
    arch: str | None = None  # None here and below: the task's default (Task.defaults), else GENERIC_DEFAULTS
    epochs: int | None = None
    batch: int | None = None
    lr: float | None = None
    opt: str | None = None
    momentum: float = 0.9
    wd: float = 5e-4
    schedule: str | None = None
    size: str | None = None
    crop: str | None = None
    channels: int | None = None
    seed: int = 0
    weights: str | None = None
    balance: str | None = None
    inverted_fraction: float = 0.0
    augment: bool = True
    flip: bool = True
    precision: str = field(default_factory=requested_precision)  # "auto" unless facelab.use_hardware said otherwise
    device: str = field(default_factory=requested_device)
    devices: int = 1
    num_nodes: int = 1
    cache: str | None = None
    max_train_batches: int | None = None
    points: str = "all"
    convs: int | None = None
    head: str | None = None  # keypoints: regress or heatmap (None: the task's default, recorded once resolved)
    min_score: float | None = None  # --crop detect / aligned: the detector's minimum score (None: its calibrated default)
    min_steps: int | None = None  # with epochs left to the task: at least this many optimiser steps (small sets)
    from_task: list[str] | None = None  # the settings the task chose because none was given (recorded in config.json)

    def __post_init__(self):
        self._take_task_defaults()
        if self.opt not in OPTIMIZERS:
            raise FacelabError(f"--opt {self.opt!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise FacelabError(f"--schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise FacelabError(f"--precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise FacelabError(f"--device {self.device!r}: use one of {', '.join(DEVICES)}")
        if not 0.0 <= self.inverted_fraction <= 1.0:
            raise FacelabError(f"--inverted-fraction {self.inverted_fraction}: must be between 0 and 1")
        check_arch(self.arch)  # before any cache is built
        task_class(self.task)
        if self.epochs < 1 or self.batch < 1:
            raise FacelabError("--epochs and --batch must be at least 1")
        if self.weights == "none":
            self.weights = None
        self.size = str(self.size)

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

    def settings(self) -> dict:
        """The options that apply to this run (a report's settings table): other tasks' options, momentum
        without SGD and unset options are left out."""
        others = {o for t in TASKS.values() for o in t.options} - set(TASKS[self.task].options if self.task in TASKS else ())
        if self.opt != "sgd":
            others.add("momentum")
        return {k: v for k, v in asdict(self).items() if k not in others and v is not None}


def global_rank() -> int:
    """This process's rank under torchrun, SLURM or Lightning's own DDP launcher."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def versions() -> dict:
    import lightning
    import torchvision

    from .. import __version__

    return {
        "facelab": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


# ----------------------------------------------------------------------------- data
@dataclass
class Prepared:
    task: Task
    cache: FaceCache
    images: object
    targets: torch.Tensor
    rows: np.ndarray
    split: np.ndarray
    names: list[str]
    attributes: np.ndarray | None
    attr_names: list[str] | None
    unreadable: list[str] = field(default_factory=list)  # selected items the cache could not decode (left out)
    faceset: FaceSet | None = None  # the selection itself: item k is position k (full-resolution images, labels)

    def items(self, split: str) -> CachedItems:
        pos = np.flatnonzero(self.split == SPLITS.index(split))
        images = self.images[torch.from_numpy(pos)] if isinstance(self.images, torch.Tensor) else self.images
        rows = pos if isinstance(self.images, torch.Tensor) else self.rows[pos]
        return CachedItems(images, rows, self.targets[pos])

    def batch(self, pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (B, H, W, 3) and targets of the selection's items at ``pos``, in that order."""
        x8, y, _ = CachedItems(self.images, self.rows, self.targets).__getitems__(np.asarray(pos).tolist())
        return x8, y

    def split_positions(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == SPLITS.index(split))


def open_cache_for(cfg: TrainConfig, fs, quiet: bool = False) -> FaceCache:
    size = parse_size(cfg.size)
    if cfg.cache:
        cache = FaceCache(Path(cfg.cache))
        if cache.size != size:
            raise FacelabError(
                f"--cache {cfg.cache} was built at {cache.size[0]}x{cache.size[1]}, not {size[0]}x{size[1]}; "
                f"pass --size {cache.size[0]} or build a cache at this size"
            )
        return cache
    finder = FaceFinder(min_score=cfg.min_score)
    if global_rank() > 0:
        return _wait_for_cache(cache_request(fs, size, cfg.crop, finder=finder).path(fs))
    return build_cache(fs, size, crop=cfg.crop, quiet=quiet, finder=finder)


def _wait_for_cache(path: Path, timeout_s: float = 3600) -> FaceCache:
    """Ranks other than 0 wait for rank 0's cache instead of building it a second time."""
    start = time.time()
    while not (path / "meta.json").exists():
        if time.time() - start > timeout_s:
            raise FacelabError(f"rank {global_rank()}: gave up waiting for rank 0 to build the cache {path}")
        time.sleep(1.0)
    return FaceCache(path)


def prepare_data(
    cfg: TrainConfig,
    task: Task | None = None,
    spec: str | None = None,
    quiet: bool = False,
    device: str = "cpu",
    strict: bool = False,
    for_training: bool = True,
) -> Prepared:
    """The selection's images and targets, read once from the cache (into GPU memory when ``device`` is a GPU with room).
    ``for_training=False`` (evaluation, probes): a set may hold only a test split (300-W's test list)."""
    fs = open_spec(spec or cfg.spec)
    task = task or task_for(cfg)
    sel = task.select(fs, cfg.seed)
    if cfg.balance:
        sel = balanced(sel, cfg.balance, cfg.seed)
    cache = open_cache_for(cfg, fs, quiet)
    rows = sel.source_rows()
    ok = cache.valid[rows]
    faces = cache.meta.get("faces")
    skipped = SkippedImages(strict, "unreadable image(s) or photos without a face" if faces else "unreadable image(s)")
    for k in np.flatnonzero(~ok):
        skipped.add(
            sel.names[k], f"{fs.spec}: {sel.names[k]} could not be read" + (f" or has no face ({faces['detector']})" if faces else "")
        )
    if not ok.all():
        sel = sel.take(np.flatnonzero(ok))
        rows = sel.source_rows()
    if for_training and not (sel.split == 0).any():
        raise FacelabError(f"{fs.spec}: the selection has no training images")
    split = _with_validation(sel.split, cfg.seed) if (sel.split == 0).any() else sel.split
    n_valid = int((split == 1).sum())
    if for_training and n_valid < FEW_VALID and not quiet:
        say(
            f"only {n_valid} validation images: validation accuracy moves in steps of {1 / n_valid:.2f} and means little "
            "(use more images, or --min-images / --classes for identities)"
        )
    images, targets = gather_images(cache.images, rows, device), task.targets(sel, cache, rows)
    if isinstance(images, torch.Tensor):
        targets = targets.to(images.device)
    return Prepared(task, cache, images, targets, rows, split, sel.names, sel.attributes, sel.attr_names, skipped.say(), sel)


def _with_validation(split: np.ndarray, seed: int, share: float = 0.1) -> np.ndarray:
    """The split, with a seeded ``share`` of the training images moved to validation when a set has none
    (300-W ships only train and test)."""
    split = split.copy()
    if (split == 1).any():
        return split
    train = np.flatnonzero(split == 0)
    if len(train) < 2:
        raise FacelabError("the selection has one training image and no validation split: nothing to validate on")
    moved = np.random.default_rng(seed).choice(train, size=max(1, int(round(share * len(train)))), replace=False)
    split[moved] = 1
    return split


# ----------------------------------------------------------------------------- run folder
class RunFolder:
    """config.json, metrics.csv, summary.json, checkpoints/, figures/, report.html."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.ckpt = self.path / "checkpoints"
        self.figures = self.path / "figures"

    @property
    def last_checkpoint(self) -> Path:
        return self.ckpt / "last.ckpt"

    def read_config(self) -> dict:
        p = self.path / "config.json"
        if not p.exists():
            raise FacelabError(f"{self.path}: not a facelab run (config.json missing)")
        return json.loads(p.read_text())

    def write_json(self, name: str, data: dict) -> Path:
        return write_json(self.path / name, data)

    def read_metrics(self) -> list[dict]:
        p = self.path / "metrics.csv"
        if not p.exists():
            return []
        with open(p, newline="") as fh:
            return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(fh)]

    def write_metrics(self, rows: list[dict]) -> None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        write_csv(self.path / "metrics.csv", keys, ([r.get(k, "") for k in keys] for r in rows))


def _num(v: str):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and "." not in v else f


# ----------------------------------------------------------------------------- training
def _metrics_callback(run: RunFolder):
    import lightning.pytorch as pl

    class MetricsCSV(pl.Callback):
        """One row per epoch and split, kept consistent when a run resumes."""

        def on_train_start(self, trainer, module):
            self.rows = [r for r in run.read_metrics() if r["epoch"] < trainer.current_epoch]
            self.t0 = time.time()

        def on_train_epoch_end(self, trainer, module):
            module.epoch_metrics["train"] = module.finish_split("train")  # every rank joins the reduction
            if not trainer.is_global_zero:
                return
            for split in ("train", "valid"):
                m = module.epoch_metrics.get(split)
                if m:
                    self.rows.append({"epoch": trainer.current_epoch, "split": split, **m, "time_s": round(time.time() - self.t0, 2)})
            run.write_metrics(self.rows)

    return MetricsCSV()


def _quiet_lightning() -> None:
    """Lightning's start-up chatter (accelerator lines, tips, deprecations) hides facelab's own output."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _progress_bar_class():
    from lightning.pytorch.callbacks import RichProgressBar

    class EpochsFromOne(RichProgressBar):
        """Lightning's bar counts epochs from 0 ("Epoch 4/4" on a 5-epoch run); people count from 1."""

        def _get_train_description(self, current_epoch: int) -> str:
            return f"Epoch {current_epoch + 1}/{self.trainer.max_epochs}"

    return EpochsFromOne


def _trainer(cfg: TrainConfig, run: RunFolder, rt: Runtime, quiet: bool, extra_callbacks: list | None = None, task: Task | None = None):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    EpochsFromOne = _progress_bar_class()

    monitor, mode = task.monitor if task is not None else Task.monitor
    callbacks = [
        ModelCheckpoint(dirpath=run.ckpt, filename="best", monitor=monitor, mode=mode, save_last=True, save_top_k=1),
        _metrics_callback(run),
    ]
    callbacks += extra_callbacks or []
    if not quiet:
        callbacks.append(EpochsFromOne())
    distributed = cfg.devices > 1 or cfg.num_nodes > 1
    _quiet_lightning()
    return pl.Trainer(
        max_epochs=cfg.epochs,
        accelerator=rt.device,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=rt.lightning_precision,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=not quiet,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        limit_train_batches=cfg.max_train_batches or 1.0,
        deterministic=False,
    )


RUN_FILES = ("config.json", "metrics.csv", "summary.json", "state.json", "report.html", "checkpoints", "figures")


def start_run_folder(out: Path, force: bool = False) -> None:
    """A new run's folder: refused when it already holds a run (unless ``force``: then what facelab wrote
    there is removed) or files facelab did not write."""
    if global_rank() > 0:
        return
    if (out / "config.json").exists() and not force:
        raise FacelabError(
            f"{out} already holds a run; continue it with --resume {out}, start it again with --force, or choose another --out"
        )
    prepare_output(out, "run", fresh=force, owned=RUN_FILES)


def train(
    cfg: TrainConfig | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
    callbacks: list | None = None,
    force: bool = False,
    **kwargs,
) -> dict:
    """Train a network and write its run folder; returns summary.json's content.

    ``facelab.train(spec="synth", task="attr", attrs=["Smiling"], epochs=3, out="runs/x")``

    SIGTERM and SIGINT stop it at the next batch with a resumable folder (:mod:`facelab.train.signals`)
    and raise :class:`facelab.errors.RunStopped`.
    """
    with stop_requests() as flag:
        return _train(cfg, resume, quiet, callbacks, force, flag, **kwargs)


def _train(cfg, resume, quiet, callbacks, force, flag: StopFlag, **kwargs) -> dict:
    import lightning.pytorch as pl

    from .module import FaceModule

    if resume is not None:
        run = RunFolder(Path(resume))
        cfg = TrainConfig.saved(run.read_config()["train"])  # a folder holding only its config starts at epoch 0
    else:
        cfg = cfg or TrainConfig(**kwargs)
        run = RunFolder(Path(cfg.out))
        start_run_folder(run.path, force)
    rt = runtime(cfg.precision, cfg.device, cpu_ddp_processes=cfg.devices)  # the processes sharing one node's cores
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    data = prepare_data(cfg, quiet=quiet, device=rt.device)
    cfg = replace(cfg, head=data.task.resolve_head(cfg.head))
    if resume is None:
        cfg = _with_enough_steps(_with_available_weights(cfg, quiet), len(data.split_positions("train")), quiet)
    model = build_model(cfg.arch, data.task.n_outputs, cfg.channels, cfg.weights, cfg.convs, cfg.head)
    if resume is None:
        data.task.start_model(model, data.targets[torch.from_numpy(data.split_positions("train")).to(data.targets.device)])
    config = {"train": asdict(cfg), "data": data.task.describe() | {"cache": str(data.cache.path), "n_outputs": data.task.n_outputs}}
    if global_rank() == 0 and resume is None:
        run.write_json("config.json", config | {"runtime": rt.describe(), "versions": versions(), "command": sys.argv})
    module = FaceModule(model, data.task, asdict(cfg) | {"out": str(run.path)}, rt, config)
    stopper = StopAtBatchEnd(flag, run.last_checkpoint)
    trainer = _trainer(cfg, run, rt, quiet, [stopper, *(callbacks or [])], data.task)
    ranks = lambda: (trainer.global_rank, trainer.world_size)  # noqa: E731  (known once DDP is set up)
    train_dl = loader(data.items("train"), cfg.batch, True, cfg.seed, ranks, rt.device)
    module.train_loader = train_dl
    valid_dl = loader(data.items("valid"), max(cfg.batch, 256), False, cfg.seed, ranks, rt.device)
    ckpt = run.last_checkpoint if resume is not None and run.last_checkpoint.exists() else None
    try:
        trainer.fit(module, train_dl, valid_dl, ckpt_path=ckpt and str(ckpt))
    except (StopRequested, SystemExit):  # ours, or Lightning's own SIGTERM exit
        if flag.signum is None:
            raise
        raise _stopped(run, flag.signum, stopper.where) from None
    if not trainer.is_global_zero:
        return {}
    run.write_json("state.json", {"status": "finished"})
    outputs = data.task.validation_outputs(module, data)
    summary = write_summary(run, cfg, data.task, data, rt, outputs)
    data.task.write_report(run, cfg, module, data, summary, outputs)
    return summary


def _with_enough_steps(cfg: TrainConfig, n_train: int, quiet: bool) -> TrainConfig:
    """More epochs where the task chose them and a small set would give fewer than ``min_steps`` optimiser steps:
    on ~2,000 photos, 8 epochs of batch 128 are 128 steps, too few for a keypoint net to beat the mean shape."""
    if not cfg.min_steps or "epochs" not in cfg.from_task:
        return cfg
    per_epoch = math.ceil(n_train / (cfg.batch * cfg.devices * cfg.num_nodes))
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / max(per_epoch, 1)))
    if epochs != cfg.epochs and not quiet:
        steps = epochs * per_epoch
        say(f"{epochs} epochs ({steps} optimiser steps on {n_train} training images; the task asks for at least {cfg.min_steps})")
    return replace(cfg, epochs=epochs)


def _with_available_weights(cfg: TrainConfig, quiet: bool) -> TrainConfig:
    """``--weights auto`` (a task's default): ImageNet weights when they can be had, from scratch otherwise, said once."""
    weights, reason = weights_if_available(cfg.arch, cfg.weights)
    if reason and not quiet:
        say(f"training {cfg.arch} from scratch: {reason}")
    return replace(cfg, weights=weights)


def _stopped(run: RunFolder, signum: int, where: dict) -> RunStopped:
    """Write state.json and the one line a stopped run prints."""
    name = signal.Signals(signum).name
    kept = run.last_checkpoint if run.last_checkpoint.exists() else None
    if global_rank() == 0:
        run.write_json(
            "state.json",
            {
                "status": "stopped",
                "signal": name,
                "epoch": where["epoch"],
                "batches_done_in_epoch": where["batch"],
                "checkpoint": kept and str(kept),
                "resume": f"facelab train --resume {run.path}",
            },
        )
    at = f"epoch {where['epoch'] + 1}, after batch {where['batch']}"
    saved = f"checkpoint {kept} saved there" if kept else "before the first batch, so nothing to save"
    return RunStopped(signum, f"stopped by {name} at {at} ({saved}); continue with: facelab train --resume {run.path}")


def write_summary(run: RunFolder, cfg: TrainConfig, task: Task, data: Prepared, rt: Runtime, outputs=None) -> dict:
    """summary.json, written once: the task's final and best validation blocks (best by the task's monitor) and its own
    fields (``outputs``: the task's ``validation_outputs``)."""
    rows = [r for r in run.read_metrics() if r["split"] == "valid"]
    if not rows:
        raise FacelabError(f"{run.path}: no validation metrics were written")
    metric, mode = task.monitor
    best = (max if mode == "max" else min)(rows, key=lambda r: r[metric.removeprefix("val_")])
    summary = {
        "task": task.name,
        **task.summary_fields(),
        "arch": cfg.arch,
        "epochs_done": int(rows[-1]["epoch"]) + 1,
        "seed": cfg.seed,
        "final": task.summary_block(rows[-1]),
        "best": task.summary_block(best) | {"epoch": int(best["epoch"])},
    }
    for key, fields in task.summary_extra(data, outputs).items():  # "final"/"best" fields join their block
        summary[key] = summary[key] | fields if key in ("final", "best") else fields
    if data.unreadable:
        summary["skipped"] = data.unreadable  # unreadable images, and photos where a face crop found no face
    summary["runtime"] = rt.describe()
    run.write_json("summary.json", summary)
    return summary
