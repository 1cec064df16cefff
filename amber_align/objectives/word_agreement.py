"""AMBER's bidirectional word-alignment agreement (WA) as a weighted objective: the pair [x; y] runs twice, stacked
into one ``[2B, T2]`` batch with the two agreement masks (x attends to y only, y to x only); the last layer's
attention probabilities come the model family's way (``amber_align.families``: SDPA in every layer but the last
through ``amber_align.attention``, or DeBERTa's eager attention; Hu et al., NAACL 2021)."""

from __future__ import annotations

import torch

from amber_align.losses.word_agreement import WordAlignmentAgreementLoss, agreement_attention_masks
from amber_align.objectives.registry import Objective, ObjectiveStep, register_objective

__all__ = ["WA"]


def _compute(step: ObjectiveStep, loss: WordAlignmentAgreementLoss) -> dict[str, torch.Tensor]:
    inputs = step.inputs
    block, content = inputs["pair_block"], inputs["pair_content"]
    b = block.shape[0]
    y_to_x, x_to_y = agreement_attention_masks(block)
    ids = inputs["pair_input_ids"].repeat(2, 1)
    types = inputs["pair_token_type_ids"].repeat(2, 1)
    padding = inputs["pair_attention_mask"].repeat(2, 1)
    probs = step.family.last_layer_probabilities(step.forward, step.model, ids, torch.cat([y_to_x, x_to_y]), padding,
                                                 types)
    return loss(probs[:b], probs[b:], content & (block == 0), content & (block == 1), step.count("num_pairs"))


WA = register_objective(Objective(
    name="wa", weight_field="wa_weight", parts=("wa",),
    build=lambda config: WordAlignmentAgreementLoss(config.wa_weight), compute=_compute,
    cites=WordAlignmentAgreementLoss.citations, collator_needs=lambda config: ("pair",), count_keys=("num_pairs",),
    attention_probabilities=True, description="bidirectional word-alignment agreement of the last layer's attention",
))
