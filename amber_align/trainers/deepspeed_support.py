"""DeepSpeed ZeRO-2/3 for every trainer of the package: the frozen teacher and the dtype of the saved weights.

Why a module of its own: under ``accelerate launch`` with a DeepSpeed config the trained model is wrapped in a
``DeepSpeedEngine`` by the Trainer, but two things of ours are not the Trainer's business:

- **the frozen teacher** (Cao's anchor, AMBER's ``cao`` part, continual learning's f0). Under ZeRO-3 a model built
  while the Trainer's DeepSpeed config is alive (``zero3_init_flag: true``) is partitioned at load time: its
  parameters are empty placeholders on every process, and a plain forward fails or computes nonsense. It gets an
  inference-only engine of its own with the same stage-3 partitioning (no optimizer), whose hooks gather each
  layer's weights for the forward, as TRL prepares its reference and teacher models
  (``trl/models/utils.py::prepare_deepspeed``, huggingface/trl). Under ZeRO-1/2 the weights are replicated anyway:
  the teacher stays a plain module on the process's device, in eval mode (TRL's "stage 0").
- **the saved dtype**. With ``bf16: true`` DeepSpeed holds the model itself in bf16 (the fp32 master weights live in
  the ZeRO optimizer), so the Trainer's ``save_model`` wrote bf16 weights. :func:`full_precision_state_dict` puts the
  optimizer's fp32 master weights back (``deepspeed.utils.safe_get_full_fp32_param``, a collective under ZeRO-2/3),
  so the saved model is the float32 one the run trained unless ``save_dtype`` asks for another.

docs/distributed.md, "DeepSpeed".
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch

from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger

__all__ = ["deepspeed_stage", "prepare_deepspeed_teacher", "full_precision_state_dict", "SAVE_DTYPES",
           "check_deepspeed_support", "names_as_loaded", "drop_tied_copies"]

logger = get_logger(__name__)

#: ``save_dtype`` values and the torch dtype each names
SAVE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                       "float16": torch.float16}


def deepspeed_stage(accelerator: Any) -> int | None:
    """The ZeRO stage of ``accelerator``'s DeepSpeed plugin, or None when the run does not use DeepSpeed."""
    state = getattr(accelerator, "state", None)
    plugin = getattr(state, "deepspeed_plugin", None) if state is not None else None
    if plugin is None:
        return None
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


