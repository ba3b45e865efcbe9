"""``facelab data show``: a contact sheet of a data set with landmarks and, for synth, region masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.cache import decode_item
from ..data.faceset import FaceSet
from ..data.images import SkippedImages
from ..errors import FacelabError
from ..files import prepare_output_file
from .figures import image_grid

MASK_TINT = np.array([255, 0, 255], dtype=np.float32)


def _tinted(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = img.astype(np.float32)
    out[mask] = out[mask] * 0.55 + MASK_TINT * 0.45
    return out.astype(np.uint8)


def contact_sheet(fs: FaceSet, n: int, size: int, path: Path, strict: bool = False) -> Path:
    """The first ``n`` readable images with landmarks; synthetic faces also shown with one region mask each.
    Unreadable images are skipped and named (``strict``: the first one is an error)."""
    path = prepare_output_file(path)
    skipped = SkippedImages(strict)
    images, captions, points = [], [], []
    masks_of = getattr(fs, "masks", None)
    margin = 0.0 if fs.default_crop in ("full", "center") else 0.15
    for i in range(len(fs)):
        if len(captions) >= n * (2 if masks_of is not None else 1):
            break
        decoded = skipped.call(fs.names[i], decode_item, fs, i, (size, size), fs.default_crop, margin)
        if decoded is None:
            continue
        img, pts = decoded
        images.append(img)
        captions.append(fs.names[i][-14:])
        points.append(pts)
        if masks_of is not None:
            k = i % len(fs.attr_names)
            mask = masks_of(i, size)[k]
            on = int(fs.attributes[i, k])
            images.append(_tinted(img, mask))
            captions.append(f"{fs.attr_names[k]}={on}")
            points.append(None)
    skipped.say()
    if not images:
        raise FacelabError(f"{fs.spec}: none of its images could be read")
    return image_grid(images, captions, Path(path), cols=8, points=points)
