"""Progress bars for long work (rich), silent when asked or when output is not a terminal log."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress_bar(description: str, total: int, quiet: bool = False) -> Iterator[Callable[..., None]]:
    """Yields ``advance(n=1)``; draws a rich bar on stderr unless ``quiet``."""
    if quiet:
        yield lambda n=1: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False, console=Console(stderr=True)) as bar:  # stdout stays for results (JSON)
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


_said: set[str] = set()


def say(message: str) -> None:
    """A note on stderr, said once per process (a forced slow precision, an unfinished run served, ...)."""
    if message not in _said:
        _said.add(message)
        Console(stderr=True).print(f"note: {message}", highlight=False, markup=False, soft_wrap=True)
