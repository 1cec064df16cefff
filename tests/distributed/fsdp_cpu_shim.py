"""Test-only shim: let accelerate run FSDP on CPU processes (gloo), so CI exercises the FSDP code paths.

What it patches: ``accelerate.state.AcceleratorState.__init__``. Accelerate turns a launch into FSDP only when the
processes' device is an accelerator: the FSDP branch of ``AcceleratorState.__init__`` is reached for
``MULTI_GPU``/``MULTI_NPU``/… and never for ``MULTI_CPU``, so ``accelerate launch`` with
``recipes/accelerate/fsdp.yaml`` on CPU silently trains plain DDP. The wrapper runs the original ``__init__`` and
then, when the Accelerator was given an FSDP plugin (``ACCELERATE_USE_FSDP=true``, as ``accelerate launch`` sets
from the recipe) and the state came out ``MULTI_CPU``, makes it ``FSDP`` with that plugin: the two assignments the
skipped branch would have made (mixed precision stays "no": the CPU runs compare fp32 weights).

Why it is test-only: FSDP on CPU is not something to train with (no speed, gloo's reduce-scatter is emulated), and
accelerate does not support it; the point is to run the package's FSDP code (``fully_shard``, sharded forwards and
backwards, full state dict save, resume) where there are no GPUs. Everything after the state (accelerate's
``prepare_model``/``fsdp2_prepare_model``, torch's ``fully_shard``, transformers' Trainer) is the unpatched code a
GPU run executes. Import this module before the first ``Accelerator`` (a trainer's config) is built.
"""

from __future__ import annotations

from typing import Any

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

__all__ = ["install"]

_original_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self: AcceleratorState, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
    """``AcceleratorState.__init__``, then the FSDP branch it skips for ``MULTI_CPU`` (module docstring)."""
    _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def install() -> None:
    """Patch ``AcceleratorState.__init__`` (idempotent)."""
    AcceleratorState.__init__ = _init_with_fsdp_on_cpu  # type: ignore[method-assign]


install()
