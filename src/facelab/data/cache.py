"""Decode-once cache: every image decoded, cropped and resized once into one uint8 array.

Layout of a cache folder:
  images.u8      raw uint8 array (N, H, W, 3), memory-mapped at training time
  landmarks.f32  raw float32 (N, K, 2) in cache pixels (only when the source has landmarks)
  valid.u8       1 for each image that decoded, 0 for corrupt/truncated ones
  labels.npz     attributes, identities, split, names (aligned with images.u8)
  meta.json      what it was built from; written last, so a folder without it is unfinished
  progress.json  during a build: the finished chunks, so an interrupted build resumes
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, NotRequired, TypedDict

import cv2
import numpy as np

from ..errors import FacelabError
from ..files import prepare_output, write_json
from ..hardware import thread_count
from ..progress import progress_bar, say
from ..ranges import SIZE_BOUNDS, range_text
from .detect import DEFAULT_FACE_MARGIN
from .face_crops import FACE_COLUMNS, FACE_CROPS, FaceFinder, FinderDescription, check_face_crop, decode_face
from .faceset import FaceSet
from .images import UnreadableImage

CACHE_VERSION = 1
CHUNK = 256
CROPS = ("center", "full", "box", "landmarks", *FACE_CROPS)
DEFAULT_MARGIN = {"box": 0.15, "landmarks": 0.3, "center": 0.0, "full": 0.0, **{c: DEFAULT_FACE_MARGIN[c] for c in FACE_CROPS}}
IN_PROCESS_BELOW = 3000  # smaller sets are built without worker processes (start-up costs more)


def default_cache_root() -> Path:
    return Path(os.environ.get("FACELAB_CACHE", Path.home() / ".cache" / "facelab"))


def parse_size(text: str | int) -> tuple[int, int]:
    """``64`` or ``80x60`` (width x height) -> (width, height), each side within SIZE_BOUNDS (0 or -8 would build a
    broken cache)."""
    try:
        if isinstance(text, int) or "x" not in str(text).lower():
            size = int(text), int(text)
        else:
            w, h = str(text).lower().split("x")
            size = int(w), int(h)
    except ValueError:
        raise FacelabError(f"--size {text!r}: expected a number of pixels like 64, or WIDTHxHEIGHT like 80x60") from None
    if not all(SIZE_BOUNDS[0] <= side <= SIZE_BOUNDS[1] for side in size):
        raise FacelabError(f"--size {text}: out of range; give {range_text(SIZE_BOUNDS)} pixels a side (64, or 80x60)")
    return size


# ----------------------------------------------------------------------------- one image
def crop_box(fs: FaceSet, i: int, full: tuple[int, int], crop: str, margin: float, aspect: float, points=None):
    """(x0, y0, x1, y1) in full-image pixels, with the target's aspect ratio (w / h). ``points``: the item's landmarks
    in full-image pixels where the set computes them when it decodes (synthetic faces) instead of listing them."""
    w, h = full
    if crop == "full":
        return 0.0, 0.0, float(w), float(h)
    if crop == "box":
        x, y, bw, bh = (float(v) for v in fs.boxes[i])
        if bw <= 0 or bh <= 0:
            raise UnreadableImage(f"{fs.names[i]}: no usable bounding box")
        cx, cy, cw, ch = x + bw / 2, y + bh / 2, bw, bh
    elif crop == "landmarks":
        pts = fs.landmarks_for(i, full) if points is None else points
        lo, hi = pts.min(0), pts.max(0)
        cx, cy = (lo + hi) / 2
        cw, ch = hi - lo
    else:  # centre: the largest centred region of the target's aspect
        cx, cy, cw, ch = w / 2, h / 2, float(w), float(h)
    cw, ch = cw * (1 + 2 * margin), ch * (1 + 2 * margin)
    if crop == "center":
        cw, ch = min(cw, ch * aspect), min(ch, cw / aspect)
    else:
        cw, ch = max(cw, ch * aspect), max(ch, cw / aspect)
    return cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2


def _load_region(fs: FaceSet, i: int, size: tuple[int, int], crop: str, margin: float):
    """Item ``i`` decoded at a scale near ``size``, its landmarks in that image's pixels, the integer crop
    region (ix0, iy0, ix1, iy1) in them, and the decoded/full scale (sx, sy)."""
    tw, th = size
    if crop in ("center", "full") or fs.renders:
        want = size if crop != "center" else (max(size), max(size))
        img, full, pts = fs.load_item(i, want)
    else:
        full = fs.image_size(i)
        x0, y0, x1, y1 = crop_box(fs, i, full, crop, margin, tw / th)
        r = min((x1 - x0) / tw, (y1 - y0) / th)
        img, full, pts = fs.load_item(i, (max(1, int(full[0] / r)), max(1, int(full[1] / r))))
    sx, sy = img.shape[1] / full[0], img.shape[0] / full[1]
    computed = pts is not None and fs.landmarks is None  # synthetic faces: points come with the rendering
    full_pts = (pts + 0.5) / np.array([sx, sy], dtype=np.float32) - 0.5 if computed else None
    x0, y0, x1, y1 = crop_box(fs, i, full, crop, margin, tw / th, full_pts)
    x0, x1, y0, y1 = x0 * sx, x1 * sx, y0 * sy, y1 * sy
    region = int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))
    return img, pts, region, (sx, sy)


def decode_item(fs: FaceSet, i: int, size: tuple[int, int], crop: str, margin: float):
    """Item ``i`` cropped and resized to ``size``; landmarks mapped into the result's pixels."""
    tw, th = size
    img, pts, (ix0, iy0, ix1, iy1), _ = _load_region(fs, i, size, crop, margin)
    # Integer crop with edge padding where the region leaves the image, then an area resize.
    pad = max(0, -ix0, -iy0, ix1 - img.shape[1], iy1 - img.shape[0])
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    region = img[iy0 + pad : iy1 + pad, ix0 + pad : ix1 + pad]
    out = cv2.resize(region, (tw, th), interpolation=cv2.INTER_AREA)
    if pts is not None:
        scale = np.array([tw / (ix1 - ix0), th / (iy1 - iy0)], dtype=np.float32)
        pts = ((pts - np.array([ix0, iy0], dtype=np.float32) + 0.5) * scale - 0.5).astype(np.float32)
    return out, pts


