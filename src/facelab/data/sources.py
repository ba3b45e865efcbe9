"""Data sources by SPEC prefix: a reader module declares its source once with ``@data_source(...)`` on the function
that opens it, and :func:`facelab.data.spec.open_spec` finds it here. A new source is one new module (plus its import
line in :mod:`facelab.data.spec`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..plugins import Registry


@dataclass(frozen=True)
class Source:
    """``open(path, spec, **options)`` -> FaceSet; ``options``: the ``,key=value`` keys its SPEC takes; ``usage`` is how
    the SPEC is written in help and errors. A source without a path (synthetic faces) parses the SPEC itself."""

    prefix: str
    open: Callable
    usage: str
    options: tuple[str, ...] = ()
    needs_path: bool = True


SOURCES: Registry[Source] = Registry("data source")


def data_source(prefix: str, usage: str | None = None, options: tuple[str, ...] = (), needs_path: bool = True):
    def register(open_fn: Callable) -> Callable:
        source = Source(prefix, open_fn, usage or f"{prefix}:PATH", options, needs_path)
        SOURCES.add(prefix, source, source.usage)
        return open_fn

    return register


def spec_options(parts: list[str], spec: str, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """The ``key=value`` parts of a SPEC, each key one of ``allowed`` (a key may repeat)."""
    from ..errors import FacelabError

    opts: dict[str, list[str]] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or key not in allowed:
            raise FacelabError(f"{spec!r}: unknown option {part!r}; allowed: {', '.join(allowed) or 'none'}")
        opts.setdefault(key, []).append(value)
    return opts
