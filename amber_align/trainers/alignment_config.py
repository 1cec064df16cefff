"""``AlignmentConfig``: what every alignment method shares: ``TrainingArguments``, the model and data argument groups
(``amber_align.arguments``) and the aligned layer.

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

from amber_align.arguments import ModelArguments, ParallelDataArguments, check_training_arguments
from amber_align.choices import SENTENCE_TRANSFORMERS_MODES, SYMMETRIZATIONS
from amber_align.errors import ConfigError
from amber_align.trainers.deepspeed_support import SAVE_DTYPES
from amber_align.validation import validate_fields

__all__ = ["AlignmentConfig", "SYMMETRIZATIONS"]

logger = logging.getLogger(__name__)  # config code: no accelerate state needed

# Fields declared here (type-checked in __post_init__; TrainingArguments checks its own).
_OWN_FIELDS = ("method", "layer", "resume_from_checkpoint", "overwrite_output_dir", "freeze_word_embeddings",
               "auto_bf16", "teacher_bf16", "save_dtype", "sentence_transformers_modules", "peft")


@dataclass
class AlignmentConfig(TrainingArguments, ModelArguments, ParallelDataArguments):
    """Shared fields of the alignment trainers: the model (``ModelArguments``), the parallel data and its
    preparation (``ParallelDataArguments``; docs/methods.md "Data flow"), the aligned layer, and
    ``TrainingArguments``."""

    method: str = field(default="cao", metadata={"help": "Alignment method; `amber-align align` dispatches on it."})
    layer: int = field(
        default=-1, metadata={"help": "Hidden layer whose vectors are aligned: -1 = last, k = hidden_states[k]."}
    )
    resume_from_checkpoint: str | bool | None = field(
        default=None,
        metadata={"help": "Resume training: a checkpoint-N folder, or true for the newest complete checkpoint in "
                          "output_dir (amber_align.pipeline.resolve_checkpoint)."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "A fresh run (no resume_from_checkpoint) into an output_dir that holds another run's "
                          "checkpoint-N folders is refused; true removes them (and the old model's config.json) "
                          "first. (transformers 5 has no such field of its own.)"},
    )
    freeze_word_embeddings: bool = field(
        default=False,
        metadata={"help": "Keep the input word embeddings fixed. A step touches a few rows of a 250k-row matrix "
                          "(XLM-R, multilingual-e5: 82 % of e5-small's weights) but pays for its dense gradient and "
                          "Adam state; frozen, CPU steps of e5-small run several times faster (docs/e5.md). A "
                          "tied MLM decoder stays fixed with them."},
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
    save_dtype: str = field(
        default="float32",
        metadata={"choices": tuple(SAVE_DTYPES),
                  "help": "dtype of the saved weights (final model and checkpoints): float32 by default, also when "
                          "training ran in bf16 (under DeepSpeed the optimizer's fp32 master weights are saved, not "
                          "the engine's bf16 copy); bfloat16 / float16 halve the files."},
    )

    sentence_transformers_modules: str = field(
        default="auto",
        metadata={"choices": SENTENCE_TRANSFORMERS_MODES,
                  "help": "sentence-transformers modules saved with the model (docs/hub.md): auto = the source's "
                          "modules.json, pooling, Normalize... when model_name_or_path has them (a folder, or a "
                          "Hub id's cached snapshot); always = those, else a mean-pooling config (the XSR "
                          "evaluation's vectors, last layer); never = a plain encoder."},
    )

    peft: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Parameter-efficient alignment (docs/peft.md): {method: lora, r: 8, alpha: 16, dropout: "
                          "0.0, target_modules: null (PEFT's default: BERT query/value) | [names] | all-linear, "
                          "modules_to_save: null | [names], save: merged | adapters | both}. Only the adapters "
                          "train; the frozen teacher is the model with adapters disabled (no second copy); the "
                          "final model is merged so AutoModel loads it without PEFT. null = train every weight."},
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
        self.check_model_arguments()
        self.check_data_arguments()
        check_training_arguments(self)
        owner = type(self).__name__
        from amber_align.peft_support import check_peft_settings

        self.peft = check_peft_settings(self.peft, owner)
        if self.streaming:
            _check_streaming(self, owner)
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
