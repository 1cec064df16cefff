"""``AlignmentConfig``: the ``TrainingArguments`` fields every alignment method shares (model, data, words, links).

Method configs (``CaoConfig``, …) subclass it, add their loss fields and change defaults to the paper's recipe.
Every field has ``help``; ``__post_init__`` checks types and values and names the bad value.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments
from transformers.utils import is_torch_bf16_gpu_available

from amber_align.choices import POOLING_MODES, SYMMETRIZATIONS
from amber_align.errors import ConfigError
from amber_align.validation import check_range, validate_fields

__all__ = ["AlignmentConfig", "SYMMETRIZATIONS"]

logger = logging.getLogger(__name__)  # config code: no accelerate state needed

# Fields declared here (type-checked in __post_init__; TrainingArguments checks its own).
_OWN_FIELDS = (
    "method", "model_name_or_path", "tokenizer_name_or_path", "train_data", "eval_data", "eval_split_size",
    "dedup_eval_files", "max_length", "max_words", "pretokenized", "symmetrization", "one_to_one",
    "drop_identical_links", "special_token_links", "alignment_cache_dir", "anchor_language", "layer", "pooling",
    "allow_pickle_weights", "resume_from_checkpoint", "auto_bf16", "teacher_bf16", "streaming",
    "streaming_buffer_size",
)


@dataclass
class AlignmentConfig(TrainingArguments):
    """Shared fields of the alignment trainers (see docs/methods.md "Data flow")."""

    method: str = field(default="cao", metadata={"help": "Alignment method; `amber-align align` dispatches on it."})
    model_name_or_path: str | None = field(
        default=None,
        metadata={"aliases": ["--model"],
                  "help": "Encoder to align: a Hub id (e.g. bert-base-multilingual-cased) or a local directory."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer (default: the model's). Must match the model's vocabulary."}
    )
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
    layer: int = field(
        default=-1, metadata={"help": "Hidden layer whose vectors are aligned: -1 = last, k = hidden_states[k]."}
    )
    pooling: str = field(
        default="mean", metadata={"choices": POOLING_MODES,
                                  "help": f"Word vector from its subwords: one of {POOLING_MODES} (Cao: last)."}
    )
    allow_pickle_weights: bool = field(
        default=False,
        metadata={"help": "Allow loading pickle-based .bin weights (unsafe: only for files you trust). "
                          "By default only safetensors are loaded."},
    )
    resume_from_checkpoint: str | bool | None = field(
        default=None,
        metadata={"help": "Resume training: a checkpoint-N folder, or true for the newest complete checkpoint in "
                          "output_dir (amber_align.pipeline.resolve_checkpoint)."},
    )
    auto_bf16: bool = field(
        default=True,
        metadata={"help": "Fast path: when neither bf16 nor fp16 is set (nor ACCELERATE_MIXED_PRECISION) and training "
                          "runs on a CUDA GPU that supports bf16, turn bf16 autocast on. CPU runs stay fp32. "
                          "false = keep fp32 everywhere."},
    )
    teacher_bf16: bool = field(
        default=True,
        metadata={"help": "Fast path: when training in bf16, hold the frozen teacher (run under no_grad) in bf16: "
                          "half its memory, no per-step weight casts. false = keep it in fp32."},
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

    def objectives(self) -> list[Any]:
        """The registered objectives (``amber_align.objectives``) this config trains: those whose weight field is
        > 0 by default."""
        from amber_align.objectives import enabled_objectives

        return enabled_objectives(self)

    def loss_parts(self) -> tuple[str, ...]:
        """Names of the loss parts this config trains (each is logged), in the objectives' order."""
        return tuple(part for objective in self.objectives() for part in objective.parts)

    def needs_word_links(self) -> bool:
        """Whether this config's objectives use word links (so a corpus without them is word-aligned first)."""
        return any(objective.needs_links(self) for objective in self.objectives())

    def __post_init__(self) -> None:
        validate_fields(self, _OWN_FIELDS)
        owner = type(self).__name__
        check_range(owner, "max_length", self.max_length, low=2)
        check_range(owner, "max_words", self.max_words, low=1)
        check_range(owner, "eval_split_size", self.eval_split_size, low=0)
        check_range(owner, "streaming_buffer_size", self.streaming_buffer_size, low=1)
        if self.streaming:
            _check_streaming(self, owner)
        for i, src in enumerate(self.train_data + self.eval_data):
            if not isinstance(src, dict):
                raise ConfigError(f"{owner}.train_data/eval_data[{i}]: expected a mapping of source fields, "
                                  f"got {src!r}")
        # our trainers compute their own loss from custom columns: keep them for the collator
        self.remove_unused_columns = False
        if self.auto_bf16 and _bf16_gpu_run(self):
            self.bf16 = True
            logger.info(f"{owner}: bf16 autocast on (auto_bf16: a CUDA GPU supports it; auto_bf16=false keeps fp32)")
        super().__post_init__()


def _check_streaming(config: AlignmentConfig, owner: str) -> None:
    """``streaming: true`` needs ``max_steps`` (a stream has no length) and no ``eval_split_size``; it turns
    accelerate's ``dispatch_batches`` off (ECOSYSTEM.md: streaming + dynamic padding + 2 ranks crashes with it)."""
    if not isinstance(config.max_steps, int) or config.max_steps <= 0:
        raise ConfigError(f"{owner}.max_steps: streaming=true needs max_steps > 0 (a stream has no length, so "
                          f"epochs cannot be counted); got {config.max_steps!r}")
    if config.eval_split_size:
        raise ConfigError(f"{owner}.eval_split_size: cannot hold pairs out of a stream (got "
                          f"{config.eval_split_size!r}); give eval_data instead, or set streaming: false")
    accelerator_config = config.accelerator_config
    if accelerator_config is None:
        config.accelerator_config = {"dispatch_batches": False}
    elif isinstance(accelerator_config, dict):
        accelerator_config.setdefault("dispatch_batches", False)
    elif isinstance(accelerator_config, str):
        pass  # a JSON file: TrainingArguments reads it; the user sets dispatch_batches there
    else:
        accelerator_config.dispatch_batches = False


def _bf16_gpu_run(config: TrainingArguments) -> bool:
    """Whether ``auto_bf16`` applies: no precision chosen (fields or ACCELERATE_MIXED_PRECISION), not forced onto the
    CPU, and a CUDA GPU with bf16 support (transformers' own check)."""
    if config.bf16 or config.fp16 or config.use_cpu:
        return False
    if os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no":
        return False
    if os.environ.get("ACCELERATE_USE_CPU", "false").lower() in ("1", "true", "yes"):
        return False
    return is_torch_bf16_gpu_available()
