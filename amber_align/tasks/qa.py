"""Extractive QA features and answer decoding (SQuAD v1.1 style: XQuAD, MLQA, TyDiQA-GoldP).

A long context is cut into windows of ``max_length`` subwords overlapping by ``stride`` (question first, context
second, only the context truncated). Training windows that do not contain the answer point at the CLS position,
as in the transformers ``run_qa`` example. At evaluation every window keeps the character offsets of its context
subwords; the answer is the best-scoring span (start logit + end logit) over all windows of an example, among the
``n_best`` starts and ends of each window, at most ``max_answer_length`` subwords long.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import datasets
import numpy as np

from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger

__all__ = ["prepare_qa_train_features", "prepare_qa_eval_features", "postprocess_qa_predictions"]

logger = get_logger(__name__)


def _check_padding_side(tokenizer: Any) -> None:
    if getattr(tokenizer, "padding_side", "right") != "right":
        raise ConfigError("qa features need a tokenizer that pads on the right (question first, context second)")


def _tokenize(examples: dict[str, list], tokenizer: Any, max_length: int, stride: int) -> Any:
    questions = [q.lstrip() for q in examples["question"]]
    return tokenizer(questions, examples["context"], truncation="only_second", max_length=max_length,
                     stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)


def prepare_qa_train_features(ds: datasets.Dataset, tokenizer: Any, *, max_length: int = 384, stride: int = 128,
                              source: str = "data") -> datasets.Dataset:
    """Windows with ``start_positions`` / ``end_positions`` (CLS = 0 when the answer is outside the window)."""
    _check_padding_side(tokenizer)

    def encode(examples: dict[str, list]) -> dict[str, list]:
        enc = _tokenize(examples, tokenizer, max_length, stride)
        sample_map = enc.pop("overflow_to_sample_mapping")
        offsets_all = enc.pop("offset_mapping")
        starts, ends = [], []
        for i, offsets in enumerate(offsets_all):
            cls_index = 0
            answers = examples["answers"][sample_map[i]]
            if not answers["answer_start"]:
                starts.append(cls_index)
                ends.append(cls_index)
                continue
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            seq_ids = enc.sequence_ids(i)
            ctx_start = seq_ids.index(1)
            ctx_end = len(seq_ids) - 1 - seq_ids[::-1].index(1)
            if offsets[ctx_start][0] > start_char or offsets[ctx_end][1] < end_char:
                starts.append(cls_index)
                ends.append(cls_index)
                continue
            s = ctx_start
            while s <= ctx_end and offsets[s][0] <= start_char:
                s += 1
            e = ctx_end
            while e >= ctx_start and offsets[e][1] >= end_char:
                e -= 1
            starts.append(s - 1)
            ends.append(e + 1)
        enc["start_positions"] = starts
        enc["end_positions"] = ends
        return enc

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc=f"qa windows {source}")


def prepare_qa_eval_features(ds: datasets.Dataset, tokenizer: Any, *, max_length: int = 384, stride: int = 128,
                             source: str = "data") -> datasets.Dataset:
    """Windows with ``example_id`` and ``offset_mapping`` (None outside the context) for decoding."""
    _check_padding_side(tokenizer)

    def encode(examples: dict[str, list]) -> dict[str, list]:
        enc = _tokenize(examples, tokenizer, max_length, stride)
        sample_map = enc.pop("overflow_to_sample_mapping")
        example_ids = []
        for i in range(len(enc["input_ids"])):
            seq_ids = enc.sequence_ids(i)
            example_ids.append(examples["id"][sample_map[i]])
            enc["offset_mapping"][i] = [o if seq_ids[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
        enc["example_id"] = example_ids
        return enc

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc=f"qa windows {source}")


def postprocess_qa_predictions(examples: datasets.Dataset, features: datasets.Dataset,
                               start_logits: np.ndarray, end_logits: np.ndarray, *, n_best: int = 20,
                               max_answer_length: int = 30) -> dict[str, str]:
    """Best answer text per example id over all of its windows (empty string when no valid span exists)."""
    if len(features) != len(start_logits):
        raise ConfigError(f"got logits for {len(start_logits)} windows, but there are {len(features)} windows")
    by_example: dict[str, list[int]] = defaultdict(list)
    for idx, example_id in enumerate(features["example_id"]):
        by_example[example_id].append(idx)
    offsets_all = features["offset_mapping"]
    predictions: dict[str, str] = {}
    empty = 0
    for example in examples:
        best_score, best_text = -np.inf, ""
        context = example["context"]
        for idx in by_example.get(example["id"], []):
            offsets = offsets_all[idx]
            start = start_logits[idx][: len(offsets)]
            end = end_logits[idx][: len(offsets)]
            for s in np.argsort(start)[::-1][:n_best]:
                if offsets[s] is None:
                    continue
                for e in np.argsort(end)[::-1][:n_best]:
                    if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = start[s] + end[e]
                    if score > best_score:
                        best_score, best_text = score, context[offsets[s][0]: offsets[e][1]]
        if best_score == -np.inf:
            empty += 1
        predictions[example["id"]] = best_text
    if empty:
        logger.warning(f"{empty} of {len(examples)} questions got no valid answer span (predicted '')")
    return predictions
