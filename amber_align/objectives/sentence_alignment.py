"""AMBER's sentence alignment (SA) as a weighted objective: mean-pooled last-layer vectors of x and y pick each other
out of the batch (``amber_align.losses.sentence_alignment``; Hu et al., NAACL 2021)."""

from __future__ import annotations

from typing import Any

import torch

from amber_align.errors import ConfigError
from amber_align.losses.sentence_alignment import SentenceAlignmentLoss, mean_pool
from amber_align.modeling import select_hidden
from amber_align.objectives.registry import Objective, ObjectiveStep, register_objective

__all__ = ["SA"]


def _validate(config: Any) -> None:
    if not config.sa_temperature > 0:
        raise ConfigError(f"{type(config).__name__}.sa_temperature: must be > 0, got {config.sa_temperature}")


def _build(config: Any) -> SentenceAlignmentLoss:
    return SentenceAlignmentLoss(config.sa_weight, symmetric=config.sa_symmetric, similarity=config.sa_similarity,
                                 temperature=config.sa_temperature, gather=config.sa_gather)


def _compute(step: ObjectiveStep, loss: SentenceAlignmentLoss) -> dict[str, torch.Tensor]:
    mask = step.inputs["attention_mask"]
    last = select_hidden(step.sentences(), -1)
    b = mask.shape[0] // 2
    return loss(mean_pool(last[:b], mask[:b]), mean_pool(last[b:], mask[b:]), step.count("num_pairs"))


SA = register_objective(Objective(
    name="sa", weight_field="sa_weight", parts=("sa",), build=_build, compute=_compute,
    cites=SentenceAlignmentLoss.citations,
    fields=("sa_symmetric", "sa_similarity", "sa_temperature", "sa_gather"), validate=_validate,
    count_keys=("num_pairs",), sentence_layers=lambda config: (-1,),
    description="sentence alignment with in-batch negatives",
))
