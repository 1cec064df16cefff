"""AMBER's objectives as one trainer: ``AmberConfig`` and ``AmberTrainer``.

Any weighted subset of the registered objectives ({SA, Cao, SO, MLM, TLM, WA} built in, ``amber_align.objectives``)
trains in one step with one backward (docs/methods.md "AMBER objectives"; AMBER's total is the equal-weight sum of
MLM/TLM, SA and WA). Each objective's weight is its ``<name>_weight`` field; a subclass of ``AmberConfig`` with one
more weight field and a registered objective adds a part. AMBER's code was never released and its
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

from dataclasses import dataclass, field
from typing import Any

import torch

from amber_align.arguments import CaoArguments
from amber_align.choices import SO_GUIDES
from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger
from amber_align.losses.sentence_alignment import SIMILARITIES
from amber_align.modeling import load_encoder, load_masked_lm, max_sequence_length
from amber_align.objectives.registry import COLLATOR_NEEDS, objectives_of
from amber_align.trainers.alignment_config import AlignmentConfig
from amber_align.trainers.alignment_trainer import AlignmentTrainer
from amber_align.trainers.amber_collator import AmberCollator
from amber_align.validation import check_choice, check_range, validate_fields

__all__ = ["AmberConfig", "AmberTrainer"]

logger = get_logger(__name__)


@dataclass
class AmberConfig(AlignmentConfig, CaoArguments):
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
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Fraction of non-special tokens masked (BERT: 0.15)."})
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
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate (ours, for continued training)."})
    warmup_steps: float = field(
        default=0.1, metadata={"help": "Warm-up: a ratio of training steps in [0, 1) or a number of steps."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Several forwards share one backward: keep False (DDP default here)."})

    def uses_masked_lm(self) -> bool:
        """Whether an objective with an MLM head (MLM, TLM) is on (the model must then be ``*ForMaskedLM``)."""
        return any(o.masked_lm for o in self.objectives())

    def __post_init__(self) -> None:
        owner = type(self).__name__
        objectives = objectives_of(self)
        weights = tuple(o.weight_field for o in objectives)
        validate_fields(self, weights + tuple(dict.fromkeys(f for o in objectives for f in o.fields)))
        check_choice(owner, "method", self.method, ("amber",))
        for name in weights:
            check_range(owner, name, getattr(self, name), low=0)
        if not any(getattr(self, name) > 0 for name in weights):
            raise ConfigError(f"{owner}: every part is off ({', '.join(f'{n}=0' for n in weights)}); "
                              "set at least one weight > 0")
        for objective in objectives:
            if objective.validate is not None:
                objective.validate(self)
        super().__post_init__()


class AmberTrainer(AlignmentTrainer):
    """Trainer for ``AmberConfig``. ``model``: a module (with MLM/TLM on, a ``*ForMaskedLM``: ``load_masked_lm``;
    otherwise a plain encoder), a Hub id / folder, or None for ``args.model_name_or_path`` (the right class is
    loaded by :meth:`load_model`). ``train_dataset``: a raw parallel ``datasets.Dataset``, encoded pairs, or None
    to read ``args.train_data``, as for ``CaoTrainer`` (links are used only by the Cao and SO-with-links parts)."""

    def __init__(self, model: torch.nn.Module | str | None = None, args: AmberConfig | None = None,
                 data_collator=None, train_dataset=None, eval_dataset=None, processing_class=None,
                 teacher: torch.nn.Module | None = None, **kwargs: Any):
        model, processing_class, train_dataset, eval_dataset = self.resolve_inputs(
            model, args, processing_class, train_dataset, eval_dataset, need_tokenizer=data_collator is None)
        objectives = args.objectives()
        if args.uses_masked_lm() and not isinstance(model.get_output_embeddings(), torch.nn.Linear):
            on = ", ".join(f"{o.weight_field} > 0" for o in objectives if o.masked_lm)
            raise ConfigError(
                f"{on}: needs a *ForMaskedLM model, got {type(model).__name__} (no MLM head); "
                "load it with amber_align.modeling.load_masked_lm or AutoModelForMaskedLM")
        needs = {need: o.name for o in objectives for need in o.collator_needs(args)}
        unknown = sorted(set(needs) - COLLATOR_NEEDS)
        if unknown:
            raise ConfigError(f"objective {needs[unknown[0]]!r}: unknown collator need(s) {unknown}; "
                              f"AmberCollator builds {sorted(COLLATOR_NEEDS)}")
        pair = "pair" in needs
        if data_collator is None:
            data_collator = AmberCollator(
                processing_class, pooling=args.pooling, pair=pair, tlm="tlm" in needs, mlm="mlm" in needs,
                mlm_probability=args.mlm_probability, mask_replace_prob=args.mask_replace_prob,
                random_replace_prob=args.random_replace_prob, so="so" in needs, so_links="so_links" in needs)
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
        parts = [f"{o.name}×{o.weight(args):g}" for o in objectives]
        logger.info(f"AMBER parts: {', '.join(parts)}")

    @classmethod
    def load_model(cls, args: AmberConfig) -> torch.nn.Module:
        """``*ForMaskedLM`` when MLM/TLM is on, else the plain encoder."""
        loader = load_masked_lm if args.uses_masked_lm() else load_encoder
        return loader(args.model_name_or_path, allow_pickle_weights=args.allow_pickle_weights)


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
