"""Loading encoders and tokenizers safely, and the small model surgery the trainers need.

Weights load only from safetensors unless the user opts in to pickle files (``allow_pickle_weights``);
``trust_remote_code`` is never set. A local directory without weights, or a tokenizer that does not fit the
model, is reported before any training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel

from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger

__all__ = ["load_encoder", "load_masked_lm", "load_task_model", "max_sequence_length", "load_tokenizer", "freeze_pooler",
           "select_hidden"]

logger = get_logger(__name__)


def _check_local_weights(path: Path, allow_pickle: bool) -> None:
    if not path.is_dir():
        return
    if not (path / "config.json").exists():
        raise DataFormatError("not a model directory: config.json is missing", path=path)
    safe = list(path.glob("*.safetensors")) or list(path.glob("*.safetensors.index.json"))
    pickled = list(path.glob("*.bin")) + list(path.glob("*.bin.index.json"))
    if safe:
        return
    if pickled and not allow_pickle:
        raise DataFormatError(
            f"only pickle-based weights found ({', '.join(p.name for p in pickled)}); pickle files can run code "
            "when loaded. Convert them to safetensors, or pass allow_pickle_weights=true if you trust the file",
            path=path,
        )
    if not pickled:
        raise DataFormatError("no model weights found (expected model.safetensors)", path=path)


def load_encoder(name_or_path: str, *, allow_pickle_weights: bool = False, **kwargs: Any) -> PreTrainedModel:
    """Load a plain encoder (``BertModel``, ``XLMRobertaModel``, …) with ``AutoModel``, safetensors only by default."""
    _check_local_weights(Path(name_or_path), allow_pickle_weights)
    return AutoModel.from_pretrained(
        name_or_path, use_safetensors=None if allow_pickle_weights else True, trust_remote_code=False, **kwargs
    )


def load_masked_lm(name_or_path: str, *, allow_pickle_weights: bool = False, **kwargs: Any) -> PreTrainedModel:
    """Load ``*ForMaskedLM`` (``BertForMaskedLM``, ``XLMRobertaForMaskedLM``, …) for MLM/TLM training.

    An encoder that came without an MLM head (e.g. MiniLM) starts from a fresh one, and the log says so. The
    pooler, which ``*ForMaskedLM`` drops, is taken from the plain encoder and grafted back (frozen by the trainers)
    so the saved checkpoint loads with both ``AutoModel`` and ``AutoModelForMaskedLM`` with no missing keys.
    """
    _check_local_weights(Path(name_or_path), allow_pickle_weights)
    common = dict(use_safetensors=None if allow_pickle_weights else True, trust_remote_code=False)
    model, info = AutoModelForMaskedLM.from_pretrained(name_or_path, output_loading_info=True, **common, **kwargs)
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
    if missing:
        logger.warning(
            f"{name_or_path}: the checkpoint has no trained MLM head ({len(missing)} tensors missing, e.g. "
            f"{sorted(missing)[0]}); MLM/TLM starts from a freshly initialised head"
        )
    base = model.base_model
    if getattr(base, "pooler", "absent") is None:
        encoder = AutoModel.from_pretrained(name_or_path, **common, **kwargs)
        if getattr(encoder, "pooler", None) is not None:
            base.pooler = encoder.pooler
        del encoder
    return model


def load_tokenizer(name_or_path: str) -> Any:
    """Load a fast tokenizer; mBERT-style vocabularies keep their case (``do_lower_case`` from the saved config)."""
    tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"{name_or_path}: a fast tokenizer is required (word_ids() gives word spans)")
    return tok


def freeze_pooler(model: torch.nn.Module) -> int:
    """Freeze the unused pooler (kept so the checkpoint stays a complete BertModel); returns #params frozen.

    Unused trainable parameters would make DDP wait for gradients that never come.
    """
    pooler = getattr(model, "pooler", None)
    if pooler is None and hasattr(model, "base_model") and model.base_model is not model:
        pooler = getattr(model.base_model, "pooler", None)
    if pooler is None:
        return 0
    n = 0
    for p in pooler.parameters():
        p.requires_grad_(False)
        n += p.numel()
    return n


def select_hidden(outputs: Any, layer: int) -> torch.Tensor:
    """``last_hidden_state`` for ``layer == -1``, else ``hidden_states[layer]`` (0 = embeddings).

    Outputs without ``last_hidden_state`` (``*ForMaskedLM``) need ``output_hidden_states=True``."""
    if layer == -1 and getattr(outputs, "last_hidden_state", None) is not None:
        return outputs.last_hidden_state
    return outputs.hidden_states[layer]


def max_sequence_length(config: Any) -> int:
    """Longest input the model's position embeddings allow (RoBERTa-style models start positions after padding)."""
    n = int(getattr(config, "max_position_embeddings", 512))
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"):
        n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return n


_TASK_HEADS = {"ner": "AutoModelForTokenClassification", "nli": "AutoModelForSequenceClassification",
               "qa": "AutoModelForQuestionAnswering"}


def load_task_model(task: str, name_or_path: str, *, allow_pickle_weights: bool = False,
                    **kwargs: Any) -> PreTrainedModel:
    """A stock task model (``AutoModelFor{TokenClassification,SequenceClassification,QuestionAnswering}``) on any
    encoder checkpoint: the head is new when the checkpoint is a plain encoder (transformers says which weights were
    newly initialised), and reloaded when it is a fine-tuned task model. Safetensors only by default."""
    import transformers

    if task not in _TASK_HEADS:
        raise ConfigError(f"no task head for task {task!r}; expected one of {sorted(_TASK_HEADS)}")
    _check_local_weights(Path(name_or_path), allow_pickle_weights)
    cls = getattr(transformers, _TASK_HEADS[task])
    return cls.from_pretrained(name_or_path, use_safetensors=None if allow_pickle_weights else True,
                               trust_remote_code=False, **kwargs)
