"""One registry for every kind of plug-in - networks, tasks, data sources, attribution methods, detectors, loggers,
exporters: each entry has a name, the thing itself and a one-line help, and every kind looks up, lists and refuses
an unknown name the same way (one line naming the option, the name and the choices). The studies are found by a
scan of their package instead (:mod:`facelab.studies.registry`): listing them must not import them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from .errors import FacelabError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    item: T
    help: str = ""


class Registry(Generic[T]):
    """The plug-ins of one kind, by name, in the order they were added. ``option`` is the command-line option that
    chooses one (``--arch``); ``hint`` follows the choices in the error (where to read more)."""

    def __init__(self, option: str, hint: str = ""):
        self.option, self.hint = option, hint
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, item: T, help: str = "") -> T:
        if name in self._entries:
            raise ValueError(f"{self.option}: {name!r} is registered twice")
        self._entries[name] = Entry(name, item, help)
        return item

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        """A decorator: ``@REGISTRY.register("name", "help")`` on the class or function that is the plug-in."""
        return lambda item: self.add(name, item, help)

    def get(self, name: str) -> T:
        return self.entry(name).item

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise FacelabError(f"unknown {self.option} {name!r}; use one of {', '.join(self._entries)}{self.hint}")
        return self._entries[name]

    def check(self, name: str) -> str:
        """``name`` when it is registered; the one-line error otherwise."""
        return self.entry(name).name

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def choices(self) -> str:
        """The names as an option's help ends with them: ``a, b or c``."""
        names = self.names()
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
