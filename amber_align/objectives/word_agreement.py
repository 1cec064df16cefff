"""AMBER's bidirectional word-alignment agreement (WA) as a weighted objective: the pair [x; y] runs twice, stacked
into one ``[2B, T2]`` batch with the two agreement masks (x attends to y only, y to x only); SDPA in every layer but
the last, which returns its attention probabilities (``amber_align.attention``; Hu et al., NAACL 2021)."""

from __future__ import annotations

import torch

from amber_align.attention import last_layer_attention
from amber_align.losses.word_agreement import WordAlignmentAgreementLoss, additive_mask, agreement_attention_masks
from amber_align.objectives.registry import Objective, ObjectiveStep, register_objective

__all__ = ["WA"]


def _compute(step: ObjectiveStep, loss: WordAlignmentAgreementLoss) -> dict[str, torch.Tensor]:
    inputs = step.inputs
    block, content = inputs["pair_block"], inputs["pair_content"]
    b = block.shape[0]
    y_to_x, x_to_y = agreement_attention_masks(block)
    mask = additive_mask(torch.cat([y_to_x, x_to_y]), torch.float32)
    ids = inputs["pair_input_ids"].repeat(2, 1)
    types = inputs["pair_token_type_ids"].repeat(2, 1)
    with last_layer_attention(step.model):
        out = step.forward(input_ids=ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
    probs = out.attentions[-1]
    return loss(probs[:b], probs[b:], content & (block == 0), content & (block == 1), step.count("num_pairs"))


WA = register_objective(Objective(
    name="wa", weight_field="wa_weight", parts=("wa",),
    build=lambda config: WordAlignmentAgreementLoss(config.wa_weight), compute=_compute,
    cites=WordAlignmentAgreementLoss.citations, collator_needs=lambda config: ("pair",), count_keys=("num_pairs",),
    description="bidirectional word-alignment agreement of the last layer's attention",
))
