"""Whole batches straight from the decode-once cache, augmented on the device.

No per-image DataLoader work: the uint8 array is held in memory (or memory-mapped when
it does not fit), a batch is one fancy-indexing read, and augmentation is a handful of
tensor operations on the whole batch. Every random choice is drawn from a generator
seeded by (seed, epoch, batch), so a resumed run repeats an interrupted one exactly.
"""

from __future__ import annotations

import mmap
import os
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

MEAN, STD = 0.5, 0.25
IN_MEMORY_SHARE = 0.5  # hold the cache in RAM (or GPU memory) when it takes under half of the free memory
STREAM_ENV = "FACELAB_STREAM"  # =1: always read batches from the memory-mapped cache (never hold the images)
PREFETCH = 2  # batches read ahead from the memory-mapped cache by a background thread


def _free_memory() -> int:
    """Memory this process can still take: the kernel's MemAvailable (free memory plus the page cache it can drop,
    which right after a cache build is most of it; MemFree alone would send every set to the memory map), capped by
    what the cgroup this process runs in still allows (containers, SLURM jobs)."""
    available = _meminfo_available()
    room = _cgroup_room()
    return min(available, room) if room is not None else available


def _meminfo_available(path: str = "/proc/meminfo") -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # no /proc (not Linux): free pages
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def _cgroup_room(root: str = "/sys/fs/cgroup") -> int | None:
    """The cgroup's memory limit minus its use (v2 ``memory.max``/``memory.current``, v1 ``memory.limit_in_bytes``/
    ``memory.usage_in_bytes``); None without a limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = open(os.path.join(root, limit_file)).read().strip()
            usage = int(open(os.path.join(root, usage_file)).read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:  # no limit (v1 writes a huge number)
            return None
        return max(0, int(limit) - usage)
    return None


def _free_gpu_memory() -> int:
    return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else 0


def gather_images(images: np.ndarray, rows: np.ndarray, device: str = "cpu") -> torch.Tensor | np.ndarray:
    """The selected rows as one tensor: in GPU memory when ``device`` is a GPU with room (batches are then
    indexed and augmented there, no copy per batch), else in RAM when they fit, else a lazily read memmap."""
    nbytes = rows.size * int(np.prod(images.shape[1:]))
    if os.environ.get(STREAM_ENV) == "1" or nbytes >= IN_MEMORY_SHARE * _free_memory():
        return images
    x = torch.from_numpy(_gathered(images, rows))
    if device == "cuda" and nbytes < IN_MEMORY_SHARE * _free_gpu_memory():
        return x.to("cuda")
    return x


def _gathered(images: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """``images[rows]`` in one new array, read in increasing row order (sequential on disk) a chunk at a time and put
    in place: never a second copy of the selection, as sorting first and reordering after would make."""
    out = np.empty((len(rows), *images.shape[1:]), images.dtype)
    order = np.argsort(rows, kind="stable")
    for start in range(0, len(rows), chunk):
        part = order[start : start + chunk]
        out[part] = images[rows[part]]
        release_mapped(images)
    return out


def release_mapped(images) -> None:
    """Unmap the pages of a memory-mapped cache this process has read (they stay in the kernel's page cache, so reading
    them again is fast): mapped, they count as the process's resident memory, a second copy of every image read."""
    mapped = getattr(images, "_mmap", None)  # numpy.memmap's mmap object
    if mapped is not None:
        mapped.madvise(mmap.MADV_DONTNEED)


def seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(hash(tuple(parts)) % (2**62))


