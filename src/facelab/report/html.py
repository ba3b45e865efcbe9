"""A report.html a person opens: a title, key facts, tables and figures, all in one folder."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left} img{max-width:100%}
.note{color:#555;font-size:.9em} code{background:#f5f5f5;padding:0 .2em}
"""


@dataclass
class Report:
    title: str
    sections: list = field(default_factory=list)  # HTML strings, and figures resolved when the page is written

    def heading(self, text: str) -> "Report":
        self.sections.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, cls: str = "") -> "Report":
        self.sections.append(f"<p class='{cls}'>{html.escape(text)}</p>")
        return self

    def table(self, header: list[str], rows: list[list]) -> "Report":
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows)
        self.sections.append(f"<table><tr>{head}</tr>{body}</table>")
        return self

    def figure(self, rel_path: str, caption: str = "") -> "Report":
        """A picture beside the page; one that was not made is said in words when the page is written, never a broken image."""
        self.sections.append(_Figure(rel_path, caption))
        return self

    def video(self, rel_path: str, caption: str = "") -> "Report":
        cap = f"<figcaption class='note'>{html.escape(caption)}</figcaption>" if caption else ""
        self.sections.append(f"<figure><video src='{html.escape(rel_path)}' controls loop muted width='480'></video>{cap}</figure>")
        return self

    def bullets(self, items: list[str]) -> "Report":
        self.sections.append("<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>")
        return self

    def links(self, items: list[tuple[str, str]]) -> "Report":
        lis = "".join(f"<li><a href='{html.escape(href)}'>{html.escape(text)}</a></li>" for text, href in items)
        self.sections.append(f"<ul>{lis}</ul>")
        return self

    def machine(self, described: Mapping[str, object] | None) -> "Report":
        """Where the figures above came from: device, precision, threads, CPU capability (``Runtime.describe``)."""
        if described:
            self.heading("Machine").table(["", "value"], [[k, v] for k, v in described.items()])
        return self

    def write(self, path: Path) -> Path:
        body = "".join(part.html(Path(path).parent) if isinstance(part, _Figure) else part for part in self.sections)
        doc = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>{body}</body></html>"
        )
        with atomic_write(path) as fh:
            fh.write(doc)
        return path


@dataclass(frozen=True)
class _Figure:
    rel_path: str
    caption: str

    def html(self, folder: Path) -> str:
        if not (folder / self.rel_path).exists():
            what, where = html.escape(self.caption or self.rel_path), html.escape(self.rel_path)
            return f"<p class='note'>Figure not made: {what} ({where} is missing).</p>"
        cap = f"<figcaption class='note'>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        return f"<figure><img src='{html.escape(self.rel_path)}' alt='{html.escape(self.caption)}'>{cap}</figure>"


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)
