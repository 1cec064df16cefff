"""Self-training objective (SO) of awesome-align (Dou & Neubig, EACL 2021): sharpen the softmax alignment
probabilities on a guide alignment.

With ``h_x`` ``[S, H]`` and ``h_y`` ``[T, H]`` the subword vectors of the two sentences (each encoded alone, a chosen
layer, special tokens and padding left out), ``sim = h_x h_yᵀ``, ``P_xy = softmax_row(sim)`` and
``P_yx = softmax_col(sim)``, and a 0/1 guide ``G`` ``[S, T]``:

    L_SO = −(1/B) Σ_pairs [ Σ_ij G_ij · P_xy[i, j] / |x|  +  Σ_ij G_ij · P_yx[i, j] / |y| ]

where |x|, |y| count subwords. The guide is either the model's own extraction (``guide=None``: both
probabilities above ``threshold``, computed from the same forward and detached — awesome-align's self-training),
or given links (eflomal or gold word links expanded to all their subword pairs). Minimising L_SO raises the
probability of the guided links, in both directions.
"""

from __future__ import annotations

import torch
from torch import nn

from amber_align.extraction.methods import softmax_probabilities

__all__ = ["SelfTrainingLoss"]



class SelfTrainingLoss(nn.Module):
    """Returns ``{"so": weighted loss}``; see the module docstring for the formula."""

    #: keys of ``amber_align.hub.methods.METHODS``: the papers a model card cites for this loss
    citations: tuple[str, ...] = ("awesome-align",)

    def __init__(self, weight: float = 1.0, threshold: float = 1e-3):
        super().__init__()
        self.weight = float(weight)
        self.threshold = float(threshold)

    def forward(
        self,
        x_hidden: torch.Tensor,
        y_hidden: torch.Tensor,
        x_content: torch.Tensor,
        y_content: torch.Tensor,
        guide: torch.Tensor | None = None,
        num_pairs: torch.Tensor | float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args:
            x_hidden, y_hidden: ``[B, S, H]`` / ``[B, T, H]`` hidden states of the two sides (padded sequences).
            x_content, y_content: ``[B, S]`` / ``[B, T]`` bool, True at subword positions (no specials, no padding).
            guide: ``[B, S, T]`` bool/0-1 links to reinforce; None = the model's own softmax extraction.
            num_pairs: normaliser (the global pair count under DDP); default: B.
        """
        sim = torch.bmm(x_hidden.float(), y_hidden.float().transpose(1, 2))
        valid = x_content.unsqueeze(2) & y_content.unsqueeze(1)
        p_xy, p_yx = softmax_probabilities(sim, valid)
        if guide is None:
            with torch.no_grad():
                guide = (p_xy > self.threshold) & (p_yx > self.threshold) & valid
        g = guide.to(p_xy.dtype) * valid
        len_x = x_content.sum(1).clamp(min=1).to(p_xy.dtype)
        len_y = y_content.sum(1).clamp(min=1).to(p_xy.dtype)
        per_pair = (p_xy * g).sum((1, 2)) / len_x + (p_yx * g).sum((1, 2)) / len_y
        n = per_pair.shape[0] if num_pairs is None else num_pairs
        n = torch.as_tensor(n, dtype=torch.float32, device=per_pair.device).clamp(min=1)
        return {"so": -self.weight * per_pair.sum() / n}
