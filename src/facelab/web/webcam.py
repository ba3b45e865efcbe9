"""``facelab webcam``: the live overlay on an OpenCV window, or headless from a camera/video into an annotated video."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2

from ..data.video import video_writer
from ..errors import FacelabError
from ..files import prepare_output_file
from ..hardware import Runtime
from ..progress import progress_bar
from ..results import Summary
from .analyser import Analyser, draw, load_runs


def _open(source: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        what = f"camera {source}" if source.isdigit() else f"video file {source}"
        raise FacelabError(f"{what}: cannot be opened (no such device or file, or a codec OpenCV lacks); try --source VIDEO_FILE")
    return cap


@dataclass
class AnnotatedVideo(Summary):
    """What ``facelab webcam`` annotated: frames, faces found in them, the time and rate, and the video written."""

    frames: int
    faces: int
    seconds: float
    frames_per_s: float
    out: str | None

    def in_words(self) -> str:
        wrote = f"; wrote {self.out}" if self.out else ""
        return f"{self.frames} frames, {self.faces} faces, {self.frames_per_s:.1f} frames/s{wrote}"


def webcam(
    runs: Sequence[str | Path],
    source: str = "0",
    out: str | Path | None = None,
    target: str | None = None,
    max_frames: int | None = None,
    quiet: bool = False,
    *,
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    runtime: Runtime | None = None,
) -> AnnotatedVideo:
    """Annotate every frame (faces, CAM overlay, landmarks, top predictions). With ``out`` the result is written
    as a video (written to a temporary name and renamed when complete); without it, shown in a window."""
    if out is not None:
        out = prepare_output_file(out)
    analyser = Analyser(load_runs(runs, runtime=runtime), detector, upsample, min_score)
    cap = _open(source)
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not source.isdigit() else 0
    total = min(total, max_frames) if max_frames and total else (max_frames or total)
    writer, tmp = None, None
    frames = faces = 0
    t0 = time.perf_counter()
    try:
        with progress_bar("webcam", total or 0, quiet or not total) as advance:
            while max_frames is None or frames < max_frames:
                ok, bgr = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                found = analyser.analyse(rgb, target)
                shown = cv2.cvtColor(draw(rgb, found), cv2.COLOR_RGB2BGR)
                frames += 1
                faces += len(found)
                if out is not None:
                    if writer is None:
                        tmp = Path(out).with_name(Path(out).stem + ".part" + Path(out).suffix)
                        tmp.parent.mkdir(parents=True, exist_ok=True)
                        writer = video_writer(tmp, fps_in, (shown.shape[1], shown.shape[0]))
                    writer.write(shown)
                else:
                    _show(shown)
                    if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                        break
                advance()
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    elapsed = time.perf_counter() - t0
    if tmp is not None and out is not None:
        os.replace(tmp, out)
    return AnnotatedVideo(frames, faces, elapsed, frames / elapsed if elapsed else 0.0, str(out) if out else None)


def _show(frame) -> None:
    try:
        cv2.imshow("facelab (q to quit)", frame)
    except cv2.error:
        raise FacelabError("this OpenCV has no window support (headless wheel); write the result with --out annotated.webm") from None
