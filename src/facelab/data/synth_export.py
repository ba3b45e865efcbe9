"""Writing synthetic faces to disk in CelebA's exact layout, plus the extra ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..errors import FacelabError
from ..progress import progress_bar
from .synth import ATTRIBUTES, SynthConfig, SynthFaceSet, synth_faceset
from .video import video_writer

MARKER = "facelab_synth.json"  # tells the CelebA reader the landmarks' reference image size


def _landmark_lines(names, arrays, fmt) -> list[str]:
    return [n + " " + " ".join(fmt % v for v in pts.reshape(-1)) for n, pts in zip(names, arrays)]


def write_synth_folder(fs: SynthFaceSet, out: Path, size: int, quiet: bool = False, ext: str = "png") -> Path:
    """Render every face of ``fs`` into ``out`` (CelebA layout); nothing is left half-written.

    PNG keeps the ground truth exact; ``ext="jpg"`` writes JPEGs (quality 95) like real CelebA.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FacelabError(f"{out}: folder exists and is not empty; choose a new OUT or delete it")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "img_align_celeba").mkdir(parents=True)
    (tmp / "masks").mkdir()
    n = len(fs)
    names = [f"{Path(nm).stem}.{ext}" for nm in fs.names]
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []  # a JPEG flag on a PNG makes OpenCV print a WARN line
    lm68 = np.zeros((n, 68, 2), np.float32)
    lm58 = np.zeros((n, 58, 2), np.float32)
    lm5 = np.zeros((n, 5, 2), np.float32)
    masks = np.zeros((n, len(ATTRIBUTES), size, size), dtype=bool)
    with progress_bar(f"rendering {n} faces at {size}px", n, quiet) as advance:
        for i in range(n):
            img, _ = fs.load(i, (size, size))
            cv2.imwrite(str(tmp / "img_align_celeba" / names[i]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
            lm68[i], lm58[i], lm5[i] = fs.geometry(i, size)
            masks[i] = fs.masks(i, size)
            advance(1)
    signed = np.where(fs.attributes > 0, 1, -1)
    attr_lines = [f"{n}", " ".join(ATTRIBUTES)] + [nm + " " + " ".join(f"{v:2d}" for v in row) for nm, row in zip(names, signed)]
    (tmp / "list_attr_celeba.txt").write_text("\n".join(attr_lines) + "\n")
    (tmp / "identity_CelebA.txt").write_text("".join(f"{nm} {i + 1}\n" for nm, i in zip(names, fs.identities)))
    (tmp / "list_eval_partition.txt").write_text("".join(f"{nm} {s}\n" for nm, s in zip(names, fs.split)))
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    rows = _landmark_lines(names, np.round(lm5).astype(int), "%d")
    (tmp / "list_landmarks_align_celeba.txt").write_text(f"{n}\n{header}\n" + "\n".join(rows) + "\n")
    (tmp / "landmarks68.txt").write_text("\n".join(_landmark_lines(names, lm68, "%.3f")) + "\n")
    (tmp / "landmarks58.txt").write_text("\n".join(_landmark_lines(names, lm58, "%.3f")) + "\n")
    np.savez_compressed(
        tmp / "masks" / "masks.npz", masks=np.packbits(masks, axis=-1), shape=np.array(masks.shape), attributes=np.array(ATTRIBUTES)
    )
    (tmp / MARKER).write_text(json.dumps({"spec": fs.spec, "size": size, "background": fs.background.tolist()}))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def read_masks(folder: Path) -> tuple[np.ndarray, list[str]]:
    """(N, A, H, W) bool masks and attribute names written by write_synth_folder."""
    with np.load(Path(folder) / "masks" / "masks.npz") as z:
        shape = tuple(z["shape"])
        masks = np.unpackbits(z["masks"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
        return masks, [str(a) for a in z["attributes"]]


def synthetic_photo(
    item: int = 0, face_size: int = 256, photo: tuple[int, int] = (500, 400), at: tuple[int, int] = (100, 60)
) -> np.ndarray:
    """A synthetic face pasted into a larger plain photo (OpenCV's Haar cascade finds item 0), for detection demos and tests."""
    face, _ = synth_faceset(SynthConfig(n=item + 1)).load(item, (face_size, face_size))
    canvas = np.full((photo[1], photo[0], 3), 200, np.uint8)
    canvas[at[1] : at[1] + face_size, at[0] : at[0] + face_size] = face
    return canvas


def synthetic_video(path: Path, frames: int = 16, fps: float = 8.0, size: tuple[int, int] = (320, 240)) -> Path:
    """A video (.webm or .mp4) of ``frames`` different synthetic faces, each filling most of the frame (for the webcam
    view without a camera)."""
    fs = synth_faceset(SynthConfig(n=frames))
    side = min(size) - 40
    writer = video_writer(path, fps, size)
    for i in range(frames):
        face, _ = fs.load(i, (side, side))
        frame = np.full((size[1], size[0], 3), 180, np.uint8)
        y0, x0 = (size[1] - side) // 2, (size[0] - side) // 2
        frame[y0 : y0 + side, x0 : x0 + side] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_synth(
    out: str | Path, n: int = 2000, ids: int | None = None, size: int = 128, seed: int = 0, correlate=(), spurious=(), imbalance=()
) -> Path:
    """``facelab data synth``: ``n`` synthetic faces at ``size`` px in CelebA's layout, with the bias knobs given as
    "A:B=P" (correlate), "A:background=P" (spurious) and "A=P" (imbalance) strings."""
    from ..errors import FacelabError
    from .synth import Knob, SynthConfig, synth_faceset

    if not 32 <= size <= 256:
        raise FacelabError(f"--size {size}: synthetic faces are rendered at 32 to 256 px")
    kinds = (("correlate", correlate), ("spurious", spurious), ("imbalance", imbalance))
    knobs = tuple(Knob.parse(kind, text) for kind, texts in kinds for text in texts)
    return write_synth_folder(synth_faceset(SynthConfig(n=n, ids=ids, seed=seed, knobs=knobs)), out, size)
