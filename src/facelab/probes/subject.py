"""What a probe looks at: one image (a file, or ``SPEC#ITEM`` of a data set) prepared for a run's network.

For synthetic items the ground-truth region masks come along, so figures and scores can
say whether a change or an attribution falls where the attribute is decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.cache import DEFAULT_MARGIN, decode_item, parse_size
from ..data.detect import resize_to
from ..data.images import read_rgb
from ..data.regions import five_points, region_masks
from ..errors import FacelabError
from ..hardware import Runtime
from ..run import Run


@dataclass
class Subject:
    name: str
    image: np.ndarray  # (H, W, 3) uint8 at the network's input size
    masks: dict[str, np.ndarray] | None = None  # attribute -> (H, W) bool, synthetic items only
    labels: dict[str, int] | None = None
    face: np.ndarray | None = None  # (H, W) bool: the face, drawn from the item's landmarks where it has them

    def mask(self, attr: str) -> np.ndarray | None:
        return None if self.masks is None else self.masks.get(attr)


def pixels_to_uint8(p: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) [0, 1] -> (H, W, 3) uint8 (grey repeated)."""
    img = p[0].detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else np.ascontiguousarray(img)


def _item_index(fs, item: str, spec: str) -> int:
    if item in fs.names:
        return fs.names.index(item)
    try:
        i = int(item)
    except ValueError:
        raise FacelabError(f"{spec}#{item}: no item named {item!r} (give a file name of the set or a position from 0)") from None
    if not 0 <= i < len(fs):
        raise FacelabError(f"{spec}#{item}: position out of range; the set has {len(fs)} items (0..{len(fs) - 1})")
    return i


def subject_from_item(fs, i: int, size: tuple[int, int], crop: str | None = None) -> Subject:
    """Item ``i`` of a data set decoded as the cache would, with its labels and (synthetic) masks."""
    crop = crop or fs.default_crop
    img, points = decode_item(fs, i, size, crop, DEFAULT_MARGIN[crop])
    masks = None
    if hasattr(fs, "masks") and size[0] == size[1]:
        masks = dict(zip(fs.attr_names, fs.masks(i, size[0])))
    labels = dict(zip(fs.attr_names, fs.attributes[i].tolist())) if fs.attributes is not None else None
    five = five_points(points) if points is not None else None
    face = region_masks(five, size)["face"] if five is not None else None
    return Subject(fs.names[i], img, masks, labels, face)


def load_subject(image: str | Path, size: str | tuple[int, int], crop: str | None = None) -> Subject:
    """``image`` is a file path or ``SPEC#ITEM`` (``synth:64#3``, ``celeba:/data/celeba#000123.jpg``)."""
    from ..data.spec import open_spec

    size = parse_size(size) if isinstance(size, (str, int)) else size
    text = str(image)
    if "#" in text and not Path(text).exists():
        spec, item = text.rsplit("#", 1)
        fs = open_spec(spec)
        return subject_from_item(fs, _item_index(fs, item, spec), size, crop)
    path = Path(text)
    if not path.is_file():
        raise FacelabError(f"{path}: no such image file (give a file, or SPEC#ITEM such as synth:64#3)")
    img, _ = read_rgb(path)  # UnreadableImage names the file
    return Subject(path.name, resize_to(img, size))


def open_probe(run: str | Path | Run, image: str | Path, runtime: Runtime | None = None) -> tuple[Run, Subject]:
    """The run opened for probes on ``runtime`` (:meth:`Run.for_probes`) and the image prepared for its network."""
    opened = Run.for_probes(run, runtime)
    return opened, load_subject(image, opened.contract.size)


def named_probabilities(run: Run, logits: torch.Tensor, top: int = 5) -> dict[str, float]:
    """One image's logits as {name: probability}: every attribute, or the ``top`` most probable classes."""
    probs = run.task.probabilities(logits[None])[0]
    order = range(len(run.outputs)) if run.task.binary else probs.argsort(descending=True)[:top].tolist()
    return {run.outputs[k]: float(probs[k]) for k in order}
