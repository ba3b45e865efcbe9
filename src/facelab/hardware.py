"""Device, precision and threads, chosen from what the machine in hand reports.

bf16 autocast trains these nets 1.5-3x faster than fp32 where bf16 is computed natively (CUDA
GPUs with bf16, CPUs with AMX or AVX-512 BF16) and 5-16x slower where the CPU emulates it
(AVX2-only CPUs: most laptops, many cloud VMs). So ``auto`` picks bf16 only on native hardware.
Every command that runs a network builds one :class:`Runtime` from its ``--precision``/``--device`` and passes it
on explicitly (``runtime=``); nothing is kept process-wide. Every run and benchmark records :meth:`Runtime.describe`,
so a figure always names the machine it came from.

Threads: torch takes no more threads than the cores this process may use, divided among the
processes that share them (pytest-xdist workers, CPU DDP processes); ``FACELAB_THREADS`` overrides.
Two 2-thread processes on 2 cores trained at a quarter of the speed of two 1-thread ones.

Memory: on the CPU, large buffers freed by one training step are served again to the next from the C library's heap
(:func:`reuse_freed_memory`) instead of being mapped afresh and zero-filled by the kernel each time.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypedDict

from .errors import FacelabError
from .progress import say

if TYPE_CHECKING:  # torch is imported where it is used: ``facelab data info`` starts without it
    import torch

PRECISIONS = ("auto", "bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")


def cpu_capability() -> str:
    """ATen's kernel level for this CPU (``AVX2``, ``AVX512``, ...); honours ``ATEN_CPU_CAPABILITY``."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def native_bf16(device: str) -> bool:
    """Whether bf16 matrix work runs in hardware on ``device`` (not emulated)."""
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if cpu_capability() not in ("AVX512", "AMX"):  # AVX2 kernels (real or forced) emulate bf16
        return False
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def choose_device(requested: str = "auto") -> str:
    import torch

    if requested not in DEVICES:
        raise FacelabError(f"--device {requested!r}: use one of {', '.join(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise FacelabError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu (or auto)")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def choose_precision(requested: str, device: str) -> str:
    """``auto`` -> bf16 where it is native on ``device``, else fp32. A forced slow choice is said once."""
    if requested not in PRECISIONS:
        raise FacelabError(f"--precision {requested!r}: use one of {', '.join(PRECISIONS)}")
    native = native_bf16(device)
    if requested == "auto":
        return "bf16" if native else "fp32"
    if requested == "bf16" and not native:
        say(
            f"--precision bf16 on a {device} without native bf16 ({_machine(device)}): bf16 is emulated there "
            "and runs 5-16x slower than fp32; --precision auto picks fp32 on this machine"
        )
    return requested


