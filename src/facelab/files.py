"""Files written whole or not at all (a temporary name, renamed into place only when complete), and output
folders that facelab marks as its own, so it deletes and overwrites only what it wrote."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, NotRequired, TypedDict


@contextmanager
def atomic_write(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """A text file handle on ``path``.tmp, moved onto ``path`` on success and removed on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data) -> Path:
    with atomic_write(path) as fh:
        fh.write(json.dumps(data, indent=2))
    return Path(path)


def write_csv(path: Path, header: list[str], rows: Iterable[list]) -> Path:
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return Path(path)


# ----------------------------------------------------------------------------- output folders
MARKER = ".facelab.json"


class Marker(TypedDict):
    """A facelab folder's .facelab.json: what wrote it, when, by which command, and the entries it wrote."""

    kind: str
    made_by: str
    created: str
    command: list[str]
    entries: list[str]  # what facelab wrote at the folder's top
    files: NotRequired[list[str]]  # and inside plain sub-folders it wrote into
    started: NotRequired[float]  # when the running command prepared it: what appears after is facelab's


def _marker(path: Path) -> Marker | None:
    try:
        return json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_facelab_folder(path: Path) -> bool:
    return _marker(path) is not None


def _new_marker(kind: str) -> Marker:
    from . import __version__

    return Marker(kind=kind, made_by=f"facelab {__version__}", created=time.strftime("%Y-%m-%dT%H:%M:%S"), command=sys.argv, entries=[])


_PREPARED: list[tuple[Path, Path | None]] = []  # folders this process marked as facelab's: (path, the topmost folder it made)


def prepare_output(path: str | Path, kind: str, fresh: bool = False, owned: Iterable[str] = ()) -> Path:
    """``path`` made ready for facelab's output of ``kind`` (run, cache, probe, demo, ...), and marked as such.

    A new or empty folder becomes facelab's. A folder facelab marked for the same ``kind`` is reused; with
    ``fresh``, what facelab wrote there is removed first (see :func:`clear_output`), files a user put there stay.
    A folder holding files facelab did not write, or facelab's folder of another kind, is refused in one line:
    facelab never deletes or overwrites what it did not write.
    """
    from .errors import FacelabError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FacelabError(f"{path}: is a file, not a folder; choose another --out")
    marker = _marker(path) if path.exists() else None
    if marker is None and path.exists() and any(path.iterdir()):
        raise FacelabError(f"{path}: holds files facelab did not write; choose a new or empty --out folder")
    if marker is not None and marker.get("kind") != kind:
        raise FacelabError(f"{path}: is facelab's {marker.get('kind')} folder, not a {kind} folder; choose another --out")
    if marker is not None and fresh:
        clear_output(path, owned)
    if marker is None:
        _PREPARED.append((path, _topmost_missing(path)))
    path.mkdir(parents=True, exist_ok=True)
    marker = marker or _new_marker(kind)
    marker["entries"] = sorted(set(marker["entries"]) | set(owned))
    marker["started"] = time.time()  # what appears after this, while the command runs, is facelab's (record_entries)
    write_json(path / MARKER, marker)
    return path


