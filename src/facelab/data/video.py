"""Video files a browser plays: WebM with VP8 (OpenCV's pip wheels can write it), or MP4 with H.264 where
the installed OpenCV has an H.264 encoder. MPEG-4 Part 2 (``mp4v``), OpenCV's usual MP4 codec, does not play
in Chromium or Firefox, so it is only a last resort and is said when used."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2

from ..errors import FacelabError
from ..progress import say

CODECS = {".webm": ("VP80",), ".mp4": ("avc1", "mp4v")}


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """OpenCV's FFmpeg backend prints codec-tag warnings straight to file descriptor 2 (no log level reaches them)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def video_writer(path: str | Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """An open writer for ``path`` (.webm or .mp4) of frames ``size`` = (width, height)."""
    suffix = Path(path).suffix.lower()
    if suffix not in CODECS:
        raise FacelabError(f"{path}: write videos as .webm (VP8, plays in every browser) or .mp4")
    for fourcc in CODECS[suffix]:
        with _quiet_stderr():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            if fourcc == "mp4v":
                say(
                    f"{path}: this OpenCV has no H.264 encoder, so the MP4 holds MPEG-4 Part 2, which browsers do not "
                    "play; write the video as .webm instead"
                )
            return writer
    raise FacelabError(f"{path}: this OpenCV cannot write {suffix} video; use .webm")