def cache_to_source(fs: FaceSet, i: int, size: tuple[int, int], crop: str, margin: float, pts: np.ndarray) -> np.ndarray:
    """Points in the pixels of item ``i``'s cached image -> pixels of the original (full-resolution) image."""
    tw, th = size
    _, _, (ix0, iy0, ix1, iy1), (sx, sy) = _load_region(fs, i, size, crop, margin)
    scale = np.array([tw / (ix1 - ix0), th / (iy1 - iy0)])
    loaded = (np.asarray(pts, dtype=np.float64) + 0.5) / scale - 0.5 + np.array([ix0, iy0])
    return (loaded + 0.5) / np.array([sx, sy]) - 0.5  # the inverse of load_item's scaling of pixel centres


# ----------------------------------------------------------------------------- the build
class Fingerprint(TypedDict):
    version: int
    spec: str
    size: list[int]
    crop: str
    margin: float
    items: str
    faces: NotRequired[FinderDescription]  # face crops: how the faces were found


@dataclass
class CacheRequest:
    size: tuple[int, int]
    crop: str
    margin: float
    finder: FaceFinder = field(default_factory=FaceFinder)  # detect / aligned crops: how faces are found

    def fingerprint(self, fs: FaceSet) -> Fingerprint:
        """What makes two caches the same: the data's items and every decoding setting (its hash names the folder)."""
        fp = Fingerprint(
            version=CACHE_VERSION, spec=fs.spec, size=list(self.size), crop=self.crop, margin=self.margin, items=fs.fingerprint()
        )
        if self.crop in FACE_CROPS:
            fp["faces"] = self.finder.describe(self.crop)
        return fp

    def path(self, fs: FaceSet) -> Path:
        """Where the default cache of ``fs`` for this request lives."""
        return default_cache_root() / f"{fs.source}-{fingerprint_hash(self.fingerprint(fs))}"


def cache_request(fs: FaceSet, size: tuple[int, int], crop: str | None, margin: float | None = None, finder=None) -> CacheRequest:
    crop = crop or fs.default_crop
    return CacheRequest(size, crop, DEFAULT_MARGIN.get(crop, 0.0) if margin is None else margin, finder or FaceFinder())


def fingerprint_hash(fp: Mapping[str, object]) -> str:
    return hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


_WORKER: dict = {}
CACHE_FILES = ("images.u8", "valid.u8", "landmarks.f32", "faces.f32", "labels.npz", "meta.json", "progress.json")


def _worker_init(fs: FaceSet, out: str, req: CacheRequest, n_points: int | None) -> None:
    cv2.setNumThreads(1)
    _WORKER.update(fs=fs, out=Path(out), req=req, n_points=n_points)


def _detector():
    """This worker's face detector (dlib's objects do not pickle: each process builds its own, once)."""
    if "detector" not in _WORKER:
        _WORKER["detector"] = _WORKER["req"].finder.build()
    return _WORKER["detector"]


