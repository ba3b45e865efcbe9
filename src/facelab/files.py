"""Files written whole or not at all: a temporary name, renamed into place only when complete."""
from __future__ import annotations

import csv
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator


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
