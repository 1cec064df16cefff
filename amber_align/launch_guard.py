"""Launch guards: several processes on a machine without CUDA train as one synchronised gloo job, or not at all.

Why: launched with ``torchrun --nproc_per_node 2`` or ``accelerate launch --num_processes 2`` on a machine without
CUDA, a config without ``use_cpu: true`` set up no process group: every process trained alone on its own shard
(no gradient sync, a doubled logged loss, two runs into one folder) and exited 0, and the card said "1 × CPU"
(issue 25 item 3). Two checks close it:

* :func:`guard_cpu_launch` (every config's ``__post_init__``, before devices are set up): ``WORLD_SIZE > 1``, no
  CUDA and no ``use_cpu`` turns ``use_cpu`` on with ``ddp_backend: gloo`` (accelerate's multi-CPU path, which
  ``torchrun`` with ``use_cpu: true`` already takes) and says so in a warning; a GPU-only backend (``nccl``) is
  refused;
* :func:`check_launch_is_one_job` (every trainer, once its accelerator exists): a process launched as one of N
  that nevertheless runs alone (``num_processes == 1``) is one ``ConfigError``, never a silent single run.

docs/distributed.md, "Launch guards".
"""

from __future__ import annotations

import logging
import os
from typing import Any

from amber_align.errors import ConfigError

__all__ = ["launched_world_size", "guard_cpu_launch", "check_launch_is_one_job"]

logger = logging.getLogger(__name__)  # config code: no accelerate state yet

#: backends that run on CPU tensors (accelerate's multi-CPU path)
_CPU_BACKENDS = ("gloo", "ccl", "mpi")


def launched_world_size() -> int:
    """The number of processes the launcher started (``WORLD_SIZE``, set by torchrun and accelerate launch)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        return 1


def _has_accelerator() -> bool:
    import torch

    if torch.cuda.is_available():
        return True
    for name in ("xpu", "npu", "mlu", "musa"):
        backend = getattr(torch, name, None)
        if backend is not None and getattr(backend, "is_available", lambda: False)():
            return True
    return False


def guard_cpu_launch(config: Any) -> None:
    """Make a multi-process launch on a machine without CUDA a synchronised gloo job (see the module docstring)."""
    world = launched_world_size()
    if world <= 1 or getattr(config, "use_cpu", False) or _has_accelerator():
        return
    owner = type(config).__name__
    backend = getattr(config, "ddp_backend", None)
    if backend is not None and backend not in _CPU_BACKENDS:
        raise ConfigError(f"{owner}.ddp_backend: {backend!r} needs GPUs, but this launch of {world} processes runs "
                          "on a machine without CUDA; use gloo (or leave ddp_backend unset)")
    config.use_cpu = True
    config.ddp_backend = backend or "gloo"
    logger.warning(f"{owner}: launched as {world} processes (WORLD_SIZE={world}) on a machine without CUDA: "
                   f"use_cpu set to true and ddp_backend to {config.ddp_backend}, so they train as one synchronised "
                   "job (set use_cpu: true yourself to silence this)")


def check_launch_is_one_job(accelerator: Any) -> None:
    """Refuse a process that was launched as one of ``WORLD_SIZE`` but runs alone (``num_processes == 1``)."""
    world = launched_world_size()
    if world > 1 and accelerator.num_processes == 1:
        raise ConfigError(
            f"this process was launched as one of {world} (WORLD_SIZE={world}) but runs alone: no process group was "
            "set up, so each process would train on its own without gradient sync. On a machine without CUDA set "
            "use_cpu: true (gloo); with GPUs check the launcher's settings (docs/distributed.md)")