def _build_chunk(chunk: int) -> tuple[int, list[str]]:
    fs, out, req, k = _WORKER["fs"], _WORKER["out"], _WORKER["req"], _WORKER["n_points"]
    n = len(fs)
    w, h = req.size
    lo, hi = chunk * CHUNK, min(n, (chunk + 1) * CHUNK)
    images = np.memmap(out / "images.u8", np.uint8, "r+", shape=(n, h, w, 3))
    valid = np.memmap(out / "valid.u8", np.uint8, "r+", shape=(n,))
    lms = np.memmap(out / "landmarks.f32", np.float32, "r+", shape=(n, k, 2)) if k else None
    faces = np.memmap(out / "faces.f32", np.float32, "r+", shape=(n, FACE_COLUMNS)) if req.crop in FACE_CROPS else None
    failed = []
    for i in range(lo, hi):
        try:
            if faces is None:
                img, pts = decode_item(fs, i, req.size, req.crop, req.margin)
            else:
                photo, _, photo_pts = fs.load_item(i)
                img, pts, faces[i] = decode_face(photo, photo_pts, fs.names[i], req.size, req.crop, req.margin, _detector())
        except UnreadableImage as exc:
            failed.append(str(exc))
            valid[i] = 0
            continue
        images[i] = img
        valid[i] = 1
        if lms is not None and pts is not None:
            lms[i] = pts
    for arr in (images, valid, lms, faces):
        if arr is not None:
            arr.flush()
    return chunk, failed


def build_cache(
    fs: FaceSet,
    size: tuple[int, int],
    out: Path | None = None,
    crop: str | None = None,
    margin: float | None = None,
    workers: int | None = None,
    strict: bool = False,
    quiet: bool = False,
    finder: FaceFinder | None = None,
) -> "FaceCache":
    """Decode ``fs`` once into ``out`` (resuming an interrupted build); returns the opened cache. ``finder``: how
    ``--crop detect`` / ``aligned`` find faces (default: the auto detector at its calibrated minimum score)."""
    given, crop = crop, crop or fs.default_crop
    _check_crop(fs, crop)
    req = cache_request(fs, size, crop, margin, finder)
    if crop in FACE_CROPS and given is None and not quiet:
        found_by = req.finder.build().describe()
        say(f"{fs.spec}: faces cut from the photos by {found_by} (--crop {crop}; --crop center keeps whole photos)")
    fp = req.fingerprint(fs)
    out = Path(out) if out is not None else req.path(fs)
    meta_path, progress_path = out / "meta.json", out / "progress.json"
    damage = damaged_cache(out) if meta_path.exists() else None
    if meta_path.exists() and not damage and json.loads(meta_path.read_text()).get("fingerprint") == fp:
        return FaceCache(out)
    if damage:
        say(f"{out}: the cache found here is damaged ({damage}); building it again")
    if len(fs) == 0:
        raise FacelabError(f"{fs.spec}: no images to cache")
    progress = _started(fs, out, req, fp, fresh_start=bool(damage))
    _decode(fs, out, req, progress, workers, quiet)
    failed = progress["failed"]
    if strict and failed:
        raise FacelabError(f"{len(failed)} unreadable images (--strict): {failed[0]}")
    np.savez(out / "labels.npz", **_labels(fs))
    meta = {"fingerprint": fp, "n": len(fs), "width": size[0], "height": size[1], "n_landmarks": fs.n_landmarks,
            "n_failed": len(failed), "failed": failed[:100], "problems": fs.problems, "notes": fs.notes, "classes": fs.classes,
            "faces": fp.get("faces")}  # fmt: skip
    write_json(meta_path, meta)
    progress_path.unlink()
    return FaceCache(out)


def _check_crop(fs: FaceSet, crop: str) -> None:
    """A crop the data can be cut by (a box or landmarks it holds; a face crop's detector installed), or one line."""
    if crop not in CROPS:
        raise FacelabError(f"--crop {crop!r}: use one of {', '.join(CROPS)}")
    needs = {"box": "boxes", "landmarks": "landmarks"}
    if crop in needs:
        fs.require(needs[crop], f"--crop {crop}")
    if crop in FACE_CROPS:
        check_face_crop(crop)


class Progress(TypedDict):
    """progress.json while a cache is built: what it is a build of, the chunks done, the images that failed."""

    fingerprint: Fingerprint
    done: list[int]
    failed: list[str]


