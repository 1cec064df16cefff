"""Contextual word retrieval (Cao, Kitaev & Klein, 2020, "Multilingual Alignment of Contextual Word
Representations", §4), the intrinsic measure of how well aligned a model's word representations are.

Every linked word occurrence of held-out parallel sentences is a query; the targets are all linked word
occurrences of the other language in the same set, and the gold target is the query's link partner. Retrieval
is by CSLS with ``k = 10`` (docs/methods.md "Evaluation protocols"; plain cosine is available for comparison), in both
directions: foreign → English (``xx2en``) and English → foreign (``en2xx``).

An occurrence counts once as a query and once as a target even when it has several links (one-to-many links are
possible unless the data was filtered to one-to-one, as Cao do); its retrieval is correct when it finds any of
its partners.
"""

from __future__ import annotations

from typing import Any

import datasets
import torch
from torch import Tensor

from amber_align.diagnostics.csls import RETRIEVAL_METHODS, nearest_neighbours
from amber_align.diagnostics.word_vectors import AlignedWordVectors, aligned_word_vectors
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger

__all__ = ["word_retrieval", "retrieval_from_vectors"]

logger = get_logger(__name__)


def _occurrences(pair_index: Tensor, word_index: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per link, the id of its occurrence among the unique ``(pair, word)`` occurrences, and the first link of each
    occurrence (whose vector stands for it)."""
    n = pair_index.numel()
    if word_index is None:  # no word positions: every link is its own occurrence
        ids = torch.arange(n)
        return ids, ids
    key = pair_index.long() * (int(word_index.max()) + 1 if n else 1) + word_index.long()
    unique, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((unique.numel(),), n, dtype=torch.long).scatter_reduce(
        0, inverse, torch.arange(n), reduce="amin")
    return inverse, first


def _direction_accuracy(queries: Tensor, targets: Tensor, q_of_link: Tensor, t_of_link: Tensor, *, k: int,
                        method: str) -> float:
    """Percent of query occurrences whose nearest target is one of their link partners."""
    best = nearest_neighbours(queries, targets, k=k, method=method).cpu()
    hit = torch.zeros(queries.shape[0], dtype=torch.bool)
    hit[q_of_link[best[q_of_link] == t_of_link]] = True
    return 100.0 * hit.float().mean().item()


def retrieval_from_vectors(vectors: AlignedWordVectors, *, layer: int = -1, k: int = 10,
                           method: str = "csls") -> dict[str, Any]:
    """Word retrieval accuracies (percent, both directions) of precomputed :class:`AlignedWordVectors`."""
    if method not in RETRIEVAL_METHODS:
        raise ConfigError(f"method must be one of {RETRIEVAL_METHODS}, got {method!r}")
    src, tgt = vectors.layer(layer)
    n = len(vectors)
    if n == 0:
        raise DataFormatError("no word links: word retrieval of an empty set is undefined")
    x_occ, x_first = _occurrences(vectors.pair_index, vectors.src_word_index)
    y_occ, y_first = _occurrences(vectors.pair_index, vectors.tgt_word_index)
    x_words, y_words = src[x_first], tgt[y_first]
    xx2en = _direction_accuracy(x_words, y_words, x_occ, y_occ, k=k, method=method)
    en2xx = _direction_accuracy(y_words, x_words, y_occ, x_occ, k=k, method=method)
    return {"xx2en_accuracy": xx2en, "en2xx_accuracy": en2xx, "num_links": n,
            "num_xx_words": int(x_first.numel()), "num_en_words": int(y_first.numel()),
            "layer": layer, "k": k, "method": method}


def word_retrieval(model: Any, tokenizer: Any, pairs: datasets.Dataset, *, layer: int = -1, k: int = 10,
                   pooling: str = "mean", method: str = "csls", batch_size: int = 32,
                   device: str | torch.device | None = None, max_links: int | None = None) -> dict[str, Any]:
    """Cao et al. (2020) word retrieval on held-out encoded ``pairs`` (columns of ``encode_aligned_pairs``).

    Returns ``xx2en_accuracy`` and ``en2xx_accuracy`` (percent), ``num_links`` (word links used), the number of
    distinct query occurrences per side (``num_xx_words``, ``num_en_words``) and the settings. Cao et al. evaluate
    one language pair at a time: with several (``pair`` column), every English occurrence of the whole set is a
    target, which makes the task harder than in the paper, so a warning says so; filter by ``pair`` first.
    """
    if method not in RETRIEVAL_METHODS:
        raise ConfigError(f"method must be one of {RETRIEVAL_METHODS}, got {method!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer (number of neighbours for CSLS), got {k!r}")
    if "pair" in pairs.column_names and len(pairs) and len(found := sorted(set(pairs["pair"]))) > 1:
        logger.warning(f"word retrieval over {len(found)} language pairs at once ({', '.join(found)}): the targets "
                       "mix them; filter pairs by the 'pair' column for per-language numbers as in Cao et al.")
    vectors = aligned_word_vectors(model, tokenizer, pairs, layers=(layer,), pooling=pooling, batch_size=batch_size,
                                   device=device, max_links=max_links)
    result = retrieval_from_vectors(vectors, layer=layer, k=k, method=method)
    logger.info(f"word retrieval ({method}, k={k}, layer {layer}) over {result['num_links']} links: "
                f"xx→en {result['xx2en_accuracy']:.1f}%, en→xx {result['en2xx_accuracy']:.1f}%")
    return result
