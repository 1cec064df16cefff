"""What amber_align needs to know about an encoder family, read from the model's config and class (and its
tokenizer), in one place.

An alignment method assumes a few things about the encoder it trains; none is hard-coded per architecture
elsewhere. :func:`model_family` reads them:

- **positions**: the longest input (``max_positions``): ``max_position_embeddings``, less ``pad_token_id + 1`` for
  RoBERTa-style models (XLM-R counts positions after its pad id); how positions are encoded (``positions``:
  absolute, relative for DeBERTa-v2/v3 without absolute embeddings, rotary for ModernBERT) is recorded for messages.
- **token types**: ``token_types`` is True when the base model's ``forward`` takes ``token_type_ids`` *and* embeds
  them (``type_vocab_size > 0``): BERT yes; DeBERTa-v3 (``type_vocab_size`` 0) and ModernBERT (no such argument)
  no, so the pair's token types are not passed to them.
- **attention probabilities for WA** (``attention``): ``"interface"`` when the model's attention dispatches through
  transformers' ``AttentionInterface`` on ``config._attn_implementation`` (BERT, XLM-R, ModernBERT):
  ``amber_align.attention`` then computes the last layer's probabilities eagerly and every other layer with SDPA,
  under an additive 4-D mask (ModernBERT's sliding-window layers get the window applied to it: a 4-D mask would
  otherwise replace the window); ``"output_attentions"`` for DeBERTa-v2/v3, whose disentangled attention is always
  eager and reads a 4-D mask as a boolean (True = attend) but whose embeddings multiply by a 2-D padding mask, so
  the embeddings get the padding mask for that forward; ``"none"`` for any other family: WA is refused with one
  :class:`~amber_align.errors.ConfigError` naming what is missing.
- **MLM head for MLM/TLM** (``masked_lm_class``): the ``AutoModelForMaskedLM`` class of the model type
  (``BertForMaskedLM``, ``DebertaV2ForMaskedLM``, ``ModernBertForMaskedLM``), or None (MLM/TLM refused).
- **tokenizer**: the pair template (``[CLS] A [SEP] B [SEP]``, ``<s> A </s></s> B </s>``) and the special ids come
  from the tokenizer (:class:`~amber_align.data.pair_template.PairTemplate`,
  :func:`~amber_align.tokenization.special_token_ids`); :func:`model_family` adds them when given one.

docs/models.md lists the families the tests cover and what is read from where.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from amber_align.errors import ConfigError

__all__ = ["ModelFamily", "model_family", "POSITION_FROM_PAD_MODELS", "BOOLEAN_MASK_MODELS", "max_positions"]

#: model types whose position ids start after ``pad_token_id`` (RoBERTa's ``create_position_ids_from_input_ids``)
POSITION_FROM_PAD_MODELS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"})
#: model types whose (always eager) attention reads a 4-D mask as a boolean and returns probabilities with
#: ``output_attentions=True``; their embeddings take the 2-D padding mask as ``mask``
BOOLEAN_MASK_MODELS = frozenset({"deberta", "deberta-v2"})


@dataclass(frozen=True)
class ModelFamily:
    """The per-family facts the alignment methods use (module docstring); build it with :func:`model_family`."""

    model_type: str
    base_class: str
    max_positions: int
    positions: str
    token_types: bool
    attention: str
    masked_lm_class: str | None
    sliding_window: int | None = None
    special_ids: dict[str, int] = field(default_factory=dict)
    template: Any = None

    def model_inputs(self, input_ids: torch.Tensor, attention_mask: Any,
                     token_type_ids: torch.Tensor | None = None) -> dict[str, Any]:
        """Keyword arguments of one forward: ``token_type_ids`` only where the model embeds them."""
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types and token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return inputs

    def check_attention_probabilities(self, what: str = "wa_weight > 0") -> None:
        """Raise a :class:`ConfigError` naming what is missing when the family cannot give WA its probabilities."""
        if self.attention == "none":
            raise ConfigError(
                f"{what}: word-alignment agreement needs the last layer's attention probabilities under a 4-D "
                f"per-pair mask, and {self.base_class} (model_type {self.model_type!r}) has no way to give them "
                "here: its attention does not dispatch through transformers' AttentionInterface "
                "(config._attn_implementation) and it is not a family whose eager attention takes such a mask "
                f"({', '.join(sorted(BOOLEAN_MASK_MODELS))}). Set wa_weight to 0 or use another encoder")

    def check_masked_lm(self, what: str = "tlm_weight > 0") -> None:
        """Raise a :class:`ConfigError` when transformers has no masked-LM class for this model type."""
        if self.masked_lm_class is None:
            raise ConfigError(f"{what}: MLM/TLM needs a masked-LM head, and transformers has no AutoModelForMaskedLM "
                              f"class for model_type {self.model_type!r} ({self.base_class}); set tlm_weight and "
                              "mlm_weight to 0")

    def last_layer_probabilities(self, forward: Callable[..., Any], model: torch.nn.Module, input_ids: torch.Tensor,
                                 allowed: torch.Tensor, padding: torch.Tensor,
                                 token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's attention probabilities ``[B, H, T, T]`` of one forward (``forward``: the model, or a
        trainer step's forward through the prepared model) where query ``i`` may attend to key ``j`` only where
        ``allowed[b, 0, i, j]`` (bool ``[B, 1, T, T]``; every row must allow at least one key); ``padding`` is the
        ``[B, T]`` attention mask of the inputs (1 = token, 0 = padding)."""
        self.check_attention_probabilities()
        if self.attention == "output_attentions":
            with _embedding_padding_mask(model, padding):
                out = forward(**self.model_inputs(input_ids, allowed, token_type_ids), output_attentions=True)
        else:
            from amber_align.attention import last_layer_attention
            from amber_align.losses.word_agreement import additive_mask

            mask: Any = additive_mask(allowed, torch.float32)
            if self.sliding_window is not None:  # a 4-D mask replaces the window: apply it to the sliding layers
                t = allowed.shape[-1]
                index = torch.arange(t, device=allowed.device)
                band = (index[:, None] - index[None, :]).abs() <= self.sliding_window
                banded = allowed & band | torch.eye(t, dtype=torch.bool, device=allowed.device)
                mask = {"full_attention": mask, "sliding_attention": additive_mask(banded, torch.float32)}
            with last_layer_attention(model):
                out = forward(**self.model_inputs(input_ids, mask, token_type_ids), output_attentions=True)
        attentions = getattr(out, "attentions", None)
        if not attentions or attentions[-1] is None:
            raise ConfigError(f"wa_weight > 0: {self.base_class} returned no attention probabilities with "
                              "output_attentions=True; WA cannot be computed for this model")
        return attentions[-1]


