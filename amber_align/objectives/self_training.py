"""awesome-align's self-training objective (SO; Dou & Neubig, EACL 2021) as a weighted part: the softmax alignment
probabilities of layer ``so_layer`` are pushed towards a guide, the model's own extraction (``so_guide='self'``,
detached) or the data's word links (``'links'``). MLM/TLM + SO fine-tunes a word aligner."""

from __future__ import annotations

from typing import Any

import torch

from amber_align.errors import ConfigError
from amber_align.losses.self_training import SelfTrainingLoss
from amber_align.modeling import select_hidden
from amber_align.objectives.registry import Objective, ObjectiveStep, register_objective

__all__ = ["SO"]


def _validate(config: Any) -> None:
    if not 0 < config.so_threshold < 1:
        raise ConfigError(f"{type(config).__name__}.so_threshold: expected a probability in (0, 1), got "
                          f"{config.so_threshold}")


def _compute(step: ObjectiveStep, loss: SelfTrainingLoss) -> dict[str, torch.Tensor]:
    hidden, content = select_hidden(step.sentences(), step.args.so_layer), step.inputs["content_mask"]
    b = content.shape[0] // 2
    return loss(hidden[:b], hidden[b:], content[:b], content[b:], step.inputs.get("so_guide"), step.count("num_pairs"))


SO = register_objective(Objective(
    name="so", weight_field="so_weight", parts=("so",),
    build=lambda config: SelfTrainingLoss(config.so_weight, threshold=config.so_threshold), compute=_compute,
    cites=SelfTrainingLoss.citations, fields=("so_guide", "so_threshold", "so_layer"), validate=_validate,
    collator_needs=lambda config: ("so", "so_links") if config.so_guide == "links" else ("so",),
    count_keys=("num_pairs",), sentence_layers=lambda config: (config.so_layer,),
    needs_links=lambda config: config.so_guide == "links",
    description="awesome-align's self-training objective on layer so_layer",
))
