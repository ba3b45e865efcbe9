"""The studies, each declared once in its own module as ``STUDY = Study(...)``: the command line, ``facelab.study``,
the public API and the demo all loop over them. A study is any module of this package but the support modules below;
it is imported only when it is used, so ``facelab data info`` starts without loading any of them."""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import FacelabError

if TYPE_CHECKING:
    from .protocol import Protocol, StudyResult

SUPPORT = {"protocol", "registry"}


def comma_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] or None if text else None


def counts(text: str | None) -> list[int] | None:
    try:
        return [int(c) for c in comma_list(text) or []] or None
    except ValueError:
        raise FacelabError(f"--classes {text!r}: expected numbers like 20,100") from None


@dataclass(frozen=True)
class Option:
    """One of a study's own options: ``--name`` on the command line (``parse`` turns what is typed into the value)."""

    name: str
    type: object
    default: object
    help: str
    parse: Callable | None = None
    bounds: tuple[float, float | None] | None = None  # the range of a number option (facelab.ranges)


@dataclass(frozen=True)
class Study:
    """A study: its protocol, the function that runs it (``run(spec, **options) -> summary``), the lines a command prints
    from its summary, its own options and the training options it scales by, and how the demo runs and shows it."""

    protocol: Protocol
    run: Callable[..., StudyResult]
    headline: Callable[[Any], list[str]]  # of the study's own StudyResult
    summary: str  # the command's one-line help
    options: tuple[Option, ...] = ()
    scale: tuple[str, ...] = ("arch", "size", "epochs", "batch", "weights", "crop")  # TrainConfig options it takes
    seeded: bool = True  # takes --seed
    demo: dict = field(default_factory=dict)  # settings of the demo ("{photos}": the demo's photo folder)
    quick: dict = field(default_factory=dict)  # the same, for facelab demo --quick
    demo_note: str = ""  # how the demo's scale changes the study, and the command that shows what it leaves out
    example: str = ""  # the arguments of one typical ``facelab study NAME ...``, shown in its --help
    figures: Callable[[Any], list[tuple[str, str]]] = lambda summary: []  # (file under the study's folder, caption)
    webcam: tuple[str, str | None] | None = None  # (a run folder in the study's, the CAM target) for the demo's video

    @property
    def name(self) -> str:
        return self.protocol.name


def study_names() -> list[str]:
    """Every study's name, from the modules present (nothing imported)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name not in SUPPORT)


def get_study(name: str) -> Study:
    names = study_names()
    if name not in names:
        raise FacelabError(f"unknown study {name!r}; the studies are {', '.join(names)}")
    return import_module(f"facelab.studies.{name}").STUDY


def all_studies() -> list[Study]:
    return [get_study(n) for n in study_names()]
