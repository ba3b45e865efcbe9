"""One interface for every face data source: names, labels, splits and a way to decode an image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import FacelabError
from .images import read_header_size, read_rgb

SPLITS = ("train", "valid", "test")


Group = dict[str, int | str]  # a group of faces: each grouping attribute's value, {} for everyone


def group_label(group: Group) -> str:
    """``Male=1, race=Black``: a group of faces as people read it (the empty group, everyone, is "")."""
    return ", ".join(f"{k}={v}" for k, v in group.items())


@dataclass
class FaceSet:
    """Images plus whatever labels the source has; arrays are aligned with ``names``.

    ``landmarks`` are (n, K, 2) float32 pixel coordinates; when ``landmark_ref_size`` is
    set they are given for images of that (width, height) and are scaled to the real size
    of each image when it is decoded (downscaled CelebA copies).
    """

    spec: str
    renders: ClassVar[bool] = False  # images drawn at the size asked (synthetic faces): nothing to crop from a file
    source: str
    names: list[str]
    split: np.ndarray
    attr_names: list[str] | None = None
    attributes: np.ndarray | None = None
    identities: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    landmark_ref_size: tuple[int, int] | None = None
    boxes: np.ndarray | None = None
    mirror: np.ndarray | None = None
    classes: list[str] | None = None
    default_crop: str = "center"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing_files: dict[str, str] = field(default_factory=dict)
    index: np.ndarray | None = None  # positions in the source as opened (None: all, in order)
    # attributes with several values: a name -> the one-hot attribute columns that hold its values, in order
    # (UTKFace: race -> White, Black, Asian, Indian, Others); the columns stay training targets, the name groups
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    # --- decoding -----------------------------------------------------------------
    def load(self, i: int, min_size: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
        """HxWx3 uint8 RGB of item ``i`` and its full-resolution (width, height)."""
        raise NotImplementedError

    def image_size(self, i: int) -> tuple[int, int]:
        raise NotImplementedError

    def load_item(self, i: int, min_size: tuple[int, int] | None = None):
        """(image, full (width, height), landmarks in the decoded image's pixels or None)."""
        img, full = self.load(i, min_size)
        pts = self.landmarks_for(i, full)
        if pts is not None and img.shape[1] != full[0]:  # decoded at a reduced scale: pixel centres move as (p + 0.5) * s - 0.5
            pts = (pts + 0.5) * np.array([img.shape[1] / full[0], img.shape[0] / full[1]], dtype=np.float32) - 0.5
        return img, full, pts

    @property
    def n_landmarks(self) -> int | None:
        return None if self.landmarks is None else int(self.landmarks.shape[1])

    def landmarks_for(self, i: int, full_size: tuple[int, int]) -> np.ndarray | None:
        if self.landmarks is None:
            return None
        pts = self.landmarks[i].astype(np.float32)
        if self.landmark_ref_size is not None:
            rw, rh = self.landmark_ref_size
            pts = pts * np.array([full_size[0] / rw, full_size[1] / rh], dtype=np.float32)
        return pts

    # --- selections ---------------------------------------------------------------
    def _take_extra(self, idx: np.ndarray) -> dict:
        """Fields of a subclass that are aligned with ``names``."""
        return {}

    def take(self, idx) -> "FaceSet":
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(
            self,
            names=[self.names[i] for i in idx],
            split=self.split[idx],
            attributes=pick(self.attributes),
            identities=pick(self.identities),
            landmarks=pick(self.landmarks),
            boxes=pick(self.boxes),
            problems=list(self.problems),
            notes=list(self.notes),
            index=(np.arange(len(self)) if self.index is None else self.index)[idx],
            **self._take_extra(idx),
        )

    def source_rows(self) -> np.ndarray:
        """Positions of these items in the source as opened (rows of its cache)."""
        return np.arange(len(self)) if self.index is None else self.index

    def split_indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == SPLITS.index(split))

    def fingerprint(self) -> str:
        """Hash of the item list: a cache built from another list is rebuilt."""
        h = hashlib.sha1(self.spec.encode())
        h.update("\n".join(self.names).encode())
        return h.hexdigest()[:16]

    # --- labels a task needs --------------------------------------------------------
    def require(self, what: str, use: str) -> None:
        """Stop with one line naming the missing annotation file when ``use`` (``--task attr``, ``--crop box``) needs it."""
        have = {
            "attributes": self.attributes is not None,
            "identities": self.identities is not None,
            "landmarks": self.n_landmarks is not None,
            "boxes": self.boxes is not None,
        }[what]
        if not have:
            hint = self.missing_files.get(what, f"this {self.source} data set has no {what}")
            raise FacelabError(f"{self.spec}: {use} needs {what}; {hint}")

    def group_names(self) -> list[str]:
        """What faces can be grouped by: each attribute, each attribute with several values (and, on synthetic faces,
        ``background``)."""
        return [*(self.attr_names or []), *self.categories, *(["background"] if getattr(self, "background", None) is not None else [])]

    def group_values(self, name: str) -> np.ndarray:
        """Per item, the value of ``name`` to group by: 0/1 for an attribute, the value's name for an attribute with
        several values ("unknown" where none of its columns is set), the background colour's number."""
        if name in self.categories:
            values = np.array([*self.categories[name], "unknown"], dtype=object)
            onehot = self.attributes[:, self.attr_index(list(self.categories[name]))]
            return values[np.where(onehot.any(1), onehot.argmax(1), len(values) - 1)]
        if name == "background" and getattr(self, "background", None) is not None:
            return self.background.astype(int)
        if self.attr_names and name in self.attr_names:
            return self.attributes[:, self.attr_names.index(name)].astype(int)
        raise FacelabError(f"--by {name!r}: not an attribute of {self.spec}; group by {', '.join(self.group_names())}")

    def attr_index(self, names: list[str]) -> list[int]:
        self.require("attributes", "--task attr")
        unknown = [n for n in names if n not in self.attr_names]
        if unknown:
            raise FacelabError(f"unknown attribute {', '.join(unknown)}; valid names: {', '.join(self.attr_names)}")
        return [self.attr_names.index(n) for n in names]


@dataclass
class FileFaceSet(FaceSet):
    """A FaceSet whose images are files on disk."""

    paths: list[Path] = field(default_factory=list)

    def _take_extra(self, idx):
        return {"paths": [self.paths[i] for i in idx]}

    def load(self, i, min_size=None):
        return read_rgb(self.paths[i], min_size)

    def image_size(self, i):
        return read_header_size(self.paths[i])

    def fingerprint(self) -> str:
        h = hashlib.sha1(self.spec.encode())
        h.update("\n".join(str(p) for p in self.paths).encode())
        return h.hexdigest()[:16]


def drop_missing(fs: FileFaceSet, present: set[str] | None = None) -> FileFaceSet:
    """Exclude items whose image file is absent, and report them (users often hold a subset)."""
    exists = np.array([(p.name in present) if present is not None else p.exists() for p in fs.paths], dtype=bool)
    n_missing = int((~exists).sum())
    if n_missing == 0:
        return fs
    examples = ", ".join(fs.names[i] for i in np.flatnonzero(~exists)[:3])
    kept = fs.take(np.flatnonzero(exists))
    kept.problems.append(f"{n_missing} listed images are missing on disk and were excluded (e.g. {examples})")
    return kept
