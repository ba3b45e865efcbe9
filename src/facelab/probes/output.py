"""Every probe's folder: its PNGs, summary.json and a small report.html showing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from ..files import prepare_output, record_entries, write_json
from ..report.html import Report
from ..results import Summary
from ..run import Run, run_path

R = TypeVar("R", bound=Summary | dict[str, Any])


def probe_folder(out: str | Path | None, run: str | Path | Run, name: str) -> Path:
    """``--out`` or, by default, RUN/NAME; refused when it holds files facelab did not write."""
    return prepare_output(Path(out) if out else run_path(run) / name, name)


def write_probe_output(
    out: Path,
    title: str,
    summary: R,
    figures: list[tuple[str, str]],
    facts: list[list] | None = None,
    tables: list[tuple[str, list[str], list[list]]] | None = None,
) -> R:
    """summary.json (atomically) and report.html: the facts table, the figures in order, then (heading, header, rows)
    tables. Returns ``summary``: a typed result (:class:`facelab.results.Summary`) writes its documented keys."""
    write_json(out / "summary.json", summary.to_json() if isinstance(summary, Summary) else summary)
    rep = Report(title)
    if facts:
        rep.table(["", "value"], facts)
    for file, caption in figures:
        rep.figure(file, caption)
    for heading, header, rows in tables or []:
        rep.heading(heading).table(header, rows)
    rep.write(out / "report.html")
    record_entries(out)
    return summary
