"""``facelab.FaceDataset``: a data set's images and a task's targets as a map-style ``torch.utils.data.Dataset``, for a
user's own training loop. It reads the same decode-once cache and selection as ``facelab train``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.faceset import SPLITS
from ..errors import FacelabError
from .batches import to_input
from .config import TrainConfig
from .data_prep import prepare_data


class FaceDataset(Dataset):
    """``FaceDataset("synth:2000", split="train", size=64, task="attr", attrs=["Smiling"])`` or
    ``FaceDataset(FOLDER_OF_A_CACHE, split="valid")``: item k is (image (C, H, W) float, normalised as facelab's
    networks take it, target as the task gives it: 0/1 per attribute, a class index, or point coordinates).

    ``split``: train, valid (facelab's 10% of train where a set has none), test or all. The other keywords are
    ``TrainConfig``'s (``crop``, ``channels``, ``classes``, ``points``, ``seed`` ...), with the same defaults."""

    def __init__(self, source: str | Path, split: str = "train", size: int | str | None = None, crop: str | None = None, **options):
        if split not in SPLITS + ("all",):
            raise FacelabError(f"split {split!r}: use train, valid, test or all")
        spec, cache = _spec_and_cache(source)
        if cache is not None:
            size = size or "x".join(map(str, cache.size))
            crop = crop or cache.meta["fingerprint"]["crop"]
        self.config = TrainConfig(
            spec=spec, size=str(size) if size else None, crop=crop, cache=str(cache.path) if cache else None, **options
        )
        self.prepared = prepare_data(self.config, quiet=True, for_training=False)
        split_of = self.prepared.split
        self.positions = np.arange(len(split_of)) if split == "all" else np.flatnonzero(split_of == SPLITS.index(split))

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"item {k} of a FaceDataset of {len(self)}")
        x8, y = self.prepared.batch(self.positions[[k]])
        return to_input(x8, self.config.data.channels, channels_last=False)[0], y[0]

    @property
    def outputs(self) -> list[str]:
        """A name per target column or class: the attributes, the identities, the points."""
        return self.prepared.task.output_names()


def _spec_and_cache(source: str | Path):
    """A data SPEC, or the folder of a facelab cache (its meta.json names the SPEC it was built from)."""
    from ..data.cache import FaceCache

    path = Path(source)
    if (path / "meta.json").exists():
        cache = FaceCache(path)
        return cache.spec, cache
    return str(source), None
