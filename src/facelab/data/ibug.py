"""iBUG 300-W: .pts files beside the images, or dlib's XML (imglab) lists, 68 points."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import FacelabError
from .faceset import FileFaceSet, drop_missing
from .images import IMAGE_SUFFIXES
from .landmark_layouts import IBUG68_MIRROR

TEST_FOLDERS = ("testset", "ibug", "test")
VALID_EVERY = 10  # every 10th training image is held out for validation


def parse_pts(path: Path) -> np.ndarray:
    """(68, 2) 0-based pixel coordinates from a .pts file (which counts from 1)."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    try:
        n = int(next(ln for ln in lines if ln.startswith("n_points")).split(":")[1])
        start = lines.index("{") + 1
        end = lines.index("}", start)
    except (StopIteration, ValueError, IndexError):
        raise FacelabError(f"{path}: expected 'version: 1', 'n_points: 68', '{{', points, '}}'") from None
    if end - start != n:
        raise FacelabError(f"{path}: n_points says {n} but {end - start} point lines follow")
    pts = np.zeros((n, 2), dtype=np.float32)
    for k, ln in enumerate(lines[start:end]):
        try:
            x, y = (float(v) for v in ln.split())
        except ValueError:
            raise FacelabError(f"{path}:{start + k + 1}: expected 'x y', got {ln[:80]!r}") from None
        pts[k] = (x - 1.0, y - 1.0)
    return pts


def _split_for(rel: str, index: int) -> int:
    parts = [p.lower() for p in Path(rel).parts]
    if any(t in parts for t in TEST_FOLDERS):
        return 2
    return 1 if index % VALID_EVERY == VALID_EVERY - 1 else 0


def _from_pts(root: Path, spec: str) -> FileFaceSet:
    pts_files = sorted(root.rglob("*.pts"))
    names, paths, lms, problems = [], [], [], []
    for pf in pts_files:
        img = next((pf.with_suffix(s) for s in IMAGE_SUFFIXES | {".JPG", ".PNG"} if pf.with_suffix(s).exists()), None)
        if img is None:
            problems.append(f"{pf.relative_to(root)}: no image beside it, skipped")
            continue
        names.append(str(img.relative_to(root)))
        paths.append(img)
        lms.append(parse_pts(pf))
    return _faceset(spec, names, paths, np.stack(lms) if lms else np.zeros((0, 68, 2)), None, problems)


def _from_xml(xml_files: list[Path], spec: str) -> FileFaceSet:
    names, paths, lms, boxes, problems = [], [], [], [], []
    for xf in xml_files:
        try:
            tree = ET.parse(xf)
        except ET.ParseError as exc:
            raise FacelabError(f"{xf}: not valid XML ({exc})") from None
        for image in tree.iter("image"):
            for box in image.iter("box"):
                parts = sorted(box.iter("part"), key=lambda p: int(p.get("name")))
                if len(parts) != 68:
                    problems.append(f"{xf.name}: {image.get('file')} has {len(parts)} parts, skipped")
                    continue
                file = image.get("file")
                names.append(file)
                paths.append(xf.parent / file)
                lms.append([[float(p.get("x")), float(p.get("y"))] for p in parts])
                boxes.append([float(box.get(k)) for k in ("left", "top", "width", "height")])
    fs = _faceset(
        spec,
        names,
        paths,
        np.asarray(lms, dtype=np.float32).reshape(-1, 68, 2),
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        problems,
    )
    is_test = np.array(["test" in Path(n).parts[0].lower() or "test" in str(n).lower() for n in names])
    fs.split = np.where(is_test, 2, fs.split).astype(np.int8)
    return fs


def _faceset(spec, names, paths, landmarks, boxes, problems) -> FileFaceSet:
    if not names:
        raise FacelabError(f"{spec}: no annotated 300-W faces found (expected IMAGE.pts beside each image, or dlib XML)")
    fs = FileFaceSet(
        spec=spec,
        source="300w",
        names=names,
        paths=paths,
        split=np.array([_split_for(n, i) for i, n in enumerate(names)], dtype=np.int8),
        landmarks=landmarks.astype(np.float32),
        boxes=boxes,
        mirror=IBUG68_MIRROR,
        default_crop="box" if boxes is not None else "landmarks",
        problems=problems,
    )
    return drop_missing(fs)


def load_300w(path: Path, spec: str) -> FileFaceSet:
    if path.is_file() and path.suffix.lower() == ".xml":
        return _from_xml([path], spec)
    if not path.is_dir():
        raise FacelabError(f"{path}: not found; expected a 300-W folder (images + .pts) or a dlib XML file")
    if any(path.rglob("*.pts")):
        return _from_pts(path, spec)
    xml_files = sorted(path.glob("*.xml"))
    if xml_files:
        return _from_xml(xml_files, spec)
    raise FacelabError(f"{path}: no .pts files and no dlib XML found; expected IMAGE.pts beside each image")
