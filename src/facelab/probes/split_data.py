"""A run's network together with one split of its data (or of another data set), for probes over many images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.faceset import FaceSet
from ..data.spec import open_spec
from ..errors import FacelabError
from ..hardware import Runtime
from ..run import Run

SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class SplitData:
    run: Run
    images: torch.Tensor  # (N, H, W, 3) uint8
    targets: torch.Tensor
    rows: np.ndarray  # item positions in ``faceset``
    faceset: FaceSet
    unreadable: list[str]  # items left out because they could not be read
    points: np.ndarray | None = None  # (N, K, 2) landmarks in the images' pixels, where the data set has them

    @property
    def model(self) -> torch.nn.Module:
        return self.run.model

    @property
    def outputs(self) -> list[str]:
        return self.run.outputs

    @property
    def binary(self) -> bool:
        return self.run.task.binary

    def inputs(self, pos: slice | np.ndarray) -> torch.Tensor:
        return self.run.contract.to_input(self.images[pos])

    def output_index(self, target: str | None) -> int | None:
        return self.run.task.explained_output(target)

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


def load_split(
    run: str | Path | Run,
    spec: str | None = None,
    split: str = "test",
    limit: int | None = None,
    strict: bool = False,
    *,
    runtime: Runtime | None = None,
) -> SplitData:
    """The run's best network and the ``split`` images of its data (or of ``spec``; ``all``: every split), the first
    ``limit`` of them."""
    if split not in SPLIT_NAMES + ("all",):
        raise FacelabError(f"--split {split!r}: use train, valid or test")
    opened = Run.for_probes(run, runtime)
    data = opened.data(spec, strict=strict)
    pos = np.arange(len(data.split)) if split == "all" else data.split_positions(split)
    if not pos.size:
        raise FacelabError(f"{spec or opened.cfg.data.spec}: the {split} split is empty; choose --split train, valid or test")
    pos = pos[:limit] if limit else pos
    x8, y = data.batch(pos)
    points = None if data.cache.landmarks is None else np.asarray(data.cache.landmarks[data.rows[pos]])
    return SplitData(opened, x8, y, data.rows[pos], open_spec(spec or opened.cfg.data.spec), data.unreadable, points)
