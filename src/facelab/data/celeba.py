"""CelebA in its official layout (as downloaded from the authors or by torchvision)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import FacelabError
from .faceset import FileFaceSet, drop_missing
from .images import IMAGE_SUFFIXES
from .sources import data_source
from .tables import align, read_counted_table, read_name_table

ATTR_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
PARTITION_FILE = "list_eval_partition.txt"
ALIGNED_LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
WILD_LANDMARKS_FILE = "list_landmarks_celeba.txt"
BBOX_FILE = "list_bbox_celeba.txt"
ALIGNED_SIZE = (178, 218)
# Official split boundaries by image number, used when list_eval_partition.txt is absent.
OFFICIAL_TRAIN_END, OFFICIAL_VALID_END = 162_770, 182_637

LAYOUT = (
    "expected layout: PATH/list_attr_celeba.txt, PATH/identity_CelebA.txt, PATH/list_eval_partition.txt, "
    "PATH/img_align_celeba/000001.jpg (or PATH/celeba/...)"
)


def _find_root(path: Path) -> Path:
    markers = (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE, "img_align_celeba", "img_celeba")
    for cand in (path, path / "celeba"):
        if cand.is_dir() and any((cand / m).exists() for m in markers):
            return cand
    raise FacelabError(f"{path}: no CelebA files found; {LAYOUT}")


def _image_dir(root: Path, images: str) -> Path:
    name = "img_celeba" if images == "wild" else "img_align_celeba"
    d = root / name
    if (d / name).is_dir():  # archives that unpack into a folder of the same name
        d = d / name
    if not d.is_dir():
        raise FacelabError(f"{root}: image folder {name}/ not found; {LAYOUT}")
    return d


def _official_split(names: list[str]) -> np.ndarray:
    numbers = np.array([int(Path(n).stem) if Path(n).stem.isdigit() else 0 for n in names])
    return np.where(numbers <= OFFICIAL_TRAIN_END, 0, np.where(numbers <= OFFICIAL_VALID_END, 1, 2)).astype(np.int8)


def _reference_size(root: Path) -> tuple[int, int]:
    """Image size the aligned landmarks refer to: 178x218, or what a facelab synth folder says."""
    marker = root / "facelab_synth.json"
    if marker.exists():
        size = json.loads(marker.read_text())["size"]
        return size, size
    return ALIGNED_SIZE


@data_source("celeba", options=("images",))
def load_celeba(path: Path, spec: str, images: str = "aligned") -> FileFaceSet:
    if images not in ("aligned", "wild"):
        raise FacelabError(f"{spec!r}: images must be aligned or wild")
    root = _find_root(path)
    img_dir = _image_dir(root, images)
    present = {e.name for e in os.scandir(img_dir) if e.is_file()}
    fs_kwargs: dict = {}
    missing_files: dict[str, str] = {}

    names: list[str] | None = None
    if (root / ATTR_FILE).exists():
        names, attr_names, values = read_counted_table(root / ATTR_FILE, None, "attribute values (-1/1)")
        if not np.isin(values, (-1, 0, 1)).all():
            bad = int(np.argwhere(~np.isin(values, (-1, 0, 1)))[0, 0])
            raise FacelabError(f"{root / ATTR_FILE}:{bad + 3}: attribute values must be -1 or 1")
        fs_kwargs.update(attr_names=attr_names, attributes=(values > 0).astype(np.uint8))
    else:
        missing_files["attributes"] = f"{root / ATTR_FILE} is missing; {LAYOUT}"

    identity_table = None
    if (root / IDENTITY_FILE).exists():
        identity_table = read_name_table(root / IDENTITY_FILE, 1, "identity", allow_header=True)
        names = names or identity_table[0]
    else:
        missing_files["identities"] = f"{root / IDENTITY_FILE} is missing; {LAYOUT}"

    partition_table = None
    if (root / PARTITION_FILE).exists():
        partition_table = read_name_table(root / PARTITION_FILE, 1, "partition (0/1/2)")
        names = names or partition_table[0]

    if names is None:
        names = sorted(n for n in present if Path(n).suffix.lower() in IMAGE_SUFFIXES)
    if fs_kwargs.get("attributes") is not None and len(fs_kwargs["attributes"]) != len(names):
        raise FacelabError(f"{root / ATTR_FILE}: row count does not match its image list")
    if identity_table is not None:
        fs_kwargs["identities"] = align(names, identity_table[0], identity_table[1], -1)[:, 0]

    notes: list[str] = []
    if partition_table is not None:
        split = align(names, partition_table[0], partition_table[1], 0)[:, 0].astype(np.int8)
    else:
        split = _official_split(names)
        notes.append(f"{PARTITION_FILE} not found: used the official index boundaries (1-162,770 train, 162,771-182,637 valid, rest test)")

    landmark_file = root / (WILD_LANDMARKS_FILE if images == "wild" else ALIGNED_LANDMARKS_FILE)
    if landmark_file.exists():
        lm_names, _, lm = read_counted_table(landmark_file, 10, "landmark coordinates")
        fs_kwargs["landmarks"] = align(names, lm_names, lm, -1).reshape(-1, 5, 2).astype(np.float32)
        # CelebA's 5 points: left eye, right eye, nose, left mouth corner, right mouth corner.
        fs_kwargs["mirror"] = np.array([1, 0, 2, 4, 3])
        if images != "wild":
            fs_kwargs["landmark_ref_size"] = _reference_size(root)
    else:
        missing_files["landmarks"] = f"{landmark_file} is missing; {LAYOUT}"
    if (root / BBOX_FILE).exists():
        bb_names, _, bb = read_counted_table(root / BBOX_FILE, 4, "box values")
        fs_kwargs["boxes"] = align(names, bb_names, bb, -1).astype(np.float32)
    else:
        missing_files["boxes"] = f"{root / BBOX_FILE} is missing; {LAYOUT}"

    fs = FileFaceSet(
        spec=spec,
        source="celeba",
        names=names,
        split=split,
        paths=[img_dir / n for n in names],
        default_crop="box" if images == "wild" and "boxes" in fs_kwargs else "center",
        notes=notes,
        missing_files=missing_files,
        **fs_kwargs,
    )
    return drop_missing(fs, present)