class EpochBatches(Sampler):
    """Lists of item positions; a new permutation each epoch, sharded across DDP ranks.

    Training shards whole batches (every rank gets the same number); evaluation shards
    the items themselves, so every item is seen exactly once across ranks.
    ``ranks`` is asked at iteration time because DDP sets ranks up only when fitting starts.
    """

    def __init__(
        self, n: int, batch: int, shuffle: bool, seed: int, ranks: Callable[[], tuple[int, int]] = lambda: (0, 1), limit: int | None = None
    ):
        self.n, self.batch, self.shuffle, self.seed, self.ranks, self.epoch = n, batch, shuffle, seed, ranks, 0
        self.limit = limit  # at most this many batches an epoch (DDP shards of unequal size: every rank the same count)
        self.skip: tuple[int, int] | None = None  # (epoch, batches) already trained: a run resumed mid-epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> "EpochBatches":
        """Lightning sets each epoch on ``loader.batch_sampler.sampler`` (DistributedSampler's convention), also
        when it resumes mid-epoch; without this the epoch never reached us and every epoch repeated epoch 0's order."""
        return self

    def _batches(self) -> list[list[int]]:
        rank, world = self.ranks()
        if not self.shuffle:
            mine = list(range(rank, self.n, world))
            return [mine[i : i + self.batch] for i in range(0, len(mine), self.batch)]
        order = torch.randperm(self.n, generator=seeded(self.seed, self.epoch)).tolist()
        full = [order[i : i + self.batch] for i in range(0, self.n - self.batch + 1, self.batch)] or [order]
        per_rank = max(1, len(full) // world)
        return full[rank::world][: min(per_rank, self.limit or per_rank)]

    def __iter__(self):
        """A generator, so the epoch's permutation is drawn at the first batch, after ``set_epoch`` (Lightning
        creates the iterator earlier when it resumes a run)."""
        batches = self._batches()
        if self.skip is not None and self.skip[0] == self.epoch:
            batches, self.skip = batches[self.skip[1] :], None
        yield from batches

    def __len__(self) -> int:
        return len(self._batches())


class CachedItems:
    """Items of a cache selection, a view: item k is row ``rows[k]`` of ``images`` (the gathered tensor, or the
    memory-mapped cache), so a split holds indices, never a copy of its images. ``__getitems__`` returns a whole
    batch (uint8, targets, positions)."""

    def __init__(self, images, rows: np.ndarray, targets: torch.Tensor):
        self.images, self.rows, self.targets = images, rows, targets
        self.in_memory = isinstance(images, torch.Tensor)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, idx: list[int]):
        pos = torch.as_tensor(idx)
        if self.in_memory:
            x = self.images[torch.as_tensor(self.rows[idx], device=self.images.device)]
        else:
            rows = self.rows[idx]
            order = np.argsort(rows)
            x = torch.from_numpy(np.ascontiguousarray(self.images[rows[order]])[np.argsort(order)])
            release_mapped(self.images)
        return x, self.targets[pos], pos


class ResumableLoader(DataLoader):
    """The training loader, stateful as Lightning expects: a checkpoint written mid-epoch (when a run is stopped)
    records how many batches of which epoch were trained, and the resumed run leaves exactly those out."""

    trained: tuple[int, int] = (0, 0)  # (epoch, batches), set just before a mid-epoch checkpoint

    def state_dict(self) -> dict:
        return {"epoch": self.trained[0], "batches": self.trained[1]}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.skip = (state["epoch"], state["batches"])


def loader(
    items: CachedItems,
    batch: int,
    shuffle: bool,
    seed: int,
    ranks: Callable[[], tuple[int, int]] = lambda: (0, 1),
    device: str = "cpu",
    limit: int | None = None,
) -> DataLoader:
    """Batches in the main process (workers would take the cores torch needs); pinned for a GPU whose memory
    could not hold the images, so the copy to it does not block. Shuffled (training) loaders can resume mid-epoch."""
    sampler = EpochBatches(len(items), batch, shuffle, seed, ranks, limit)
    pin = device == "cuda" and not (items.in_memory and items.images.is_cuda)
    kind = ResumableLoader if shuffle else DataLoader
    made = kind(items, batch_sampler=sampler, collate_fn=lambda b: b, num_workers=0, pin_memory=pin)
    return made if items.in_memory else Prefetched(made)


class Prefetched:
    """A loader over the memory-mapped cache whose batches a background thread reads ahead (PREFETCH of them), so
    disk reads and page faults overlap the training step instead of adding to it (numpy's fancy indexing and
    torch's ops release the GIL). Everything else, Lightning's epoch and resume hooks included, is the loader's."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __getattr__(self, name):
        return getattr(self.loader, name)

    @property
    def trained(self) -> tuple[int, int]:
        return self.loader.trained

    @trained.setter
    def trained(self, value: tuple[int, int]) -> None:  # set by a stop mid-epoch, read by the loader's state_dict
        self.loader.trained = value

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        import queue
        import threading

        ahead: queue.Queue = queue.Queue(PREFETCH)
        done = object()
        stop = threading.Event()

        def read():
            try:
                for b in self.loader:
                    if stop.is_set():
                        return
                    ahead.put(b)
            except BaseException as exc:  # raised again in the training thread
                ahead.put(exc)
                return
            ahead.put(done)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        try:
            while (b := ahead.get()) is not done:
                if isinstance(b, BaseException):
                    raise b
                yield b
        finally:
            stop.set()
            while thread.is_alive():  # let the reader see the stop (it may wait on a full queue)
                try:
                    ahead.get_nowait()
                except queue.Empty:
                    thread.join(0.05)


def to_input(x_uint8: torch.Tensor, channels: int, channels_last: bool = True) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> normalised float (B, C, H, W), grey when the net takes 1 channel."""
    x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)  # an (H, W, 3) batch permuted is channels_last already
    if channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = x.sub_(MEAN).div_(STD)  # in place, the same operations in the same order: the same numbers, no new tensors
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def invert(x: torch.Tensor) -> torch.Tensor:
    """Upside down: rotated by 180 degrees (both spatial axes flipped)."""
    return x.flip(-1, -2)


