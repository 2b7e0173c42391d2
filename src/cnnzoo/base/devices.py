"""The one place that picks the device, the precision and the memory format.

``auto`` device: CUDA, then Apple's MPS, then the CPU. ``auto`` precision: bfloat16 autocast on a CUDA
device that supports it (Ampere and newer), fp32 everywhere else; bf16 needs no loss scaling, which is
why fp16 is not offered. ``bf16-native`` is bf16 wherever the hardware computes it (those GPUs, and CPUs
with AVX512-BF16 or AMX), else fp32: a recipe uses it for networks whose convolutions dominate (SpeedNet
trained 1.6x faster in bf16 + channels_last than in fp32 + NCHW on a 2-core AVX512-BF16 EPYC), while the
small LeNets run slower in bf16 on the CPU and stay in fp32. Asking for a device that is not there is a
:class:`~cnnzoo.base.errors.ConfigError` rather than a silent fallback, so a run never reports CPU numbers as
GPU numbers.

channels_last (NHWC): on CUDA it lets cuDNN use tensor-core kernels without transposes, so ``auto``
turns it on there. On the CPU it is slower for the small 28x28 networks that train there: one LeNet-BN
step (batch 128, forward + backward + SGD) took 8 ms in NCHW and 15 ms in channels_last on the 2-core
reference machine (torch 2.14, oneDNN), so ``auto`` leaves the CPU in NCHW.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnzoo.base.errors import ConfigError

__all__ = [
    "DeviceSetup",
    "ThreadGovernor",
    "auto_threads",
    "busy_cores",
    "collecting_only_new_objects",
    "cpu_jiffies",
    "enable_determinism",
    "free_device_memory",
    "has_native_bf16",
    "resolve_device",
    "resolve_precision",
    "set_threads",
    "setup_device",
    "threads_adapt",
]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` -> a concrete device (CUDA with its index)."""
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
        device = torch.device(name)
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    if name == "mps":
        if not _mps_available():
            raise ConfigError("--device mps: Apple MPS is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    raise ConfigError(f"--device {name}: unknown device; choose auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``name`` on ``device``; ``None`` means plain fp32."""
    if name == "fp32":
        return None
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("--precision bf16: this GPU does not support bfloat16; use --precision fp32")
        return torch.bfloat16
    if name == "bf16-native":
        return torch.bfloat16 if has_native_bf16(device) else None
    raise ConfigError(f"--precision {name}: unknown precision; choose auto, fp32, bf16 or bf16-native")


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or an x86 CPU with
    AVX512-BF16 or AMX (read from ``/proc/cpuinfo``; elsewhere False). Without such units oneDNN emulates
    bf16 and it is slower than fp32, which is why ``bf16-native`` falls back to fp32 there."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@dataclass(frozen=True)
class DeviceSetup:
    """Where and how a run computes: device, autocast dtype (``None`` = fp32) and memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @property
    def precision(self) -> str:
        return "bf16" if self.amp_dtype == torch.bfloat16 else "fp32"

    @property
    def label(self) -> str:
        """The device as d2l prints it: ``cpu``, ``cuda:0``, ``mps``."""
        return str(self.device)

    @property
    def name(self) -> str:
        """The device with its model or thread count, for tables: ``cpu (2 threads)``, ``cuda:0 (NVIDIA H200)``."""
        name = self.label
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        elif self.device.type == "cpu":
            name += f" ({torch.get_num_threads()} threads)"
        return name

    def place(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device, in channels_last when this setup says so; returns it."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to ``amp_dtype`` on this device, or a no-op context for fp32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def synchronize(self) -> None:
        """Wait for queued work, so wall-clock timings measure the work and not its launch."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def table_fields(self) -> dict[str, Any]:
        """The setup as a benchmark table's columns: ``device`` (:attr:`name`), ``precision``, ``channels_last``."""
        return {"device": self.name, "precision": self.precision, "channels_last": self.channels_last}

    def describe(self) -> str:
        """A one-line description for logs and config.json."""
        layout = "channels_last" if self.channels_last else "NCHW"
        return f"{self.name}, {self.precision}, {layout}"


def setup_device(device: str = "auto", precision: str = "auto", channels_last: str = "auto") -> DeviceSetup:
    """Resolve the three settings together (channels_last ``auto`` depends on the device)."""
    dev = resolve_device(device)
    amp = resolve_precision(precision, dev)
    if channels_last == "auto":
        use_cl = dev.type == "cuda"
    elif channels_last in ("yes", "no"):
        use_cl = channels_last == "yes"
    else:
        raise ConfigError(f"--channels-last {channels_last}: choose auto, yes or no")
    return DeviceSetup(device=dev, amp_dtype=amp, channels_last=use_cl)


def enable_determinism() -> None:
    """``--deterministic``: ask PyTorch for deterministic kernels, so a seed reproduces a CUDA run too.

    Sets ``torch.use_deterministic_algorithms(True, warn_only=True)``, ``cudnn.deterministic = True``,
    ``cudnn.benchmark = False`` (no autotuning, so the kernel cuDNN picks cannot change between runs) and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS needs it for reproducible matmuls; it must be set before
    the first CUDA matmul, which is why the CLI calls this before building anything on the device).

    The cost is on CUDA: deterministic convolution kernels are often slower than the fastest ones cuDNN
    would pick, and a few operations have no deterministic CUDA kernel at all, notably the backward pass
    of adaptive average pooling (ResNet, DenseNet, GoogLeNet, NiN). ``warn_only`` makes PyTorch warn about
    such an operation rather than stop the run, and that operation stays nondeterministic. On the CPU the
    flag changes little: CPU training with a fixed seed is already reproducible run to run.
    The settings are process-wide; nothing resets them.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def cpu_jiffies() -> tuple[int, int]:
    """``(busy, total)`` CPU time of the whole machine so far, in ``/proc/stat``'s ticks (all cores); raises
    OSError where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    except (ValueError, IndexError) as exc:
        raise OSError(f"/proc/stat: {exc}") from None
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(interval: float = 0.1) -> float:
    """How many CPU cores other programs keep busy right now: ``/proc/stat``'s busy share over ``interval``
    seconds (this process sleeps meanwhile) times the cores; 0.0 where ``/proc/stat`` cannot be read."""
    try:
        busy0, total0 = cpu_jiffies()
        time.sleep(interval)
        busy1, total1 = cpu_jiffies()
    except OSError:
        return 0.0
    if total1 <= total0:
        return 0.0
    return (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)


class ThreadGovernor:
    """Re-decides the CPU threads while a run trains, so that it computes on the cores other programs leave
    free *now*: down when a neighbour starts, back up when it ends (the count chosen at start-up, by
    :func:`set_threads`, goes stale as soon as the machine's load changes).

    :meth:`poll` is called between training steps (the engine calls it at each log interval). Every ``every``
    seconds it measures the cores the rest of the machine used: the machine's busy ticks in ``/proc/stat``
    less this process's own CPU time (all its threads, spinning ones included), over the wall time. The
    count it wants is the free cores, at least one; it changes ``torch``'s thread count only when two
    measurements in a row want the same new count, so a short burst elsewhere does not make it flap.
    ``clock``, ``machine`` and ``own`` are the wall clock, :func:`cpu_jiffies` and the process's CPU seconds:
    a test gives its own (all three, never mixed with real time).
    """

    EVERY = 3.0  # seconds between measurements

    def __init__(
        self,
        cores: int | None = None,
        *,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
        machine: Callable[[], tuple[int, int]] = cpu_jiffies,
        own: Callable[[], float] = time.process_time,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        threads: int | None = None,
    ) -> None:
        self.cores = cores or os.cpu_count() or 1
        self.every, self.clock, self.machine, self.own, self._set = every, clock, machine, own, set_threads
        self.threads = threads if threads is not None else torch.get_num_threads()
        self.changes: list[tuple[float, int]] = []  # (clock time, new thread count)
        self._last: tuple[float, int, int, float] | None = None
        self._wanted: int | None = None

    def others(self) -> float | None:
        """The cores the rest of the machine kept busy since the last measurement (None: too soon, or
        ``/proc/stat`` unreadable)."""
        now = self.clock()
        if self._last is not None and now - self._last[0] < self.every:
            return None
        try:
            busy, total = self.machine()
        except OSError:
            return None
        own = self.own()
        last, self._last = self._last, (now, busy, total, own)
        if last is None or total <= last[2] or now <= last[0]:
            return None
        machine_cores = (busy - last[1]) / (total - last[2]) * self.cores
        return max(0.0, machine_cores - (own - last[3]) / (now - last[0]))

    def poll(self) -> int | None:
        """Measure when it is time; the new thread count when it changed, else None."""
        others = self.others()
        if others is None:
            return None
        want = max(1, min(self.cores, self.cores - round(others)))
        agreed, self._wanted = want == self._wanted, want
        if want == self.threads or not agreed:
            return None
        self._set(want)
        self.threads = want
        self.changes.append((self._last[0] if self._last else 0.0, want))
        return want


def auto_threads(cores: int | None = None, busy: float | None = None) -> int:
    """The CPU threads to compute with: the cores other programs leave free (at least one), so that no
    thread of ours waits at every barrier for a sibling a busy neighbour has descheduled."""
    cores = cores or os.cpu_count() or 1
    busy = busy_cores() if busy is None else busy
    return max(1, min(cores, cores - round(busy)))


_threads_fixed = False  # set_threads(N) was called: the thread count is the user's, not to be re-decided


def threads_adapt() -> bool:
    """Whether a CPU run may re-decide its threads as it trains (:class:`ThreadGovernor`): not after
    ``set_threads(N)`` (``--threads N``) and not under ``OMP_NUM_THREADS``, which say how many."""
    return not _threads_fixed and not os.environ.get("OMP_NUM_THREADS")


def set_threads(threads: int | None) -> int:
    """``--threads N``: the CPU threads PyTorch computes with; returns the number in force.

    ``None``: :func:`auto_threads` (the cores not busy with other programs, probed for 0.1 s), unless
    ``OMP_NUM_THREADS`` says how many (then PyTorch's own choice stands); a run then re-decides them as it
    trains (:func:`threads_adapt`). A number fixes them for every run of this process."""
    global _threads_fixed
    explicit = threads is not None
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = min(auto_threads(), torch.get_num_threads())
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"--threads {threads}: must be at least 1")
    torch.set_num_threads(threads)
    _threads_fixed = explicit
    return threads


@contextlib.contextmanager
def collecting_only_new_objects() -> Iterator[None]:
    """While the block runs, garbage collection looks only at objects made inside it (``gc.freeze`` before,
    ``gc.unfreeze`` after): torch's import leaves hundreds of thousands of objects, so a full collection takes a
    fifth of a second, and :func:`free_device_memory` makes one between every two models of a benchmark."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def free_device_memory(device: torch.device) -> None:
    """Release what the last model held, so the next one's peak is its own: CUDA's cache, and on Linux
    glibc's free lists (``malloc_trim``), which otherwise keep the process's RSS at its highest."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "cpu":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
