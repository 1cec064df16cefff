"""Span pooling, the pair collator and the multi-pair batch sampler, against hand-worked values."""

from __future__ import annotations

import pytest
import torch

from amber_align.losses.pooling import pool_segments
from amber_align.trainers.pair_collator import AlignedPairCollator
from amber_align.trainers.sampler import MultiPairBatchSampler


def test_pool_segments_mean_and_gather():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    # segment 0 = mean of row 0 positions 1,2; segment 1 = row 1 position 3
    out = pool_segments(hidden, torch.tensor([1, 2, 7]), torch.tensor([0, 0, 1]), torch.tensor([0.5, 0.5, 1.0]), 2)
    expected = torch.stack([(hidden[0, 1] + hidden[0, 2]) / 2, hidden[1, 3]])
    assert torch.allclose(out, expected)
    # one token per segment: plain gather
    out = pool_segments(hidden, torch.tensor([0, 5]), torch.tensor([0, 1]), torch.ones(2), 2)
    assert torch.equal(out, torch.stack([hidden[0, 0], hidden[1, 1]]))


def _features():
    return [
        {"x_input_ids": [1, 5, 6, 2], "y_input_ids": [1, 7, 2],
         "x_link_spans": [0, 1, 1, 3], "y_link_spans": [0, 1, 1, 2]},
        {"x_input_ids": [1, 8, 2], "y_input_ids": [1, 9, 10, 11, 2],
         "x_link_spans": [1, 2], "y_link_spans": [1, 4]},
    ]


@pytest.mark.parametrize("pooling,x_tokens,y_tokens", [
    # T = 5 (longest y); rows: x0, x1, y0, y1 -> flat offsets 0, 5, 10, 15
    ("first", [0, 1, 6], [10, 11, 16]),
    ("last", [0, 2, 6], [10, 11, 18]),
    ("mean", [0, 1, 2, 6], [10, 11, 16, 17, 18]),
])
def test_collator_positions(pooling, x_tokens, y_tokens):
    batch = AlignedPairCollator(pad_token_id=0, pooling=pooling)(_features())
    assert batch["input_ids"].shape == (4, 5)
    assert batch["input_ids"][3].tolist() == [1, 9, 10, 11, 2]
    assert batch["input_ids"][1].tolist() == [1, 8, 2, 0, 0]
    assert batch["attention_mask"].sum().item() == 4 + 3 + 3 + 5
    assert batch["x_link_token_index"].tolist() == x_tokens
    assert batch["y_link_token_index"].tolist() == y_tokens
    assert batch["num_links"] == 3
    assert batch["num_anchor_tokens"] == 3 + 5
    if pooling == "mean":
        assert batch["x_link_weight"].tolist() == [1.0, 0.5, 0.5, 1.0]
        assert batch["y_link_segment_index"].tolist() == [0, 1, 2, 2, 2]


def test_collator_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be one of"):
        AlignedPairCollator(pad_token_id=0, pooling="max")


def test_sampler_one_batch_per_pair_and_cycling():
    pairs = ["de-en"] * 10 + ["es-en"] * 3
    s = MultiPairBatchSampler(pairs, batch_size=2, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 5  # one pass over the largest pair (10 / 2)
    de_seen = [i for b in batches for i in b if i < 10]
    assert sorted(de_seen) == list(range(10))  # every de row exactly once
    for b in batches:
        assert len(b) == 4 and sum(i < 10 for i in b) == 2  # 2 rows of each pair per step
    es_seen = [i for b in batches for i in b if i >= 10]
    assert len(es_seen) == 10 and set(es_seen) == {10, 11, 12}  # smaller pair cycled


def test_sampler_deterministic_and_epoch_dependent():
    pairs = ["a"] * 20 + ["b"] * 7
    a = MultiPairBatchSampler(pairs, batch_size=4, seed=3)
    b = MultiPairBatchSampler(pairs, batch_size=4, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)  # a pure function of (seed, epoch): a resumed run sees the same order


def test_sampler_group_by_length_sorts_megabatches():
    lengths = list(range(40))
    s = MultiPairBatchSampler(["a"] * 40, batch_size=2, seed=0, lengths=lengths, group_by_length=True)
    flat = [i for b in s for i in b]
    assert sorted(flat) == list(range(40))
    assert flat == sorted(flat, reverse=True)  # one mega-batch (50 × 2 > 40): fully sorted by length
