"""Deterministic batches with one batch from every language pair per step (docs/methods.md "Batching many languages").

The batch size is per language pair; each step concatenates one batch from every pair; an epoch is one pass over
the largest pair while smaller pairs are reshuffled and cycled. Every batch is a pure function of
``(seed, epoch, pair, cycle)``, so a run resumed from a checkpoint (the Trainer skips the batches already seen)
sees exactly the data order of an uninterrupted run. Optional length grouping sorts mega-batches of
``50 × batch_size`` by length (as ``transformers``' LengthGroupedSampler does) to cut padding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from amber_align.errors import ConfigError

__all__ = ["MultiPairBatchSampler"]


class MultiPairBatchSampler:
    """Batch sampler over a dataset whose rows carry a language-pair key.

    Args:
        pairs: the pair key of every row (e.g. ``"es-en"``), in dataset order.
        batch_size: rows per pair per step.
        seed: base seed; with ``epoch`` (``set_epoch``) it fixes every batch.
        lengths: optional per-row lengths for length grouping.
        group_by_length: sort mega-batches by length before cutting batches.
        drop_last: drop the largest pair's last, incomplete batch.
    """

    #: Rows per step are ``pair_batch_size`` × the number of pairs, fewer at the end of an epoch: None tells
    #: accelerate's ``BatchSamplerShard`` (several processes) to deal out whole steps of any length. A number here
    #: would make it treat every step longer than that number as incomplete (process 0 then got no batch at all).
    batch_size = None

    def __init__(
        self,
        pairs: Sequence[str],
        batch_size: int,
        *,
        seed: int = 0,
        lengths: Sequence[int] | None = None,
        group_by_length: bool = False,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ConfigError(f"per_device_train_batch_size: must be >= 1, got {batch_size}")
        self.pair_batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.drop_last = drop_last
        self.group_by_length = group_by_length and lengths is not None
        self.lengths = np.asarray(lengths) if lengths is not None else None
        keys = sorted(set(pairs))
        pairs_arr = np.asarray(pairs)
        self.pair_names = keys
        self.pair_indices = [np.flatnonzero(pairs_arr == k) for k in keys]
        if not self.pair_indices:
            raise ConfigError("train_dataset: MultiPairBatchSampler needs at least one row, got an empty dataset")
        largest = max(len(ix) for ix in self.pair_indices)
        self.steps_per_epoch = largest // batch_size if drop_last else math.ceil(largest / batch_size)

    @property
    def sampler(self) -> "MultiPairBatchSampler":
        """accelerate calls ``batch_sampler.sampler.set_epoch`` through its shard wrapper: point it back here."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _cycle(self, pair: int, cycle: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, pair, cycle])
        idx = self.pair_indices[pair][rng.permutation(len(self.pair_indices[pair]))]
        if self.group_by_length:
            mega = 50 * self.pair_batch_size
            chunks = [idx[i : i + mega] for i in range(0, len(idx), mega)]
            idx = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        return idx

    def _stream(self, pair: int, needed: int, cycle_whole: bool) -> np.ndarray:
        n = len(self.pair_indices[pair])
        if not cycle_whole:
            return self._cycle(pair, 0)
        cycles = math.ceil(needed / n)
        return np.concatenate([self._cycle(pair, c) for c in range(cycles)])[:needed]

    def __iter__(self) -> Iterator[list[int]]:
        needed = self.steps_per_epoch * self.pair_batch_size
        largest = max(len(ix) for ix in self.pair_indices)
        streams = [self._stream(p, needed, len(ix) < largest) for p, ix in enumerate(self.pair_indices)]
        for step in range(self.steps_per_epoch):
            lo, hi = step * self.pair_batch_size, (step + 1) * self.pair_batch_size
            yield [int(i) for s in streams for i in s[lo:hi]]
