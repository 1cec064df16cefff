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
  that nevertheless runs alone (``num_processes == 1``) is one ``ConfigError``, never a silent single run;
* :func:`requested_cpu_processes`: ``accelerate launch --cpu --num_processes 2`` starts ONE process (accelerate's
  simple launcher; several CPU processes need an MPI hostfile or a ``MULTI_CPU`` config), with no ``WORLD_SIZE``
  and half the threads: the only trace of the 2 is the launcher's command line, so it is read there and the run is
  refused with the launch forms that do start several processes.

Under DeepSpeed (``accelerate launch`` with a DeepSpeed config, or a config's ``deepspeed`` field) on a machine
without CUDA, ``use_cpu: true`` would turn DeepSpeed off: the guard sets ``ddp_backend: gloo`` instead (DeepSpeed's
CPU accelerator runs on gloo without oneCCL; with no backend accelerate sets up no process group at all).
:func:`guard_deepspeed_precision` makes the mixed precision come from one place: a launcher that chose bf16/fp16
(``ACCELERATE_MIXED_PRECISION``) sets it on a config that chose none, and a config that chose the other one is one
``ConfigError`` (transformers refused the mismatch with a long error, and ``auto_bf16`` stood down).

docs/distributed.md, "Launch guards" and "DeepSpeed".
"""

from __future__ import annotations

import logging
import os
from typing import Any

from amber_align.errors import ConfigError

__all__ = ["launched_world_size", "guard_cpu_launch", "check_launch_is_one_job", "deepspeed_launch",
           "guard_deepspeed_precision", "requested_cpu_processes"]

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


def deepspeed_launch(config: Any) -> bool:
    """Whether ``config`` trains under DeepSpeed: its own ``deepspeed`` field, or accelerate's launcher said so."""
    if getattr(config, "deepspeed", None):
        return True
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes")


def guard_deepspeed_precision(config: Any) -> None:
    """Under DeepSpeed, take the launcher's mixed precision when the config chose none; refuse a conflict."""
    if not deepspeed_launch(config) or getattr(config, "deepspeed", None):
        return  # a config's own DeepSpeed file/dict: transformers fills its "auto" precision from the config
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher not in ("bf16", "fp16"):
        return
    owner = type(config).__name__
    other = "fp16" if launcher == "bf16" else "bf16"
    if getattr(config, other, False):
        raise ConfigError(f"{owner}.{other}: true, but the launcher's DeepSpeed config asks for mixed_precision "
                          f"{launcher} (ACCELERATE_MIXED_PRECISION={launcher}); choose the precision in one place: "
                          f"set mixed_precision: 'no' in the accelerate config (recipes/accelerate/), or drop {other}")
    if not getattr(config, launcher, False):
        setattr(config, launcher, True)
        logger.info(f"{owner}: {launcher} on, as the launcher's DeepSpeed config asks (ACCELERATE_MIXED_PRECISION)")


def _launcher_command_line() -> list[str]:
    """The parent process's command line ([] when it cannot be read)."""
    try:
        import psutil  # an accelerate dependency

        return list(psutil.Process(os.getppid()).cmdline())
    except Exception:  # noqa: BLE001 - no psutil, no permission, the parent gone: nothing to judge
        return []


def requested_cpu_processes(command_line: list[str] | None = None) -> int | None:
    """The ``--num_processes`` of an ``accelerate launch --cpu`` (or ``use_cpu``) that started this process through
    accelerate's simple launcher (``ACCELERATE_USE_CPU`` set, no ``WORLD_SIZE``); None otherwise. ``command_line``:
    the launcher's, read from the parent process by default."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes") or "WORLD_SIZE" in os.environ:
        return None
    line = _launcher_command_line() if command_line is None else command_line
    if not any("accelerate" in part for part in line[:4]) or any("mpirun_hostfile" in part for part in line):
        return None
    for i, part in enumerate(line):
        value = None
        if part in ("--num_processes", "--num-processes") and i + 1 < len(line):
            value = line[i + 1]
        elif part.startswith(("--num_processes=", "--num-processes=")):
            value = part.split("=", 1)[1]
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def guard_cpu_launch(config: Any) -> None:
    """Make a multi-process launch on a machine without CUDA a synchronised gloo job (see the module docstring)."""
    guard_deepspeed_precision(config)
    world = launched_world_size()
    requested = requested_cpu_processes() if world <= 1 else None
    if requested is not None and requested > 1:
        raise ConfigError(
            f"accelerate launch --cpu --num_processes {requested} started one process, not {requested} (accelerate's "
            "simple launcher runs a --cpu launch as a single process without an MPI hostfile), so it would train alone "
            "on half the threads; for several CPU processes use torchrun --nproc_per_node "
            f"{requested} (use_cpu: true), or accelerate launch --config_file recipes/accelerate/multi_gpu.yaml "
            f"--num_processes {requested} with use_cpu: true in the config (docs/distributed.md)")
    if world <= 1 or getattr(config, "use_cpu", False) or _has_accelerator():
        return
    owner = type(config).__name__
    backend = getattr(config, "ddp_backend", None)
    if backend is not None and backend not in _CPU_BACKENDS:
        raise ConfigError(f"{owner}.ddp_backend: {backend!r} needs GPUs, but this launch of {world} processes runs "
                          "on a machine without CUDA; use gloo (or leave ddp_backend unset)")
    if deepspeed_launch(config):
        # DeepSpeed's CPU accelerator: accelerate sets up no process group without a backend, and use_cpu would
        # turn DeepSpeed off; gloo is what DeepSpeed itself picks without oneCCL
        if backend is None:
            config.ddp_backend = "gloo"
            logger.warning(f"{owner}: DeepSpeed launched as {world} processes on a machine without CUDA: "
                           "ddp_backend set to gloo (DeepSpeed's CPU accelerator)")
        return
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
