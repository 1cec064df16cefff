"""Alignment extraction from similarity matrices: batched, on any device, no Python loop over words.

Every function takes a batch of subword similarity matrices ``sim [B, S, T]`` (rows = source subwords, columns =
target subwords) with a validity mask ``valid [B, S, T]`` (False for padding rows/columns: the sides of a pair have
different lengths) and returns a bool link matrix ``[B, S, T]``. Special tokens are never in the matrices (the
extractor leaves them out), so they are never linked.

- ``argmax``: intersection of the two directions' argmax (Jalili Sabet et al., 2020, "SimAlign": ArgMax).
- ``itermax``: SimAlign's IterMax: argmax intersection, then up to ``max_count - 1`` more rounds in which a pair
  with at least one unaligned end may link, its similarity scaled by ``alpha`` when only one end is unaligned.
- ``softmax``: awesome-align (Dou & Neubig, 2021): softmax over the target for each source subword and over the
  source for each target subword; a link where both probabilities exceed ``threshold`` (1e-3).
- ``apply_distortion``: SimAlign's distortion prior, ``sim · (1 − ratio · (i/(S−1) − j/(T−1))²)``, which favours
  links near the diagonal.
"""

from __future__ import annotations

import torch
from torch import Tensor

from amber_align.choices import EXTRACTION_METHODS

__all__ = ["EXTRACTION_METHODS", "argmax_links", "itermax_links", "softmax_links", "softmax_probabilities",
           "apply_distortion", "extract_links", "valid_mask"]


_NEG = float("-inf")


def valid_mask(src_lengths: Tensor, tgt_lengths: Tensor, s: int, t: int) -> Tensor:
    """``[B, S, T]`` bool: True where row ``i < src_lengths[b]`` and column ``j < tgt_lengths[b]``."""
    rows = torch.arange(s, device=src_lengths.device).unsqueeze(0) < src_lengths.unsqueeze(1)  # [B, S]
    cols = torch.arange(t, device=tgt_lengths.device).unsqueeze(0) < tgt_lengths.unsqueeze(1)  # [B, T]
    return rows.unsqueeze(2) & cols.unsqueeze(1)


def _one_hot_argmax(scores: Tensor, dim: int) -> Tensor:
    """Bool tensor with True at the argmax along ``dim`` (first maximum on ties)."""
    index = scores.argmax(dim=dim, keepdim=True)
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(dim, index, True)


def argmax_links(sim: Tensor, valid: Tensor) -> Tensor:
    """Links where ``j`` is the best target for ``i`` and ``i`` the best source for ``j`` (SimAlign ArgMax)."""
    scores = sim.masked_fill(~valid, _NEG)
    return _one_hot_argmax(scores, 2) & _one_hot_argmax(scores, 1) & valid


def itermax_links(sim: Tensor, valid: Tensor, *, max_count: int = 2, alpha: float = 0.9) -> Tensor:
    """SimAlign's IterMax, batched. Pairs whose shorter side has at most 2 subwords keep the argmax result.

    Each extra round: ``mask_x[i]`` / ``mask_y[j]`` say whether source ``i`` / target ``j`` is still unaligned;
    candidates are the cells with at least one unaligned end; their similarity is multiplied by
    ``clip(alpha·mask_x + alpha·mask_y, 0, 1)`` (1 when both ends are free, ``alpha`` when one is); a candidate is
    linked when it is the argmax of its row and of its column among candidates. A pair stops when either side has
    no unaligned subword left or a round adds nothing.
    """
    inter = argmax_links(sim, valid)
    rows_len = valid.any(2).sum(1)  # [B] source lengths
    cols_len = valid.any(1).sum(1)  # [B] target lengths
    active = torch.minimum(rows_len, cols_len) > 2
    for _ in range(max_count - 1):
        free_x = ~inter.any(2) & valid.any(2)  # [B, S]
        free_y = ~inter.any(1) & valid.any(1)  # [B, T]
        active = active & free_x.any(1) & free_y.any(1)
        if not bool(active.any()):
            break
        fx, fy = free_x.unsqueeze(2), free_y.unsqueeze(1)
        scale = (alpha * fx.float() + alpha * fy.float()).clamp(max=1.0)
        candidate = (fx | fy) & valid & active.view(-1, 1, 1)
        scores = (sim * scale).masked_fill(~candidate, _NEG)
        new = _one_hot_argmax(scores, 2) & _one_hot_argmax(scores, 1) & candidate
        added = new & ~inter
        if not bool(added.any()):
            break
        active = active & added.flatten(1).any(1)
        inter = inter | added
    return inter


def softmax_probabilities(sim: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """``(p_src_to_tgt, p_tgt_to_src)``: softmax over the valid targets of each source row, and over the valid
    sources of each target column; 0 outside ``valid``. Float32 whatever the input dtype."""
    scores = sim.float().masked_fill(~valid, _NEG)
    p_st = torch.softmax(scores, dim=2).nan_to_num(0.0)  # a padding row is all -inf: NaN -> 0
    p_ts = torch.softmax(scores, dim=1).nan_to_num(0.0)
    return p_st, p_ts


def softmax_links(sim: Tensor, valid: Tensor, *, threshold: float = 1e-3) -> Tensor:
    """awesome-align's softmax extraction: both directions' probability above ``threshold``."""
    p_st, p_ts = softmax_probabilities(sim, valid)
    return (p_st > threshold) & (p_ts > threshold) & valid


def apply_distortion(sim: Tensor, valid: Tensor, ratio: float) -> Tensor:
    """SimAlign's distortion prior: scale ``sim[b, i, j]`` by ``1 − ratio · (i/(S_b−1) − j/(T_b−1))²``, with each
    pair's own lengths (a one-subword side sits at position 0)."""
    if ratio == 0:
        return sim
    s_len = valid.any(2).sum(1).clamp(min=2) - 1  # [B]
    t_len = valid.any(1).sum(1).clamp(min=2) - 1
    i = torch.arange(sim.shape[1], device=sim.device, dtype=sim.dtype).unsqueeze(0) / s_len.unsqueeze(1)
    j = torch.arange(sim.shape[2], device=sim.device, dtype=sim.dtype).unsqueeze(0) / t_len.unsqueeze(1)
    return sim * (1.0 - ratio * (i.unsqueeze(2) - j.unsqueeze(1)) ** 2)


def extract_links(sim: Tensor, valid: Tensor, method: str = "softmax", *, threshold: float = 1e-3,
                  distortion: float = 0.0, max_count: int = 2, alpha: float = 0.9) -> Tensor:
    """Dispatch to one of :data:`EXTRACTION_METHODS` after the optional distortion prior."""
    if method not in EXTRACTION_METHODS:
        raise ValueError(f"method must be one of {EXTRACTION_METHODS}, got {method!r}")
    sim = apply_distortion(sim, valid, distortion)
    if method == "softmax":
        return softmax_links(sim, valid, threshold=threshold)
    if method == "argmax":
        return argmax_links(sim, valid)
    return itermax_links(sim, valid, max_count=max_count, alpha=alpha)
