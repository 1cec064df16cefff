"""Continual learning (Efimov et al. 2022): task fine-tuning with the alignment loss kept on.

Every training step adds, to the task loss, the Cao parts on a fresh batch of parallel pairs drawn with
replacement from a pool (Efimov: 16 pairs from 30k):

    loss = task + 0.01 · mean ||f(s)_i − f(t)_j||²  +  1.0 · mean ||f(t) − f0(t)||²

f = the task model's encoder (last hidden state, "anchor = current"), f0 = the original encoder, frozen. Both
forwards go through the (DDP/FSDP-wrapped) task model, so one backward syncs every gradient. ``task``,
``cao_link`` and ``cao_anchor`` are logged separately, averaged over processes. Draws are a pure function of
(seed, process, step, micro-step), so a resumed run draws the same pairs.
"""

from __future__ import annotations

from typing import Any

import datasets
import torch
from transformers import Trainer

from amber_align.errors import ConfigError
from amber_align.hub.mixin import ModelCardMixin
from amber_align.losses.cao import CaoLoss
from amber_align.objectives.cao import cao_loss_parts
from amber_align.trainers.common import SharedTrainerMixin, prepare_frozen_teacher
from amber_align.trainers.fsdp_support import configure_fsdp, fsdp_version, prepare_fsdp_forward, \
    prepare_fsdp_teacher
from amber_align.trainers.pair_collator import AlignedPairCollator

__all__ = ["ContinualTaskTrainer", "CONTINUAL_PARTS"]

CONTINUAL_PARTS = ("task", "cao_link", "cao_anchor")


class ContinualTaskTrainer(ModelCardMixin, SharedTrainerMixin, Trainer):
    """A ``Trainer`` for any stock task head (token/sequence classification, QA) plus the Cao alignment parts.

    Args:
        alignment_pairs: the pool, encoded by ``amber_align.data.encoding.encode_aligned_pairs``.
        teacher: the frozen original encoder f0 (a separate object; frozen and prepared here).
        pair_batch_size, link_weight, anchor_weight, pooling, anchor: Efimov's 16, 0.01, 1.0, mean, current by
            default (``TaskConfig``'s ``continual_batch_size`` and ``CaoArguments`` fields).
    """

    card_kind = "task_model"

    def __init__(self, *args: Any, alignment_pairs: datasets.Dataset, teacher: torch.nn.Module,
                 pair_batch_size: int = 16, link_weight: float = 0.01, anchor_weight: float = 1.0,
                 pooling: str = "mean", anchor: str = "current", **kwargs: Any):
        super().__init__(*args, **kwargs)
        if len(alignment_pairs) == 0:
            raise ConfigError("continual_data: continual learning needs a non-empty pool of aligned pairs, got none")
        self.model_accepts_loss_kwargs = False  # the loss is ours: task mean + alignment means
        self.alignment_pairs = alignment_pairs
        self.pair_batch_size = pair_batch_size
        pad = self.processing_class.pad_token_id if self.processing_class is not None else 0
        self.pair_collator = AlignedPairCollator(pad_token_id=pad, pooling=pooling)
        self.alignment_loss = CaoLoss(link_weight=link_weight, anchor_weight=anchor_weight)
        self.anchor = anchor
        configure_fsdp(self)  # shard units, before accelerate shards (amber_align.trainers.fsdp_support)
        teacher = prepare_fsdp_teacher(self.accelerator, teacher)  # FSDP: on the device, process 0's weights
        self.teacher = prepare_frozen_teacher(self.accelerator, teacher, self.model)
        self._draw_step, self._draw_micro = -1, 0

    def draw_pairs(self) -> dict[str, Any]:
        """A batch of ``pair_batch_size`` pairs drawn with replacement, seeded by (seed, process, step, micro)."""
        step = self.state.global_step
        if step != self._draw_step:
            self._draw_step, self._draw_micro = step, 0
        seed = hash((self.args.seed, self.args.process_index, step, self._draw_micro)) % (2**63)
        self._draw_micro += 1
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randint(len(self.alignment_pairs), (self.pair_batch_size,), generator=generator).tolist()
        batch = self.pair_collator([self.alignment_pairs[i] for i in rows])
        return {k: v.to(self.args.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if fsdp_version(self.accelerator) is not None:
            prepare_fsdp_forward(model, attention_probabilities=False)  # hidden states recorded (fsdp_support)
        outputs = model(**inputs)
        parts = {"task": outputs["loss"] if isinstance(outputs, dict) else outputs[0]}
        if model.training:
            pairs = self.draw_pairs()
            out = model(input_ids=pairs["input_ids"], attention_mask=pairs["attention_mask"],
                        output_hidden_states=True)
            parts.update(cao_loss_parts(self.alignment_loss, out.hidden_states[-1], self.teacher, pairs, None,
                                        layer=-1, anchor=self.anchor))
            self.record_parts(parts)
        loss = sum(parts.values())
        return (loss, outputs) if return_outputs else loss
