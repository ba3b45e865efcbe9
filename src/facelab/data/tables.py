"""Parsing the whitespace-separated annotation tables of CelebA-style data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FacelabError


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def read_name_table(path: Path, n_values: int, what: str, skip_lines: int = 0, allow_header: bool = False) -> tuple[list[str], np.ndarray]:
    """Rows of ``name v1 ... vn`` (integers) after ``skip_lines`` lines.

    With ``allow_header`` a first row whose values are not integers is taken as a header
    (some copies of identity_CelebA.txt start with ``image identity``).
    Any malformed row stops with the file, line number and what was expected.
    """
    names: list[str] = []
    rows: list[list[int]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line_no <= skip_lines:
                continue
            parts = line.split()
            if not parts:
                continue
            if allow_header and not names and not all(_is_int(p) for p in parts[1:]):
                continue
            if len(parts) != n_values + 1 or not all(_is_int(p) for p in parts[1:]):
                raise FacelabError(f"{path}:{line_no}: expected an image name and {n_values} integer {what}, got {line.strip()[:80]!r}")
            names.append(parts[0])
            rows.append([int(p) for p in parts[1:]])
    return names, np.asarray(rows, dtype=np.int64).reshape(len(rows), n_values)


def read_counted_table(path: Path, n_values: int | None, what: str) -> tuple[list[str], list[str], np.ndarray]:
    """CelebA's list files: a count line, a header line of column names, then rows.

    ``n_values=None`` takes the number of columns from the header (attribute lists of other sizes).
    """
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().split()
        header = fh.readline().split()
    if len(first) != 1 or not _is_int(first[0]):
        raise FacelabError(f"{path}:1: expected the number of images on the first line, got {' '.join(first)[:80]!r}")
    n_values = n_values or len(header)
    if len(header) not in (n_values, n_values + 1):
        raise FacelabError(f"{path}:2: expected {n_values} column names, got {len(header)}")
    names, values = read_name_table(path, n_values, what, skip_lines=2)
    columns = header[-n_values:]
    return names, columns, values


def align(names: list[str], table_names: list[str], values: np.ndarray, fill: int) -> np.ndarray:
    """Rows of ``values`` reordered to ``names``; names not in the table get ``fill``."""
    where = {n: i for i, n in enumerate(table_names)}
    out = np.full((len(names),) + values.shape[1:], fill, dtype=values.dtype)
    for i, n in enumerate(names):
        j = where.get(n)
        if j is not None:
            out[i] = values[j]
    return out
