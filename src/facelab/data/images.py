"""Reading any image a user hands in as 8-bit RGB, robustly and fast."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image, ImageOps

from ..errors import FacelabError
from ..progress import say

T = TypeVar("T")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".pgm", ".ppm", ".webp", ".tif", ".tiff"}

# What a file's first bytes say it is, for images whose names carry no known extension (the Yale face
# database ships GIFs as ``subject01.glasses``).
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"P5", b"P6", b"P2", b"P3")
SKIP_SUFFIXES = {".pts", ".ljson", ".asf", ".xml", ".txt", ".csv", ".json", ".md", ".mat", ".npz", ".zip", ".gz", ".tar"}


def looks_like_image(path: Path) -> bool:
    """An image by its name, or, where the name has no known image extension, by its first bytes."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    if suffix in SKIP_SUFFIXES or path.name.startswith("."):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head.startswith(MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def walk_files(root: Path) -> list[Path]:
    """Every file under ``root``, sorted, following symbolic links to folders (a 300-W ``testset`` that is a link)
    and visiting each real folder once, so a link back up the tree is no loop."""
    import os

    seen, found = set(), []
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(folder) / f for f in files]
    return sorted(p for p in found if p.is_file())


# A decompression bomb is an error, never a silent multi-gigabyte allocation.
Image.MAX_IMAGE_PIXELS = 64_000_000


class UnreadableImage(FacelabError):
    """A missing, corrupt or truncated image file; its message names the file. Uncaught, it is one line (exit 2)."""


class SkippedImages:
    """The one policy for unreadable images in every command that reads many: each is skipped, counted and named
    (one console line, and ``names`` for summary.json); with ``strict`` the first one stops the command (exit 2)."""

    def __init__(self, strict: bool = False, what: str = "unreadable image(s)"):
        self.strict, self.what = strict, what
        self.names: list[str] = []

    def call(self, name: str, read: Callable[..., T], *args) -> T | None:
        """``read(*args)``, or None when it finds the image unreadable."""
        try:
            return read(*args)
        except UnreadableImage as exc:
            self.add(name, exc)
            return None

    def add(self, name: str, problem) -> None:
        if self.strict:
            raise FacelabError(f"{problem} (--strict stops at the first unreadable image; leave it out to skip them)")
        self.names.append(name)

    def say(self) -> list[str]:
        """The skip line (once), and the names for summary.json."""
        if self.names:
            shown = ", ".join(self.names[:5]) + (f" and {len(self.names) - 5} more" if len(self.names) > 5 else "")
            say(f"skipped {len(self.names)} {self.what}: {shown} (--strict stops instead)")
        return self.names


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        img = Image.fromarray((arr / hi * 255.0).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def read_header_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, reading only the header."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception as exc:  # PIL raises many types for bad files
        raise UnreadableImage(f"{path}: {exc}") from exc
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def read_rgb(path: Path, min_size: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` to an HxWx3 uint8 RGB array.

    Returns the array and the image's full (width, height). With ``min_size`` a JPEG is
    decoded at a reduced scale (libjpeg DCT scaling) that is still at least that big,
    which is several times faster than a full decode followed by a resize.
    """
    try:
        with Image.open(path) as img:
            full_size = img.size
            if min_size is not None and img.format == "JPEG":
                img.draft("RGB", (max(1, min_size[0]), max(1, min_size[1])))
            img.load()
            scaled = img.size
            img = ImageOps.exif_transpose(img)
            if img.size != scaled:  # rotated by EXIF
                full_size = (full_size[1], full_size[0])
            arr = np.asarray(_to_rgb(img))
    except Exception as exc:
        raise UnreadableImage(f"{path}: {exc}") from exc
    return arr, full_size


class TooManyPixels(UnreadableImage):
    """A decompression bomb: a small file that would decode to a huge image."""


def decode_bytes(data: bytes, name: str = "upload") -> np.ndarray:
    """An uploaded image's bytes -> HxWx3 uint8 RGB; bombs raise TooManyPixels, anything else unreadable UnreadableImage."""
    import io
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > Image.MAX_IMAGE_PIXELS:
                    raise TooManyPixels(f"{name}: {w}x{h} pixels is over the limit of {Image.MAX_IMAGE_PIXELS:,}")
                img.load()
                return np.asarray(_to_rgb(ImageOps.exif_transpose(img)))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels(f"{name}: {exc}") from None
    except UnreadableImage:
        raise
    except Exception as exc:
        raise UnreadableImage(f"{name}: not a readable image ({type(exc).__name__})") from None
