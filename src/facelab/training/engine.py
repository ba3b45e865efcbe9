"""``facelab.train``: data -> cache -> model -> Lightning -> one self-describing run folder."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch

from ..errors import FacelabError, RunStopped
from ..files import MARKER, clear_output, is_facelab_folder, record_entries
from ..hardware import Runtime
from ..hardware import runtime as resolved_runtime
from ..models import build_model
from ..models.registry import weights_if_available
from ..progress import say
from ..results import TrainSummary
from .batches import loader
from .config import TrainConfig
from .data_prep import Prepared, prepare_data
from .loggers import LOGGERS
from .run_folder import RUN_FILES, RunConfig, RunFolder, global_rank, start_run_folder, versions
from .signals import StopAtBatchEnd, StopFlag, StopRequested, stop_requests
from .task_parts import RunSummary
from .tasks import Task


# ----------------------------------------------------------------------------- training
def _metrics_callback(run: RunFolder):
    import lightning.pytorch as pl

    class MetricsCSV(pl.Callback):
        """One row per epoch and split, kept consistent when a run resumes."""

        def on_train_start(self, trainer, module):
            self.rows = [r for r in run.read_metrics() if r["epoch"] < trainer.current_epoch]
            self.t0 = time.time() - (float(self.rows[-1]["time_s"]) if self.rows else 0.0)  # a resumed run keeps counting

        def on_train_epoch_end(self, trainer, module):
            module.epoch_metrics["train"] = module.finish_split("train")  # every rank joins the reduction
            if not trainer.is_global_zero:
                return
            for split in ("train", "valid"):
                m = module.epoch_metrics.get(split)
                if m:
                    self.rows.append({"epoch": trainer.current_epoch, "split": split, **m, "time_s": round(time.time() - self.t0, 2)})
                    for logger in trainer.loggers:  # --logger tensorboard / mlflow: the same figures, per epoch
                        logger.log_metrics(
                            {f"{split}/{k}": v for k, v in m.items() if isinstance(v, (int, float))}, step=trainer.current_epoch
                        )
            run.write_metrics(self.rows)

    return MetricsCSV()


def _estimate_callback():
    """Says once, after a few timed steps of the first epoch, how long the training steps will take on this machine."""
    import lightning.pytorch as pl

    class Estimate(pl.Callback):
        SETTLE, TIMED = 2, 4  # steps left out (the first ones build kernels and caches), then steps timed

        def on_train_start(self, trainer, module):
            self.t, self.first_epoch = None, trainer.current_epoch

        def on_train_batch_start(self, trainer, module, batch, idx):
            if trainer.current_epoch == self.first_epoch and idx == self.SETTLE:
                self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            if self.t is None or trainer.current_epoch != self.first_epoch or idx != self.SETTLE + self.TIMED - 1:
                return
            per_step = (time.perf_counter() - self.t) / self.TIMED
            per_epoch = trainer.num_training_batches
            left = per_epoch * (trainer.max_epochs - self.first_epoch) - idx - 1
            if left * per_step >= 30:
                say(
                    f"training: about {_duration(left * per_step)} more ({left} steps at {per_step:.2f} s a step, timed here "
                    "on the first ones; validation adds a little each epoch)"
                )

    return Estimate()


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


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
        callbacks += [EpochsFromOne(), _estimate_callback()]
    distributed = cfg.runtime.world > 1
    _quiet_lightning()
    return pl.Trainer(
        max_epochs=cfg.optim.epochs,
        accelerator=rt.device,
        devices=cfg.runtime.devices,
        num_nodes=cfg.runtime.num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=rt.lightning_precision,
        callbacks=callbacks,
        logger=LOGGERS.get(cfg.runtime.logger)(run.path),
        enable_progress_bar=not quiet,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        limit_train_batches=cfg.optim.max_train_batches or 1.0,
        deterministic=False,
    )


def train(
    cfg: TrainConfig | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
    callbacks: list | None = None,
    force: bool = False,
    *,
    runtime: Runtime | None = None,
    **settings,
) -> TrainSummary | None:
    """Train a network and write its run folder; returns its summary.json as a :class:`TrainSummary` (None on DDP
    ranks other than 0).

    ``facelab.train(spec="synth", task="attr", attrs=["Smiling"], epochs=3, out="runs/x")``: ``settings`` are a
    :class:`TrainConfig`'s fields, given instead of ``cfg`` (both at once is a TypeError, never a silent choice).
    ``runtime``: where and how it trains (recorded in config.json as asked); default: resolved from the config's
    ``precision`` and ``device`` (a resumed run's own).

    SIGTERM and SIGINT stop it at the next batch with a resumable folder (:mod:`facelab.training.signals`)
    and raise :class:`facelab.errors.RunStopped`.
    """
    if settings and (cfg is not None or resume is not None):
        raise TypeError(f"train() takes a TrainConfig, a run to resume or a TrainConfig's settings, not both: {', '.join(settings)}")
    if resume is not None:
        run = RunFolder(Path(resume))
        cfg = TrainConfig.saved(run.read_config()["train"])  # a folder holding only its config starts at epoch 0
    else:
        cfg = as_asked(cfg or TrainConfig(**settings), runtime)
        run = RunFolder(Path(cfg.out))
    rt = (runtime or resolved_runtime(cfg.runtime.precision, cfg.runtime.device)).sharing_cores(cfg.runtime.devices).apply()
    with stop_requests() as flag, run_folder_kept_tidy(run, fresh=resume is None, force=force):
        return _fit(cfg, run, resume, quiet, callbacks, flag, rt)


@contextlib.contextmanager
def run_folder_kept_tidy(run: RunFolder, fresh: bool, force: bool):
    """The run folder while it trains: started (``fresh``), every file written recorded as facelab's when the block
    ends however it ends (so ``--force`` later removes exactly those), and put back as it was found (no folder, or an
    empty one) when the training failed before its first checkpoint (a bad path, an unknown attribute)."""
    untouched = fresh and global_rank() == 0 and (not run.path.exists() or not any(run.path.iterdir()))
    made_here = untouched and not run.path.exists()
    if fresh:
        start_run_folder(run.path, force)
    try:
        yield
    except Exception as exc:
        stopped = isinstance(exc, RunStopped)  # a stop keeps its folder: it says how to resume it
        if untouched and not stopped and not run.last_checkpoint.exists() and is_facelab_folder(run.path):
            record_entries(run.path)
            clear_output(run.path, RUN_FILES)
            (run.path / MARKER).unlink(missing_ok=True)
            if made_here and not any(run.path.iterdir()):
                run.path.rmdir()
        raise
    finally:
        if global_rank() == 0 and is_facelab_folder(run.path):
            record_entries(run.path)


def _fit(cfg: TrainConfig, run: RunFolder, resume, quiet: bool, callbacks, flag: StopFlag, rt: Runtime) -> TrainSummary | None:
    import lightning.pytorch as pl

    from .module import FaceModule

    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    world = cfg.runtime.world
    rank = global_rank()  # known before Lightning sets DDP up: each process holds only its own training images
    if rt.device == "cuda" and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))  # this process's GPU, before any image goes there
    data = prepare_data(cfg, quiet=quiet, device=rt.device, shard=(rank, world))
    if world > 1:
        held = {"rank": rank, "world": world, "images_bytes": data.image_bytes, "train_items": len(data.shard)}
        run.write_json(f"ranks/rank{rank}.json", held)  # what each process holds: facelab bench scale reads it
    cfg = cfg.changed(head=data.task.resolve_head(cfg.model.head))
    if resume is None:
        cfg = _with_enough_steps(_with_available_weights(cfg, quiet), len(data.split_positions("train")), quiet)
    m = cfg.model
    model = build_model(m.arch, data.task.n_outputs, cfg.data.channels, m.weights, m.convs, m.head)
    if resume is None:
        data.task.start_model(model, data.targets[torch.from_numpy(data.split_positions("train")).to(data.targets.device)])
    described = data.task.describe() | {"cache": str(data.cache.path), "n_outputs": data.task.n_outputs}
    config = RunConfig(train=cfg.flat(), data=described, batching=cfg.batching())  # what a checkpoint carries too
    if global_rank() == 0 and resume is None:
        run.write_json("config.json", config | {"runtime": rt.describe(), "versions": versions(), "command": sys.argv})
    module = FaceModule(model, data.task, cfg.changed(out=str(run.path)), rt, config)
    stopper = StopAtBatchEnd(flag, run.last_checkpoint)
    trainer = _trainer(cfg, run, rt, quiet, [stopper, *(callbacks or [])], data.task)
    ranks = lambda: (trainer.global_rank, trainer.world_size)  # noqa: E731  (known once DDP is set up)
    if world > 1:  # the shard is this process's already: it shuffles its own items, as many batches as every other
        n_train = len(data.split_positions("train"))
        per_rank = max(1, n_train // world // cfg.optim.batch)
        train_dl = loader(data.items("train"), cfg.optim.batch, True, cfg.seed + rank, device=rt.device, limit=per_rank)
    else:
        train_dl = loader(data.items("train"), cfg.optim.batch, True, cfg.seed, ranks, rt.device)
    module.train_loader = train_dl
    if data.groups is not None:  # --balance reweight / groupdro: each training item's group, in the loader's order
        pos = data.shard if data.shard is not None else data.split_positions("train")
        module.weigh_groups(cfg.data.balancing()[0], torch.from_numpy(data.groups[pos]), len(data.group_names))
    valid_dl = loader(data.items("valid"), cfg.optim.batch, False, cfg.seed, ranks, rt.device)  # larger ones raised peak memory
    ckpt = run.last_checkpoint if resume is not None and run.last_checkpoint.exists() else None
    try:
        trainer.fit(module, train_dl, valid_dl, ckpt_path=ckpt and str(ckpt))
    except (StopRequested, SystemExit):  # ours, or Lightning's own SIGTERM exit
        if flag.signum is None:
            raise
        raise _stopped(run, flag.signum, stopper.where) from None
    if not trainer.is_global_zero:
        return None
    run.write_json("state.json", {"status": "finished"})
    outputs = data.task.validation_outputs(module, data)
    summary = write_summary(run, cfg, data.task, data, rt, outputs)
    data.task.write_report(run, cfg, module, data, summary, outputs)
    return summary


def _with_enough_steps(cfg: TrainConfig, n_train: int, quiet: bool) -> TrainConfig:
    """More epochs where the task chose them and a small set would give fewer than ``min_steps`` optimiser steps:
    on ~2,000 photos, 8 epochs of batch 128 are 128 steps, too few for a keypoint net to beat the mean shape."""
    o = cfg.optim
    if not o.min_steps or "epochs" not in (cfg.from_task or ()):
        return cfg
    per_epoch = math.ceil(n_train / (o.batch * cfg.runtime.world))
    epochs = max(o.epochs, math.ceil(o.min_steps / max(per_epoch, 1)))
    if epochs != o.epochs and not quiet:
        steps = epochs * per_epoch
        say(f"{epochs} epochs ({steps} optimiser steps on {n_train} training images; the task asks for at least {o.min_steps})")
    return cfg.changed(epochs=epochs)


def _with_available_weights(cfg: TrainConfig, quiet: bool) -> TrainConfig:
    """``--weights auto`` (a task's default): ImageNet weights when they can be had, from scratch otherwise, said once."""
    weights, reason = weights_if_available(cfg.model.arch, cfg.model.weights)
    if reason and not quiet:
        say(f"training {cfg.model.arch} from scratch: {reason}")
    return cfg.changed(weights=weights)


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


def as_asked(cfg: TrainConfig, runtime: Runtime | None) -> TrainConfig:
    """``cfg`` with the precision and device ``runtime`` was asked for (what a run records: "auto", not this
    machine's answer); ``cfg`` itself without a runtime."""
    return cfg if runtime is None else cfg.changed(precision=runtime.asked[0], device=runtime.asked[1])


def trained(cfg, quiet: bool, runtime: Runtime | None = None) -> TrainSummary:
    """The summary of the run ``cfg`` describes: read back when a finished run with this config is already in its
    folder (a study run again, or resumed after a stop), continued from its last checkpoint when it was stopped,
    trained from the start otherwise."""
    cfg, run = as_asked(cfg, runtime), RunFolder(Path(cfg.out))
    config = run.path / "config.json"
    same = config.exists() and {k: v for k, v in run.read_config()["train"].items() if k != "head"} == {
        k: v for k, v in cfg.flat().items() if k != "head"
    }
    if same and (run.path / "summary.json").exists():
        return TrainSummary.read(run.path)
    if same and run.last_checkpoint.exists():
        return _on_rank_zero(train(resume=run.path, quiet=quiet, runtime=runtime))
    return _on_rank_zero(train(cfg, quiet=quiet, force=True, runtime=runtime))


def _on_rank_zero(summary: TrainSummary | None) -> TrainSummary:
    """A study's runs train in one process: the summary is always there."""
    assert summary is not None
    return summary


def write_summary(run: RunFolder, cfg: TrainConfig, task: RunSummary, data: Prepared, rt: Runtime, outputs=None) -> TrainSummary:
    """summary.json, written once: the task's final and best validation blocks (best by the task's monitor) and its own
    fields (``outputs``: the task's ``validation_outputs``)."""
    rows = [r for r in run.read_metrics() if r["split"] == "valid"]
    if not rows:
        raise FacelabError(f"{run.path}: no validation metrics were written")
    metric, mode = task.monitor
    best = (max if mode == "max" else min)(rows, key=lambda r: r[metric.removeprefix("val_")])
    blocks = {"final": task.summary_block(rows[-1]), "best": task.summary_block(best) | {"epoch": int(best["epoch"])}}
    own = dict(task.summary_fields())
    for key, fields in task.summary_extra(data, outputs).items():  # "final"/"best" fields join their block
        if key in blocks:
            blocks[key] |= fields
        else:
            own[key] = fields
    summary = TrainSummary(
        task=task.name,
        arch=cfg.model.arch,
        epochs_done=int(rows[-1]["epoch"]) + 1,
        train_seconds=float(rows[-1]["time_s"]),
        seed=cfg.seed,
        final=blocks["final"],
        best=blocks["best"],
        runtime=rt.describe(),
        robust={"eps": cfg.optim.robust, "norm": cfg.optim.robust_norm, "steps": cfg.optim.robust_steps} if cfg.optim.robust else None,
        skipped=data.unreadable or None,  # unreadable images, and photos where a face crop found no face
        fields=own,
    )
    run.write_json("summary.json", summary.to_json())
    return summary
