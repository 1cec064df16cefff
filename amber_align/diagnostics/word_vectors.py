"""Contextual word vectors from an encoder: one vector per linked word occurrence, or per vocabulary word.

:func:`aligned_word_vectors` feeds the encoded pairs of ``amber_align.data.encoding.encode_aligned_pairs`` (x =
foreign side, y = English) through the encoder, each side on its own (no joint input: the diagnostics measure
the monolingual representations that zero-shot transfer uses), and pools each linked word's subwords into one
vector per requested hidden layer. Rows follow the word links of ``xy_links`` (one row per link; the [CLS]/[SEP]
links that the trainers add are not word links and are left out), so row ``i`` of ``src`` and ``tgt`` is an
aligned word pair — the input of Cao et al. (2020, §4) word retrieval and Efimov et al. (2022) distances.

:func:`contextual_word_averages` averages a word's contextual vectors over all its occurrences, which gives
static-like vectors for bilingual lexicon induction from a contextual model (e.g. Schuster et al., 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import torch
from torch import Tensor
from tqdm.auto import tqdm

from amber_align.data.encoding import word_spans
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger
from amber_align.losses.pooling import POOLING_MODES, pool_segments
from amber_align.modeling import max_sequence_length

__all__ = ["AlignedWordVectors", "aligned_word_vectors", "contextual_word_averages", "REQUIRED_COLUMNS"]

logger = get_logger(__name__)

REQUIRED_COLUMNS = ("x_words", "y_words", "xy_links", "x_input_ids", "y_input_ids", "x_word_spans", "y_word_spans")


@dataclass
class AlignedWordVectors:
    """Vectors of aligned word occurrences: row ``i`` of ``src[layer]`` (foreign) and ``tgt[layer]`` (English) are
    the two ends of link ``i``.

    ``src``/``tgt`` map each requested layer (as given, e.g. ``-1``) to a float32 CPU tensor ``[num_links, hidden]``;
    ``src_words``/``tgt_words`` are the linked words, ``pair_index`` (``LongTensor [num_links]``) the row of the
    pair in the dataset, ``src_word_index``/``tgt_word_index`` the word positions in their sentences (so that
    ``(pair_index, word_index)`` names one occurrence, even when it has several links).
    """

    src: dict[int, Tensor]
    tgt: dict[int, Tensor]
    src_words: list[str]
    tgt_words: list[str]
    pair_index: Tensor
    src_word_index: Tensor | None = None
    tgt_word_index: Tensor | None = None

    def __len__(self) -> int:
        return int(self.pair_index.numel())

    def layer(self, layer: int) -> tuple[Tensor, Tensor]:
        """``(src[layer], tgt[layer])``; a layer that was not computed is a ``ConfigError`` naming those that were."""
        if layer not in self.src or layer not in self.tgt:
            raise ConfigError(f"layer={layer} was not computed; these vectors have layers {sorted(self.src)} "
                              "(pass layers=... to aligned_word_vectors)")
        return self.src[layer], self.tgt[layer]


def _check_layers(model: Any, layers: Sequence[int]) -> list[int]:
    layers = [layers] if isinstance(layers, int) else list(layers)
    if not layers or any(isinstance(lay, bool) or not isinstance(lay, int) for lay in layers):
        raise ConfigError(f"layers must be a non-empty list of integers (0 = embeddings, -1 = last), got {layers!r}")
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if n_layers is not None:
        n_states = n_layers + 1
        bad = [lay for lay in layers if not -n_states <= lay < n_states]
        if bad:
            raise ConfigError(f"layers {bad} out of range: this model has {n_layers} layers, so a layer must be in "
                              f"[{-n_states}, {n_layers}] (0 = embeddings, -1 = last)")
    return list(dict.fromkeys(layers))


def _check_pooling(pooling: str) -> None:
    if pooling not in POOLING_MODES:
        raise ConfigError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise ConfigError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no pad token; set one first")
    return int(pad)


def _pool_index(spans: Sequence[Sequence[tuple[int, int]]], seq_len: int, pooling: str
                ) -> tuple[Tensor, Tensor, Tensor, int]:
    """Flat ``token_index``/``segment_index``/``weight`` (see ``pool_segments``) for ``spans[row]`` of each row."""
    tokens: list[int] = []
    segments: list[int] = []
    weights: list[float] = []
    n = 0
    for row, row_spans in enumerate(spans):
        for start, end in row_spans:
            positions = [start] if pooling == "first" else [end - 1] if pooling == "last" else range(start, end)
            w = 1.0 / len(positions)
            for p in positions:
                tokens.append(row * seq_len + p)
                segments.append(n)
                weights.append(w)
            n += 1
    return (torch.tensor(tokens, dtype=torch.long), torch.tensor(segments, dtype=torch.long),
            torch.tensor(weights, dtype=torch.float32), n)


def _encode_pooled(model: Any, ids: Sequence[Sequence[int]], spans: Sequence[Sequence[tuple[int, int]]],
                   layers: Sequence[int], pooling: str, pad_id: int, device: torch.device) -> dict[int, Tensor]:
    """Run ``model`` on one padded batch and pool ``spans`` for each layer; float32 on CPU."""
    t = max(len(s) for s in ids)
    input_ids = torch.full((len(ids), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), t), dtype=torch.long)
    for r, s in enumerate(ids):
        input_ids[r, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[r, : len(s)] = 1
    tok, seg, weight, n = _pool_index(spans, t, pooling)
    out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
    states = out.hidden_states
    return {lay: pool_segments(states[lay].float(), tok.to(device), seg.to(device), weight.to(device), n).cpu()
            for lay in layers}


def _span(flat: Sequence[int], word: int, row: int, side: str, n_words: int) -> tuple[int, int] | None:
    if not 0 <= word < n_words or 2 * word + 1 >= len(flat):
        raise DataFormatError(f"pair {row}: link end {word} is outside the {side} sentence ({n_words} words)",
                              line=row + 1)
    start, end = flat[2 * word], flat[2 * word + 1]
    return None if start < 0 else (int(start), int(end))


@torch.no_grad()
def aligned_word_vectors(model: Any, tokenizer: Any, pairs: datasets.Dataset, *, layers: Sequence[int] = (-1,),
                         pooling: str = "mean", batch_size: int = 32, device: str | torch.device | None = None,
                         max_links: int | None = None) -> AlignedWordVectors:
    """Pooled contextual vectors of both ends of every word link in ``pairs`` (one row per link, pair order).

    ``pairs`` needs the columns of ``encode_aligned_pairs`` (``x_words``, ``y_words``, ``xy_links``,
    ``x_input_ids``, ``y_input_ids``, ``x_word_spans``, ``y_word_spans``). Links to a word without subwords are
    skipped. ``layers`` index ``hidden_states`` (0 = embeddings, -1 = last); ``pooling`` is ``mean``/``first``/
    ``last`` over a word's subwords. ``max_links`` stops after that many links (whole pairs, then cut). The model
    runs in eval mode without gradients, each side separately; its previous mode is restored.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in pairs.column_names]
    if missing:
        raise DataFormatError(f"pairs lack the column(s) {missing} (got {pairs.column_names}); build them with "
                              "amber_align.data.encoding.encode_aligned_pairs or pipeline.build_alignment_datasets")
    layers = _check_layers(model, layers)
    _check_pooling(pooling)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if max_links is not None and max_links < 1:
        raise ConfigError(f"max_links must be >= 1 or None, got {max_links}")
    pad_id = _pad_id(tokenizer)
    device = torch.device(device) if device is not None else next(model.parameters()).device

    # word links -> subword spans, pair by pair (the special-token links of x/y_link_spans are not word links)
    rows: list[tuple[list[int], list[int], list[tuple[int, int]], list[tuple[int, int]]]] = []
    src_words: list[str] = []
    tgt_words: list[str] = []
    pair_index: list[int] = []
    src_pos: list[int] = []
    tgt_pos: list[int] = []
    r = -1
    for chunk in pairs.select_columns(list(REQUIRED_COLUMNS)).iter(batch_size=1000):
        for ex in (dict(zip(chunk, values)) for values in zip(*chunk.values())):
            r += 1
            if max_links is not None and len(pair_index) >= max_links:
                break
            xs, ys = [], []
            for i, j in ex["xy_links"]:
                sx = _span(ex["x_word_spans"], i, r, "x (foreign)", len(ex["x_words"]))
                sy = _span(ex["y_word_spans"], j, r, "y (English)", len(ex["y_words"]))
                if sx is None or sy is None:
                    continue
                if max_links is not None and len(pair_index) >= max_links:
                    break
                xs.append(sx)
                ys.append(sy)
                src_words.append(ex["x_words"][i])
                tgt_words.append(ex["y_words"][j])
                pair_index.append(r)
                src_pos.append(i)
                tgt_pos.append(j)
            if xs:
                rows.append((ex["x_input_ids"], ex["y_input_ids"], xs, ys))
        if max_links is not None and len(pair_index) >= max_links:
            break
    if not rows:
        raise DataFormatError(f"no word links to encode in {len(pairs)} pairs (empty xy_links, or every linked word "
                              "has no subwords)")

    src: dict[int, list[Tensor]] = {lay: [] for lay in layers}
    tgt: dict[int, list[Tensor]] = {lay: [] for lay in layers}
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(rows), batch_size), total=math.ceil(len(rows) / batch_size),
                          desc="word vectors", unit="batch", leave=False):
            chunk = rows[start:start + batch_size]
            for ids, spans, store in (([c[0] for c in chunk], [c[2] for c in chunk], src),
                                      ([c[1] for c in chunk], [c[3] for c in chunk], tgt)):
                pooled = _encode_pooled(model, ids, spans, layers, pooling, pad_id, device)
                for lay in layers:
                    store[lay].append(pooled[lay])
    finally:
        model.train(was_training)
    logger.info(f"word vectors of {len(pair_index)} links in {len(rows)} pairs (layers {layers}, {pooling} pooling)")
    return AlignedWordVectors(
        src={lay: torch.cat(v) for lay, v in src.items()}, tgt={lay: torch.cat(v) for lay, v in tgt.items()},
        src_words=src_words, tgt_words=tgt_words, pair_index=torch.tensor(pair_index, dtype=torch.long),
        src_word_index=torch.tensor(src_pos, dtype=torch.long), tgt_word_index=torch.tensor(tgt_pos, dtype=torch.long),
    )


