"""Loading encoders and tokenizers safely, and the small model surgery the trainers need.

Weights load only from safetensors unless the user opts in to pickle files (``allow_pickle_weights``);
``trust_remote_code`` is never set (a model or tokenizer that needs its own code is a ``ConfigError``, and that code
is never imported). A local directory without weights, with truncated or corrupt weights or a broken
``config.json``, or a tokenizer that does not fit the model, is reported before any training starts.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel

from amber_align.errors import ConfigError, DataFormatError
from amber_align.families import max_positions
from amber_align.logging_utils import get_logger

__all__ = ["load_encoder", "load_masked_lm", "load_task_model", "max_sequence_length", "load_tokenizer", "freeze_pooler",
           "select_hidden", "check_safetensors", "load_model_config"]

logger = get_logger(__name__)


def check_safetensors(path: Path) -> None:
    """Every safetensors file of the folder (and every shard its index names) exists and is complete."""
    files = set(path.glob("*.safetensors"))
    for index in path.glob("*.safetensors.index.json"):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = {path / name for name in weight_map.values()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataFormatError(f"not a valid safetensors index ({type(err).__name__}: {err})", path=index) from None
        missing = sorted(s.name for s in shards if not s.is_file())
        if missing:
            raise DataFormatError(f"the index names shard(s) that are missing: {missing}", path=index)
        files |= shards
    # factorised embeddings (ALBERT, ELECTRA) are embedding_size wide
    hidden = _config_value(path, "embedding_size") or _config_value(path, "hidden_size")
    for file in sorted(files):
        try:
            with safe_open(str(file), framework="pt") as weights:
                if isinstance(hidden, int):
                    _check_hidden_size(path, file, weights, hidden)
        except SafetensorError as err:
            raise DataFormatError(f"truncated or corrupt safetensors file ({err}); save or download it again",
                                  path=file) from None


def _config_value(path: Path, name: str) -> Any:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get(name)
    except (OSError, ValueError, AttributeError):
        return None


def _check_hidden_size(path: Path, file: Path, weights: Any, hidden: int) -> None:
    """``config.json``'s ``hidden_size`` is the width of the weights' word embeddings (transformers would fail
    with a size-mismatch report of every tensor and a RuntimeError)."""
    key = next((k for k in weights.keys() if k.endswith("word_embeddings.weight")), None)
    if key is None:
        return
    shape = list(weights.get_slice(key).get_shape())
    if len(shape) == 2 and shape[1] != hidden:
        name = "embedding_size" if _config_value(path, "embedding_size") else "hidden_size"
        raise DataFormatError(f"{name} is {hidden} but the weights are {shape[1]} wide ({key} in {file.name} "
                              f"is {shape}); config.json and the weights are from different models",
                              path=path / "config.json")


def _check_local_weights(path: Path, allow_pickle: bool) -> None:
    if not path.is_dir():
        return
    if not (path / "config.json").exists():
        raise DataFormatError("not a model directory: config.json is missing", path=path)
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        line = getattr(err, "lineno", None)
        raise DataFormatError(f"config.json is not valid JSON ({err})", path=path / "config.json", line=line) from None
    safe = list(path.glob("*.safetensors")) or list(path.glob("*.safetensors.index.json"))
    pickled = list(path.glob("*.bin")) + list(path.glob("*.bin.index.json"))
    if safe:
        check_safetensors(path)
        return
    if pickled and not allow_pickle:
        raise DataFormatError(
            f"only pickle-based weights found ({', '.join(p.name for p in pickled)}); pickle files can run code "
            "when loaded. Convert them to safetensors, or pass allow_pickle_weights=true if you trust the file",
            path=path,
        )
    if not pickled:
        raise DataFormatError("no model weights found (expected model.safetensors)", path=path)


@contextlib.contextmanager
def _no_remote_code(name_or_path: str) -> Iterator[None]:
    """Turn transformers' "needs trust_remote_code" refusal into a ``ConfigError`` (the package never sets it),
    and a Hub id that cannot be loaded (no network, no such repository) into a ``ConfigError`` naming it."""
    try:
        yield
    except ValueError as err:
        if "trust_remote_code" not in str(err):
            raise
        raise ConfigError(f"{name_or_path}: this model or tokenizer needs its own Python code (an auto_map entry); "
                          "amber_align never runs code shipped with a model (trust_remote_code is never set). Use a "
                          "checkpoint whose model_type transformers knows (bert, xlm-roberta, ...)") from None
    except OSError as err:
        if Path(name_or_path).is_dir():
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{name_or_path!r} is not a local folder and cannot be loaded as a Hub model id: "
                          f"{first}") from None


#: (loader, model path) pairs whose transformers load report has been shown in this process
_REPORTED_LOADS: set[tuple[str, str]] = set()


@contextlib.contextmanager
def _load_report_once(kind: str, name_or_path: str | Path) -> Iterator[None]:
    """Let transformers print its LOAD REPORT (missing / unexpected keys) for the first load of ``name_or_path``
    by loader ``kind`` in this process only: a frozen teacher loaded from the student's own checkpoint, or the
    pooler graft of :func:`load_masked_lm`, would print the same table again (issue 23 item 9). The repeat is a
    debug line here instead."""
    path = Path(name_or_path)
    key = (kind, str(path.resolve()) if path.exists() else str(name_or_path))
    if key not in _REPORTED_LOADS:
        _REPORTED_LOADS.add(key)
        yield
        return
    import logging

    report_logger = logging.getLogger("transformers.modeling_utils")
    previous = report_logger.level
    report_logger.setLevel(logging.ERROR)
    logger.debug("%s loaded again (%s): its load report was shown at the first load", name_or_path, kind)
    try:
        yield
    finally:
        report_logger.setLevel(previous)


#: files of which a saved fast or slow tokenizer has at least one
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model",
                    "vocab.json")


def load_model_config(name_or_path: str | Path) -> Any:
    """``AutoConfig`` of a folder or Hub id, never running a model's own code; an unreadable one names the path."""
    from transformers import AutoConfig

    with _no_remote_code(str(name_or_path)):
        try:
            return AutoConfig.from_pretrained(str(name_or_path), trust_remote_code=False)
        except (OSError, ValueError) as err:
            if isinstance(err, ValueError) and "trust_remote_code" in str(err):
                raise
            raise DataFormatError(f"config.json cannot be read: {err}", path=name_or_path) from None


