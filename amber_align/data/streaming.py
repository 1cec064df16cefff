"""Streaming training data: parallel corpora read lazily, for corpora that do not fit in memory (``streaming: true``).

Each training source (one language pair) becomes an endless ``datasets.IterableDataset`` built with
``IterableDataset.from_generator``: the files are read line by line (never whole) by the reader the map-style path
materialises (:mod:`amber_align.data.readers`: words split per line, a Pharaoh alignment file read line by line
beside its corpus, the same checks, filters and errors naming file and line); then ``.map`` orients, filters links
and tokenizes on the fly (the same batch functions as ``amber_align.data.encoding``), pairs over ``max_length``
subwords are skipped, and ``.shuffle(buffer_size, seed)`` mixes a bounded window. The pass over a file restarts
when it ends (an epoch is one pass; nothing is held in memory across passes; the first pass logs its counts).

:class:`PairStreams` keeps the per-pair streams apart and interleaves them round-robin
(``datasets.interleave_datasets``): any ``P × batch_size`` consecutive examples hold ``batch_size`` pairs of each
of the ``P`` language pairs, which is the per-language mixing of the map-style ``MultiPairBatchSampler``.
Several processes: accelerate deals out whole ``P × batch_size`` batches (``dispatch_batches`` off, set by the
config), so every process's batch keeps the mixing.

Limits (raised as ``ConfigError``): sources must be files (``src_file``+``tgt_file``, ``bar`` or ``jsonl``; the
reader also reads TSV/CSV lazily, but streaming keeps to :data:`STREAMABLE_FORMATS`), and
word links must come from a Pharaoh file when the method needs them (eflomal needs the whole corpus).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import datasets
import torch

from amber_align.data.encoding import filter_links_batch, orient_batch, pair_encoder
from amber_align.data.parallel import PARALLEL_FEATURES, ParallelSource
from amber_align.data.readers import RowCheck, checked_rows, iter_raw_rows, source_languages, tokenized
from amber_align.errors import ConfigError, DataFormatError
from amber_align.logging_utils import get_logger

__all__ = ["PairStreams", "build_streaming_dataset", "iter_source_rows", "STREAMABLE_FORMATS"]

logger = get_logger(__name__)

STREAMABLE_FORMATS = ("lines", "bar", "jsonl")
_RAW_COLUMNS = list(PARALLEL_FEATURES) + ["x_words", "y_words", "xy_links"]


def iter_source_rows(source: ParallelSource, *, max_words: int | None = 64, dedup: set[str] | frozenset = frozenset(),
                     pretokenized: bool = False, check: RowCheck | None = None) -> Iterator[dict[str, Any]]:
    """One pass over ``source``: rows with the columns of ``PARALLEL_FEATURES``, read, checked and filtered lazily
    by the reader ``load_parallel`` materialises (:mod:`amber_align.data.readers`): same rows, same errors.

    The alignment file, when given, is read beside the corpus; a link outside its pair, a malformed line or a
    different line count raises ``DataFormatError`` naming the alignment file and the line. ``check``: the
    :class:`~amber_align.data.readers.RowCheck` to use (for its counts), else a new one.
    """
    if check is None:
        check = RowCheck.of(source, max_words=max_words, dedup=dedup)
    for row in checked_rows(tokenized(iter_raw_rows(source), pretokenized), check):
        yield row._asdict()


def _endless_rows(source: dict[str, Any], max_words: int | None, dedup: frozenset, pretokenized: bool
                  ) -> Iterator[dict[str, Any]]:
    """Pass after pass over one source (the generator behind each stream); a pass with no rows is an error. The
    first pass's counts are logged, as ``load_parallel`` logs them."""
    parsed = ParallelSource.from_dict(source)
    for epoch in itertools.count():
        check = RowCheck.of(parsed, max_words=max_words, dedup=dedup)
        yield from iter_source_rows(parsed, pretokenized=pretokenized, check=check)
        if epoch == 0:
            logger.info(check.summary())
        if check.kept == 0:
            raise DataFormatError("no pairs left after filtering (empty sides, max_words, evaluation duplicates)",
                                  path=parsed.describe())


