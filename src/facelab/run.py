"""A trained run, reopened in one call: its config, network, input contract, outputs and task.

Training writes the run folder (:mod:`facelab.training.engine`); every probe, the web page and export
open it here instead of re-deriving sizes, channels, normalisation and output names. A checkpoint
file opens on its own too, because training saves the run's config in it (``save_hyperparameters``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .data.cache import parse_size
from .errors import FacelabError
from .hardware import Runtime, probe_runtime
from .hardware import runtime as resolved_runtime
from .models import build_model
from .results import Evaluation
from .training.batches import MEAN, STD, to_input
from .training.config import TrainConfig
from .training.data_prep import Prepared, prepare_data
from .training.evaluate import evaluate_model, write_evaluation
from .training.run_folder import RunConfig, RunFolder
from .training.task_registry import restored_task, task_for
from .training.tasks import Task


@dataclass(frozen=True)
class InputContract:
    """What the network takes: (width, height), channels, the crop its faces were cut with, and the normalisation."""

    size: tuple[int, int]
    channels: int
    crop: str | None
    mean: float = MEAN
    std: float = STD

    @property
    def aligned(self) -> bool:
        """Faces aligned on five points (``--crop aligned``): photos are aligned the same way before the network sees them."""
        return self.crop == "aligned"

    def to_input(self, x8: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """uint8 images (B, H, W, 3) -> the normalised float input (B, C, H, W)."""
        return to_input(x8, self.channels, channels_last)

    def pixels(self, image: np.ndarray) -> torch.Tensor:
        """One (H, W, 3) uint8 image at the input size -> (1, C, H, W) float in [0, 1] (grey for 1 channel)."""
        return self.image_input(image) * self.std + self.mean

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> the input the network was trained on."""
        return (pixels - self.mean) / self.std

    def image_input(self, image: np.ndarray) -> torch.Tensor:
        """One (H, W, 3) uint8 image at the input size -> the network's (1, C, H, W) input."""
        return self.to_input(torch.from_numpy(np.ascontiguousarray(image))[None])


class Run:
    """``Run.open(path)``: a run folder (or one of its checkpoint files) with its best network in eval mode."""

    def __init__(self, path: Path, config: RunConfig, model: torch.nn.Module, runtime: Runtime | None = None):
        self.path, self.config, self.model, self.runtime = path, config, model, runtime
        self.cfg = TrainConfig.saved(config["train"])
        self.task: Task = restored_task(self.cfg, config["data"])
        shown = self.cfg.data
        self.contract = InputContract(parse_size(shown.size), shown.channels, shown.crop)

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """The plain fp32 network in eval mode (``runtime`` None); :meth:`for_probes` for one frozen on a runtime."""
        path = Path(path)
        ckpt = path if path.is_file() else _checkpoint_of(path)
        state = read_checkpoint(ckpt)
        config = _config_of(path, state)
        cfg = TrainConfig.saved(config["train"])
        m = cfg.model
        model = build_model(m.arch, config["data"]["n_outputs"], cfg.data.channels, convs=m.convs, head=m.head or "regress")
        model.load_state_dict({k.removeprefix("model."): v for k, v in state["state_dict"].items()})
        return cls(path if path.is_dir() else path.parent.parent, config, model.eval())

    @classmethod
    def for_probes(cls, path: "str | Path | Run", runtime: Runtime | None = None) -> "Run":
        """The run with its weights frozen, on ``runtime`` (default: the CPU, bf16 only where native) in its memory
        format; probes autocast with ``run.runtime``. An opened Run is passed through."""
        if isinstance(path, Run) and path.runtime is not None:
            return path
        run = path if isinstance(path, Run) else cls.open(path)
        run.runtime = runtime.for_probes() if runtime else probe_runtime()
        run.model = run.runtime.prepare(run.model)
        for p in run.model.parameters():
            p.requires_grad_(False)
        return run

    @cached_property
    def outputs(self) -> list[str]:
        """A name per network output: the attributes, the identity classes, the point numbers."""
        return self.task.output_names()

    def require(self, capability: str, command: str) -> None:
        self.task.require(capability, command, self.path)

    def data(
        self, spec: str | None = None, strict: bool = False, device: str = "cpu", quiet: bool = True, keep_balance: bool = False
    ) -> Prepared:
        """The run's data (or ``spec``'s) prepared as in training, from the default cache at the run's size."""
        cfg = self.cfg.changed(cache=None, balance=self.cfg.data.balance if keep_balance else None)
        return prepare_data(cfg, task_for(cfg), spec=spec, quiet=quiet, device=device, strict=strict, for_training=False)


def evaluate(
    run: str | Path,
    spec: str | None = None,
    split: str = "test",
    out: str | Path | None = None,
    *,
    runtime: Runtime | None = None,
    precision: str | None = None,
    device: str | None = None,
) -> Evaluation:
    """``facelab eval``: loss and metrics of ``run``'s best checkpoint on ``split``; writes summary.json + report.html.
    Runs in ``runtime``; without one, in the ``precision`` / ``device`` given, else as the run was trained."""
    opened = Run.open(run)
    cfg = opened.cfg.changed(cache=None)
    rt = runtime or resolved_runtime(precision or cfg.runtime.precision, device or cfg.runtime.device).apply()
    result = evaluate_model(opened.model, cfg, task_for(cfg), rt, spec=spec, split=split)
    title = f"facelab eval: {Path(run).name} on {result.data} ({split})"
    write_evaluation(result, Path(out) if out else Path(run) / f"eval_{split}", title)
    return result


def run_path(run: "str | Path | Run") -> Path:
    """The folder of a run given as a path or as an opened :class:`Run`."""
    return run.path if isinstance(run, Run) else Path(run)


def _checkpoint_of(path: Path) -> Path:
    folder = RunFolder(path)
    if not (path / "config.json").exists():
        raise FacelabError(f"{path}: not a facelab run (config.json missing)")
    ckpt = folder.ckpt / "best.ckpt" if (folder.ckpt / "best.ckpt").exists() else folder.last_checkpoint
    if not ckpt.exists():
        raise FacelabError(f"{path}: no checkpoint found in {folder.ckpt}")
    return ckpt


def read_checkpoint(ckpt: Path) -> dict:
    """A checkpoint's content (``weights_only``: nothing in it is unpickled as code), or one line naming the file and
    how to recover when it is damaged (an interrupted copy, a full disk) or holds no network."""
    run = ckpt.parent.parent
    recover = f"continue the run from its last checkpoint (facelab train --resume {run}) if {ckpt.name} is not that one, or train it again"
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FacelabError(f"{ckpt}: no such checkpoint") from None
    except Exception as exc:  # a truncated zip, a CRC mismatch, a file that is not a checkpoint at all
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise FacelabError(f"{ckpt}: damaged or incomplete checkpoint ({reason}); {recover}") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise FacelabError(f"{ckpt}: not a facelab checkpoint (no network weights in it); {recover}")
    return state


def _config_of(path: Path, state: dict) -> RunConfig:
    """config.json of a run folder; for a checkpoint file, the copy training saved in it."""
    if path.is_dir():
        return json.loads((path / "config.json").read_text())
    config = state.get("hyper_parameters", {}).get("facelab")
    if not config:
        raise FacelabError(f"{path}: this checkpoint carries no facelab config; open its run folder instead")
    return config


def load_trained(path: str | Path) -> tuple[torch.nn.Module, TrainConfig, RunConfig]:
    """(network in eval mode, TrainConfig, config.json) of a run: :meth:`Run.open` for older notebooks."""
    run = Run.open(path)
    return run.model, run.cfg, run.config
