"""Masked language modelling as weighted objectives: MLM on x and y alone (standing in for AMBER's monolingual MLM)
and TLM on the pair [x; y] (Conneau & Lample, NeurIPS 2019; AMBER, Hu et al., NAACL 2021). The collator masks
(``transformers.DataCollatorForLanguageModeling``: ``mlm_probability``, 80/10/10); the vocabulary projection runs on
the masked positions only."""

from __future__ import annotations

from typing import Any

import torch

from amber_align.errors import ConfigError
from amber_align.losses.tlm import IGNORE_INDEX, TranslationLanguageModelingLoss
from amber_align.objectives.registry import Objective, ObjectiveStep, register_objective
from amber_align.validation import check_range

__all__ = ["MLM", "TLM"]

_MASKING = ("mlm_probability", "mask_replace_prob", "random_replace_prob")


def _validate(config: Any) -> None:
    owner = type(config).__name__
    for name in _MASKING:
        check_range(owner, name, getattr(config, name), low=0, high=1)
    on = any(getattr(config, o.weight_field, 0) > 0 for o in (MLM, TLM))
    if on and not 0 < config.mlm_probability:
        raise ConfigError(f"{owner}.mlm_probability: must be > 0 when MLM/TLM is on, got {config.mlm_probability}")
    if config.mask_replace_prob + config.random_replace_prob > 1:
        raise ConfigError(f"{owner}: mask_replace_prob + random_replace_prob must be <= 1, got "
                          f"{config.mask_replace_prob} + {config.random_replace_prob}")


def masked_lm_part(step: ObjectiveStep, loss: TranslationLanguageModelingLoss, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor, labels: torch.Tensor, count: torch.Tensor | None,
                   token_type_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Cross-entropy at the masked positions of one masked batch (the vocabulary projection runs there only);
    ``token_type_ids`` reach the model only where its family embeds them (``amber_align.families``)."""
    flat = labels.reshape(-1)
    positions = (flat != IGNORE_INDEX).nonzero().squeeze(-1)
    out = step.forward(positions, **step.family.model_inputs(input_ids, attention_mask, token_type_ids))
    return loss(out.logits, flat.index_select(0, positions), count)


def _mlm(step: ObjectiveStep, loss: TranslationLanguageModelingLoss) -> dict[str, torch.Tensor]:
    i = step.inputs
    return masked_lm_part(step, loss, i["mlm_input_ids"], i["attention_mask"], i["mlm_labels"],
                          step.count("num_mlm_masked_tokens"))


def _tlm(step: ObjectiveStep, loss: TranslationLanguageModelingLoss) -> dict[str, torch.Tensor]:
    i = step.inputs
    return masked_lm_part(step, loss, i["tlm_input_ids"], i["pair_attention_mask"], i["tlm_labels"],
                          step.count("num_masked_tokens"), i["pair_token_type_ids"])


MLM = register_objective(Objective(
    name="mlm", weight_field="mlm_weight", parts=("mlm",),
    build=lambda config: TranslationLanguageModelingLoss(config.mlm_weight, name="mlm"), compute=_mlm,
    cites=("amber",), fields=_MASKING, validate=_validate, collator_needs=lambda config: ("mlm",),
    count_keys=("num_mlm_masked_tokens",), masked_lm=True,
    description="masked LM on x and y alone",
))

TLM = register_objective(Objective(
    name="tlm", weight_field="tlm_weight", parts=("tlm",),
    build=lambda config: TranslationLanguageModelingLoss(config.tlm_weight, name="tlm"), compute=_tlm,
    cites=TranslationLanguageModelingLoss.citations, fields=_MASKING, validate=_validate,
    collator_needs=lambda config: ("pair", "tlm"), count_keys=("num_masked_tokens",), masked_lm=True,
    description="translation LM: masked LM on the pair [x; y]",
))
