"""Masked language modelling on translation pairs (TLM) or single sentences (MLM).

AMBER (Hu et al., NAACL 2021) keeps BERT's masked LM next to its alignment objectives: MLM on monolingual text and
TLM (Conneau & Lample, 2019) on the concatenation [x; y] of a translation pair, so a masked word can be recovered
from either language. Masking (15 %, 80/10/10, special tokens never masked) happens on the data side, in the
collator, with ``transformers.DataCollatorForLanguageModeling``; this module only scores the predictions.

    L = weight · Σ_{masked positions m} −log p(token_m | corrupted input) / num_masked
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TranslationLanguageModelingLoss", "IGNORE_INDEX"]

IGNORE_INDEX = -100



class TranslationLanguageModelingLoss(nn.Module):
    """Cross-entropy over masked positions; returns ``{name: weighted loss}`` (``name`` = "tlm" or "mlm").

    ``logits`` may be for every position (``[..., V]`` with ``labels`` of the same leading shape) or, cheaper, only
    for the masked positions (``[M, V]`` with ``labels`` ``[M]``): the trainer computes the vocabulary projection on
    masked positions only.
    """

    #: keys of ``amber_align.hub.methods.METHODS``: the papers a model card cites for this loss
    citations: tuple[str, ...] = ("amber", "xlm")

    def __init__(self, weight: float = 1.0, name: str = "tlm"):
        super().__init__()
        self.weight = float(weight)
        self.name = name

    def forward(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        num_masked: torch.Tensor | float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args:
            logits: ``[..., V]`` prediction scores.
            labels: ``[...]`` original token ids at masked positions, ``IGNORE_INDEX`` elsewhere.
            num_masked: normaliser (the global count of masked tokens over the GA window and all processes);
                default: the local count.
        """
        flat_logits = logits.reshape(-1, logits.shape[-1]).float()
        flat_labels = labels.reshape(-1)
        total = nn.functional.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
        n = (flat_labels != IGNORE_INDEX).sum() if num_masked is None else num_masked
        n = torch.as_tensor(n, dtype=torch.float32, device=total.device).clamp(min=1)
        return {self.name: self.weight * total / n}
