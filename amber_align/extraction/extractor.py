"""Word alignments from an encoder's own representations: :class:`WordAligner`.

Each side of a pair is encoded on its own (as awesome-align and SimAlign do), the chosen layer's subword vectors
(special tokens left out) give a similarity matrix, an extraction method (:mod:`amber_align.extraction.methods`)
links subwords, and a word pair is linked when any of their subword pairs is. Work is batched: pairs are read in
chunks, sorted by length inside a chunk (length buckets: little padding), both sides of a batch go through the
encoder in one forward, and only the layers up to the chosen one run. Results come back in input order, chunk by
chunk, so memory does not grow with the corpus (:meth:`WordAligner.iter_align`).

Works with any BERT-style encoder and fast tokenizer (mBERT, XLM-R, MiniLM): special tokens and word boundaries
come from the tokenizer's ``word_ids()``, never from hard-coded ids.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from amber_align.choices import EXTRACTION_LEVELS
from amber_align.choices import EXTRACTION_SIMILARITIES as SIMILARITIES
from amber_align.data.words import word_tokenize
from amber_align.errors import ConfigError, DataFormatError
from amber_align.extraction.methods import (EXTRACTION_METHODS, SIMALIGN_METHODS, extract_links, link_scores,
                                            simalign_similarity, valid_mask)
from amber_align.logging_utils import get_logger
from amber_align.modeling import max_sequence_length

__all__ = ["WordAligner", "ExtractionSettings", "SIMILARITIES"]

logger = get_logger(__name__)


Link = tuple[int, int]
ScoredLink = tuple[int, int, float]


@dataclass
class ExtractionSettings:
    """How links are extracted. ``similarity='auto'``: dot product for ``softmax``/``entmax15`` (awesome-align),
    cosine for ``argmax``/``itermax``/``mwmf`` (SimAlign, which scores on ``(cos + 1) / 2``). ``level='word'``:
    SimAlign's word-level mode (each word's vector is the mean of its subwords' vectors; links are between
    words), else links between subwords, a word pair linked when any of its subword pairs is."""

    layer: int = 8
    method: str = "softmax"
    threshold: float = 1e-3
    similarity: str = "auto"
    distortion: float = 0.0
    max_count: int = 2
    alpha: float = 0.9
    level: str = "subword"

    def __post_init__(self) -> None:
        if self.method not in EXTRACTION_METHODS:
            raise ConfigError(f"method: expected one of {EXTRACTION_METHODS}, got {self.method!r}")
        if self.similarity not in SIMILARITIES:
            raise ConfigError(f"similarity: expected one of {SIMILARITIES}, got {self.similarity!r}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise ConfigError(f"layer: expected an integer (0 = embeddings, -1 = last), got {self.layer!r}")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"threshold: expected a probability in (0, 1), got {self.threshold!r}")
        if not 0 <= self.distortion <= 1:
            raise ConfigError(f"distortion: expected a ratio in [0, 1], got {self.distortion!r}")
        if not isinstance(self.max_count, int) or self.max_count < 1:
            raise ConfigError(f"max_count: expected an integer >= 1, got {self.max_count!r}")
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"alpha: expected a value in (0, 1], got {self.alpha!r}")
        if self.level not in EXTRACTION_LEVELS:
            raise ConfigError(f"level: expected one of {EXTRACTION_LEVELS}, got {self.level!r}")

    @property
    def cosine(self) -> bool:
        return self.similarity == "cosine" or (self.similarity == "auto" and self.method in SIMALIGN_METHODS)


def _layer_list(model: Any) -> tuple[Any, str] | None:
    """The ``nn.ModuleList`` of transformer blocks and its attribute name, for BERT/RoBERTa/XLM-R-style models."""
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if isinstance(layers, torch.nn.ModuleList):
        return encoder, "layer"
    return None


@contextlib.contextmanager
def _only_first_layers(model: Any, k: int) -> Iterator[bool]:
    """Within the block, the encoder runs its first ``k`` blocks only (its last hidden state is then layer ``k``);
    yields False when the model's layout is not known (the caller then asks for all hidden states)."""
    found = _layer_list(model)
    if found is None:
        yield False
        return
    encoder, name = found
    full = getattr(encoder, name)
    if k >= len(full):
        yield True
        return
    setattr(encoder, name, torch.nn.ModuleList(list(full)[:k]))
    try:
        yield True
    finally:
        setattr(encoder, name, full)


