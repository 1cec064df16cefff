"""Last-layer attention probabilities without running every layer in eager mode.

The word-alignment agreement loss needs the last layer's attention probabilities, which SDPA does not return.
Switching the whole model to ``attn_implementation="eager"`` would make every layer materialise its ``[B, H, T, T]``
probabilities; instead we register one attention implementation, ``amber_last_layer_probs``, that runs SDPA in
every layer but the last and an eager computation in the last (returning the probabilities *before* attention
dropout, the alignment the loss wants). ``last_layer_attention(model)`` switches a model to it for one forward
and restores the model's own implementation after.

Masks: pass an additive float mask (``amber_align.losses.word_agreement.additive_mask``); transformers returns a
4-D mask as-is, and both SDPA and the eager path add it to the scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from transformers import AttentionInterface, PretrainedConfig
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

__all__ = ["LAST_LAYER_PROBS", "last_layer_attention"]

LAST_LAYER_PROBS = "amber_last_layer_probs"


def _last_layer_probs_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    kwargs.pop("output_attentions", None)
    if attention_mask is not None and attention_mask.is_floating_point() and attention_mask.dtype != query.dtype:
        attention_mask = attention_mask.to(query.dtype)  # SDPA wants a float mask in the query's dtype (bf16 runs)
    layer_idx = getattr(module, "layer_idx", None)
    last = getattr(module.config, "num_hidden_layers", None)
    if layer_idx is not None and last is not None and layer_idx != last - 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    dropped = nn.functional.dropout(probs, p=dropout, training=module.training)
    output = torch.matmul(dropped, value).transpose(1, 2).contiguous()
    return output, probs


AttentionInterface.register(LAST_LAYER_PROBS, _last_layer_probs_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(LAST_LAYER_PROBS, sdpa_mask)


@contextlib.contextmanager
def last_layer_attention(model: nn.Module) -> Iterator[None]:
    """Within the block, ``model``'s forward returns the last layer's attention probabilities when called with
    ``output_attentions=True`` (``outputs.attentions[-1]``, ``[B, H, T, T]``); the other layers run SDPA.

    ``model`` may be wrapped (DDP, compiled): the config object is shared with the wrapped module.
    """
    config = _find_config(model)
    previous = config._attn_implementation
    config._attn_implementation = LAST_LAYER_PROBS
    try:
        yield
    finally:
        config._attn_implementation = previous


def _find_config(model: nn.Module):
    """The transformers config of ``model`` or of the model it wraps (DDP ``.module``, compiled ``._orig_mod``, a
    DeepSpeed engine's ``.module``, PEFT's base model). Only a ``PretrainedConfig`` counts: a DeepSpeed engine has a
    ``.config`` of its own, a dict (issue 25 item 2: ``'dict' object has no attribute '_attn_implementation'``)."""
    inner = model
    for _ in range(6):
        config = getattr(inner, "config", None)
        if isinstance(config, PretrainedConfig):
            return config
        inner = getattr(inner, "module", None) or getattr(inner, "_orig_mod", None)
        if inner is None:
            break
    raise TypeError(f"cannot find a transformers config on {type(model).__name__}")
