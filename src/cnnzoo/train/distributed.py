"""Data-parallel training on PyTorch's own engine: ``torchrun`` + ``DistributedDataParallel``.

``torchrun --nproc_per_node=N -m cnnzoo train ...`` starts N copies of the CLI with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address in the environment; :func:`from_env` reads
them and :meth:`Distributed.start` joins the process group (NCCL when the run is on CUDA, gloo on the
CPU). What each piece of a run then does, and why:

* **Batch size is global.** ``--batch-size 256`` on 4 GPUs is 64 images per rank per step, so the same
  command computes the same gradients (up to summation order) on any number of processes, and the
  learning rate needs no rescaling. The batch must divide evenly by the world size.
* **Data.** Every rank holds the whole split on its device and takes the slice ``rank::world_size`` of
  each epoch's seeded permutation (:class:`~cnnzoo.data.DeviceBatches`), so the ranks' step-``k``
  batches together are exactly the single-process step-``k`` batch.
* **Gradients** are averaged by DDP; **metrics** (loss sum, correct count, images) are summed with
  :func:`all_reduce_sum` once per epoch; every rank evaluates the whole test set with identical weights.
* **Files and output.** Only rank 0 creates the run directory, writes checkpoints, metrics and the
  report, and prints. The checkpoint holds the unwrapped model and *global* progress (the completed
  epochs, the global step within the epoch and the whole world's partial sums), so a run resumes under
  a different world size: the global batch keeps the steps per epoch and the LR schedule unchanged.
* **Stopping.** Ctrl-C reaches every rank, but not at the same step; :meth:`Distributed.agreed_stop`
  combines the ranks' flags with an all-reduce every :data:`STOP_CHECK_EVERY` steps, so all ranks stop
  after the same step (a sync that often costs nothing measurable). ``--target-acc`` decisions are
  combined the same way.
* **BatchNorm.** Without ``--sync-bn`` each rank normalises with its own per-rank batch statistics (and
  DDP copies rank 0's running statistics to the others each step), as in most DDP training.
  ``--sync-bn`` converts ``nn.BatchNorm*`` layers to ``nn.SyncBatchNorm``, which PyTorch implements for
  GPUs only; cnnzoo's hand-written BatchNorm (``lenet_bn_scratch``) is not an ``nn.BatchNorm`` and
  cannot be converted, so both cases are refused with a message rather than silently left unsynced.
"""

from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from cnnzoo.base.devices import DeviceSetup
from cnnzoo.base.errors import ConfigError
from cnnzoo.models.batchnorm import BatchNorm1d, BatchNorm2d
from cnnzoo.train.config import TrainConfig

__all__ = [
    "STOP_CHECK_EVERY",
    "Distributed",
    "ParallelContext",
    "all_reduce_sum",
    "cleanup",
    "from_env",
    "sync_batchnorm",
    "timeout_from_env",
]

STOP_CHECK_EVERY = 20  # steps between all-reduces of the ranks' stop flags
DEFAULT_TIMEOUT = 1800.0  # seconds a collective waits for a stalled rank (PyTorch's own default is 10 minutes)
TIMEOUT_ENV = "CNNZOO_DIST_TIMEOUT"  # read by `cnnzoo train` when --dist-timeout is not given


def timeout_from_env(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    """``$CNNZOO_DIST_TIMEOUT`` seconds (default 1800), as the CLI reads it once: the run layer and the process
    group are handed the result as an argument."""
    env = os.environ if environ is None else environ
    text = env.get(TIMEOUT_ENV, "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r}: not a number of seconds; e.g. {TIMEOUT_ENV}=1800") from None
    if not 0 < seconds <= 7 * 24 * 3600:
        raise ConfigError(f"{TIMEOUT_ENV}={text}: must be more than 0 and at most a week (604800 seconds)")
    return datetime.timedelta(seconds=seconds)


@dataclass(frozen=True)
class ParallelContext:
    """What :func:`cnnzoo.fit` needs to know about data parallelism, in one object.

    ``rank`` of ``world_size`` processes takes its shard of every batch; ``all_reduce`` sums a tensor over
    the ranks (in place, returning it); ``wrap`` wraps the module for training (DDP). The default is one
    process alone: no sums, no wrapper.
    """

    rank: int = 0
    world_size: int = 1
    all_reduce: Callable[[Tensor], Tensor] | None = None
    wrap: Callable[[nn.Module], nn.Module] | None = None

    @property
    def alone(self) -> bool:
        return self.all_reduce is None

    def sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over the ranks (a copy; ``tensor`` itself when alone)."""
        return tensor if self.all_reduce is None else self.all_reduce(tensor.clone())

    def any(self, local: bool, device: torch.device) -> bool:
        """``local`` alone; with ranks, True when any rank says so (so every rank takes the same branch)."""
        if self.all_reduce is None:
            return local
        return bool(self.all_reduce(torch.tensor(1.0 if local else 0.0, device=device)) > 0)


def from_env(
    environ: Mapping[str, str] | None = None, *, timeout: datetime.timedelta | None = None
) -> Distributed | None:
    """The torchrun launch this process belongs to, or ``None`` when it runs alone.

    torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (and ``MASTER_ADDR``/``MASTER_PORT``); a
    world of one process is treated as no launch at all. ``timeout``: how long a collective waits for a stalled
    rank (default :data:`DEFAULT_TIMEOUT` seconds).
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        world_size, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
        local_rank = int(env.get("LOCAL_RANK", rank))
    except ValueError:
        raise ConfigError(
            f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}: not whole numbers; launch "
            "data-parallel training with torchrun, which sets them"
        ) from None
    if world_size <= 1:
        return None
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world_size}: launch with torchrun")
    timeout = timeout if timeout is not None else datetime.timedelta(seconds=DEFAULT_TIMEOUT)
    return Distributed(rank=rank, local_rank=local_rank, world_size=world_size, timeout=timeout)


