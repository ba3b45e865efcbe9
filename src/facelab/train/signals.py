"""SIGTERM (what ``timeout``, SLURM and CI send) and SIGINT (Ctrl+C) stop a run cleanly.

The handlers only note the signal; training stops at the next batch boundary. The run folder keeps its
last end-of-epoch checkpoint and a ``state.json`` saying where it stopped, and the process exits with
128 + the signal (143 / 130). ``--resume`` restarts the interrupted epoch from its first batch: every
random choice is seeded by (seed, epoch, batch), so the resumed run ends with the same metrics as an
uninterrupted one.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

import lightning.pytorch as pl


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    def __init__(self):
        self.signum: int | None = None

    def note(self, signum: int, frame) -> None:
        self.signum = self.signum or signum


@contextmanager
def stop_requests() -> Iterator[StopFlag]:
    """Signals noted (not acted on) while the block runs; the previous handlers come back afterwards."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield flag
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, flag.note)
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class StopAtBatchEnd(pl.Callback):
    """Raises :class:`StopRequested` at the first batch boundary after a signal."""

    def __init__(self, flag: StopFlag):
        self.flag = flag
        self.where = {"epoch": 0, "batch": 0}

    def _check(self, trainer) -> None:
        if self.flag.signum is not None:
            raise StopRequested(self.flag.signum)

    def on_train_start(self, trainer, module):
        self._check(trainer)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.where = {"epoch": trainer.current_epoch, "batch": batch_idx + 1}
        self._check(trainer)

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self._check(trainer)


class StopRequested(Exception):
    """Raised inside the loop so Lightning tears down; turned into :class:`RunStopped` outside it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