def prepare_deepspeed_teacher(accelerator: Any, teacher: torch.nn.Module) -> Any:
    """The frozen ``teacher`` ready for forward passes under the run's DeepSpeed plugin (see the module docstring).

    ZeRO-3: ``deepspeed.initialize`` with a copy of the run's config (stage 3 kept; the optimizer, scheduler and
    batch-size entries dropped, since the engine never steps; the stage-3 bucket sizes sized from the hidden size
    as TRL does), returned in eval mode. Every process must call this (the engine partitions the weights). ZeRO-0/1/2:
    the module on ``accelerator.device``, in eval mode."""
    import deepspeed

    stage = deepspeed_stage(accelerator)
    if stage != 3:
        return teacher.to(accelerator.device).eval()
    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    zero = config.setdefault("zero_optimization", {})
    hidden = getattr(getattr(teacher, "config", None), "hidden_size", None)
    if isinstance(hidden, int):
        # TRL's values; our own nested keys replace any "auto" the Trainer has not filled in for this engine
        zero.update({"reduce_bucket_size": hidden * hidden, "stage3_param_persistence_threshold": 10 * hidden,
                     "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden)})
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        if config.get(key) == "auto":
            config.pop(key)
    config.setdefault("train_micro_batch_size_per_gpu", 1)  # DeepSpeed requires one; this engine never trains
    if config.get("gradient_clipping") == "auto":
        config.pop("gradient_clipping")
    engine, *_ = deepspeed.initialize(model=teacher, config=config)
    engine.eval()
    logger.info("frozen teacher: its own DeepSpeed ZeRO-3 inference engine (weights partitioned over "
                f"{accelerator.num_processes} processes, no optimizer)")
    return engine


def _hp_param(param: torch.nn.Parameter) -> torch.Tensor | None:
    """The full fp32 master weight of ``param`` from the ZeRO optimizer, or None when it has none (frozen)."""
    from deepspeed.utils import safe_get_full_fp32_param

    try:
        return safe_get_full_fp32_param(param)
    except AttributeError:  # a frozen ZeRO-3 parameter: no optimizer holds it
        return None


def full_precision_state_dict(engine: Any, state_dict: dict[str, torch.Tensor], dtype: torch.dtype,
                              keep: bool) -> dict[str, torch.Tensor]:
    """``state_dict`` (the 16-bit weights DeepSpeed gathered for saving) with every trained parameter replaced by
    its fp32 master weight cast to ``dtype``, and every other floating tensor cast to ``dtype``.

    Collective under ZeRO-2/3: every process calls it in the same order; ``keep`` is false on the processes that do
    not write (they take part in the gathers and get an empty dict). Frozen parameters have no master copy: under
    bf16 they were rounded to bf16 when DeepSpeed cast the model, and are saved as that value in ``dtype``."""
    module = getattr(engine, "module", engine)
    masters: dict[int, torch.Tensor] = {}
    for param in module.parameters():  # unique parameters, the same order on every process
        master = _hp_param(param)
        if master is not None and keep:
            masters[id(param)] = master.detach().to("cpu", dtype)
    if not keep:
        return {}
    out = {name: tensor.to(dtype) if tensor.is_floating_point() else tensor for name, tensor in state_dict.items()}
    for name, param in module.named_parameters(remove_duplicate=False):  # tied names share their master
        if name in out and id(param) in masters:
            out[name] = masters[id(param)]
    return out


def drop_tied_copies(module: Any, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` without the second name of a tied parameter (an MLM decoder tied to the word embeddings).

    Why: under ZeRO-1/2 accelerate clones every tensor of the state dict before saving, so ``save_pretrained`` no
    longer sees that the decoder shares the embeddings' storage and wrote both (measured: ``cls.predictions.decoder.
    weight`` and ``.bias`` in an AMBER model's file, one more vocabulary-sized matrix); DDP's file has one."""
    seen: set[int] = set()
    copies = []
    for name, param in module.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            copies.append(name)
        seen.add(id(param))
    return {name: tensor for name, tensor in state_dict.items() if name not in copies}


@contextlib.contextmanager
def names_as_loaded(module: Any) -> Iterator[None]:
    """While saving, keep only the weight renamings that loading ``module`` actually applied.

    Why: ``save_pretrained`` reverts the renamings recorded at load time; under ZeRO-3 transformers records every
    renaming it knows (also the legacy ``LayerNorm.gamma`` -> ``weight`` that matched nothing), so a model loaded
    from a checkpoint with ``LayerNorm.weight`` was saved with ``LayerNorm.gamma`` (measured with transformers 5.25;
    DDP saves ``weight``)."""
    conversions = getattr(module, "_weight_conversions", None)
    if not conversions:
        yield
        return
    module._weight_conversions = [c for c in conversions if getattr(c, "was_used", lambda: True)()]
    try:
        yield
    finally:
        module._weight_conversions = conversions


def check_deepspeed_support(trainer: Any) -> None:
    """The settings that cannot work under DeepSpeed, refused with one ``ConfigError`` naming each (docs/errors.md).

    ``teacher_cache`` under ZeRO-3: the cache is built by the main process alone while the others wait
    (``main_process_first``), but a ZeRO-3 teacher's forward gathers its weights from every process, so that build
    would hang; its fingerprint would also hash the empty partitions."""
    stage = deepspeed_stage(trainer.accelerator)
    if stage == 3 and getattr(trainer.args, "teacher_cache", None):
        raise ConfigError(f"{type(trainer.args).__name__}.teacher_cache: not available under DeepSpeed ZeRO-3 (the "
                          "teacher's weights are partitioned over the processes, and the cache is built by one of "
                          f"them); got {trainer.args.teacher_cache!r}: drop teacher_cache, or use ZeRO-2 / DDP")