def max_positions(config: Any) -> int:
    """Longest input the model's positions allow (RoBERTa-style models start positions after padding)."""
    n = int(getattr(config, "max_position_embeddings", None) or 512)
    if getattr(config, "model_type", "") in POSITION_FROM_PAD_MODELS:
        n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return n


def _base_class(model_or_config: Any) -> type | None:
    """The base model class: of the model given (its ``base_model``), else the one ``AutoModel`` maps the config's
    model type to."""
    if isinstance(model_or_config, torch.nn.Module):
        inner = _unwrap(model_or_config)
        return type(getattr(inner, "base_model", inner))
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name = MODEL_MAPPING_NAMES.get(getattr(model_or_config, "model_type", None))
    return getattr(transformers, name, None) if isinstance(name, str) else None


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under DDP (``.module``), ``torch.compile`` (``._orig_mod``) or PEFT wrappers."""
    for _ in range(6):
        if hasattr(model, "get_base_model") and callable(model.get_base_model):
            model = model.get_base_model()
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner
    return model


def _positions(config: Any) -> str:
    model_type = getattr(config, "model_type", "")
    if getattr(config, "rope_parameters", None) is not None or getattr(config, "rope_theta", None) is not None:
        return "rotary"
    if getattr(config, "relative_attention", False) and not getattr(config, "position_biased_input", True):
        return "relative"
    if model_type in POSITION_FROM_PAD_MODELS:
        return "absolute, after the pad id"
    return "absolute"


def model_family(model_or_config: Any, tokenizer: Any = None) -> ModelFamily:
    """Read the :class:`ModelFamily` of a model (or its ``PretrainedConfig``; a wrapped model is unwrapped) and,
    when given, of its tokenizer (pair template and special ids)."""
    model = model_or_config if isinstance(model_or_config, torch.nn.Module) else None
    config = getattr(_unwrap(model), "config", None) if model is not None else model_or_config
    if config is None:
        raise TypeError(f"expected a transformers model or config, got {type(model_or_config).__name__}")
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = str(getattr(config, "model_type", "") or "")
    cls = _base_class(model_or_config)
    params = inspect.signature(cls.forward).parameters if cls is not None else {}
    token_types = "token_type_ids" in params and int(getattr(config, "type_vocab_size", 0) or 0) > 0
    if cls is not None and getattr(cls, "_supports_attention_backend", False):
        attention = "interface"
    elif model_type in BOOLEAN_MASK_MODELS and "output_attentions" in params:
        attention = "output_attentions"
    else:
        attention = "none"
    layer_types = getattr(config, "layer_types", None) or ()
    window = getattr(config, "sliding_window", None) if "sliding_attention" in layer_types else None
    special_ids: dict[str, int] = {}
    template = None
    if tokenizer is not None:
        from amber_align.data.pair_template import PairTemplate
        from amber_align.tokenization import special_token_ids

        special_ids, template = special_token_ids(tokenizer), PairTemplate.from_tokenizer(tokenizer)
    return ModelFamily(
        model_type=model_type, base_class=cls.__name__ if cls is not None else type(config).__name__,
        max_positions=max_positions(config), positions=_positions(config), token_types=token_types,
        attention=attention, masked_lm_class=MODEL_FOR_MASKED_LM_MAPPING_NAMES.get(model_type),
        sliding_window=int(window) if window is not None else None, special_ids=special_ids, template=template)


@contextlib.contextmanager
def _embedding_padding_mask(model: torch.nn.Module, padding: torch.Tensor) -> Iterator[None]:
    """Within the block, the model's embeddings receive ``padding`` (``[B, T]``) as their ``mask`` argument
    (DeBERTa multiplies its embeddings by the attention mask, which must be 2-D there even when the attention
    takes a 4-D one)."""
    base = _unwrap(model)
    embeddings = getattr(getattr(base, "base_model", base), "embeddings", None)
    if embeddings is None:
        yield
        return

    def swap(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if "mask" in kwargs and kwargs["mask"] is not None:
            kwargs = {**kwargs, "mask": padding.to(kwargs["mask"].device)}
        return args, kwargs

    handle = embeddings.register_forward_pre_hook(swap, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
