"""Cao-style alignment: ``CaoConfig`` (with Cao's recipe as defaults) and ``CaoTrainer``.

Each step encodes the foreign sentences s and the anchor sentences t with the trained model f (one forward over
both, padded together), encodes t with the frozen original f0 under ``no_grad``, pools the linked words, and
computes ``CaoLoss``: aligned-word MSE + λ · anchor MSE (docs/methods.md "Cao-style adjustment"). The loss is the
registered ``cao`` objective (``amber_align.objectives.cao``), which AMBER's ``cao_weight`` part also uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from amber_align.arguments import CaoArguments
from amber_align.errors import ConfigError
from amber_align.trainers.alignment_config import AlignmentConfig
from amber_align.trainers.alignment_trainer import AlignmentTrainer
from amber_align.trainers.pair_collator import AlignedPairCollator
from amber_align.validation import check_choice, validate_fields

__all__ = ["CaoConfig", "CaoTrainer"]


@dataclass
class CaoConfig(AlignmentConfig, CaoArguments):
    """Cao et al. (2020) alignment; defaults follow their optimiser recipe (Adam β=(0.9, 0.98), ε=1e-9, lr 5e-5,
    linear warm-up over the first 10 % then constant, 1 epoch, no weight decay, batch 8 per language)."""

    method: str = field(default="cao", metadata={"help": "Alignment method; 'cao' for this config."})
    # Cao's optimiser recipe as defaults
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (Cao: 5e-5)."})
    adam_beta2: float = field(default=0.98, metadata={"help": "Adam β2 (Cao: 0.98)."})
    adam_epsilon: float = field(default=1e-9, metadata={"help": "Adam ε (Cao: 1e-9)."})
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay (Cao: none)."})
    lr_scheduler_type: str = field(
        default="constant_with_warmup", metadata={"help": "Schedule (Cao: linear warm-up, then constant)."}
    )
    warmup_steps: float = field(
        default=0.1, metadata={"help": "Warm-up: a ratio of training steps in [0, 1) or a number of steps (Cao: 10 %)."}
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs over the largest language pair (Cao: 1)."})
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "Pairs per language pair per step, per device (Cao: 8; Efimov: 32)."}
    )

    teacher_cache: str | None = field(
        default=None,
        metadata={"help": "Folder for precomputed teacher outputs: the frozen teacher's vectors of the anchor "
                          "sentences are computed once (safetensors shards, keyed by a fingerprint of the model, "
                          "tokenizer, layer and data; a stale cache is never used) and fed to the loss in place "
                          "of the teacher forward (amber_align.data.teacher_cache). Map-style data only. "
                          "None = run the teacher every step."},
    )

    def objectives(self) -> list[Any]:
        """Cao's one objective (weight 1; its parts are weighted by ``link_weight`` and ``anchor_weight``)."""
        from amber_align.objectives import get_objective

        return [get_objective("cao")]

    def __post_init__(self) -> None:
        validate_fields(self, ("teacher_cache",))
        self.check_cao_arguments()
        if self.teacher_cache is not None:
            if not isinstance(self.teacher_cache, str) or not self.teacher_cache:
                raise ConfigError(f"CaoConfig.teacher_cache: expected a folder path or None, got "
                                  f"{self.teacher_cache!r}")
            if Path(self.teacher_cache).is_file():
                raise ConfigError(f"CaoConfig.teacher_cache: {self.teacher_cache!r} is a file; give a folder")
            if getattr(self, "streaming", False):
                raise ConfigError("CaoConfig.teacher_cache: not available with streaming=true (a streamed corpus "
                                  f"is too large to cache and is read once per pass); got {self.teacher_cache!r}")
        check_choice(type(self).__name__, "method", self.method, ("cao",))
        super().__post_init__()


class CaoTrainer(AlignmentTrainer):
    """Trainer for ``CaoConfig``. ``model``: the encoder to align (a module, a Hub id / folder, or None for
    ``args.model_name_or_path``); the frozen original is loaded from ``args.model_name_or_path`` unless given as
    ``teacher`` (a separate object, never the trained model).

    ``train_dataset``: a raw parallel ``datasets.Dataset`` (``src``, ``tgt``, ``src_lang``, ``tgt_lang``, optional
    ``links``; or a ``translation`` column), which the trainer prepares with ``args``' data settings; the encoded
    pairs of ``amber_align.data.prepare.build_alignment_datasets``; or None to read ``args.train_data``
    (``AlignmentTrainer.resolve_inputs``).
    """

    def __init__(self, model: torch.nn.Module | str | None = None, args: CaoConfig | None = None,
                 data_collator=None, train_dataset=None, eval_dataset=None, processing_class=None,
                 teacher: torch.nn.Module | None = None, **kwargs: Any):
        model, processing_class, train_dataset, eval_dataset = self.resolve_inputs(
            model, args, processing_class, train_dataset, eval_dataset, need_tokenizer=data_collator is None)
        if data_collator is None:
            data_collator = AlignedPairCollator(pad_token_id=processing_class.pad_token_id, pooling=args.pooling)
        super().__init__(model=model, args=args, data_collator=data_collator, processing_class=processing_class,
                         teacher=teacher, train_dataset=train_dataset, eval_dataset=eval_dataset, **kwargs)
        self.teacher_cache = None
        if getattr(args, "teacher_cache", None) and self.train_dataset is not None:
            self._use_teacher_cache(args.teacher_cache)

    def _use_teacher_cache(self, folder: str) -> None:
        """Build (main process first) or reuse the teacher cache of the train dataset; batches then carry
        ``teacher_hidden`` (amber_align.data.teacher_cache)."""
        from amber_align.data.teacher_cache import (ROW_COLUMN, TeacherCacheCollator,
                                                     build_or_load_teacher_cache)

        if self.processing_class is None:
            raise ConfigError("CaoConfig.teacher_cache: pass processing_class (the tokenizer): the cache is keyed "
                              "by it")
        if not hasattr(self.train_dataset, "add_column"):
            raise ConfigError("CaoConfig.teacher_cache: needs a map-style datasets.Dataset as train_dataset, got "
                              f"{type(self.train_dataset).__name__}")
        teacher = self.accelerator.unwrap_model(self.teacher) if isinstance(self.teacher, torch.nn.Module) \
            else self.teacher  # a LoRA run's AdapterDisabledTeacher holds no module of its own to unwrap
        with self.accelerator.main_process_first():
            self.teacher_cache = build_or_load_teacher_cache(
                folder, teacher, self.processing_class, self.train_dataset, layer=self.args.layer,
                batch_size=self.args.per_device_eval_batch_size)
        if ROW_COLUMN not in self.train_dataset.column_names:
            self.train_dataset = self.train_dataset.add_column(ROW_COLUMN, list(range(len(self.train_dataset))))
        self.data_collator = TeacherCacheCollator(self.data_collator, self.teacher_cache)
