"""Tokenization of the classification tasks (NER, NLI) for the stock ``AutoModelFor*`` heads.

NER follows XTREME: a word's label sits on its first subword, the other subwords get -100 (ignored by the loss and
by the metric). At evaluation, a word cut off by ``max_length`` is predicted ``O`` rather than dropped, so the gold
sequence is never shortened and the score is not inflated (the HF example drops such words from both sides).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np

from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger

__all__ = ["IGNORE_INDEX", "tokenize_ner", "tokenize_nli", "decode_ner_predictions", "ner_label_list"]

logger = get_logger(__name__)
IGNORE_INDEX = -100


def ner_label_list(tags: Sequence[Sequence[str]]) -> list[str]:
    """The tag set of ``tags`` in a stable order: ``O`` first, then per entity type ``B-X``, ``I-X``."""
    types = sorted({t[2:] for seq in tags for t in seq if t != "O"})
    return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in ("B", "I")]


def tokenize_ner(ds: datasets.Dataset, tokenizer: Any, label2id: dict[str, int], *, max_length: int,
                 source: str = "data") -> datasets.Dataset:
    """Words → subwords with labels on first subwords. Keeps ``word_index`` (word of each first subword, -1
    elsewhere) so predictions map back to words. A tag outside ``label2id`` is a ``ConfigError`` naming it."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        labels, word_index = [], []
        for i, tags in enumerate(batch["ner_tags"]):
            row_labels, row_words, previous = [], [], None
            for w in enc.word_ids(i):
                if w is None or w == previous:
                    row_labels.append(IGNORE_INDEX)
                    row_words.append(-1)
                else:
                    tag = tags[w]
                    if tag not in label2id:
                        raise ConfigError(f"{source}: tag {tag!r} is not in the label list "
                                          f"{sorted(label2id, key=label2id.get)}; add it or map it with label_mapping")
                    row_labels.append(label2id[tag])
                    row_words.append(w)
                previous = w
            labels.append(row_labels)
            word_index.append(row_words)
        return {**enc, "labels": labels, "word_index": word_index}

    return ds.map(encode, batched=True, remove_columns=[c for c in ds.column_names if c not in ("tokens", "ner_tags")],
                  desc=f"tokenizing {source}")


def decode_ner_predictions(logits: np.ndarray, features: datasets.Dataset, id2label: dict[int, str],
                           *, source: str = "data") -> tuple[list[list[str]], list[list[str]]]:
    """Word-level (gold, predicted) tag sequences from token logits; truncated words are predicted ``O``."""
    pred_ids = logits.argmax(-1)
    gold, pred, truncated = [], [], 0
    for i, row in enumerate(features):
        tags = list(row["ner_tags"])
        words = ["O"] * len(tags)
        seen = 0
        for pos, w in enumerate(row["word_index"]):
            if w >= 0:
                words[w] = id2label[int(pred_ids[i, pos])]
                seen += 1
        truncated += len(tags) - seen
        gold.append(tags)
        pred.append(words)
    if truncated:
        logger.warning(f"{source}: {truncated} words beyond max_seq_length were predicted 'O'")
    return gold, pred


def tokenize_nli(ds: datasets.Dataset, tokenizer: Any, label2id: dict[str, int], *, max_length: int,
                 source: str = "data") -> datasets.Dataset:
    """(premise, hypothesis) pairs → model inputs with integer ``labels``."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch["premise"], batch["hypothesis"], truncation=True, max_length=max_length)
        unknown = sorted({label for label in batch["label"] if label not in label2id})
        if unknown:
            raise ConfigError(f"{source}: NLI label(s) {unknown} not in {list(label2id)}")
        return {**enc, "labels": [label2id[label] for label in batch["label"]]}

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc=f"tokenizing {source}")
