"""Any folder of images, optionally one subfolder per class (person)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FacelabError
from .detect import dlib_installed
from .faceset import FileFaceSet
from .images import IMAGE_SUFFIXES, looks_like_image
from .sources import data_source


def split_by_position(n: int) -> np.ndarray:
    """80/10/10 by position: the 9th of every 10 items validates, the 10th tests."""
    pos = np.arange(n)
    return np.where(pos % 10 == 8, 1, np.where(pos % 10 == 9, 2, 0)).astype(np.int8)


def _split_within_class(counts: list[int]) -> np.ndarray:
    """80/10/10 per class by position, so every class appears in every split it can."""
    return np.concatenate([split_by_position(n) for n in counts]) if counts else np.zeros(0, np.int8)


@data_source("folder")
def load_folder(path: Path, spec: str) -> FileFaceSet:
    if not path.is_dir():
        raise FacelabError(f"{path}: not a folder of images")
    is_image = lambda p: p.is_file() and looks_like_image(p)  # noqa: E731
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and any(is_image(p) for p in d.iterdir()))
    groups = [(d.name, sorted(p for p in d.iterdir() if is_image(p))) for d in subdirs]
    loose = sorted(p for p in path.iterdir() if is_image(p))
    if loose or not groups:
        groups = [("", loose)] + groups if loose else groups
    files = [p for _, ps in groups for p in ps]
    if not files:
        raise FacelabError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, or image files by their content)")
    has_classes = bool(subdirs)
    classes = [name for name, _ in groups]
    return FileFaceSet(
        spec=spec,
        source="folder",
        names=[str(p.relative_to(path)) for p in files],
        paths=files,
        split=_split_within_class([len(ps) for _, ps in groups]),
        identities=np.concatenate([np.full(len(ps), k) for k, (_, ps) in enumerate(groups)]) if has_classes else None,
        classes=classes if has_classes else None,
        default_crop="detect" if dlib_installed() else "center",
    )
