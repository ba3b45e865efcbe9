"""The IMM face database: NN-Vg.jpg images with .asf files of 58 relative landmark coordinates."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import FacelabError
from .faceset import FileFaceSet
from .images import UnreadableImage, read_header_size
from .landmark_layouts import IMM58_MIRROR
from .sources import data_source

NAME_RE = re.compile(r"^(\d{2})-(\d)([mf])$")
TRAIN_PERSONS = range(1, 33)  # persons 1-32 train, 33-40 valid (the usual IMM protocol)


def parse_asf(path: Path) -> np.ndarray:
    """Relative (x, y) of every point in an .asf file, in point order, shape (n, 2)."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    body = [(no, ln) for no, ln in enumerate(lines, start=1) if ln and not ln.startswith("#")]
    if not body or not body[0][1].isdigit():
        raise FacelabError(f"{path}:{body[0][0] if body else 1}: expected the number of points")
    n = int(body[0][1])
    if len(body) < n + 1:
        raise FacelabError(f"{path}: declares {n} points but has {len(body) - 1} point lines")
    pts = np.zeros((n, 2), dtype=np.float32)
    for no, ln in body[1 : n + 1]:
        parts = ln.split()
        try:
            x, y, k = float(parts[2]), float(parts[3]), int(parts[4])
        except (IndexError, ValueError):
            raise FacelabError(f"{path}:{no}: expected 'path type x_rel y_rel point# from to', got {ln[:80]!r}") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise FacelabError(f"{path}:{no}: coordinates must be finite numbers, got {x} {y}")
        if not 0 <= k < n:
            raise FacelabError(f"{path}:{no}: point number {k} outside 0..{n - 1}")
        pts[k] = (x, y)
    return pts


@data_source("imm")
def load_imm(path: Path, spec: str) -> FileFaceSet:
    if not path.is_dir():
        raise FacelabError(f"{path}: not a folder; expected the IMM files NN-Vg.jpg + NN-Vg.asf")
    asfs = sorted(path.rglob("*.asf"))
    if not asfs:
        raise FacelabError(f"{path}: no .asf files found; expected IMM pairs like 01-1m.jpg + 01-1m.asf")
    names, paths, rel, persons, male, problems = [], [], [], [], [], []
    for asf in asfs:
        img = next((asf.with_suffix(s) for s in (".jpg", ".JPG", ".png") if asf.with_suffix(s).exists()), None)
        if img is None:
            problems.append(f"{asf.name}: image {asf.stem}.jpg missing, skipped")
            continue
        m = NAME_RE.match(asf.stem)
        rel.append(parse_asf(asf))
        names.append(img.name)
        paths.append(img)
        persons.append(int(m.group(1)) if m else 0)
        male.append(1 if m and m.group(3) == "m" else 0)
    counts = {len(r) for r in rel}
    if len(counts) > 1:
        raise FacelabError(f"{path}: .asf files disagree on the number of points ({sorted(counts)})")
    landmarks = np.zeros((len(rel), rel[0].shape[0] if rel else 58, 2), dtype=np.float32)
    keep = []
    for i, (p, r) in enumerate(zip(paths, rel)):
        try:
            w, h = read_header_size(p)
        except UnreadableImage as exc:
            problems.append(f"unreadable image skipped: {exc}")
            continue
        landmarks[i] = r * np.array([w, h], dtype=np.float32)
        keep.append(i)
    persons_arr = np.array(persons, dtype=np.int64)
    fs = FileFaceSet(
        spec=spec,
        source="imm",
        names=names,
        paths=paths,
        split=np.where(np.isin(persons_arr, list(TRAIN_PERSONS)), 0, 1).astype(np.int8),
        identities=persons_arr,
        attr_names=["Male"],
        attributes=np.array(male, dtype=np.uint8)[:, None],
        landmarks=landmarks,
        mirror=IMM58_MIRROR if landmarks.shape[1] == 58 else None,
        default_crop="full",
        problems=problems,
    )
    return fs.take(keep) if len(keep) != len(names) else fs
