"""A run's data made ready for the loop: the data set opened, its cache built (or waited for, under DDP), the
task's targets and the train/valid/test split."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.cache import FaceCache, build_cache, cache_request, parse_size
from ..data.face_crops import FaceFinder
from ..data.faceset import SPLITS, FaceSet
from ..data.images import SkippedImages
from ..data.select import balanced
from ..data.spec import open_spec
from ..errors import FacelabError
from ..progress import say
from .batches import CachedItems, gather_images
from .config import FEW_VALID, TrainConfig
from .group_balance import group_ids, undersampled
from .run_folder import builds_the_cache, global_rank
from .sections import DataSettings
from .task_registry import task_for
from .tasks import Task


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
    held: np.ndarray | None = None  # under DDP: the positions whose images this process holds (sorted); None: all
    shard: np.ndarray | None = None  # under DDP: the training positions this process trains on
    groups: np.ndarray | None = None  # --balance reweight/groupdro: each item's group (an index into group_names)
    group_names: list[dict] | None = None

    def items(self, split: str) -> CachedItems:
        """The split as a view of the selection's images (their indices, not a copy); under DDP the training split
        is this process's shard."""
        pos = self.shard if split == "train" and self.shard is not None else self.split_positions(split)
        return CachedItems(self.images, self._image_rows(pos), self.targets[pos])

    @property
    def image_bytes(self) -> int:
        """The bytes of images this process holds in memory (0 when it reads the memory-mapped cache)."""
        return self.images.numel() * self.images.element_size() if isinstance(self.images, torch.Tensor) else 0

    def batch(self, pos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (B, H, W, 3) and targets of the selection's items at ``pos``, in that order."""
        pos = np.asarray(pos)
        x8, y, _ = CachedItems(self.images, self._image_rows(pos), self.targets[pos]).__getitems__(list(range(len(pos))))
        return x8, y

    def _image_rows(self, pos: np.ndarray) -> np.ndarray:
        """Where items ``pos`` of the selection sit in ``images``: gathered in selection order (of the held items under
        DDP), or the cache's rows."""
        if not isinstance(self.images, torch.Tensor):
            return self.rows[pos]
        return pos if self.held is None else np.searchsorted(self.held, pos)

    def split_positions(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == SPLITS.index(split))


def open_cache_for(data: DataSettings, fs, quiet: bool = False) -> FaceCache:
    """The cache ``data`` names (--cache), else the one of its source at its size and crop, built when missing."""
    size = parse_size(data.size)
    if data.cache:
        cache = FaceCache(Path(data.cache))
        if cache.size != size:
            raise FacelabError(
                f"--cache {data.cache} was built at {cache.size[0]}x{cache.size[1]}, not {size[0]}x{size[1]}; "
                f"pass --size {cache.size[0]} or build a cache at this size"
            )
        return cache
    finder = FaceFinder(min_score=data.min_score)
    if not builds_the_cache():
        return _wait_for_cache(cache_request(fs, size, data.crop, finder=finder).path(fs))
    return build_cache(fs, size, crop=data.crop, quiet=quiet, finder=finder)


def _wait_for_cache(path: Path, timeout_s: float = 3600) -> FaceCache:
    """The processes that do not build the cache wait for it instead of building it a second time."""
    start = time.time()
    while not (path / "meta.json").exists():
        if time.time() - start > timeout_s:
            raise FacelabError(
                f"rank {global_rank()}: gave up waiting for the cache {path} (built by each machine's first process; on a "
                "cache folder all machines share, set FACELAB_CACHE_SHARED=1 so that only rank 0 builds it)"
            )
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
    shard: tuple[int, int] = (0, 1),
) -> Prepared:
    """The selection's images and targets, read once from the cache (into GPU memory when ``device`` is a GPU with room).
    ``for_training=False`` (evaluation, probes): a set may hold only a test split (300-W's test list). ``shard`` =
    (rank, world) under DDP: this process holds only its share of the training images (a seeded partition) and the
    validation images, not the others' training images nor the test split."""
    fs = open_spec(spec or cfg.data.spec)
    task = task or task_for(cfg)
    sel = task.select(fs, cfg.seed)
    mode, by = cfg.data.balancing()
    if mode == "undersample":  # one attribute of two values: the seed's 50/50 cut, as it always was
        single = len(by) == 1 and by[0] in (sel.attr_names or []) and by[0] not in sel.categories
        sel = balanced(sel, by[0], cfg.seed) if single else undersampled(sel, by, cfg.seed)
    cache = open_cache_for(cfg.data, fs, quiet)
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
    split = _with_validation(sel.split, cfg.seed, cfg.data.valid_share) if (sel.split == 0).any() else sel.split
    n_valid = int((split == 1).sum())
    if for_training and n_valid < FEW_VALID and not quiet:
        say(
            f"only {n_valid} validation images: validation accuracy moves in steps of {1 / n_valid:.2f} and means little "
            "(use more images, or --min-images / --classes for identities)"
        )
    mine, held = training_shard(split, cfg.seed, *shard) if shard[1] > 1 else (None, None)
    images = gather_images(cache.images, rows if held is None else rows[held], device)
    targets = task.targets(sel, cache, rows)
    if isinstance(images, torch.Tensor):
        targets = targets.to(images.device)
    made = Prepared(task, cache, images, targets, rows, split, sel.names, sel.attributes, sel.attr_names, skipped.say(), sel)
    made.held, made.shard = held, mine
    if mode in ("reweight", "groupdro"):
        made.groups, made.group_names = group_ids(sel, by)
    return made


def training_shard(split: np.ndarray, seed: int, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """Process ``rank``'s training positions (every ``world``-th of a seeded permutation, so each holds a random
    share) and the positions whose images it holds: those and the validation split."""
    train = np.flatnonzero(split == 0)
    mine = np.sort(np.random.default_rng(seed).permutation(train)[rank::world])
    return mine, np.union1d(mine, np.flatnonzero(split == 1))


def _with_validation(split: np.ndarray, seed: int, share: float | None = None) -> np.ndarray:
    """The split with a seeded share of its images held out for validation: with ``share`` given, the training and
    validation images pooled and split again (0.1: a 90/10 split, the test images untouched); without, 10% of the
    training images, only when a set has no validation split (300-W ships only train and test)."""
    split = split.copy()
    if share is None and (split == 1).any():
        return split
    pool = np.flatnonzero(split == 0) if share is None else np.flatnonzero(split <= 1)
    if len(pool) < 2:
        raise FacelabError("the selection has one training image and no validation split: nothing to validate on")
    split[pool] = 0
    moved = np.random.default_rng(seed).choice(pool, size=max(1, int(round((share or 0.1) * len(pool)))), replace=False)
    split[moved] = 1
    return split
