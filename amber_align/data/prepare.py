"""Raw parallel data → what an alignment trainer trains on: read, word-aligned, oriented, link-filtered, encoded.

The data half of the ``align`` job, shared by :func:`amber_align.pipeline.run_alignment` and by the trainers
themselves: ``CaoTrainer(model=..., args=..., train_dataset=raw)`` prepares a raw parallel ``datasets.Dataset``
(text columns and languages, links optional) the way TRL's ``SFTTrainer`` prepares raw text
(:func:`prepare_parallel_data`), and with no ``train_dataset`` at all it reads ``args.train_data``
(:func:`build_alignment_datasets`). Steps, in order:

1. :func:`amber_align.data.parallel.load_parallel`: words, languages, links; empty/over-long pairs and evaluation
   sentences (``dedup_eval_files``) dropped and counted;
2. :func:`ensure_links`: eflomal (cached) for pairs whose source gave no links, only when the method uses links;
3. :func:`amber_align.data.encoding.orient_pairs` (x = foreign side, y = ``anchor_language``) and
   :func:`~amber_align.data.encoding.filter_links` (one-to-one, identical words);
4. :func:`amber_align.data.encoding.encode_aligned_pairs`: subword ids and spans, pairs over ``max_length`` skipped.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amber_align.errors import ConfigError
from amber_align.logging_utils import get_logger

if TYPE_CHECKING:  # imported where used: a trainer given encoded pairs (is_encoded) runs without ``datasets``
    import datasets

__all__ = ["build_alignment_datasets", "default_alignment_cache", "ensure_links", "is_encoded", "prepare_parallel_data",
           "ENCODED_COLUMNS"]

logger = get_logger(__name__)

ENCODED_COLUMNS = ("x_input_ids", "y_input_ids")
"""Columns that mark a dataset as already encoded (the output of ``encode_aligned_pairs``): trainers take it as is."""


def default_alignment_cache() -> Path:
    """``~/.cache/amber_align/alignments`` (under ``$XDG_CACHE_HOME`` when set)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "amber_align" / "alignments"


def is_encoded(dataset: Any) -> bool:
    """Whether ``dataset`` is already in the trainers' encoded form (or a stream, which is built encoded)."""
    if hasattr(dataset, "num_pairs"):  # amber_align.data.streaming.PairStreams
        return True
    columns = getattr(dataset, "column_names", None)
    if columns is None:  # a torch Dataset, a list of dicts: the expert path, handed to the collator as it is
        return True
    return all(c in columns for c in ENCODED_COLUMNS)


def ensure_links(dataset: datasets.Dataset, *, symmetrization: str, cache_dir: str | Path | None) -> datasets.Dataset:
    """Fill ``links`` for rows whose source gave no alignments, by running eflomal per language pair (cached).

    Without the ``align`` extra this raises ``MissingDependencyError`` naming ``amber-align word-align`` and the
    extra to install.
    """
    if "has_links" not in dataset.column_names or all(dataset["has_links"]):
        return dataset
    from amber_align.data.eflomal_aligner import cached_word_align

    cache = Path(cache_dir) if cache_dir else default_alignment_cache()
    by_pair: dict[str, list[int]] = defaultdict(list)
    for i, (pair, has) in enumerate(zip(dataset["pair"], dataset["has_links"])):
        if not has:
            by_pair[pair].append(i)
    links = list(dataset["links"])
    for pair, rows in sorted(by_pair.items()):
        sub = dataset.select(rows)
        logger.info(f"{pair}: no alignments given for {len(rows)} pairs; running eflomal ({symmetrization})")
        computed = cached_word_align(sub["src_words"], sub["tgt_words"], cache_dir=cache, method=symmetrization)
        for r, lk in zip(rows, computed):
            links[r] = [list(link) for link in lk]
    dataset = dataset.remove_columns("links").add_column("links", links)
    return dataset


