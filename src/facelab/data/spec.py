"""SPEC strings: one way to name any data source (``celeba:PATH``, ``synth:2000,ids=20`` ...). Each source is
registered by its reader module (:mod:`facelab.data.sources`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import FacelabError
from . import celeba, folder, ibug, imm, synth, utkface  # noqa: F401  each registers its source
from .faceset import FaceSet
from .sources import SOURCES, spec_options


def open_spec(spec: str) -> FaceSet:
    """The FaceSet a SPEC names; a bad SPEC stops with one line saying what is valid."""
    kind, _, rest = spec.partition(":")
    if kind not in SOURCES and Path(spec).expanduser().is_dir():
        raise FacelabError(
            f"{spec!r} is a folder but not a SPEC: for your own photos give folder:{spec} "
            f"(celeba:{spec}, imm:{spec} or 300w:{spec} for those layouts)"
        )
    if kind not in SOURCES:
        raise FacelabError(f"unknown data source {spec!r}; use one of: {', '.join(e.help for e in SOURCES.entries())}")
    source = SOURCES.get(kind)
    if not source.needs_path:
        return source.open(rest, spec)
    if not rest:
        raise FacelabError(f"{spec!r}: give a path, e.g. {kind}:/data/{kind}")
    path_text, *parts = rest.split(",")
    path = Path(path_text).expanduser()
    if not path.exists():
        raise FacelabError(f"{path}: no such file or folder (from SPEC {spec!r})")
    options = {key: values[-1] for key, values in spec_options(parts, spec, source.options).items()}
    return source.open(path, spec, **options)
