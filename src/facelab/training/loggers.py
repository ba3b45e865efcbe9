"""Experiment loggers for ``--logger``, beside metrics.csv (always written): each writes inside the run folder. The
packages are imported only when a run asks for them (facelab[loggers]); a missing one is one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..errors import FacelabError
from ..plugins import Registry

LOGGERS: Registry[Callable[[Path], Any]] = Registry("--logger")


def _installed(package: str) -> None:
    try:
        __import__(package)
    except ImportError:
        raise FacelabError(f"--logger {package} needs the {package} package: pip install 'facelab[loggers]'") from None


@LOGGERS.register("csv", "metrics.csv alone")
def _csv(folder: Path) -> bool:
    return False  # Lightning's "no logger": metrics.csv is facelab's own


@LOGGERS.register("tensorboard", "TensorBoard event files under tensorboard/")
def _tensorboard(folder: Path) -> Any:
    _installed("tensorboard")
    from lightning.pytorch import loggers

    return loggers.TensorBoardLogger(save_dir=str(folder), name="tensorboard", version="")


@LOGGERS.register("mlflow", "an MLflow file store under mlruns/ (or the MLFLOW_TRACKING_URI set)")
def _mlflow(folder: Path) -> Any:
    _installed("mlflow")
    from lightning.pytorch import loggers

    # A file store inside the run folder needs no database (mlflow-skinny has none); MLflow retired it from new
    # features, so it asks for this opt-in. An MLFLOW_TRACKING_URI the user set (a server) is theirs to keep.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or (folder / "mlruns").resolve().as_uri()
    return loggers.MLFlowLogger(experiment_name="facelab", tracking_uri=uri)
