"""What a data source holds: counts, sizes, labels, splits and problems."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..progress import progress_bar
from ..results import Summary
from .faceset import SPLITS, FaceSet
from .images import UnreadableImage

CHECK_DECODE_SIZE = (32, 32)  # decoding at a reduced scale still finds truncated files


def _probe(fs: FaceSet, i: int) -> tuple[tuple[int, int] | None, str | None]:
    try:
        _, full = fs.load(i, CHECK_DECODE_SIZE)
    except UnreadableImage as exc:
        return None, str(exc)
    return full, None


MOST_COMMON_SIZES = 20  # in-the-wild photo sets have thousands of distinct sizes


@dataclass
class SizeSummary(Summary):
    """How many distinct (width, height), their range, and the most common one with its count."""

    distinct: int
    min: list[int]
    max: list[int]
    most_common: list[int]
    most_common_count: int

    def in_words(self) -> str:
        (w0, h0), (w1, h1) = self.min, self.max
        common = "x".join(map(str, self.most_common))
        return f"{self.distinct} distinct; widths {w0}-{w1}, heights {h0}-{h1}; most common {common} ({self.most_common_count} images)"


@dataclass
class DataInfo(Summary):
    """``facelab data info --json`` (docs/json.md): the images, their sizes, labels and splits, and any problem."""

    source: str
    n_images: int
    image_sizes: list[list[int]]
    image_size_summary: SizeSummary | None
    attributes: list[str] | None
    attribute_counts: dict[str, int] | None
    n_identities: int | None
    n_landmarks: int | None
    has_boxes: bool
    splits: dict[str, int]
    problems: list[str]
    notes: list[str]


def size_summary(sizes: Counter) -> SizeSummary | None:
    if not sizes:
        return None
    ((common, count),) = sizes.most_common(1)
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return SizeSummary(len(sizes), [min(widths), min(heights)], [max(widths), max(heights)], list(common), count)


def attribute_counts(fs: FaceSet) -> dict[str, int] | None:
    """How many images have each attribute (a 1), for sets with attributes."""
    if fs.attributes is None or not fs.attr_names:
        return None
    return {name: int(n) for name, n in zip(fs.attr_names, (np.asarray(fs.attributes) > 0).sum(0))}


def data_info(fs: FaceSet, quiet: bool = False) -> DataInfo:
    """The JSON of ``facelab data info``; decodes every image (fast, reduced scale) to find bad files."""
    sizes: Counter = Counter()
    unreadable: list[str] = []
    if fs.source == "synth":
        sizes[fs.image_size(0)] = len(fs)
    else:
        with progress_bar(f"checking {len(fs)} images", len(fs), quiet) as advance, ThreadPoolExecutor(4) as pool:
            for full, err in pool.map(lambda i: _probe(fs, i), range(len(fs))):
                advance(1)
                if err:
                    unreadable.append(err)
                else:
                    sizes[full] += 1
    problems = list(fs.problems)
    if unreadable:
        problems.append(f"{len(unreadable)} unreadable images (skipped when caching): " + "; ".join(unreadable[:5]))
    return DataInfo(
        source=fs.source,
        n_images=len(fs),
        image_sizes=[list(s) for s, _ in sizes.most_common(MOST_COMMON_SIZES)],
        image_size_summary=size_summary(sizes),
        attributes=list(fs.attr_names) if fs.attr_names else None,
        attribute_counts=attribute_counts(fs),
        n_identities=int(len(np.unique(fs.identities))) if fs.identities is not None else None,
        n_landmarks=fs.n_landmarks,
        has_boxes=fs.boxes is not None,
        splits={name: int((fs.split == k).sum()) for k, name in enumerate(SPLITS)},
        problems=problems,
        notes=list(fs.notes),
    )


def info_rows(info: DataInfo) -> list[tuple[str, str]]:
    """``data_info``'s result as (key, text) rows for a table: lists joined, the image sizes summarised."""
    rows = []
    for key, value in info.to_json().items():
        if key in ("problems", "notes"):
            value = "\n".join(value) or "none"
        elif key == "attributes" and value:
            value = f"{len(value)}: " + ", ".join(value)
        elif key == "image_sizes":
            continue  # summarised in image_size_summary
        elif key == "image_size_summary" and info.image_size_summary is not None:
            value = info.image_size_summary.in_words()
        rows.append((key, str(value)))
    return rows
