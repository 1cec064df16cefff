"""Cao-style alignment loss (Cao, Kitaev & Klein, ICLR 2020; Efimov et al., 2022).

    L = link_weight · mean_{(i,j) ∈ links} ||f(s)_i − A(t)_j||²  +  λ · mean_{tokens k of t} ||f(t)_k − f0(t)_k||²

where f is the trained encoder, f0 the frozen original, s the foreign sentence, t the anchor ("English") sentence,
and A(t) = f0(t) (anchor = frozen, Cao's code) or f(t) (anchor = current, Efimov's code). Both means run over items
× hidden dims (MSE), as the published code computes.

The module only sees tensors. Items are normalised by ``num_links`` / ``num_anchor_tokens`` when given (the global
counts over the gradient-accumulation window and all processes, so GA and DDP give the gradient of one big batch);
otherwise by the local counts.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CaoLoss"]



class CaoLoss(nn.Module):
    """Aligned-word MSE plus anchor (regularisation) MSE; returns ``{"cao_link": ..., "cao_anchor": ...}``."""

    #: keys of ``amber_align.hub.methods.METHODS``: the papers a model card cites for this loss
    citations: tuple[str, ...] = ("cao",)

    def __init__(self, link_weight: float = 1.0, anchor_weight: float = 1.0):
        super().__init__()
        self.link_weight = float(link_weight)
        self.anchor_weight = float(anchor_weight)

    def forward(
        self,
        foreign_words: torch.Tensor,
        anchor_words: torch.Tensor,
        anchor_tokens_current: torch.Tensor,
        anchor_tokens_frozen: torch.Tensor,
        num_links: torch.Tensor | float | None = None,
        num_anchor_tokens: torch.Tensor | float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the two named, weighted parts.

        Args:
            foreign_words: ``[K, H]`` pooled vectors f(s)_i of the linked foreign words (incl. special-token links).
            anchor_words: ``[K, H]`` pooled vectors A(t)_j of their anchor-side partners.
            anchor_tokens_current: ``[N, H]`` f(t)_k for every non-pad token of the anchor sentences.
            anchor_tokens_frozen: ``[N, H]`` f0(t)_k for the same tokens.
            num_links / num_anchor_tokens: normalisers (global counts); default: K and N.
        """
        hidden = foreign_words.shape[-1]
        link_sq = (foreign_words.float() - anchor_words.float()).pow(2).sum()
        anchor_sq = (anchor_tokens_current.float() - anchor_tokens_frozen.float()).pow(2).sum()
        n_links = foreign_words.shape[0] if num_links is None else num_links
        n_tokens = anchor_tokens_current.shape[0] if num_anchor_tokens is None else num_anchor_tokens
        # clamp: a batch without links still yields a (zero) loss with a graph
        link = link_sq / (torch.as_tensor(n_links, dtype=torch.float32, device=link_sq.device).clamp(min=1) * hidden)
        anchor = anchor_sq / (
            torch.as_tensor(n_tokens, dtype=torch.float32, device=anchor_sq.device).clamp(min=1) * hidden
        )
        return {"cao_link": self.link_weight * link, "cao_anchor": self.anchor_weight * anchor}
