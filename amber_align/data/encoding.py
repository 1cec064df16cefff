"""Word-level encoding of aligned pairs: subword ids, word spans and link spans, oriented to the anchor language.

docs/methods.md "Words" and "Orientation": raw text was word-tokenized once at load; here each side's words go
through the fast tokenizer with ``is_split_into_words=True`` and ``word_ids()`` gives every word's subword span.
Rows are oriented so that ``x`` is the foreign side (s) and ``y`` the side in ``anchor_language`` (t), whichever
column it came from; links are flipped accordingly. Pairs whose either side is longer than ``max_length`` subwords are
skipped and counted (never truncated: truncation would silently cut linked words).

Output columns (all plain int lists, so ``datasets`` can cache them):
``x_input_ids``, ``y_input_ids``, ``x_word_spans``/``y_word_spans`` (flat ``[start0, end0, start1, end1, ...]``
per word, ``end`` exclusive), ``x_link_spans``/``y_link_spans`` (flat spans of the two ends of every link,
special-token links first), ``num_links``, ``pair``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets

from amber_align.data.alignments import drop_identical, one_to_one
from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger

__all__ = ["orient_pairs", "encode_aligned_pairs", "word_spans", "filter_links", "orient_batch", "filter_links_batch",
           "pair_encoder"]

logger = get_logger(__name__)


def word_spans(word_ids: Sequence[int | None], num_words: int) -> list[tuple[int, int] | None]:
    """Subword span ``(start, end)`` of every word from a fast tokenizer's ``word_ids()``; None for a word with no
    subwords (which then cannot be linked)."""
    spans: list[list[int] | None] = [None] * num_words
    for pos, w in enumerate(word_ids):
        if w is None:
            continue
        if spans[w] is None:
            spans[w] = [pos, pos + 1]
        else:
            spans[w][1] = pos + 1
    return [tuple(s) if s is not None else None for s in spans]


def orient_batch(batch: dict[str, list], anchor_language: str) -> dict[str, list]:
    """``x_words``/``y_words``/``xy_links`` of a batch of rows, y = the ``anchor_language`` side (no checks)."""
    out = {"x_words": [], "y_words": [], "xy_links": []}
    for sw, tw, sl, tl, links in zip(
        batch["src_words"], batch["tgt_words"], batch["src_lang"], batch["tgt_lang"], batch["links"]
    ):
        if tl == anchor_language and sl != anchor_language:
            out["x_words"].append(sw)
            out["y_words"].append(tw)
            out["xy_links"].append([[i, j] for i, j in links])
        elif sl == anchor_language and tl != anchor_language:
            out["x_words"].append(tw)
            out["y_words"].append(sw)
            out["xy_links"].append([[j, i] for i, j in links])
        else:  # same language on both sides (paraphrase data): keep the column order, tgt plays the anchor
            out["x_words"].append(sw)
            out["y_words"].append(tw)
            out["xy_links"].append([[i, j] for i, j in links])
    return out


def orient_pairs(dataset: datasets.Dataset, anchor_language: str) -> datasets.Dataset:
    """Add ``x_words``, ``y_words``, ``xy_links`` with y = the ``anchor_language`` side (docs/methods.md "Orientation").

    A pair with neither side in ``anchor_language`` is a configuration error naming the pairs found.
    """
    pairs = sorted(set(dataset["pair"]))
    bad = sorted({p for p, s, t in zip(dataset["pair"], dataset["src_lang"], dataset["tgt_lang"])
                  if anchor_language not in (s, t)})
    if bad:
        raise ConfigError(
            f"anchor_language={anchor_language!r} is on neither side of the language pair(s) {bad} "
            f"(pairs in the data: {pairs}); set anchor_language to the shared language of every pair"
        )
    return dataset.map(orient_batch, batched=True, fn_kwargs={"anchor_language": anchor_language},
                       desc="Orienting pairs")


def filter_links_batch(batch: dict[str, list], one_to_one_only: bool = True,
                       drop_identical_words: bool = False) -> dict[str, list]:
    """``xy_links`` of a batch after the Cao link filters (see :func:`filter_links`)."""
    new = []
    for links, xw, yw in zip(batch["xy_links"], batch["x_words"], batch["y_words"]):
        kept = [tuple(link) for link in links]
        if one_to_one_only:
            kept = one_to_one(kept)
        if drop_identical_words:
            kept = drop_identical(kept, xw, yw)
        new.append([list(link) for link in kept])
    return {"xy_links": new}


def filter_links(
    dataset: datasets.Dataset, *, one_to_one_only: bool = True, drop_identical_words: bool = False
) -> datasets.Dataset:
    """Apply the Cao link filters to ``xy_links``: one-to-one links only, optionally drop identical-string links."""
    if not one_to_one_only and not drop_identical_words:
        return dataset
    return dataset.map(filter_links_batch, batched=True, desc="Filtering links",
                       fn_kwargs={"one_to_one_only": one_to_one_only, "drop_identical_words": drop_identical_words})


def pair_encoder(tokenizer: Any, *, max_length: int = 128, special_token_links: bool = True):
    """The batched map function of :func:`encode_aligned_pairs` (also used on streams): oriented rows -> subword ids,
    word and link spans, ``num_links`` and a ``too_long`` flag (side over ``max_length`` subwords)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"a fast tokenizer is needed for word spans (word_ids()); got {type(tokenizer).__name__}"
        )

    def _encode_side(words: list[list[str]]) -> tuple[list[list[int]], list[list[tuple[int, int] | None]], list]:
        enc = tokenizer(
            words, is_split_into_words=True, add_special_tokens=True, truncation=False,
            return_special_tokens_mask=True, return_attention_mask=False, return_token_type_ids=False,
        )
        spans = [word_spans(enc.word_ids(b), len(w)) for b, w in enumerate(words)]
        return enc["input_ids"], spans, enc["special_tokens_mask"]

    def _encode(batch: dict[str, list]) -> dict[str, list]:
        x_ids, x_spans, x_special = _encode_side(batch["x_words"])
        y_ids, y_spans, y_special = _encode_side(batch["y_words"])
        out: dict[str, list] = {k: [] for k in (
            "x_input_ids", "y_input_ids", "x_word_spans", "y_word_spans", "x_link_spans", "y_link_spans",
            "num_links", "too_long")}
        for b in range(len(x_ids)):
            xl, yl = [], []
            if special_token_links:
                for pos_x, pos_y in ((0, 0), (len(x_ids[b]) - 1, len(y_ids[b]) - 1)):
                    if x_special[b][pos_x] and y_special[b][pos_y]:
                        xl += [pos_x, pos_x + 1]
                        yl += [pos_y, pos_y + 1]
            for i, j in batch["xy_links"][b]:
                sx, sy = x_spans[b][i], y_spans[b][j]
                if sx is None or sy is None:
                    continue
                xl += list(sx)
                yl += list(sy)
            out["x_input_ids"].append(x_ids[b])
            out["y_input_ids"].append(y_ids[b])
            out["x_word_spans"].append([p for s in x_spans[b] for p in (s or (-1, -1))])
            out["y_word_spans"].append([p for s in y_spans[b] for p in (s or (-1, -1))])
            out["x_link_spans"].append(xl)
            out["y_link_spans"].append(yl)
            out["num_links"].append(len(xl) // 2)
            out["too_long"].append(len(x_ids[b]) > max_length or len(y_ids[b]) > max_length)
        return out

    return _encode


def encode_aligned_pairs(
    dataset: datasets.Dataset,
    tokenizer: Any,
    *,
    max_length: int = 128,
    special_token_links: bool = True,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Tokenize oriented pairs (``x_words``, ``y_words``, ``xy_links``) and compute word and link spans.

    ``special_token_links`` adds [CLS]↔[CLS] and [SEP]↔[SEP] (``<s>``/``</s>`` for XLM-R) as links, as Cao does:
    the first and last positions of each side, which the tokenizer marks as special.
    Pairs over ``max_length`` subwords on either side are dropped and counted in one log line.
    """
    _encode = pair_encoder(tokenizer, max_length=max_length, special_token_links=special_token_links)
    encoded = dataset.map(_encode, batched=True, num_proc=num_proc, desc="Tokenizing pairs")
    n_long = sum(encoded["too_long"])
    if n_long:
        encoded = encoded.filter(lambda flags: [not f for f in flags], input_columns="too_long", batched=True)
    logger.info(
        f"encoded {len(encoded)} pairs; skipped {n_long} with a side over max_length={max_length} subwords "
        "(skipped, not truncated)"
    )
    return encoded.remove_columns("too_long")
