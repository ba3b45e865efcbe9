"""What a data source holds: counts, sizes, labels, splits and problems."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..progress import progress_bar
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


def size_summary(sizes: Counter) -> dict | None:
    """How many distinct (width, height), their range, and the most common one with its count."""
    if not sizes:
        return None
    ((common, count),) = sizes.most_common(1)
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return {
        "distinct": len(sizes),
        "min": [min(widths), min(heights)],
        "max": [max(widths), max(heights)],
        "most_common": list(common),
        "most_common_count": count,
    }


def attribute_counts(fs: FaceSet) -> dict[str, int] | None:
    """How many images have each attribute (a 1), for sets with attributes."""
    if fs.attributes is None or not fs.attr_names:
        return None
    return {name: int(n) for name, n in zip(fs.attr_names, (np.asarray(fs.attributes) > 0).sum(0))}


def data_info(fs: FaceSet, quiet: bool = False) -> dict:
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
    return {
        "source": fs.source,
        "n_images": len(fs),
        "image_sizes": [list(s) for s, _ in sizes.most_common(MOST_COMMON_SIZES)],
        "image_size_summary": size_summary(sizes),
        "attributes": list(fs.attr_names) if fs.attr_names else None,
        "attribute_counts": attribute_counts(fs),
        "n_identities": int(len(np.unique(fs.identities))) if fs.identities is not None else None,
        "n_landmarks": fs.n_landmarks,
        "has_boxes": fs.boxes is not None,
        "splits": {name: int((fs.split == k).sum()) for k, name in enumerate(SPLITS)},
        "problems": problems,
        "notes": list(fs.notes),
    }


def info_rows(info: dict) -> list[tuple[str, str]]:
    """``data_info``'s result as (key, text) rows for a table: lists joined, the image sizes summarised."""
    rows = []
    for key, value in info.items():
        if isinstance(value, list) and key in ("problems", "notes"):
            value = "\n".join(value) or "none"
        elif key == "attributes" and value:
            value = f"{len(value)}: " + ", ".join(value)
        elif key == "image_sizes":
            continue  # summarised in image_size_summary
        elif key == "image_size_summary" and value:
            (w0, h0), (w1, h1), common = value["min"], value["max"], "x".join(map(str, value["most_common"]))
            value = (
                f"{value['distinct']} distinct; widths {w0}-{w1}, heights {h0}-{h1}; "
                f"most common {common} ({value['most_common_count']} images)"
            )
        rows.append((key, str(value)))
    return rows
