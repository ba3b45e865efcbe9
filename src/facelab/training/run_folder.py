"""The on-disk run format: one folder with config.json, metrics.csv, summary.json, checkpoints/, figures/ and
report.html, written by training and read by everything that opens a run."""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Required, TypedDict

import torch

from ..errors import FacelabError
from ..files import prepare_output, write_csv, write_json
from .config import Batching


def global_rank() -> int:
    """This process's rank under torchrun, SLURM or Lightning's own DDP launcher."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def builds_the_cache() -> bool:
    """Whether this process builds the data cache (the others wait for it): the first process of each machine, whose
    cache folder is its own disk; with FACELAB_CACHE_SHARED=1 (a cache folder every machine reads) only global rank 0."""
    if os.environ.get("FACELAB_CACHE_SHARED") == "1":
        return global_rank() == 0
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0))) == 0


class Versions(TypedDict):
    """What a run was trained with (config.json's ``versions``)."""

    facelab: str
    torch: str
    torchvision: str
    lightning: str
    python: str
    platform: str


def versions() -> Versions:
    import lightning
    import torchvision

    from .. import __version__

    return Versions(
        facelab=__version__,
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        lightning=lightning.__version__,
        python=sys.version.split()[0],
        platform=platform.platform(),
    )


class RunConfig(TypedDict, total=False):
    """A run's config.json (docs/json.md): its settings one level deep by option name (``train``:
    ``TrainConfig.flat()``), the task's description with its cache and output count (``data``), what a step sees under
    DDP, the runtime as this machine resolved it, the versions and the command line. Runs saved by earlier versions may
    lack all but ``train`` and ``data``; a checkpoint carries the same."""

    train: Required[dict[str, Any]]
    data: Required[dict[str, Any]]
    batching: Batching
    runtime: dict[str, Any]
    versions: Versions
    command: list[str]


class RunFolder:
    """config.json, metrics.csv, summary.json, checkpoints/, figures/, report.html."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.ckpt = self.path / "checkpoints"
        self.figures = self.path / "figures"

    @property
    def last_checkpoint(self) -> Path:
        return self.ckpt / "last.ckpt"

    def read_config(self) -> RunConfig:
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


RUN_FILES = (
    *("config.json", "metrics.csv", "summary.json", "state.json", "report.html"),
    *("checkpoints", "figures", "tensorboard", "mlruns", "ranks"),
)


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
