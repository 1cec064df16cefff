"""FSDP (accelerate's ``distributed_type: FSDP``; FSDP2 first) for every trainer of the package (issue 25).

Accelerate and torch shard the model; what a transformers encoder trained by several forwards needs on top, each
found running FSDP2 with 2 processes (``tests/test_fsdp.py``):

- **Shard units** (:func:`configure_fsdp`): with no ``fsdp_transformer_layer_cls_to_wrap`` accelerate wraps the
  model's ``_no_split_modules``, which name the embeddings module too (``BertEmbeddings``); accelerate then also
  shards the word embeddings inside it and ``fully_shard`` fails (``Invariant encountered: value was None``). The
  units are set to the ``_no_split_modules`` classes that do not hold the input embeddings (``BertLayer``,
  ``XLMRobertaLayer``, any encoder's), read from the model, so one recipe serves every family.
- **Tied MLM bias** (:func:`configure_fsdp`): ``*ForMaskedLM`` ties the decoder's bias to the head's own
  ``bias`` (``cls.predictions.bias``); accelerate groups the decoder with the tied input embeddings and the head's
  ``bias`` stays in the root group, one parameter in two groups. The decoder's bias slot is emptied and the same
  parameter is added to the decoder's output by a forward hook (the same sum; the parameter, its name and the
  saved file are unchanged).
- **Output capture** (:func:`prepare_fsdp_forward`): ``fully_shard`` gives the model a new class
  (``FSDPBertModel``), and transformers looks up which outputs a model records by the model's class
  (``transformers.utils.output_capturing``), so ``hidden_states``/``attentions`` came back ``None``: every
  ``layer != -1`` and WA failed. The renamed class is registered with its parent class's ``_can_record_outputs``.
- **WA under resharding** (:func:`prepare_fsdp_forward`): WA's loss reads the attention probabilities computed
  inside the last layer, not that layer's output, so its backward reached the layer's weights after FSDP had freed
  them (``storage of size 0``). The last layer keeps its weights unsharded from its forward to its backward.
- **Frozen teacher** (:func:`prepare_fsdp_teacher`): ``prepare_model(evaluation_mode=True)`` neither shards nor
  moves it under FSDP, and with ``fsdp_cpu_ram_efficient_loading`` every process but the first loads it on the
  ``meta`` device: it is materialised on the device and given process 0's weights (broadcast). It stays a plain,
  replicated module (its forward runs under ``no_grad``).
"""

from __future__ import annotations

from typing import Any

import torch

from amber_align.logging_utils import get_logger

__all__ = ["fsdp_version", "configure_fsdp", "prepare_fsdp_forward", "prepare_fsdp_teacher", "layer_classes"]

logger = get_logger(__name__)


def fsdp_version(accelerator: Any) -> int | None:
    """1 or 2 when ``accelerator`` runs FSDP, else None."""
    state = getattr(accelerator, "state", None)
    plugin = getattr(state, "fsdp_plugin", None)
    if plugin is None or "FSDP" not in str(getattr(state, "distributed_type", "")):
        return None
    return int(getattr(plugin, "fsdp_version", 1) or 1)


