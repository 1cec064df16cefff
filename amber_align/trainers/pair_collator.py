"""Collator for encoded parallel pairs (see ``amber_align.data.encoding``): dynamic padding plus link indices.

Both sides go into ONE padded batch, foreign sentences first (rows ``0..B-1``) and anchor sentences after (rows
``B..2B-1``), so a trainer runs one encoder forward per step. Link ends become flat index tensors over that
batch's ``[2B * T]`` positions (see ``amber_align.losses.pooling.pool_segments``), built here on the data side so
the loss has no Python loop over words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from amber_align.errors import ConfigError
from amber_align.losses.pooling import POOLING_MODES

__all__ = ["AlignedPairCollator"]


def _span_positions(spans: Sequence[int], row_offset: int, pooling: str, segment_offset: int,
                    tokens: list[int], segments: list[int], weights: list[float]) -> int:
    """Append the pooled positions of flat spans ``[s0, e0, s1, e1, ...]``; return the number of segments."""
    n = len(spans) // 2
    for k in range(n):
        start, end = spans[2 * k], spans[2 * k + 1]
        if pooling == "first":
            positions = [start]
        elif pooling == "last":
            positions = [end - 1]
        else:
            positions = list(range(start, end))
        w = 1.0 / len(positions)
        for p in positions:
            tokens.append(row_offset + p)
            segments.append(segment_offset + k)
            weights.append(w)
    return n


@dataclass
class AlignedPairCollator:
    """Pad ``x_input_ids`` and ``y_input_ids`` into one batch and index the link ends.

    Returns ``input_ids``/``attention_mask`` ``[2B, T]``, ``x_link_{token_index,segment_index,weight}`` and the same
    for ``y``, ``num_links`` (links in this batch) and ``num_anchor_tokens`` (non-pad anchor tokens).
    """

    pad_token_id: int
    pooling: str = "mean"
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        b = len(features)
        seqs = [f["x_input_ids"] for f in features] + [f["y_input_ids"] for f in features]
        t = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            t = -(-t // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((2 * b, t), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((2 * b, t), dtype=torch.long)
        for r, s in enumerate(seqs):
            input_ids[r, : len(s)] = torch.as_tensor(s, dtype=torch.long)
            attention_mask[r, : len(s)] = 1
        out: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        n_links = 0
        for side, row0 in (("x", 0), ("y", b)):
            tokens: list[int] = []
            segments: list[int] = []
            weights: list[float] = []
            n = 0
            for r, f in enumerate(features):
                n += _span_positions(f[f"{side}_link_spans"], (row0 + r) * t, self.pooling, n, tokens, segments,
                                     weights)
            out[f"{side}_link_token_index"] = torch.as_tensor(tokens, dtype=torch.long)
            out[f"{side}_link_segment_index"] = torch.as_tensor(segments, dtype=torch.long)
            out[f"{side}_link_weight"] = torch.as_tensor(weights, dtype=torch.float32)
            n_links = n
        # plain ints: known on the host without a device sync; the trainer gathers them as counts
        out["num_links"] = n_links
        out["num_anchor_tokens"] = int(attention_mask[b:].sum())
        return out