class PairStreams(torch.utils.data.IterableDataset):
    """One endless stream per language pair, iterated round-robin (one example of each pair in turn).

    ``pairs`` names the streams in order. ``filter_each`` applies a filter to every stream before the interleave
    (so a skipped pair never unbalances a batch). ``set_epoch`` is forwarded (it reseeds the shuffle buffers).
    """

    def __init__(self, streams: list[datasets.IterableDataset], pairs: list[str]):
        super().__init__()
        if not streams:
            raise ConfigError("train_data: no parallel sources given (expected a list of source mappings)")
        self.streams, self.pairs = list(streams), list(pairs)

    @property
    def num_pairs(self) -> int:
        """Streams per step: a batch holds ``per_device_train_batch_size`` rows of each."""
        return len(self.streams)

    @property
    def column_names(self) -> list[str]:
        """The language columns, for readers of a dataset's languages (the model card): see :meth:`unique`. The
        streamed rows themselves hold the encoded columns and ``pair``."""
        return ["src_lang", "tgt_lang"]

    def unique(self, column: str) -> list[str]:
        """Languages on the ``src_lang`` / ``tgt_lang`` side of the pairs (known without reading the streams)."""
        if column not in ("src_lang", "tgt_lang"):
            raise KeyError(f"PairStreams knows only src_lang and tgt_lang without reading the data, not {column!r}")
        side = 0 if column == "src_lang" else 1
        return sorted({pair.split("-")[side] for pair in self.pairs})

    def filter_each(self, function: Callable[..., bool], **kwargs: Any) -> PairStreams:
        """A new ``PairStreams`` with ``IterableDataset.filter(function, **kwargs)`` applied to every stream."""
        return PairStreams([s.filter(function, **kwargs) for s in self.streams], self.pairs)

    def set_epoch(self, epoch: int) -> None:
        for stream in self.streams:
            stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if len(self.streams) == 1:
            return iter(self.streams[0])
        return iter(datasets.interleave_datasets(self.streams))  # round-robin when no probabilities are given


def build_streaming_dataset(config: Any, tokenizer: Any, sources: list[dict[str, Any]] | None = None,
                            dedup: set[str] | None = None) -> PairStreams:
    """The streaming twin of ``build_alignment_datasets``' train half for an ``AlignmentConfig``.

    Checks every source up front (form, languages, anchor language, links), so a bad config fails before training
    starts; data errors surface while streaming, naming the file and line.
    """
    sources = config.train_data if sources is None else sources
    if not sources:
        raise ConfigError("train_data: no parallel sources given (expected a list of source mappings)")
    seed = config.data_seed if config.data_seed is not None else config.seed
    streams, pairs = [], []
    encode = pair_encoder(tokenizer, max_length=config.max_length, special_token_links=config.special_token_links)
    for index, raw in enumerate(sources):
        source = ParallelSource.from_dict(raw)
        fmt = source.form()
        if fmt not in STREAMABLE_FORMATS:
            raise ConfigError(f"train_data[{index}] ({source.describe()}): streaming reads files of the forms "
                              f"{STREAMABLE_FORMATS} (src_file + tgt_file, 'src ||| tgt' lines, JSON Lines), not "
                              f"{fmt!r}; convert it, or set streaming: false")
        if config.needs_word_links() and source.alignments is None:
            raise ConfigError(f"train_data[{index}] ({source.describe()}): streaming cannot word-align with eflomal "
                              "(it needs the whole corpus): give alignments: <Pharaoh file> (amber-align "
                              "word-align writes one), or set streaming: false")
        src_lang, tgt_lang = source_languages(source)
        if config.anchor_language not in (src_lang, tgt_lang):
            raise ConfigError(f"anchor_language={config.anchor_language!r} is on neither side of the language pair "
                              f"{src_lang}-{tgt_lang} of train_data[{index}]; set anchor_language to the shared "
                              "language of every pair")
        stream = datasets.IterableDataset.from_generator(
            _endless_rows, features=PARALLEL_FEATURES,
            gen_kwargs={"source": dict(raw), "max_words": config.max_words,
                        "dedup": frozenset(dedup or ()), "pretokenized": config.pretokenized})
        stream = stream.map(orient_batch, batched=True, fn_kwargs={"anchor_language": config.anchor_language})
        if config.one_to_one or config.drop_identical_links:
            stream = stream.map(filter_links_batch, batched=True,
                                fn_kwargs={"one_to_one_only": config.one_to_one,
                                           "drop_identical_words": config.drop_identical_links})
        stream = stream.map(encode, batched=True, remove_columns=[c for c in _RAW_COLUMNS if c != "pair"])
        stream = stream.filter(lambda too_long: not too_long, input_columns="too_long").remove_columns("too_long")
        streams.append(stream.shuffle(buffer_size=config.streaming_buffer_size, seed=seed))
        pairs.append(f"{src_lang}-{tgt_lang}")
    logger.info(f"streaming {len(streams)} language pair(s) ({', '.join(pairs)}); shuffle buffer "
                f"{config.streaming_buffer_size} per pair")
    return PairStreams(streams, pairs)
