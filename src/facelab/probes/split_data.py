"""A run's network together with one split of its data (or of another data set), for probes over many images."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.faceset import FaceSet
from ..data.spec import open_spec
from ..errors import FacelabError
from ..train.batches import to_input
from ..train.engine import TrainConfig, prepare_data
from ..train.task_registry import task_for
from .subject import open_probe, output_index, output_names

SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class SplitData:
    model: torch.nn.Module
    cfg: TrainConfig
    outputs: list[str]  # attribute or class names, one per network output
    images: torch.Tensor  # (N, H, W, 3) uint8
    targets: torch.Tensor
    rows: np.ndarray  # item positions in ``faceset``
    faceset: FaceSet
    unreadable: list[str]  # items left out because they could not be read

    @property
    def binary(self) -> bool:
        return self.cfg.task == "attr"

    def inputs(self, pos: slice | np.ndarray) -> torch.Tensor:
        return to_input(self.images[pos], self.cfg.channels, channels_last=False)

    def output_index(self, target: str | None) -> int | None:
        return output_index(self.outputs, target, self.binary)

    def in_words(self, output: int | None, value: int) -> str:
        """A label as a person says it: "smiling" / "not smiling" for an attribute, the class name for identities."""
        if self.binary:
            name = self.outputs[output].replace("_", " ").lower()
            return name if value else f"not {name}"
        return f"person {self.outputs[value]}" if value < len(self.outputs) else f"class {value}"

    def labels(self, output: int | None) -> np.ndarray:
        """True label of each item for ``output``: 0/1 for an attribute, the class for identity."""
        y = self.targets.numpy()
        return y[:, output].astype(int) if self.binary else y.astype(int)


def load_split(run: str | Path, spec: str | None = None, split: str = "test", limit: int | None = None,
               strict: bool = False) -> SplitData:
    """The run's best network and the ``split`` images of its data (or of ``spec``), the first ``limit`` of them."""
    if split not in SPLIT_NAMES:
        raise FacelabError(f"--split {split!r}: use train, valid or test")
    model, cfg, conf, _ = open_probe(run)
    task = task_for(cfg)
    data = prepare_data(replace(cfg, cache=None, balance=None), task, spec=spec, quiet=True, strict=strict)
    pos = data.split_positions(split)
    if not pos.size:
        raise FacelabError(f"{spec or cfg.spec}: the {split} split is empty; choose --split train, valid or test")
    pos = pos[:limit] if limit else pos
    x8, y = data.batch(pos)
    return SplitData(model, cfg, output_names(cfg, conf), x8, y, data.rows[pos], open_spec(spec or cfg.spec), data.unreadable)
