"""SIGTERM (what ``timeout``, SLURM and CI send) and SIGINT (Ctrl+C) stop a run cleanly.

The handlers only note the signal; training stops at the end of the batch it is in (a validation pass
is finished first) and saves a checkpoint there, mid-epoch: the loop's progress, the optimiser and schedule,
the epoch's partial metric sums, and how many batches of the epoch were trained (the training loader is
stateful). ``state.json`` says where it stopped and the process exits with 128 + the signal (143 / 130).
``--resume`` continues with the next batch; every random choice is seeded by (seed, epoch, batch), so the
resumed run ends with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
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
    """After a signal: at the end of the current training batch, a checkpoint where the run stands, then
    :class:`StopRequested`."""

    def __init__(self, flag: StopFlag, checkpoint: Path):
        self.flag, self.checkpoint = flag, checkpoint
        self.where = {"epoch": 0, "batch": 0}

    def on_train_start(self, trainer, module):
        self.flag.signum = agreed_signal(trainer, self.flag.signum)
        if self.flag.signum is not None:  # nothing trained yet: nothing to save
            raise StopRequested(self.flag.signum)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.where = {"epoch": trainer.current_epoch, "batch": batch_idx + 1}
        self.flag.signum = agreed_signal(trainer, self.flag.signum)
        if self.flag.signum is None or batch_idx + 1 >= trainer.num_training_batches:
            return  # at an epoch's last batch: validate and close the epoch first, stop at the next batch
        trainer.train_dataloader.trained = (trainer.current_epoch, batch_idx + 1)
        module.mid_epoch = True
        try:
            trainer.save_checkpoint(self.checkpoint)
        finally:
            module.mid_epoch = False
        raise StopRequested(self.flag.signum)


def agreed_signal(trainer, signum: int | None) -> int | None:
    """Under DDP, the stop every process agrees on: the signal any of them has seen (the largest number), so all stop
    after the same batch and meet at the checkpoint's barrier; a process that stopped alone would leave the others
    waiting there for ever. One tiny all-reduce a batch; nothing without DDP."""
    if trainer.world_size <= 1:
        return signum
    import torch
    import torch.distributed as dist

    seen = torch.tensor([signum or 0], dtype=torch.int64, device=trainer.strategy.root_device)
    agreed = int(trainer.strategy.reduce(seen, reduce_op=dist.ReduceOp.MAX).item())
    return agreed or None


class StopRequested(Exception):
    """Raised inside the loop so Lightning tears down; turned into :class:`RunStopped` outside it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