def _as_words(sentence: str | Sequence[str], pretokenized: bool) -> list[str]:
    if isinstance(sentence, str):
        return sentence.split() if pretokenized else word_tokenize(sentence)
    return list(sentence)


class WordAligner:
    """Extract word alignments from an encoder.

    >>> aligner = WordAligner.from_pretrained("bert-base-multilingual-cased", layer=8, method="softmax")
    >>> aligner.align(["Das ist gut ."], ["That is good ."])  # one sorted list of 0-based (src, tgt) per pair
    [[(0, 0), (1, 1), (2, 2), (3, 3)]]  # (illustrative)

    Args:
        model: an encoder (``AutoModel``); it is put in eval mode and on ``device``.
        tokenizer: its fast tokenizer (word boundaries come from ``word_ids()``).
        settings: an :class:`ExtractionSettings`, or its fields as keyword arguments.
        batch_size: pairs per forward (both sides of a batch go through the encoder together).
        chunk_size: pairs read ahead and sorted by length; memory is bounded by this, not by the corpus.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``, ...
        bf16: run the encoder under bf16 autocast on a GPU that supports it (similarities are float32).
    """

    def __init__(self, model: Any, tokenizer: Any, settings: ExtractionSettings | None = None, *,
                 batch_size: int = 64, chunk_size: int | None = None, device: str | torch.device = "auto",
                 bf16: bool = True, **setting_kwargs: Any):
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(f"a fast tokenizer is needed (word_ids()); got {type(tokenizer).__name__}")
        self.settings = settings if settings is not None else ExtractionSettings(**setting_kwargs)
        if settings is not None and setting_kwargs:
            raise ConfigError("pass either settings= or its fields as keyword arguments, not both")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        self.batch_size = batch_size
        self.chunk_size = max(chunk_size or 32 * batch_size, batch_size)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        n_layers = int(getattr(model.config, "num_hidden_layers", 0))
        layer = self.settings.layer
        if not -(n_layers + 1) <= layer <= n_layers:
            raise ConfigError(f"layer {layer} is out of range: this model has {n_layers} layers (0 = embeddings, "
                              f"1..{n_layers}, -1 = last); awesome-align/SimAlign use 8 for 12-layer models")
        self.layer = layer % (n_layers + 1)
        self.max_length = max_sequence_length(model.config)
        self.use_bf16 = bool(bf16 and self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        self.skipped_too_long = 0

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, allow_pickle_weights: bool = False, **kwargs: Any) -> WordAligner:
        """Load the encoder and its tokenizer (Hub id or local directory; safetensors only unless allowed)."""
        from amber_align.modeling import load_encoder, load_tokenizer
        from amber_align.tokenization import check_tokenizer_matches_model

        model = load_encoder(name_or_path, allow_pickle_weights=allow_pickle_weights)
        tokenizer = load_tokenizer(name_or_path)
        check_tokenizer_matches_model(tokenizer, model)
        return cls(model, tokenizer, **kwargs)

    # ----- public API -------------------------------------------------------------------------------------------
    def align(self, src: Sequence[str | Sequence[str]], tgt: Sequence[str | Sequence[str]], *,
              pretokenized: bool = False, with_scores: bool = False) -> list[list[Link]] | list[list[ScoredLink]]:
        """Word links (0-based ``(src_word, tgt_word)``, sorted) of every pair, in order.

        A sentence is a string (split with :func:`amber_align.data.words.word_tokenize`, or on whitespace when
        ``pretokenized``) or a list of words. ``with_scores``: each link is ``(src_word, tgt_word, score)``
        (see :meth:`iter_align`).
        """
        if len(src) != len(tgt):
            raise DataFormatError(f"align: {len(src)} source sentences but {len(tgt)} target sentences")
        pairs = ((_as_words(s, pretokenized), _as_words(t, pretokenized)) for s, t in zip(src, tgt))
        return list(self.iter_align(pairs, with_scores=with_scores))

    def iter_align(self, pairs: Iterable[tuple[Sequence[str], Sequence[str]]], *,
                   with_scores: bool = False) -> Iterator[list[Link]] | Iterator[list[ScoredLink]]:
        """Links of each ``(src_words, tgt_words)`` pair, in input order, reading ``chunk_size`` pairs at a time.

        A pair with an empty side, or a side over the model's positions (never truncated), gets no links; the
        latter are counted in ``self.skipped_too_long`` and logged once per chunk.

        ``with_scores``: links are ``(src_word, tgt_word, score)``, the score of a word pair the largest of its
        linked subword pairs: for ``softmax``/``entmax15`` awesome-align's alignment probability
        (``--output_prob_file``, :func:`~amber_align.extraction.methods.link_scores`), for SimAlign's methods the
        similarity the method compared (``(cos + 1) / 2`` with cosine).
        """
        iterator = iter(pairs)
        while chunk := list(itertools.islice(iterator, self.chunk_size)):
            yield from self._align_chunk(chunk, with_scores)

    # ----- internals --------------------------------------------------------------------------------------------
    def _align_chunk(self, chunk: list[tuple[Sequence[str], Sequence[str]]], with_scores: bool = False) -> list[Any]:
        src_words = [list(s) for s, _ in chunk]
        tgt_words = [list(t) for _, t in chunk]
        src_enc = self._encode(src_words)
        tgt_enc = self._encode(tgt_words)
        results: list[Any] = [[] for _ in chunk]
        todo, too_long = [], 0
        for k in range(len(chunk)):
            n_s, n_t = len(src_enc[k][0]), len(tgt_enc[k][0])
            if not src_words[k] or not tgt_words[k] or not src_enc[k][1] or not tgt_enc[k][1]:
                continue
            if n_s > self.max_length or n_t > self.max_length:
                too_long += 1
                continue
            todo.append(k)
        if too_long:
            self.skipped_too_long += too_long
            logger.warning(f"{too_long} pair(s) with a side over the model's {self.max_length} positions got no "
                           "links (never truncated)")
        todo.sort(key=lambda k: max(len(src_enc[k][0]), len(tgt_enc[k][0])))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            links = self._align_batch([src_enc[k] for k in batch], [tgt_enc[k] for k in batch], with_scores)
            for k, pair_links in zip(batch, links):
                results[k] = pair_links
        return results

    def _encode(self, sentences: list[list[str]]) -> list[tuple[list[int], list[int], list[int]]]:
        """Per sentence: ``(input_ids, content positions, word index of each content position)``."""
        enc = self.tokenizer(sentences, is_split_into_words=True, add_special_tokens=True, truncation=False,
                             return_attention_mask=False, return_token_type_ids=False)
        out = []
        for b in range(len(sentences)):
            word_ids = enc.word_ids(b)
            positions = [p for p, w in enumerate(word_ids) if w is not None]
            out.append((enc["input_ids"][b], positions, [word_ids[p] for p in positions]))
        return out

    def _hidden(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The chosen layer's hidden states ``[N, L, H]`` (only the layers up to it run)."""
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            if self.layer == 0:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
                return out.hidden_states[0]
            with _only_first_layers(self.model, self.layer) as truncated:
                if truncated:
                    return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
                return out.hidden_states[self.layer]

    def _align_batch(self, src: list[tuple[list[int], list[int], list[int]]],
                     tgt: list[tuple[list[int], list[int], list[int]]], with_scores: bool = False) -> list[Any]:
        b = len(src)
        seqs = [s[0] for s in src] + [t[0] for t in tgt]
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((2 * b, width), pad, dtype=torch.long)
        mask = torch.zeros((2 * b, width), dtype=torch.long)
        for r, seq in enumerate(seqs):
            ids[r, :len(seq)] = torch.as_tensor(seq)
            mask[r, :len(seq)] = 1
        hidden = self._hidden(ids.to(self.device), mask.to(self.device)).float()
        h_src = self._content(hidden[:b], [s[1] for s in src])
        h_tgt = self._content(hidden[b:], [t[1] for t in tgt])
        src_map, tgt_map = [s[2] for s in src], [t[2] for t in tgt]
        if self.settings.level == "word":
            h_src, src_map = _mean_over_words(h_src, src_map)
            h_tgt, tgt_map = _mean_over_words(h_tgt, tgt_map)
        src_len = torch.tensor([len(m) for m in src_map], device=self.device)
        tgt_len = torch.tensor([len(m) for m in tgt_map], device=self.device)
        if self.settings.cosine:
            h_src = torch.nn.functional.normalize(h_src, dim=-1)
            h_tgt = torch.nn.functional.normalize(h_tgt, dim=-1)
        sim = torch.bmm(h_src, h_tgt.transpose(1, 2))
        valid = valid_mask(src_len, tgt_len, sim.shape[1], sim.shape[2])
        st = self.settings
        links = extract_links(sim, valid, st.method, threshold=st.threshold, distortion=st.distortion,
                              max_count=st.max_count, alpha=st.alpha, cosine=st.cosine)
        if not with_scores:
            return _word_links(links.nonzero().tolist(), src_map, tgt_map, b)
        if st.method in SIMALIGN_METHODS:
            scores = simalign_similarity(sim) if st.cosine else sim
        else:
            scores = link_scores(sim, valid)
        return _scored_word_links(links.nonzero().tolist(), scores, src_map, tgt_map, b)

    def _content(self, hidden: Tensor, positions: list[list[int]]) -> Tensor:
        """Gather each row's content positions into ``[B, S, H]`` (zeros past a row's length)."""
        s = max(len(p) for p in positions)
        index = torch.zeros((len(positions), s), dtype=torch.long)
        for r, p in enumerate(positions):
            index[r, :len(p)] = torch.as_tensor(p)
        index = index.to(hidden.device)
        gathered = hidden.gather(1, index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        lengths = torch.tensor([len(p) for p in positions], device=hidden.device)
        keep = torch.arange(s, device=hidden.device).unsqueeze(0) < lengths.unsqueeze(1)
        return gathered * keep.unsqueeze(-1)


def _word_links(subword_links: list[list[int]], src_words: list[list[int]], tgt_words: list[list[int]],
                b: int) -> list[list[Link]]:
    """Map ``(pair, src_subword, tgt_subword)`` triples to sorted word links per pair (any subword link counts)."""
    per_pair: list[set[Link]] = [set() for _ in range(b)]
    for k, i, j in subword_links:
        per_pair[k].add((src_words[k][i], tgt_words[k][j]))
    return [sorted(links) for links in per_pair]


def _scored_word_links(subword_links: list[list[int]], scores: Tensor, src_words: list[list[int]],
                       tgt_words: list[list[int]], b: int) -> list[list[ScoredLink]]:
    """Like :func:`_word_links`, each word link with the largest score of its linked subword pairs."""
    per_pair: list[dict[Link, float]] = [{} for _ in range(b)]
    values = scores[tuple(torch.tensor(subword_links).T)].tolist() if subword_links else []
    for (k, i, j), value in zip(subword_links, values):
        key = (src_words[k][i], tgt_words[k][j])
        per_pair[k][key] = max(per_pair[k].get(key, value), value)
    return [[(i, j, v) for (i, j), v in sorted(links.items())] for links in per_pair]


def _mean_over_words(hidden: Tensor, word_of: list[list[int]]) -> tuple[Tensor, list[list[int]]]:
    """SimAlign's ``average_embeds_over_words``: ``[B, S, H]`` subword vectors -> ``[B, W, H]`` word vectors (the
    mean of each word's subwords), and per row the word index of each new position (words in order)."""
    words = [sorted(set(m)) for m in word_of]
    width = max((len(w) for w in words), default=0)
    pool = torch.zeros((hidden.shape[0], max(width, 1), hidden.shape[1]), device=hidden.device)
    for r, (m, ws) in enumerate(zip(word_of, words)):
        where = {w: k for k, w in enumerate(ws)}
        for p, w in enumerate(m):
            pool[r, where[w], p] = 1.0
    pool = pool / pool.sum(2, keepdim=True).clamp(min=1.0)
    return torch.bmm(pool, hidden), words