def _started(fs: FaceSet, out: Path, req: CacheRequest, fp: Fingerprint, fresh_start: bool) -> Progress:
    """The build's progress (progress.json: the chunks done, the images that failed): resumed where an interrupted
    build of the same fingerprint left it, else started afresh with empty arrays."""
    progress_path = out / "progress.json"
    progress: Progress | None = json.loads(progress_path.read_text()) if progress_path.exists() and not fresh_start else None
    fresh = progress is None or progress.get("fingerprint") != fp
    prepare_output(out, "cache", fresh=fresh, owned=CACHE_FILES)  # a rebuild removes only the cache's own files
    if progress is not None and not fresh:
        return progress
    n, (w, h), k = len(fs), req.size, fs.n_landmarks
    for name, shape, dtype in (
        ("images.u8", (n, h, w, 3), np.uint8),
        ("valid.u8", (n,), np.uint8),
        ("landmarks.f32", (n, k or 0, 2), np.float32),
        ("faces.f32", (n, FACE_COLUMNS), np.float32),
    ):
        if (name != "landmarks.f32" or k) and (name != "faces.f32" or req.crop in FACE_CROPS):
            np.memmap(out / name, dtype, "w+", shape=shape).flush()
    progress = Progress(fingerprint=fp, done=[], failed=[])
    write_json(progress_path, progress)
    return progress


def _decode(fs: FaceSet, out: Path, req: CacheRequest, progress: Progress, workers: int | None, quiet: bool) -> None:
    """Decode the chunks not yet done into the arrays, in this process or a pool, recording each chunk as it ends
    (progress.json: a stop loses at most the chunks in flight)."""
    n, (w, h), k = len(fs), req.size, fs.n_landmarks
    todo = [c for c in range((n + CHUNK - 1) // CHUNK) if c not in set(progress["done"])]
    workers = workers or (1 if n < IN_PROCESS_BELOW else thread_count())  # this process's share of the cores
    with progress_bar(f"caching {fs.spec} at {w}x{h}", total=n, quiet=quiet) as advance:
        advance(len(progress["done"]) * CHUNK)

        def record(chunk: int, failed: list[str]) -> None:
            progress["done"].append(chunk)
            progress["failed"].extend(failed)
            write_json(out / "progress.json", progress)
            advance(min(CHUNK, n - chunk * CHUNK))

        if workers == 1:
            _worker_init(fs, str(out), req, k)
            for c in todo:
                record(*_build_chunk(c))
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, _worker_init, (fs, str(out), req, k)) as pool:
                for result in pool.imap_unordered(_build_chunk, todo):
                    record(*result)


def _labels(fs: FaceSet) -> dict[str, np.ndarray]:
    """labels.npz: the split and names of every item, and whatever labels the data holds."""
    labels = {"split": fs.split, "names": np.array(fs.names)}
    for key in ("attributes", "identities", "boxes"):
        if getattr(fs, key) is not None:
            labels[key] = getattr(fs, key)
    if fs.attr_names:
        labels["attr_names"] = np.array(fs.attr_names)
    if fs.mirror is not None:
        labels["mirror"] = fs.mirror
    if getattr(fs, "background", None) is not None and fs.renders:
        labels["background"] = fs.background
    return labels


def damaged_cache(folder: Path) -> str | None:
    """What is wrong with a finished cache's files (an interrupted copy, a full disk), or None: each array as long as
    meta.json says, labels.npz readable. A damaged cache is built again, never read."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        n, w, h, k = meta["n"], meta["width"], meta["height"], meta["n_landmarks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"meta.json unreadable: {type(exc).__name__}"
    expected = {"images.u8": n * h * w * 3, "valid.u8": n, **({"landmarks.f32": n * k * 2 * 4} if k else {})}
    for name, size in expected.items():
        found = (folder / name).stat().st_size if (folder / name).exists() else None
        if found != size:
            return f"{name} holds {found if found is not None else 'no'} bytes, not {size}"
    try:
        with np.load(folder / "labels.npz") as labels:
            labels.files
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return "labels.npz unreadable"
    return None


class FaceCache:
    """A finished cache folder, memory-mapped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise FacelabError(f"{self.path}: not a finished facelab cache (meta.json missing); build it with facelab data cache")
        damage = damaged_cache(self.path)
        if damage:
            raise FacelabError(f"{self.path}: damaged cache ({damage}); build it again with facelab data cache")
        self.meta = json.loads(meta_path.read_text())
        n, w, h, k = self.meta["n"], self.meta["width"], self.meta["height"], self.meta["n_landmarks"]
        self.images = np.memmap(self.path / "images.u8", np.uint8, "r", shape=(n, h, w, 3))
        self.valid = np.fromfile(self.path / "valid.u8", np.uint8).astype(bool)
        self.landmarks = np.fromfile(self.path / "landmarks.f32", np.float32).reshape(n, k, 2) if k else None
        with np.load(self.path / "labels.npz") as z:
            self.labels = {key: z[key] for key in z.files}

    @property
    def size(self) -> tuple[int, int]:
        return self.meta["width"], self.meta["height"]

    @property
    def spec(self) -> str:
        return self.meta["fingerprint"]["spec"]

    def __len__(self) -> int:
        return self.meta["n"]

    @property
    def attr_names(self) -> list[str] | None:
        names = self.labels.get("attr_names")
        return None if names is None else [str(s) for s in names]