def _moved_pixels(pixels: torch.Tensor, mirrored: torch.Tensor, shift_px: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) images, each flipped left-right where ``mirrored``, then moved by whole pixels ``shift_px``
    (B, 2: x, y), the border repeated: one gather, the cost of one copy (bilinear resampling cost 2-3x that)."""
    b, h, w, c = pixels.shape
    dev = pixels.device
    dx, dy = shift_px[:, 0:1].to(dev), shift_px[:, 1:2].to(dev)
    cols = torch.arange(w, device=dev).expand(b, w) - dx
    cols = torch.where(mirrored.view(b, 1).to(dev), w - 1 - cols, cols).clamp_(0, w - 1)
    rows = (torch.arange(h, device=dev).expand(b, h) - dy).clamp_(0, h - 1)
    source = (rows[:, :, None] * w + cols[:, None, :]).view(b, h * w, 1).expand(b, h * w, c)
    return torch.gather(pixels.reshape(b, h * w, c), 1, source).view(b, h, w, c)


def mirrored_and_shifted(x: torch.Tensor, mirrored: torch.Tensor, shift_px: torch.Tensor) -> torch.Tensor:
    """:func:`_moved_pixels` of a (B, C, H, W) batch; the result is channels_last (contiguous when ``x`` is not)."""
    out = _moved_pixels(x.permute(0, 2, 3, 1), mirrored, shift_px).permute(0, 3, 1, 2)  # a view for channels_last x
    return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()


def _draws(b: int, h: int, w: int, gen: torch.Generator, flip: bool, shift: float, jitter: float):
    """The random numbers of one batch's augmentation, in one order for both ways of applying them: which images
    are mirrored, their whole-pixel shifts (None: no flip and no shift), brightness (input units) and contrast
    (None: no jitter), each per image."""
    mirrored = torch.rand(b, generator=gen) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    reach = torch.tensor([round(shift * w), round(shift * h)])
    moved = (torch.rand(b, 2, generator=gen) * (2 * reach + 1)).floor().long() - reach if flip or reach.any() else None
    if jitter <= 0:
        return mirrored, moved, None, None
    bright = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * jitter / STD
    contrast = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * jitter
    return mirrored, moved, bright, contrast


def augment(x: torch.Tensor, gen: torch.Generator, flip: bool, shift: float, jitter: float) -> torch.Tensor:
    """Random horizontal flips, whole-pixel translations (up to ``shift`` of the size) and brightness/contrast, per
    image, on a normalised batch. ``x`` itself is never changed."""
    b, _, h, w = x.shape
    mirrored, moved, bright, contrast = _draws(b, h, w, gen, flip, shift, jitter)
    if moved is not None:
        x = mirrored_and_shifted(x, mirrored, moved)
    if contrast is not None:
        bright, contrast = bright.to(x.device, x.dtype), contrast.to(x.device, x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x * contrast).add_(mean * (1 - contrast) + bright)  # (x - mean) * contrast + mean + bright: x's layout kept
    return x


def augmented_input(
    x8: torch.Tensor, gen: torch.Generator, flip: bool, shift: float, jitter: float, channels_last: bool = True
) -> torch.Tensor:
    """``augment(to_input(x8, 3), ...)`` from the cache's bytes in fewer passes: the same draws, the pixels moved as
    bytes (a quarter of the memory traffic), then normalisation and brightness/contrast as one affine map per image.
    The same numbers to float rounding (tested); measured apart, 4.4 ms against 8.6 for a batch of 128 at 64 px (AMX)."""
    b, h, w, _ = x8.shape
    mirrored, moved, bright, contrast = _draws(b, h, w, gen, flip, shift, jitter)
    if moved is not None:
        x8 = _moved_pixels(x8, mirrored, moved)
    scale, offset = 1.0 / (255.0 * STD), -MEAN / STD  # to_input's normalisation: x8 * scale + offset
    x = x8.permute(0, 3, 1, 2).float()  # (B, H, W, 3) permuted: channels_last already
    if contrast is None:
        x = x.mul_(scale).add_(offset)
    else:
        bright, contrast = bright.to(x.device), contrast.to(x.device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True) * scale + offset  # the normalised image's mean
        x = x.mul_(contrast * scale).add_(contrast * offset + (1 - contrast) * mean + bright)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def invert_some(x: torch.Tensor, fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Show ``fraction`` of the batch upside down."""
    if fraction <= 0:
        return x
    mask = (torch.rand(x.shape[0], generator=gen) < fraction).view(-1, 1, 1, 1).to(x.device)
    return torch.where(mask, invert(x), x)


@torch.no_grad()
def split_outputs(model: torch.nn.Module, data, split: str, channels: int, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """The task's predictions (``task.predict``: the flip test where it has one) and the targets of ``split``, in order."""
    pos = data.split_positions(split)
    outs, ys = [], []
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(pos), batch):
        x8, y = data.batch(pos[start : start + batch])
        outs.append(data.task.predict(model, to_input(x8.to(device), channels, channels_last=False)).cpu())
        ys.append(y.cpu())
    return torch.cat(outs), torch.cat(ys)
