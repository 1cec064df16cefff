"""Bidirectional word-alignment agreement (WA): attention from y to x should mirror attention from x to y.

AMBER (Hu et al., NAACL 2021). The pair [x; y] runs through the encoder twice with per-example attention masks
(``agreement_attention_masks``): in the first, queries in x attend to x only and queries in y attend to all of x
and to themselves only, so the last layer's attention of y-words over x-words, A^h_{y→x}, is a soft alignment; the
mirrored mask gives A^h_{x→y}. Special tokens go with their sentence's block and are left out of the trace and of
|x|, |y|. With H heads,

    L_WA = 1 − (1/H) Σ_h [ Σ_{i∈x, j∈y} A^h_{x→y}[i, j] · A^h_{y→x}[j, i] ] / min(|x|, |y|)

Every row of attention sums to at most 1, so the trace is at most min(|x|, |y|): L_WA ≥ 0, with 0 when both
directions put all their mass on the same one-to-one alignment. awesome-align's consistency-optimisation loss has
the same trace form.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WordAlignmentAgreementLoss", "agreement_attention_masks", "additive_mask", "X_BLOCK", "Y_BLOCK",
           "PAD_BLOCK"]

X_BLOCK, Y_BLOCK, PAD_BLOCK = 0, 1, -1



def agreement_attention_masks(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two WA attention masks, ``[B, 1, T, T]`` bool (rows = queries, True = may attend).

    ``block`` is ``[B, T]``: ``X_BLOCK`` for the positions of [x] (its special tokens included), ``Y_BLOCK`` for
    [y], ``PAD_BLOCK`` for padding. Returns ``(mask_y_to_x, mask_x_to_y)``:

    - mask giving A_{y→x}: x queries see x; y queries see all of x and themselves;
    - mask giving A_{x→y} (mirror): x queries see all of y and themselves; y queries see y.

    Padding keys are never seen; a padding query sees itself only (a row with no key would be NaN).
    """
    in_x = block == X_BLOCK
    in_y = block == Y_BLOCK
    t = block.shape[1]
    eye = torch.eye(t, dtype=torch.bool, device=block.device).unsqueeze(0)
    q_x, q_y = in_x.unsqueeze(2), in_y.unsqueeze(2)  # [B, T, 1]
    k_x, k_y = in_x.unsqueeze(1), in_y.unsqueeze(1)  # [B, 1, T]
    pad_self = (block == PAD_BLOCK).unsqueeze(2) & eye
    y_to_x = (q_x & k_x) | (q_y & (k_x | eye)) | pad_self
    x_to_y = (q_x & (k_y | eye)) | (q_y & k_y) | pad_self
    return y_to_x.unsqueeze(1), x_to_y.unsqueeze(1)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask (True = attend) as the additive float mask both eager and SDPA attention accept."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


class WordAlignmentAgreementLoss(nn.Module):
    """Trace agreement of the two attention directions; returns ``{"wa": weighted loss}``."""

    #: keys of ``amber_align.hub.methods.METHODS``: the papers a model card cites for this loss
    citations: tuple[str, ...] = ("amber",)

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)

    def forward(
        self,
        probs_y_to_x: torch.Tensor,
        probs_x_to_y: torch.Tensor,
        x_content: torch.Tensor,
        y_content: torch.Tensor,
        num_pairs: torch.Tensor | float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args:
            probs_y_to_x: ``[B, H, T, T]`` last-layer attention probabilities under ``mask_y_to_x``.
            probs_x_to_y: ``[B, H, T, T]`` the same under ``mask_x_to_y``.
            x_content, y_content: ``[B, T]`` bool, the words' subword positions of x and of y (no special tokens).
            num_pairs: normaliser (global pair count); default: B.
        """
        a_xy = probs_x_to_y.float()
        a_yx = probs_y_to_x.float()
        pair_mask = (x_content.unsqueeze(2) & y_content.unsqueeze(1)).unsqueeze(1)  # [B, 1, T(i∈x), T(j∈y)]
        # Σ_{i∈x, j∈y} A_{x→y}[i, j] · A_{y→x}[j, i]  =  Σ (A_{x→y} ⊙ A_{y→x}ᵀ) over the x×y block
        trace = (a_xy * a_yx.transpose(-1, -2) * pair_mask).sum((-1, -2)).mean(1)  # [B]
        denom = torch.minimum(x_content.sum(1), y_content.sum(1)).clamp(min=1).to(trace.dtype)
        per_pair = 1.0 - trace / denom
        n = per_pair.shape[0] if num_pairs is None else num_pairs
        n = torch.as_tensor(n, dtype=torch.float32, device=per_pair.device).clamp(min=1)
        return {"wa": self.weight * per_pair.sum() / n}
