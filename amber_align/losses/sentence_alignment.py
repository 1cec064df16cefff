"""Sentence alignment (SA): a translation pair's sentence vectors must pick each other out of the batch.

AMBER (Hu et al., NAACL 2021): x and y are encoded separately, c = mean of the last-layer token vectors (padding
excluded), and

    L_SA = −log( exp(c_x·c_y) / Σ_{y' in batch} exp(c_x·c_y') )      (raw dot product, as in the paper)

Options (ours): ``symmetric`` adds the y → x direction (the two are averaged); ``similarity="cosine"`` uses
cos(c_x, c_y) / temperature; ``gather`` takes the negatives from every process with an autograd-aware all_gather,
so the effective batch grows with the number of GPUs and 2 ranks × 8 pairs give the loss and gradient of
1 process × 16 pairs (when each part is normalised by the global pair count, as the trainer does).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from amber_align.choices import SA_SIMILARITIES as SIMILARITIES

__all__ = ["SentenceAlignmentLoss", "mean_pool", "gather_with_grad", "SIMILARITIES"]




def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (``[B, T, H]``) over the non-padding positions of ``attention_mask`` (``[B, T]``)."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``local`` (``[B_r, H]``) from every process, keeping the gradient to every shard.

    Returns the ``[Σ B_r, H]`` tensor and the row offset of this process's shard. Ranks may hold different batch
    sizes (the last batch of an epoch): shards are padded to the largest for the collective and trimmed after.
    Single process: ``(local, 0)``.
    """
    if not _distributed():
        return local, 0
    from torch.distributed.nn.functional import all_gather

    size = torch.tensor([local.shape[0]], device=local.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    sizes_list = [int(s.item()) for s in sizes]
    largest = max(sizes_list)
    padded = local
    if local.shape[0] < largest:
        padded = torch.cat([local, local.new_zeros(largest - local.shape[0], *local.shape[1:])])
    shards = all_gather(padded.contiguous())
    rank = dist.get_rank()
    return torch.cat([s[:n] for s, n in zip(shards, sizes_list)]), sum(sizes_list[:rank])


class SentenceAlignmentLoss(nn.Module):
    """In-batch softmax over sentence-vector similarities; returns ``{"sa": weighted loss}``."""

    #: keys of ``amber_align.hub.methods.METHODS``: the papers a model card cites for this loss
    citations: tuple[str, ...] = ("amber",)

    def __init__(self, weight: float = 1.0, *, symmetric: bool = False, similarity: str = "dot",
                 temperature: float = 1.0, gather: bool = True):
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.weight = float(weight)
        self.symmetric = symmetric
        self.similarity = similarity
        self.temperature = float(temperature)
        self.gather = gather

    def _direction(self, queries: torch.Tensor, keys: torch.Tensor, offset: int) -> torch.Tensor:
        scores = queries @ keys.T / self.temperature
        target = torch.arange(queries.shape[0], device=queries.device) + offset
        return nn.functional.cross_entropy(scores, target, reduction="sum")

    def forward(self, x: torch.Tensor, y: torch.Tensor,
                num_pairs: torch.Tensor | float | None = None) -> dict[str, torch.Tensor]:
        """Args:
            x, y: ``[B, H]`` sentence vectors of the B local pairs (row i of x translates row i of y).
            num_pairs: normaliser (global pair count over the GA window and all processes); default: B.
        """
        x, y = x.float(), y.float()
        if self.similarity == "cosine":
            x, y = nn.functional.normalize(x, dim=-1), nn.functional.normalize(y, dim=-1)
        gather = gather_with_grad if self.gather else (lambda t: (t, 0))
        all_y, offset = gather(y)
        total = self._direction(x, all_y, offset)
        if self.symmetric:
            all_x, _ = gather(x)
            total = (total + self._direction(y, all_x, offset)) / 2
        n = x.shape[0] if num_pairs is None else num_pairs
        n = torch.as_tensor(n, dtype=torch.float32, device=total.device).clamp(min=1)
        return {"sa": self.weight * total / n}
