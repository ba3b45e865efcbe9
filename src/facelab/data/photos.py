"""The user's photos as a command reads them: a file, a folder (``folder:PATH`` or a plain path, searched
recursively), or any data SPEC (its images at full resolution), each with a name for reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..errors import FacelabError
from ..results import Summary

if TYPE_CHECKING:
    from .faceset import FaceSet
from .images import IMAGE_SUFFIXES, SkippedImages, looks_like_image, read_rgb, walk_files


def photo_files(source: str) -> list[Path]:
    """The images of ``folder:PATH`` (searched recursively), sorted."""
    path = Path(source.removeprefix("folder:"))
    if not path.is_dir():
        raise FacelabError(f"{source}: not a folder of photos (give folder:PATH)")
    files = [p for p in walk_files(path) if looks_like_image(p)]
    if not files:
        raise FacelabError(f"{path}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


@dataclass
class FacesFound(Summary):
    """What a pass over the user's photos found (``facelab predict``, ``landmarks``): the faces, one entry each, and
    the photos with none or that could not be read."""

    data: str
    detector: str | None
    n_images: int
    n_faces: int
    no_face: list[str]
    unreadable: list[str]
    faces: list[dict[str, Any]]

    def in_words(self) -> str:
        return f"{self.n_faces} faces in {self.n_images} photos; no face found in {len(self.no_face)}: {', '.join(self.no_face) or '-'}"


class Photos:
    """``Photos(source)``: ``names`` (paths relative to the folder, or the set's item names), ``paths`` (the files,
    None for sets whose images are not files) and :meth:`read` through the unreadable-image policy."""

    def __init__(self, source: str, strict: bool = False):
        self.source, self.skipped = source, SkippedImages(strict)
        path = Path(source.removeprefix("folder:"))
        self.faceset: FaceSet | None = None
        self.root: Path | None = None
        self.paths: list[Path] | None
        if path.is_file():
            self.root, self.paths = path.parent, [path]
        elif source.startswith("folder:") or path.is_dir():
            self.root, self.paths = path, photo_files(f"folder:{path}")
        else:
            from .spec import open_spec

            self.faceset = open_spec(source)
            self.paths = getattr(self.faceset, "paths", None)
        if self.root is not None and self.paths is not None:
            self.names = [str(p.relative_to(self.root)) for p in self.paths]
        else:
            assert self.faceset is not None  # a set, when not a file or a folder
            self.names = list(self.faceset.names)

    def __len__(self) -> int:
        return len(self.names)

    def read(self, k: int) -> np.ndarray | None:
        """Photo ``k`` as (H, W, 3) uint8 RGB, or None (named in ``skipped``) when it cannot be read."""
        if self.paths is None:  # a set whose images are not files
            faceset = self.faceset
            assert faceset is not None
            return self.skipped.call(self.names[k], lambda: faceset.load(k)[0])
        read = self.skipped.call(self.names[k], read_rgb, self.paths[k])
        return None if read is None else read[0]

    def __iter__(self) -> Iterator[tuple[int, str, np.ndarray]]:
        """(position, name, photo) of every readable photo."""
        for k, name in enumerate(self.names):
            photo = self.read(k)
            if photo is not None:
                yield k, name, photo