@dataclass
class Distributed:
    """One rank of a torchrun launch: who it is, and the hooks :func:`cnnzoo.fit` takes."""

    rank: int
    local_rank: int
    world_size: int
    backend: str | None = None
    timeout: datetime.timedelta = datetime.timedelta(seconds=DEFAULT_TIMEOUT)  # a collective's wait for a stalled rank

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes files and prints."""
        return self.rank == 0

    # -- set-up ---------------------------------------------------------------------------------
    def device_for(self, config: TrainConfig) -> str:
        """The rank's device: its own GPU (``cuda:LOCAL_RANK``) when the run is on CUDA, else the CPU;
        and the check that the global batch divides over the ranks. ``config`` itself is not changed, so
        the run's recorded settings stay the ones the user gave."""
        if config.batch_size % self.world_size:
            raise ConfigError(
                f"--batch-size {config.batch_size} is the global batch and must divide evenly over "
                f"{self.world_size} processes: use e.g. --batch-size {_round_up(config.batch_size, self.world_size)}"
            )
        device = str(config.device)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise ConfigError(f"--device {config.device}: CUDA is not available on this machine; use --device cpu")
            if self.local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    f"LOCAL_RANK {self.local_rank} but only {torch.cuda.device_count()} GPU(s) on this node: "
                    "start at most one process per GPU (--nproc_per_node)"
                )
            device = f"cuda:{self.local_rank}"
        elif device == "mps":
            raise ConfigError("--device mps: data-parallel training runs on CUDA (NCCL) or the CPU (gloo)")
        return device

    def start(self, device: torch.device) -> None:
        """Join the process group: NCCL for CUDA, gloo for the CPU (rendezvous from torchrun's env)."""
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            kwargs: dict[str, object] = {"backend": self.backend, "rank": self.rank, "world_size": self.world_size,
                                         "timeout": self.timeout}  # fmt: skip
            if device.type == "cuda":
                kwargs["device_id"] = device  # binds NCCL to this GPU up front
            dist.init_process_group(**kwargs)
            atexit.register(cleanup)

    def prepare_model(self, model: nn.Module, *, sync_bn: bool, device: torch.device) -> nn.Module:
        """``--sync-bn``: convert ``nn.BatchNorm*`` to ``nn.SyncBatchNorm`` (GPU only; see module docstring)."""
        return sync_batchnorm(model, device) if sync_bn else model

    def context(self, setup: DeviceSetup) -> ParallelContext:
        """This rank's :class:`ParallelContext` for :func:`cnnzoo.fit`, with DDP as the wrapper."""
        device = setup.device

        def wrap(module: nn.Module) -> nn.Module:
            ids = [device.index] if device.type == "cuda" else None
            return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)

        return ParallelContext(rank=self.rank, world_size=self.world_size, all_reduce=all_reduce_sum, wrap=wrap)

    def finish(self) -> None:
        """The end of a run on every rank: wait until rank 0 has written the run's closing files, then leave
        the process group together. A rank that left early, while rank 0 still held the group, was seen to
        abort at exit ("terminate called without an active exception") on a loaded 2-core machine."""
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        cleanup()

    def agreed_stop(
        self, flag: Callable[[], bool], device: torch.device, every: int = STOP_CHECK_EVERY
    ) -> Callable[[], bool]:
        """A ``should_stop`` for :func:`cnnzoo.fit` that is True on every rank at the same call.

        Every rank calls it once per step (and once per epoch end), so counting calls lines the ranks
        up: every ``every``-th call sums the local flags; any rank's Ctrl-C stops them all there.
        """
        calls = 0

        def should_stop() -> bool:
            nonlocal calls
            calls += 1
            if calls % every:
                return False
            local = torch.tensor(1.0 if flag() else 0.0, device=device)
            return bool(all_reduce_sum(local) > 0)

        return should_stop


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum ``tensor`` over all ranks, in place, and return it (an identity without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def cleanup() -> None:
    """Leave the process group (registered at exit by :meth:`Distributed.start`; safe to call twice)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``nn.SyncBatchNorm.convert_sync_batchnorm`` with the two cases it would get wrong refused.

    PyTorch's SyncBatchNorm raises in the first training step on a CPU tensor, and skips modules that
    are not ``nn.BatchNorm*`` (cnnzoo's hand-written BatchNorm), which would leave them silently
    unsynchronised; both are :class:`~cnnzoo.base.errors.ConfigError` here, before any training.
    """
    name = getattr(model, "model_name", type(model).__name__)
    if device.type != "cuda":
        raise ConfigError(
            "--sync-bn: PyTorch's SyncBatchNorm runs on GPUs only; on the CPU drop --sync-bn "
            "(each process then normalises with its own batch statistics)"
        )
    if any(isinstance(m, BatchNorm1d | BatchNorm2d) for m in model.modules()):
        raise ConfigError(
            f"--sync-bn: {name} uses cnnzoo's hand-written BatchNorm, which SyncBatchNorm cannot replace; "
            "train the same network on nn.BatchNorm (lenet_bn for lenet_bn_scratch) or drop --sync-bn"
        )
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ConfigError(f"--sync-bn: {name} has no BatchNorm layers to synchronise; drop --sync-bn")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