def _machine(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else f"CPU capability {cpu_capability()}"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def sharing_processes(cpu_ddp_processes: int = 1) -> int:
    """How many processes split this machine's cores: xdist workers, CPU DDP processes."""
    xdist = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    ddp = int(os.environ.get("LOCAL_WORLD_SIZE", cpu_ddp_processes) or 1)
    return max(1, xdist) * max(1, ddp)


def thread_count(cpu_ddp_processes: int = 1) -> int:
    """Torch threads for this process: ``FACELAB_THREADS``, else its share of the available cores."""
    forced = os.environ.get("FACELAB_THREADS")
    if forced:
        try:
            n = int(forced)
        except ValueError:
            raise FacelabError(f"FACELAB_THREADS={forced!r}: give a whole number of threads") from None
        if n < 1:
            raise FacelabError(f"FACELAB_THREADS={forced!r}: give at least 1 thread")
        return n
    return max(1, available_cores() // sharing_processes(cpu_ddp_processes))


# glibc serves an allocation above its mmap threshold (adaptive, at most 32 MB) with fresh pages and unmaps them on
# free, so every step's large activations would be page-faulted and zero-filled again; held in the heap they are
# reused (what that saves: docs/measured.md, "Heap reuse"). Above 256 MB (a data set's images) allocations are still
# mapped; up to 512 MB freed at the heap's top is kept.
HEAP_REUSE_BYTES = {"mmap_threshold": 256 << 20, "trim_threshold": 512 << 20}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def reuse_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (``HEAP_REUSE_BYTES``) so freed training buffers are reused, not remapped.
    False where it does not apply: a C library other than glibc, or ``FACELAB_HEAP_REUSE=0``."""
    if os.environ.get("FACELAB_HEAP_REUSE", "1") == "0":
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_REUSE_BYTES["mmap_threshold"])) and bool(
        mallopt(_M_TRIM_THRESHOLD, HEAP_REUSE_BYTES["trim_threshold"])
    )


class RuntimeDescription(TypedDict):
    """Where a figure was measured, as every summary, bench and report records it."""

    device: str
    precision: str
    threads: int
    cpu_capability: str
    cores: int
    channels_last: bool
    heap_reuse: bool
    gpu: str | None


@dataclass(frozen=True)
class Runtime:
    """Where and how networks run in this process."""

    device: str
    precision: str  # resolved: bf16 or fp32
    threads: int
    cpu_capability: str
    channels_last: bool
    asked: tuple[str, str] = ("auto", "auto")  # (precision, device) as requested: what a new run's config.json records
    heap_reuse: bool = False  # freed buffers served again from the heap (:func:`reuse_freed_memory`)

    def apply(self) -> "Runtime":
        """Set this process up for the runtime, once, where a command or a library entry point (``train``,
        ``evaluate``, a probe given no runtime) starts: torch's thread count, and on the CPU glibc's reuse of freed
        buffers (:func:`reuse_freed_memory`). Returns the runtime that records what was applied."""
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return replace(self, heap_reuse=self.device == "cpu" and reuse_freed_memory())

    def sharing_cores(self, processes: int) -> "Runtime":
        """The runtime of one of ``processes`` DDP processes on this node's CPU: each with its share of the threads."""
        return replace(self, threads=thread_count(processes)) if self.device == "cpu" and processes > 1 else self

    def for_probes(self) -> "Runtime":
        """This runtime's precision on the CPU, where probes run trained networks (itself when already there)."""
        return self if self.device == "cpu" else runtime(self.asked[0], "cpu").apply()

    @property
    def lightning_precision(self) -> str:
        return "bf16-mixed" if self.precision == "bf16" else "32-true"

    @property
    def memory_format(self) -> torch.memory_format:
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        """bf16 autocast where chosen, nothing otherwise; outputs are cast back to float by the callers."""
        import torch

        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device, torch.bfloat16)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model on this device, in this memory format."""
        return model.to(self.device, memory_format=self.memory_format)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def describe(self) -> RuntimeDescription:
        import torch

        gpu = torch.cuda.get_device_name() if self.device == "cuda" else None
        return RuntimeDescription(
            device=self.device,
            precision=self.precision,
            threads=self.threads,
            cpu_capability=self.cpu_capability,
            cores=available_cores(),
            channels_last=self.channels_last,
            heap_reuse=self.heap_reuse,
            gpu=gpu,
        )


def runtime(precision: str = "auto", device: str = "auto", cpu_ddp_processes: int = 1) -> Runtime:
    """Resolve the device, precision, memory format and thread count; nothing in the process changes until
    :meth:`Runtime.apply`."""
    dev = choose_device(device)
    prec = choose_precision(precision, dev)
    threads = thread_count(cpu_ddp_processes if dev == "cpu" else 1)
    # channels_last: faster for every net, precision and CPU kind tried (docs/measured.md, "Memory format")
    return Runtime(dev, prec, threads, cpu_capability(), channels_last=True, asked=(precision, device))


def probe_runtime(precision: str = "auto") -> Runtime:
    """Where probes, the web page and benchmarks run a trained network: the CPU, in ``precision`` (``auto``: bf16 only
    where native), applied: the default of a probe called without one. A notebook passes
    ``facelab.runtime("fp32", "cpu").apply()`` as ``runtime=`` to any probe to choose."""
    return runtime(precision, "cpu").apply()