def prepare_parallel_data(sources: Any, config: Any, tokenizer: Any, *, dedup: set[str] | None = None,
                          what: str = "train_data") -> datasets.Dataset:
    """Encoded, oriented, linked pairs from ``sources``: source mappings (``config.train_data`` entries),
    :class:`~amber_align.data.parallel.ParallelSource` objects, or raw ``datasets.Dataset`` s with ``src``/``tgt``
    (or a ``translation`` column of ``{lang: text}``), ``src_lang``/``tgt_lang`` and optionally ``links``.

    ``config`` is the method config (an ``AlignmentConfig``): its data fields (``max_words``, ``pretokenized``,
    ``symmetrization``, ``one_to_one``, ``drop_identical_links``, ``anchor_language``, ``max_length``,
    ``special_token_links``, ``alignment_cache_dir``) and whether its losses use word links decide every step.
    ``dedup``: normalised evaluation sentences to drop; None reads ``config.dedup_eval_files``. ``what`` names
    the data in the error raised when filtering leaves no pair.
    """
    import datasets

    from amber_align.data.encoding import encode_aligned_pairs, filter_links, orient_pairs
    from amber_align.data.parallel import ParallelSource, load_parallel, read_eval_sentences

    if isinstance(sources, (datasets.Dataset, ParallelSource, dict)):
        sources = [sources]
    if dedup is None and config.dedup_eval_files:
        dedup = read_eval_sentences(config.dedup_eval_files)
    parsed = [s if isinstance(s, (datasets.Dataset, ParallelSource)) else ParallelSource.from_dict(s)
              for s in sources]
    ds = load_parallel(parsed, max_words=config.max_words, dedup_texts=dedup, pretokenized=config.pretokenized)
    if len(ds) == 0:
        raise ConfigError(f"{what}: no pairs left after filtering (every pair was empty, over max_words="
                          f"{config.max_words} words or an evaluation sentence; see the skip counts logged above)")
    if config.needs_word_links():
        ds = ensure_links(ds, symmetrization=config.symmetrization, cache_dir=config.alignment_cache_dir)
    ds = orient_pairs(ds, config.anchor_language)
    ds = filter_links(ds, one_to_one_only=config.one_to_one, drop_identical_words=config.drop_identical_links)
    encoded = encode_aligned_pairs(ds, tokenizer, max_length=config.max_length,
                                   special_token_links=config.special_token_links)
    if len(encoded) == 0:
        raise ConfigError(f"{what}: no pairs left after encoding: every pair has a side over max_length="
                          f"{config.max_length} subwords")
    return encoded


def build_alignment_datasets(config: Any, tokenizer: Any) -> tuple[Any, datasets.Dataset | None]:
    """Train (and held-out) datasets of encoded, oriented, linked pairs for ``config``; with ``streaming`` the train
    half is an ``amber_align.data.streaming.PairStreams`` (read lazily) instead of a ``datasets.Dataset``."""
    from amber_align.data.parallel import read_eval_sentences

    if not config.train_data:
        raise ConfigError("train_data: no parallel sources given (expected a list of source mappings)")
    dedup = read_eval_sentences(config.dedup_eval_files) if config.dedup_eval_files else None
    if getattr(config, "streaming", False):  # lazily read streams; eval_data (small) stays in memory
        from amber_align.data.streaming import build_streaming_dataset

        streams = build_streaming_dataset(config, tokenizer, dedup=dedup)
        held_out = None
        if config.eval_data:
            held_out = prepare_parallel_data(config.eval_data, config, tokenizer, dedup=dedup, what="eval_data")
        return streams, held_out
    train = prepare_parallel_data(config.train_data, config, tokenizer, dedup=dedup)
    evaluation = None
    if config.eval_data:
        evaluation = prepare_parallel_data(config.eval_data, config, tokenizer, dedup=dedup, what="eval_data")
    elif config.eval_split_size:
        size = config.eval_split_size
        test_size = int(size) if size >= 1 else size
        split = train.train_test_split(test_size=test_size, seed=config.seed, shuffle=True)
        train, evaluation = split["train"], split["test"]
    if len(train) == 0:
        raise ConfigError("train_data: no pairs left after filtering (see the skip counts logged above)")
    return train, evaluation

