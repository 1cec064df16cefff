"""The Cao objective (Cao, Kitaev & Klein, ICLR 2020): aligned-word MSE + λ · anchor MSE, as a weighted part.

``cao_loss_parts`` computes the parts for a batch of ``AlignedPairCollator`` (x rows, then anchor rows) given the
trained model's hidden states of the aligned layer; ``CaoTrainer``, ``AmberTrainer`` (through the registered ``cao``
objective, weight ``cao_weight``) and the continual-learning trainer share it. The frozen teacher runs on the anchor
rows under ``no_grad`` unless the batch carries precomputed ``teacher_hidden`` (``CaoConfig.teacher_cache``).
Cards cite Cao et al. and, with mean pooling or the current model as anchor, Efimov et al. (2022).
"""

from __future__ import annotations

from typing import Any

import torch

from amber_align.arguments import CAO_FIELDS
from amber_align.losses.cao import CaoLoss
from amber_align.losses.pooling import pool_segments
from amber_align.modeling import select_hidden
from amber_align.objectives.registry import Objective, ObjectiveStep, register_objective

__all__ = ["CAO", "cao_loss_parts", "cao_citations"]


def cao_loss_parts(loss_fn: CaoLoss, hidden: torch.Tensor, teacher: torch.nn.Module, inputs: dict[str, Any],
                   counts: dict[str, torch.Tensor] | None, *, layer: int, anchor: str) -> dict[str, torch.Tensor]:
    """The Cao parts (``cao_link``, ``cao_anchor``) of a batch, given the trained model's ``hidden`` states."""
    input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
    b = input_ids.shape[0] // 2
    if inputs.get("teacher_hidden") is not None:  # precomputed (CaoConfig.teacher_cache): no teacher forward
        frozen = inputs["teacher_hidden"].to(hidden.dtype)
    else:
        with torch.no_grad():
            t_out = teacher(input_ids=input_ids[b:], attention_mask=attention_mask[b:],
                            output_hidden_states=layer != -1)
            frozen = select_hidden(t_out, layer).to(hidden.dtype)
    n_links = int(inputs["num_links"])
    foreign = pool_segments(hidden, inputs["x_link_token_index"], inputs["x_link_segment_index"],
                            inputs["x_link_weight"], n_links)
    # anchor-side link positions index rows b..2b-1 of the joint batch; the teacher batch holds only those rows
    if anchor == "frozen":
        offset = b * hidden.shape[1]
        anchor_words = pool_segments(frozen, inputs["y_link_token_index"] - offset,
                                     inputs["y_link_segment_index"], inputs["y_link_weight"], n_links)
    else:
        anchor_words = pool_segments(hidden, inputs["y_link_token_index"], inputs["y_link_segment_index"],
                                     inputs["y_link_weight"], n_links)
    mask = attention_mask[b:].bool()
    return loss_fn(
        foreign, anchor_words, hidden[b:][mask], frozen[mask],
        num_links=None if counts is None else counts["num_links"],
        num_anchor_tokens=None if counts is None else counts["num_anchor_tokens"],
    )


def cao_citations(config: Any) -> tuple[str, ...]:
    """``cao``, plus ``efimov`` for Efimov et al.'s variants (mean pooling, the current model as anchor)."""
    efimov = getattr(config, "pooling", None) == "mean" or getattr(config, "anchor", None) == "current"
    return ("cao", "efimov") if efimov else ("cao",)


def _validate(config: Any) -> None:
    config.check_cao_arguments()  # amber_align.arguments.CaoArguments


def _build(config: Any) -> CaoLoss:
    weight = getattr(config, "cao_weight", 1.0)
    return CaoLoss(link_weight=weight * config.link_weight, anchor_weight=weight * config.anchor_weight)


def _compute(step: ObjectiveStep, loss: CaoLoss) -> dict[str, torch.Tensor]:
    args = step.args
    return cao_loss_parts(loss, select_hidden(step.sentences(), args.layer), step.teacher, step.inputs, step.counts,
                          layer=args.layer, anchor=args.anchor)


CAO = register_objective(Objective(
    name="cao", weight_field="cao_weight", parts=("cao_link", "cao_anchor"), build=_build, compute=_compute,
    cites=cao_citations, fields=CAO_FIELDS, validate=_validate,
    count_keys=("num_links", "num_anchor_tokens"), sentence_layers=lambda config: (config.layer,),
    needs_teacher=True, needs_links=lambda config: True,
    description="aligned-word MSE + anchor_weight · anchor MSE (needs word links)",
))