@torch.no_grad()
def contextual_word_averages(model: Any, tokenizer: Any, sentences: list[list[str]], vocabulary: set[str], *,
                             layer: int = -1, pooling: str = "mean", batch_size: int = 32,
                             device: str | torch.device | None = None, lowercase: bool = True,
                             max_length: int | None = None) -> tuple[list[str], Tensor]:
    """Average contextual vector of every ``vocabulary`` word over all its occurrences in ``sentences``.

    ``sentences`` are word-tokenized; each occurrence is pooled over its subwords (``pooling``) at
    ``hidden_states[layer]``. With ``lowercase`` words and vocabulary are compared (and returned) lower-cased.
    Returns ``(words, vectors)``: the vocabulary words seen at least once, sorted, and a float32 CPU tensor
    ``[len(words), hidden]``; unseen words are absent. Sentences longer than ``max_length`` subwords (default: the
    model's positions) are cut, and their last, possibly partial, word is not counted.
    """
    layer = _check_layers(model, [layer])[0]
    _check_pooling(pooling)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"a fast tokenizer is needed for word spans (word_ids()); got {type(tokenizer).__name__}")
    bad = next((i for i, s in enumerate(sentences) if isinstance(s, str) or not all(isinstance(w, str) for w in s)),
               None)
    if bad is not None:
        raise DataFormatError(f"sentence {bad} is not a list of words (got {type(sentences[bad]).__name__}); "
                              "split sentences into words first", line=bad + 1)
    pad_id = _pad_id(tokenizer)
    config = getattr(model, "config", None)
    limit = max_sequence_length(config) if config is not None else 512
    max_length = min(max_length or limit, limit)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    norm = (lambda w: w.lower()) if lowercase else (lambda w: w)
    vocab = sorted({norm(w) for w in vocabulary})
    row_of = {w: i for i, w in enumerate(vocab)}
    sums: Tensor | None = None
    counts = torch.zeros(len(vocab), dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(sentences), batch_size), total=math.ceil(len(sentences) / batch_size),
                          desc="word averages", unit="batch", leave=False):
            batch = [list(s) for s in sentences[start:start + batch_size]]
            enc = tokenizer(batch, is_split_into_words=True, truncation=True, max_length=max_length,
                            return_attention_mask=False, return_token_type_ids=False)
            ids, spans, words_of = [], [], []  # words_of: vocabulary row of each pooled occurrence
            for b, words in enumerate(batch):
                found = [(w, s) for w, s in zip(words, word_spans(enc.word_ids(b), len(words))) if s is not None]
                if len(enc["input_ids"][b]) >= max_length and found:
                    found = found[:-1]  # possibly cut by truncation
                kept = [(norm(w), s) for w, s in found if norm(w) in row_of]
                if kept:  # sentences without a vocabulary word need no forward pass
                    ids.append(enc["input_ids"][b])
                    spans.append([s for _, s in kept])
                    words_of += [row_of[w] for w, _ in kept]
            if not words_of:
                continue
            pooled = _encode_pooled(model, ids, spans, [layer], pooling, pad_id, device)[layer]
            if sums is None:
                sums = torch.zeros(len(vocab), pooled.shape[1], dtype=torch.float64)
            index = torch.tensor(words_of, dtype=torch.long)
            sums.index_add_(0, index, pooled.double())
            counts.index_add_(0, index, torch.ones_like(index))
    finally:
        model.train(was_training)
    hidden = getattr(config, "hidden_size", 0) or 0
    if sums is None:
        logger.warning(f"none of the {len(vocab)} vocabulary words occurs in the {len(sentences)} sentences")
        return [], torch.zeros(0, hidden, dtype=torch.float32)
    seen = counts > 0
    words = [w for w, s in zip(vocab, seen.tolist()) if s]
    vectors = (sums[seen] / counts[seen].unsqueeze(1)).float()
    logger.info(f"averaged vectors of {len(words)} of {len(vocab)} vocabulary words over {int(counts.sum())} "
                f"occurrences in {len(sentences)} sentences")
    return words, vectors