def prepare_output_file(path: str | Path) -> Path:
    """A single output file (``--out sheet.png``): refused when it exists and facelab did not write it; recorded in
    its folder's marker as facelab's, so facelab may overwrite it next time."""
    from .errors import FacelabError

    path = Path(path)
    marker = _marker(path.parent)
    if path.exists() and (marker is None or path.name not in marker.get("entries", [])):
        raise FacelabError(f"{path}: exists and facelab did not write it; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = marker or _new_marker("files")
    marker["entries"] = sorted(set(marker["entries"]) | {path.name})
    write_json(path.parent / MARKER, marker)
    return path


def record_entries(path: Path) -> None:
    """Record as facelab's what was written in ``path`` since :func:`prepare_output` last prepared it: the top-level
    entries, and every file inside its sub-folders by relative path (so that a file a user put in ``figures/`` is
    told apart from facelab's own there). Sub-folders with a marker of their own record themselves."""
    path = Path(path)
    marker = _marker(path) or _new_marker("unknown")
    since = marker.get("started", time.time()) - 1.0
    new, files = set(), set(marker.get("files", []))
    for entry in path.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink() and not is_facelab_folder(entry):
            written = [f for f in _files_under(entry) if f.stat().st_mtime >= since]
            files |= {f.relative_to(path).as_posix() for f in written}
            if written or entry.stat().st_mtime >= since:
                new.add(entry.name)
        elif entry.stat().st_mtime >= since:
            new.add(entry.name)
    marker["entries"] = sorted(set(marker.get("entries", [])) | new)
    marker["files"] = sorted(files)
    write_json(path / MARKER, marker)


def _files_under(folder: Path) -> list[Path]:
    return [Path(root) / name for root, _, names in os.walk(folder) for name in names]


def clear_output(path: Path, owned: Iterable[str] = ()) -> None:
    """Remove from facelab's folder ``path`` only what facelab wrote: the entries it recorded, the names the
    caller ``owned`` (a cache's arrays, a run's files), and sub-folders that carry facelab's marker (recursively).
    Inside a plain sub-folder only the files facelab recorded go; a file a user put there stays, with its folder."""
    path = Path(path)
    marker = _marker(path) or _new_marker("unknown")
    mine = set(marker["entries"]) | set(owned)
    for entry in path.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink() and is_facelab_folder(entry):
            clear_output(entry)
            _remove_if_only_marker(entry)
        elif entry.name in mine and entry.is_dir() and not entry.is_symlink():
            _clear_recorded(path, entry, marker)
        elif entry.name in mine:
            entry.unlink()


def _clear_recorded(root: Path, folder: Path, marker: Marker) -> None:
    """The files of ``folder`` that facelab recorded in ``root``'s marker, then its folders left empty. A marker from
    before files were recorded one by one: the files no newer than the marker (a user's file added later stays)."""
    if "files" in marker:
        recorded = set(marker["files"])
        mine = lambda f: f.relative_to(root).as_posix() in recorded  # noqa: E731
    else:
        written_by = (root / MARKER).stat().st_mtime
        mine = lambda f: f.stat().st_mtime <= written_by  # noqa: E731
    for f in _files_under(folder):
        if mine(f):
            f.unlink()
    for sub, _, _ in sorted(os.walk(folder), key=lambda w: -len(w[0])):
        if not any(Path(sub).iterdir()):
            Path(sub).rmdir()


def _only_marker(path: Path) -> bool:
    return path.is_dir() and [p.name for p in path.iterdir()] == [MARKER]


def _remove_if_only_marker(path: Path) -> None:
    if _only_marker(path):
        (path / MARKER).unlink()
        path.rmdir()


def undo_empty_outputs() -> list[Path]:
    """After a command failed: the folders it marked as facelab's that hold nothing but the marker are put back as they
    were (the marker removed, the folder too where the command made it), newest first; returns them. What a user had
    in a folder is never touched: only a marker-only folder qualifies."""
    undone = []
    while _PREPARED:
        path, top = _PREPARED.pop()
        if _only_marker(path):
            (path / MARKER).unlink()
            folder = path  # with the folders made for it (RUN/cam for a RUN that does not exist), while they are empty
            while top is not None and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                if folder == top:
                    break
                folder = folder.parent
            undone.append(path)
    return undone


def _topmost_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what ``mkdir(parents=True)`` will make), or None."""
    top = None
    while not path.exists():
        top, path = path, path.parent
    return top


@contextmanager
def recording_output(path: Path) -> Iterator[Path]:
    """Record in the marker the top-level entries written in ``path`` while the block runs (also when it fails
    or is interrupted), so a later fresh start can remove exactly those."""
    try:
        yield Path(path)
    finally:
        record_entries(path)