def load_encoder(name_or_path: str, *, allow_pickle_weights: bool = False, **kwargs: Any) -> PreTrainedModel:
    """Load a plain encoder (``BertModel``, ``XLMRobertaModel``, …) with ``AutoModel``, safetensors only by default."""
    _check_local_weights(Path(name_or_path), allow_pickle_weights)
    with _no_remote_code(name_or_path), _load_report_once("encoder", name_or_path):
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
    with _no_remote_code(name_or_path), _load_report_once("masked_lm", name_or_path):
        model, info = AutoModelForMaskedLM.from_pretrained(name_or_path, output_loading_info=True, **common, **kwargs)
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
    if missing:
        logger.warning(
            f"{name_or_path}: the checkpoint has no trained MLM head ({len(missing)} tensors missing, e.g. "
            f"{sorted(missing)[0]}); MLM/TLM starts from a freshly initialised head"
        )
    base = model.base_model
    if getattr(base, "pooler", "absent") is None:
        with _load_report_once("masked_lm", name_or_path):  # its report would repeat the one above
            encoder = AutoModel.from_pretrained(name_or_path, **common, **kwargs)
        if getattr(encoder, "pooler", None) is not None:
            base.pooler = encoder.pooler
        del encoder
    return model


def load_tokenizer(name_or_path: str) -> Any:
    """Load a fast tokenizer; mBERT-style vocabularies keep their case (``do_lower_case`` from the saved config)."""
    folder = Path(name_or_path)
    if folder.is_dir() and not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        # transformers would build an empty 5-token tokenizer here, turning every word into [UNK]
        raise DataFormatError(f"no tokenizer files (expected one of {', '.join(_TOKENIZER_FILES)}); save the "
                              "tokenizer with the model, or set tokenizer_name_or_path", path=folder)
    with _no_remote_code(name_or_path):
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
    """Longest input the model's positions allow (RoBERTa-style models start positions after padding; read by
    :func:`amber_align.families.max_positions`)."""
    return max_positions(config)


def load_task_model(task: str, name_or_path: str, *, allow_pickle_weights: bool = False,
                    **kwargs: Any) -> PreTrainedModel:
    """A stock task model (the registered task's head, e.g. ``AutoModelForTokenClassification`` for ner;
    ``amber_align.tasks.registry``) on any encoder checkpoint: the head is new when the checkpoint is a plain
    encoder (transformers says which weights were newly initialised), and reloaded when it is a fine-tuned task
    model. Safetensors only by default."""
    import transformers

    from amber_align.tasks.registry import get_task

    head = get_task(task, trainable=True, what="task head").head
    _check_local_weights(Path(name_or_path), allow_pickle_weights)
    cls = getattr(transformers, head)
    with _no_remote_code(name_or_path), _load_report_once(head, name_or_path):
        return cls.from_pretrained(name_or_path, use_safetensors=None if allow_pickle_weights else True,
                                   trust_remote_code=False, **kwargs)
