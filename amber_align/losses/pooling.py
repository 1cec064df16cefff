"""Word vectors from subword vectors, without Python loops over words.

The collator turns every pooled item (a word of a link, or a special token) into three flat index tensors over the
batch's ``[batch * seq_len]`` token positions: ``token_index`` (which positions), ``segment_index`` (which item each
position belongs to) and ``weight`` (1 for first/last pooling, 1/len for mean pooling). One ``index_add_`` then
pools every item of the batch at once, on any device.
"""

from __future__ import annotations

import torch

from amber_align.choices import POOLING_MODES

__all__ = ["pool_segments", "POOLING_MODES"]



def pool_segments(
    hidden: torch.Tensor,
    token_index: torch.Tensor,
    segment_index: torch.Tensor,
    weight: torch.Tensor,
    num_segments: int,
) -> torch.Tensor:
    """Pool ``hidden`` (``[batch, seq, dim]``) into ``[num_segments, dim]`` vectors.

    ``out[s] = sum_k weight[k] * hidden.flat[token_index[k]]`` over the ``k`` with ``segment_index[k] == s``.
    When every segment has exactly one token (first/last pooling) this is a plain gather.
    """
    flat = hidden.reshape(-1, hidden.shape[-1])
    picked = flat.index_select(0, token_index)
    if token_index.numel() == num_segments:
        # every segment has at least one token, so this means exactly one each (weight 1), emitted in segment order
        # by the collator: a gather is enough, and no device sync is needed to know it
        return picked
    picked = picked * weight.to(picked.dtype).unsqueeze(-1)
    out = torch.zeros(num_segments, flat.shape[-1], dtype=picked.dtype, device=picked.device)
    return out.index_add_(0, segment_index, picked)
