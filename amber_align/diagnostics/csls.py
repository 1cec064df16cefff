"""Cross-domain similarity local scaling (CSLS; Conneau et al., 2018, "Word Translation Without Parallel Data", §2.3).

Nearest-neighbour retrieval in high-dimensional spaces suffers from *hubs*: a few points are the nearest neighbour
of many queries. CSLS penalises them by subtracting each point's mean similarity to its ``k`` nearest neighbours in
the other set::

    CSLS(x, y) = 2·cos(x, y) − r_Y(x) − r_X(y),   r_Y(x) = mean of the k largest cos(x, y') over y' ∈ Y

Cao et al. (2020) use CSLS with ``k = 10`` for contextual word retrieval (docs/methods.md "Evaluation protocols").
Similarities are computed in row chunks so that the intermediate matrices stay bounded (about
``_CHUNK_ELEMENTS`` floats) for 50k × 50k sets; only :func:`csls_scores` returns the full ``[n, m]`` matrix,
:func:`csls_nearest` and :func:`retrieval_accuracy` never build it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from amber_align.errors import ConfigError, DataFormatError

__all__ = ["csls_scores", "csls_nearest", "nearest_neighbours", "retrieval_accuracy", "RETRIEVAL_METHODS"]

RETRIEVAL_METHODS = ("csls", "cosine")
_CHUNK_ELEMENTS = 1 << 25  # 32M similarities (128 MB float32) per chunk


def _check_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DataFormatError(f"expected 2-D vectors of one width, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    y = y.to(x.device)
    return (torch.nn.functional.normalize(x.float(), dim=-1), torch.nn.functional.normalize(y.float(), dim=-1))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer (number of neighbours for CSLS), got {k!r}")


def _row_chunks(n: int, m: int) -> Iterator[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(m, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _mean_topk_similarity(a: Tensor, b: Tensor, k: int) -> Tensor:
    """``r_B(a)`` for every row of ``a`` (both L2-normalised): mean cosine to its ``min(k, len(b))`` nearest rows of
    ``b``; 0 when ``b`` is empty."""
    out = torch.zeros(a.shape[0], dtype=torch.float32, device=a.device)
    kk = min(k, b.shape[0])
    if kk == 0:
        return out
    for rows in _row_chunks(a.shape[0], b.shape[0]):
        out[rows] = (a[rows] @ b.T).topk(kk, dim=1).values.mean(dim=1)
    return out


def _csls_chunks(x: Tensor, y: Tensor, k: int) -> Iterator[tuple[slice, Tensor]]:
    """Yield ``(rows, CSLS[rows])`` chunks of the ``[n, m]`` CSLS matrix of normalised ``x`` and ``y``."""
    r_x = _mean_topk_similarity(x, y, k)  # r_Y(x): hubness of every query in Y
    r_y = _mean_topk_similarity(y, x, k)  # r_X(y): hubness of every target in X
    for rows in _row_chunks(x.shape[0], y.shape[0]):
        yield rows, 2 * (x[rows] @ y.T) - r_x[rows].unsqueeze(1) - r_y.unsqueeze(0)


def csls_scores(x: Tensor, y: Tensor, k: int = 10) -> Tensor:
    """CSLS matrix ``[n, m]`` between ``x`` (``[n, d]``) and ``y`` (``[m, d]``), float32 on ``x``'s device.

    Inputs are L2-normalised here. ``k`` is capped at the size of the other set (so a set smaller than ``k`` still
    works). The result itself is ``n·m`` floats: use :func:`csls_nearest` when only the best match is needed.
    """
    _check_k(k)
    x, y = _check_pair(x, y)
    out = torch.empty(x.shape[0], y.shape[0], dtype=torch.float32, device=x.device)
    for rows, scores in _csls_chunks(x, y, k):
        out[rows] = scores
    return out


def _cosine_chunks(x: Tensor, y: Tensor) -> Iterator[tuple[slice, Tensor]]:
    for rows in _row_chunks(x.shape[0], y.shape[0]):
        yield rows, x[rows] @ y.T


def _nearest(x: Tensor, y: Tensor, k: int, method: str) -> Tensor:
    if method not in RETRIEVAL_METHODS:
        raise ConfigError(f"method must be one of {RETRIEVAL_METHODS}, got {method!r}")
    _check_k(k)
    x, y = _check_pair(x, y)
    if y.shape[0] == 0 and x.shape[0] > 0:
        raise DataFormatError(f"no targets to retrieve from: y is empty ({tuple(y.shape)}) for {x.shape[0]} queries")
    best = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    chunks = _csls_chunks(x, y, k) if method == "csls" else _cosine_chunks(x, y)
    for rows, scores in chunks:
        best[rows] = scores.argmax(dim=1)  # ties go to the lowest target index
    return best


def csls_nearest(x: Tensor, y: Tensor, k: int = 10) -> Tensor:
    """Index (``LongTensor [n]``) of the row of ``y`` with the highest CSLS score for every row of ``x``.

    Computed chunk by chunk, never materialising the ``[n, m]`` matrix; ties go to the lowest index.
    """
    return _nearest(x, y, k, "csls")


def nearest_neighbours(x: Tensor, y: Tensor, *, k: int = 10, method: str = "csls") -> Tensor:
    """Index of the best row of ``y`` for every row of ``x`` by ``method`` (``"csls"`` or ``"cosine"``), chunked."""
    return _nearest(x, y, k, method)


def retrieval_accuracy(x: Tensor, y: Tensor, gold: Tensor | None = None, k: int = 10, method: str = "csls") -> float:
    """Top-1 retrieval accuracy in percent: query ``x[i]`` is correct when its nearest row of ``y`` is ``gold[i]``.

    ``gold`` defaults to ``arange(n)`` (then ``y`` must have at least ``n`` rows); ``method`` is ``"csls"``
    (Conneau et al., 2018, with ``k`` neighbours) or ``"cosine"`` (plain nearest neighbour, ``k`` unused).
    """
    n = x.shape[0] if x.ndim == 2 else 0
    if n == 0:
        raise DataFormatError(f"no queries: retrieval accuracy of an empty set is undefined (x {tuple(x.shape)})")
    if gold is None:
        if y.ndim == 2 and y.shape[0] < n:
            raise DataFormatError(f"gold defaults to arange(n), so y needs at least {n} rows; got {tuple(y.shape)}")
        gold = torch.arange(n)
    gold = torch.as_tensor(gold, dtype=torch.long)
    if gold.shape != (n,):
        raise DataFormatError(f"gold must hold one target index per query: shape {tuple(gold.shape)} for {n} queries")
    if y.ndim == 2 and gold.numel() and (int(gold.min()) < 0 or int(gold.max()) >= y.shape[0]):
        raise DataFormatError(f"gold indices must be in [0, {y.shape[0] - 1}] (rows of y); got "
                              f"[{int(gold.min())}, {int(gold.max())}]")
    best = _nearest(x, y, k, method)
    return 100.0 * (best == gold.to(best.device)).float().mean().item()