def layer_classes(model: torch.nn.Module) -> list[str]:
    """The ``_no_split_modules`` classes of ``model`` that it instantiates and that do not hold its input
    embeddings (the transformer layers), sorted."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    found: set[str] = set()
    holding: set[str] = set()
    for module in model.modules():  # by the class or a parent class (fully_shard's FSDPBertLayer is a BertLayer)
        for name in {cls.__name__ for cls in type(module).__mro__} & names:
            found.add(name)
            if embeddings is not None and any(m is embeddings for m in module.modules()):
                holding.add(name)
    return sorted(found - holding)


def _untie_output_bias(model: torch.nn.Module) -> bool:
    """Empty the output embedding's bias slot when that bias is a parameter another module owns (the MLM head's
    ``bias``) and add it to the output with a forward hook instead (module docstring). Returns whether it did."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    bias = getattr(head, "bias", None)
    if not isinstance(bias, torch.nn.Parameter):
        return False
    owners = [name for name, p in model.named_parameters(remove_duplicate=False) if p is bias]
    if len(owners) < 2:
        return False
    head_name = next(name for name, m in model.named_modules() if m is head)
    owner_name, _, attribute = next(n for n in owners if n != f"{head_name}.bias").rpartition(".")
    owner = model.get_submodule(owner_name)
    _drop_tie(model, f"{head_name}.bias")
    head.register_parameter("bias", None)

    def add_bias(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        # read at every call: fully_shard replaces the parameter object (sharded, and unsharded for a forward)
        return output + getattr(owner, attribute)

    head.register_forward_hook(add_bias)
    logger.info(f"FSDP: the output bias tied as {owners} is added after the decoder (one parameter, one group)")
    return True


def _drop_tie(model: torch.nn.Module, name: str) -> None:
    """Remove the tie of parameter ``name`` (full name in ``model``) from every transformers model's tie mapping
    (``_tied_weights_keys``, on the instance): ``tie_weights()`` (accelerate calls it when it shards) would tie the
    emptied bias slot again, and fail."""
    from transformers import PreTrainedModel

    for prefix, module in model.named_modules():
        if not isinstance(module, PreTrainedModel):
            continue
        relative = name[len(prefix) + 1:] if prefix else name
        for attribute in ("_tied_weights_keys", "all_tied_weights_keys"):
            mapping = getattr(module, attribute, None)
            if isinstance(mapping, dict):
                setattr(module, attribute, {k: v for k, v in mapping.items()
                                            if relative not in (k.strip("^$"), v.strip("^$"))})


def configure_fsdp(trainer: Any) -> None:
    """Before the model is sharded: choose the shard units (the model's transformer layers) when the launch names
    none, and untie the MLM head's bias slot (module docstring). No-op without FSDP."""
    version = fsdp_version(trainer.accelerator)
    if version is None:
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    plugin = trainer.accelerator.state.fsdp_plugin
    policy = str(getattr(plugin, "auto_wrap_policy", "") or "")
    if "transformer" in policy and not getattr(plugin, "transformer_cls_names_to_wrap", None):
        classes = layer_classes(model)
        if classes:
            plugin.transformer_cls_names_to_wrap = classes
            if version == 1:
                plugin.set_auto_wrap_policy(model)
            logger.info(f"FSDP{version}: one shard unit per {', '.join(classes)} (the model's layers)")
    if version == 2:
        _untie_output_bias(model)


def _register_output_capture(model: torch.nn.Module) -> None:
    """Give every renamed (``fully_shard``) transformers model the outputs its parent class records."""
    try:
        from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY
    except ImportError:  # a transformers without the class-keyed registry finds them on the class itself
        return
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel) and not _CAN_RECORD_REGISTRY.get(module):
            flags = getattr(type(module), "_can_record_outputs", None)
            if flags:
                _CAN_RECORD_REGISTRY[module] = flags


def prepare_fsdp_forward(model: torch.nn.Module, *, attention_probabilities: bool) -> None:
    """After ``fully_shard`` (before a forward): hidden states and attentions are recorded again, and with
    ``attention_probabilities`` (WA) the last transformer layer keeps its weights from forward to backward.
    Idempotent and cheap (the first call marks the model)."""
    if getattr(model, "_amber_fsdp_ready", False):
        return
    _register_output_capture(model)
    if attention_probabilities:
        from torch.distributed.fsdp import FSDPModule

        units = [m for m in model.modules() if isinstance(m, FSDPModule) and m is not model
                 and type(m).__name__.removeprefix("FSDP") in set(layer_classes(model))]
        if units:
            units[-1].set_reshard_after_forward(False, recurse=False)
    model._amber_fsdp_ready = True


def prepare_fsdp_teacher(accelerator: Any, teacher: torch.nn.Module) -> torch.nn.Module:
    """The frozen teacher under FSDP: on the device, with process 0's weights on every process (those loaded on
    ``meta`` by ``fsdp_cpu_ram_efficient_loading`` are materialised first). No-op without FSDP."""
    if fsdp_version(accelerator) is None:
        return teacher
    device = accelerator.device
    tensors = list(teacher.parameters()) + list(teacher.buffers())
    if any(t.is_meta for t in tensors):
        teacher.to_empty(device=device)
        if hasattr(teacher, "tie_weights"):
            teacher.tie_weights()
    else:
        teacher.to(device)
    if accelerator.num_processes > 1 and torch.distributed.is_initialized():
        with torch.no_grad():
            for tensor in list(teacher.parameters()) + list(teacher.buffers()):
                torch.distributed.broadcast(tensor.data, src=0)
    return teacher
