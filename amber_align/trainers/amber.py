"""AMBER's objectives as one trainer: ``AmberConfig`` and ``AmberTrainer``.

Any weighted subset of {MLM, TLM, SA, WA, Cao, SO} trains in one step with one backward (DESIGN.md "AMBER
objectives"; AMBER's total is the equal-weight sum of MLM/TLM, SA and WA). AMBER's code was never released and its
paper pretrained from scratch for 2M steps; here the objectives continue the training of a released checkpoint.

Forwards per step, each only when a part needs it (all through the prepared model, so DDP syncs gradients once):

- SA / Cao / SO: x and y as separate sentences, one ``[2B, T]`` batch (SDPA); SO is awesome-align's
  self-training objective (Dou & Neubig, 2021) on layer ``so_layer``, so that MLM/TLM + SO fine-tunes a word aligner
  (``amber-align extract-alignments`` then extracts its links, which can feed the Cao loss);
- MLM: the same batch masked; TLM: the pair [x; y] masked (SDPA; the vocabulary projection runs on the masked
  positions only);
- WA: the pair twice, stacked into one ``[2B, T2]`` batch with the two agreement masks; SDPA in every layer but
  the last, which returns its attention probabilities (``amber_align.attention``).

With MLM or TLM on, the model is ``*ForMaskedLM`` (``load_masked_lm``) and the checkpoint saves it under the
standard ``model_type``, so it loads with ``AutoModel`` and ``AutoModelForMaskedLM``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from amber_align.attention import last_layer_attention
from amber_align.choices import SO_GUIDES
from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger
from amber_align.losses.cao import CaoLoss
from amber_align.losses.self_training import SelfTrainingLoss
from amber_align.losses.sentence_alignment import SIMILARITIES, SentenceAlignmentLoss, mean_pool
from amber_align.losses.tlm import IGNORE_INDEX, TranslationLanguageModelingLoss
from amber_align.losses.word_agreement import WordAlignmentAgreementLoss, additive_mask, agreement_attention_masks
from amber_align.modeling import load_encoder, load_masked_lm, max_sequence_length, select_hidden
from amber_align.trainers.alignment_config import AlignmentConfig
from amber_align.trainers.alignment_trainer import AlignmentTrainer
from amber_align.trainers.amber_collator import AmberCollator
from amber_align.trainers.cao import ANCHOR_MODES, cao_loss_parts
from amber_align.trainers.config_utils import check_choice, check_range, validate_fields

__all__ = ["AmberConfig", "AmberTrainer"]

logger = get_logger(__name__)

_WEIGHTS = ("mlm_weight", "tlm_weight", "sa_weight", "wa_weight", "cao_weight", "so_weight")


@dataclass
class AmberConfig(AlignmentConfig):
    """AMBER (Hu et al., NAACL 2021) objectives, each weighted; 0 turns a part off."""

    method: str = field(default="amber", metadata={"help": "Alignment method; 'amber' for this config."})
    tlm_weight: float = field(default=1.0, metadata={"help": "Weight of TLM: masked LM on the pair [x; y]."})
    mlm_weight: float = field(
        default=0.0, metadata={"help": "Weight of MLM on single sentences (x and y alone), standing in for AMBER's "
                                       "monolingual MLM."})
    sa_weight: float = field(default=1.0, metadata={"help": "Weight of sentence alignment (in-batch softmax)."})
    wa_weight: float = field(default=1.0, metadata={"help": "Weight of bidirectional word-alignment agreement."})
    cao_weight: float = field(
        default=0.0, metadata={"help": "Weight of the Cao loss (aligned-word MSE + anchor_weight · anchor MSE; "
                                       "needs word links)."})
    so_weight: float = field(
        default=0.0, metadata={"help": "Weight of awesome-align's self-training objective (SO) on the softmax "
                                       "alignment probabilities of layer so_layer."})
    so_guide: str = field(
        default="self", metadata={"choices": SO_GUIDES,
                                  "help": f"SO guide: one of {SO_GUIDES}; 'self' = the model's own softmax "
                                          "extraction (detached), 'links' = the data's word links (eflomal/gold)."})
    so_threshold: float = field(
        default=1e-3, metadata={"help": "SO with so_guide='self': probability threshold of the guide links."})
    so_layer: int = field(
        default=8, metadata={"help": "SO: hidden layer whose subword vectors are aligned (awesome-align: 8 of 12; "
                                     "0 = embeddings, -1 = last)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of non-special tokens masked (BERT: 0.15)."})
    mask_replace_prob: float = field(
        default=0.8, metadata={"help": "Of the masked tokens, the fraction replaced by the mask token (BERT: 0.8)."})
    random_replace_prob: float = field(
        default=0.1, metadata={"help": "Of the masked tokens, the fraction replaced by a random token (BERT: 0.1)."})
    sa_symmetric: bool = field(
        default=False, metadata={"help": "SA in both directions (x→y and y→x, averaged); the paper uses x→y."})
    sa_similarity: str = field(
        default="dot", metadata={"choices": SIMILARITIES,
                                 "help": f"SA similarity: one of {SIMILARITIES} ('dot' = the paper's raw dot "
                                         f"product; 'cosine' divides by sa_temperature)."})
    sa_temperature: float = field(
        default=1.0, metadata={"help": "SA softmax temperature (try 0.05 with cosine; the paper's dot: 1)."})
    sa_gather: bool = field(
        default=True, metadata={"help": "Take SA negatives from every process (autograd-aware all_gather)."})
    anchor: str = field(
        default="frozen", metadata={"choices": ANCHOR_MODES,
                                    "help": "Cao part: anchor-side target 'frozen' = f0(t) or 'current' = f(t)."})
    anchor_weight: float = field(default=1.0, metadata={"help": "Cao part: λ, weight of the anchor MSE."})
    link_weight: float = field(default=1.0, metadata={"help": "Cao part: weight of the aligned-word MSE."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate (ours, for continued training)."})
    warmup_steps: float = field(
        default=0.1, metadata={"help": "Warm-up: a ratio of training steps in [0, 1) or a number of steps."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Several forwards share one backward: keep False (DDP default here)."})

    def needs_word_links(self) -> bool:
        return self.cao_weight > 0 or (self.so_weight > 0 and self.so_guide == "links")

    def loss_parts(self) -> tuple[str, ...]:
        names = {"mlm_weight": ("mlm",), "tlm_weight": ("tlm",), "sa_weight": ("sa",), "wa_weight": ("wa",),
                 "cao_weight": ("cao_link", "cao_anchor"), "so_weight": ("so",)}
        return tuple(p for w in _WEIGHTS if getattr(self, w) > 0 for p in names[w])

    def uses_masked_lm(self) -> bool:
        """Whether MLM or TLM is on (the model must then be ``*ForMaskedLM``)."""
        return self.tlm_weight > 0 or self.mlm_weight > 0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        validate_fields(self, _WEIGHTS + ("mlm_probability", "mask_replace_prob", "random_replace_prob",
                                          "sa_symmetric", "sa_similarity", "sa_temperature", "sa_gather", "anchor",
                                          "anchor_weight", "link_weight", "so_guide", "so_threshold", "so_layer"))
        check_choice(owner, "method", self.method, ("amber",))
        for name in _WEIGHTS:
            check_range(owner, name, getattr(self, name), low=0)
        if not any(getattr(self, name) > 0 for name in _WEIGHTS):
            raise ConfigError(f"{owner}: every part is off ({', '.join(f'{n}=0' for n in _WEIGHTS)}); "
                              "set at least one weight > 0")
        for name in ("mlm_probability", "mask_replace_prob", "random_replace_prob"):
            check_range(owner, name, getattr(self, name), low=0, high=1)
        if self.uses_masked_lm() and not 0 < self.mlm_probability:
            raise ConfigError(f"{owner}.mlm_probability: must be > 0 when MLM/TLM is on, got {self.mlm_probability}")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ConfigError(f"{owner}: mask_replace_prob + random_replace_prob must be <= 1, got "
                              f"{self.mask_replace_prob} + {self.random_replace_prob}")
        if not self.sa_temperature > 0:
            raise ConfigError(f"{owner}.sa_temperature: must be > 0, got {self.sa_temperature}")
        check_range(owner, "anchor_weight", self.anchor_weight, low=0)
        check_range(owner, "link_weight", self.link_weight, low=0)
        if not 0 < self.so_threshold < 1:
            raise ConfigError(f"{owner}.so_threshold: expected a probability in (0, 1), got {self.so_threshold}")
        super().__post_init__()


@contextlib.contextmanager
def _vocab_projection_on(head: torch.nn.Module, index: torch.Tensor) -> Iterator[None]:
    """Within the block, the output-embedding layer ``head`` projects only the flat positions ``index`` of its
    ``[B, T, H]`` input (logits ``[len(index), V]``): the masked tokens, or none when only hidden states are
    needed, instead of a ``[B, T, V]`` tensor (V = 120k for mBERT, 250k for XLM-R)."""

    def select(module: torch.nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        return (hidden.reshape(-1, hidden.shape[-1]).index_select(0, index),) + tuple(args[1:])

    handle = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


class AmberTrainer(AlignmentTrainer):
    """Trainer for ``AmberConfig``. ``model``: a module (with MLM/TLM on, a ``*ForMaskedLM``: ``load_masked_lm``;
    otherwise a plain encoder), a Hub id / folder, or None for ``args.model_name_or_path`` (the right class is
    loaded by :meth:`load_model`). ``train_dataset``: a raw parallel ``datasets.Dataset``, encoded pairs, or None
    to read ``args.train_data``, as for ``CaoTrainer`` (links are used only by the Cao and SO-with-links parts)."""

    count_keys = ("num_pairs", "num_masked_tokens", "num_mlm_masked_tokens", "num_links", "num_anchor_tokens")

    def __init__(self, model: torch.nn.Module | str | None = None, args: AmberConfig | None = None,
                 data_collator=None, processing_class=None, teacher: torch.nn.Module | None = None,
                 train_dataset=None, eval_dataset=None, **kwargs: Any):
        model, processing_class, train_dataset, eval_dataset = self.resolve_inputs(
            model, args, processing_class, train_dataset, eval_dataset, need_tokenizer=data_collator is None)
        self._masked_lm = args.uses_masked_lm()
        if self._masked_lm and not isinstance(model.get_output_embeddings(), torch.nn.Linear):
            raise ConfigError(
                f"tlm_weight/mlm_weight > 0 need a *ForMaskedLM model, got {type(model).__name__} (no MLM head); "
                "load it with amber_align.modeling.load_masked_lm or AutoModelForMaskedLM")
        pair = args.tlm_weight > 0 or args.wa_weight > 0
        if data_collator is None:
            data_collator = AmberCollator(
                processing_class, pooling=args.pooling, pair=pair, tlm=args.tlm_weight > 0,
                mlm=args.mlm_weight > 0, mlm_probability=args.mlm_probability,
                mask_replace_prob=args.mask_replace_prob, random_replace_prob=args.random_replace_prob,
                so=args.so_weight > 0, so_links=args.so_weight > 0 and args.so_guide == "links")
        if args.so_weight > 0:
            n_layers = int(model.config.num_hidden_layers)
            if not -(n_layers + 1) <= args.so_layer <= n_layers:
                raise ConfigError(f"AmberConfig.so_layer: {args.so_layer} is out of range for a model with {n_layers} "
                                  f"layers (0 = embeddings, 1..{n_layers}, -1 = last)")
        if pair:
            limit = max_sequence_length(model.config)
            train_dataset = _drop_long_pairs(train_dataset, data_collator, limit, "train")
            eval_dataset = _drop_long_pairs(eval_dataset, data_collator, limit, "eval")
        super().__init__(model=model, args=args, data_collator=data_collator, processing_class=processing_class,
                         teacher=teacher, train_dataset=train_dataset, eval_dataset=eval_dataset, **kwargs)
        self.tlm_loss = TranslationLanguageModelingLoss(args.tlm_weight, name="tlm")
        self.mlm_loss = TranslationLanguageModelingLoss(args.mlm_weight, name="mlm")
        self.sa_loss = SentenceAlignmentLoss(args.sa_weight, symmetric=args.sa_symmetric,
                                             similarity=args.sa_similarity, temperature=args.sa_temperature,
                                             gather=args.sa_gather)
        self.wa_loss = WordAlignmentAgreementLoss(args.wa_weight)
        self.so_loss = SelfTrainingLoss(args.so_weight, threshold=args.so_threshold)
        self.cao_loss = CaoLoss(link_weight=args.cao_weight * args.link_weight,
                                anchor_weight=args.cao_weight * args.anchor_weight)
        parts = [f"{n.removesuffix('_weight')}×{getattr(args, n):g}" for n in _WEIGHTS if getattr(args, n) > 0]
        logger.info(f"AMBER parts: {', '.join(parts)}")

    @classmethod
    def load_model(cls, args: AmberConfig) -> torch.nn.Module:
        """``*ForMaskedLM`` when MLM/TLM is on, else the plain encoder."""
        loader = load_masked_lm if args.uses_masked_lm() else load_encoder
        return loader(args.model_name_or_path, allow_pickle_weights=args.allow_pickle_weights)

    def needs_teacher(self) -> bool:
        return self.args.cao_weight > 0

    # ----- forwards --------------------------------------------------------------------------------------------
    def _forward(self, model, positions: torch.Tensor | None = None, **inputs: Any) -> Any:
        """One forward through the (possibly DDP-wrapped) model; with an MLM head, project ``positions`` only."""
        if not self._masked_lm:
            return model(**inputs)
        head = self.accelerator.unwrap_model(model).get_output_embeddings()
        if positions is None:
            positions = torch.zeros(0, dtype=torch.long, device=inputs["input_ids"].device)
        with _vocab_projection_on(head, positions):
            return model(**inputs)

    def _masked_lm_part(self, model, loss_fn, input_ids, attention_mask, labels, count, token_type_ids=None):
        flat = labels.reshape(-1)
        positions = (flat != IGNORE_INDEX).nonzero().squeeze(-1)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self._forward(model, positions, input_ids=input_ids, attention_mask=attention_mask, **extra)
        return loss_fn(out.logits, flat.index_select(0, positions), count)

    def compute_loss_parts(self, model, inputs, counts):
        args = self.args

        def count(key: str) -> torch.Tensor | None:
            return None if counts is None else counts.get(key)

        parts: dict[str, torch.Tensor] = {}
        if args.sa_weight > 0 or args.cao_weight > 0 or args.so_weight > 0:
            mask = inputs["attention_mask"]
            want_states = (self._masked_lm or (args.cao_weight > 0 and args.layer != -1)
                           or (args.so_weight > 0 and args.so_layer != -1))
            out = self._forward(model, input_ids=inputs["input_ids"], attention_mask=mask,
                                output_hidden_states=want_states)
            last = select_hidden(out, -1)
            if args.sa_weight > 0:
                b = mask.shape[0] // 2
                parts.update(self.sa_loss(mean_pool(last[:b], mask[:b]), mean_pool(last[b:], mask[b:]),
                                          count("num_pairs")))
            if args.cao_weight > 0:
                parts.update(cao_loss_parts(self.cao_loss, select_hidden(out, args.layer), self.teacher, inputs,
                                            counts, layer=args.layer, anchor=args.anchor))
            if args.so_weight > 0:
                hidden, content = select_hidden(out, args.so_layer), inputs["content_mask"]
                b = mask.shape[0] // 2
                parts.update(self.so_loss(hidden[:b], hidden[b:], content[:b], content[b:], inputs.get("so_guide"),
                                          count("num_pairs")))
        if args.mlm_weight > 0:
            parts.update(self._masked_lm_part(model, self.mlm_loss, inputs["mlm_input_ids"], inputs["attention_mask"],
                                              inputs["mlm_labels"], count("num_mlm_masked_tokens")))
        if args.tlm_weight > 0:
            parts.update(self._masked_lm_part(model, self.tlm_loss, inputs["tlm_input_ids"],
                                              inputs["pair_attention_mask"], inputs["tlm_labels"],
                                              count("num_masked_tokens"), inputs["pair_token_type_ids"]))
        if args.wa_weight > 0:
            parts.update(self._wa_part(model, inputs, count("num_pairs")))
        return parts

    def _wa_part(self, model, inputs, num_pairs):
        block, content = inputs["pair_block"], inputs["pair_content"]
        b = block.shape[0]
        y_to_x, x_to_y = agreement_attention_masks(block)
        mask = additive_mask(torch.cat([y_to_x, x_to_y]), torch.float32)
        ids = inputs["pair_input_ids"].repeat(2, 1)
        types = inputs["pair_token_type_ids"].repeat(2, 1)
        with last_layer_attention(model):
            out = self._forward(model, input_ids=ids, attention_mask=mask, token_type_ids=types,
                                output_attentions=True)
        probs = out.attentions[-1]
        return self.wa_loss(probs[:b], probs[b:], content & (block == 0), content & (block == 1), num_pairs)


def _drop_long_pairs(dataset: Any, collator: AmberCollator, limit: int, split: str) -> Any:
    """Skip (never truncate) pairs whose joined [x; y] exceeds the model's ``limit`` positions; log the count."""
    if dataset is None:
        return None
    tpl = collator.template
    extra = tpl.num_added - 2 * (tpl.single_prefix + tpl.single_suffix)
    if hasattr(dataset, "filter_each"):  # streaming (amber_align.data.streaming.PairStreams): skip on the fly
        return dataset.filter_each(lambda x, y: len(x) + len(y) + extra <= limit,
                                   input_columns=["x_input_ids", "y_input_ids"])
    lengths = [len(x) + len(y) + extra for x, y in zip(dataset["x_input_ids"], dataset["y_input_ids"])]
    keep = [i for i, n in enumerate(lengths) if n <= limit]
    if len(keep) < len(lengths):
        logger.warning(f"{split}: skipped {len(lengths) - len(keep)} of {len(lengths)} pairs whose joined [x; y] "
                       f"is over the model's {limit} positions (TLM/WA; never truncated)")
        if not keep:
            raise ConfigError(f"{split}: every pair is over the model's {limit} positions when x and y are joined; "
                              "lower max_length")
        dataset = dataset.select(keep)
    return dataset
