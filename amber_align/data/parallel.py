"""Parallel corpora -> one ``datasets.Dataset`` of word-tokenized sentence pairs with their word links.

A corpus comes as two line-aligned files, ``src ||| tgt`` lines, TSV/CSV/JSONL with named columns, or a
``datasets`` dataset (local, or a Hub id; read by :mod:`amber_align.data.parallel_datasets`); word alignments come
as a Pharaoh file line-parallel to the raw corpus. :func:`load_parallel` reads any number of language pairs into
rows ``src, tgt, src_lang, tgt_lang, pair, src_words, tgt_words, links, has_links, line`` with language codes normalised
(``languages.normalize_language``) and words from ``words.word_tokenize``.

Reading, checking and filtering are :mod:`amber_align.data.readers`' (the same lazy reader and per-row checks the
streaming path uses, so both give the same rows and the same errors, naming file and line): this module defines
the sources, materialises the rows (word-tokenizing large sources in ``num_proc`` processes) and logs one line of
counts per source (kept, empty, over ``max_words``, evaluation duplicates, README "Leakage traps").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from amber_align.data.languages import normalize_language
from amber_align.data.parallel_datasets import from_dataset, load_dataset_source
from amber_align.data.readers import (
    KeptRow,
    RawRow,
    RowCheck,
    checked_rows,
    iter_raw_rows,
    normalize_for_dedup,
    tokenized,
)
from amber_align.data.words import word_tokenize_batch
from amber_align.errors import ConfigError, DataFormatError
from amber_align.io_utils import read_text_lines
from amber_align.logging_utils import get_logger

__all__ = ["ParallelSource", "load_parallel", "read_eval_sentences", "normalize_for_dedup", "PARALLEL_FEATURES"]

logger = get_logger(__name__)

_STRING, _WORDS = datasets.Value("string"), datasets.List(datasets.Value("string"))
PARALLEL_FEATURES = datasets.Features({
    "src": _STRING, "tgt": _STRING, "src_lang": _STRING, "tgt_lang": _STRING, "pair": _STRING,
    "src_words": _WORDS, "tgt_words": _WORDS, "links": datasets.List(datasets.List(datasets.Value("int32"))),
    "has_links": datasets.Value("bool"), "line": datasets.Value("int64"),
})  # fmt: skip
"""The columns (and types) of every dataset :func:`load_parallel` returns."""

_FORMATS = {"lines": "lines", "bar": "bar", "pharaoh-pairs": "bar", "triple-bar": "bar", "tsv": "tsv",
            "jsonl": "jsonl", "json": "jsonl", "csv": "csv"}
_EXTENSIONS = {".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
_PARALLEL_TOKENIZE_MIN = 20_000  # below this, num_proc workers cost more than they save
_TOKENIZE_CHUNK = 1_000_000  # rows read ahead for num_proc word tokenization


@dataclass
class ParallelSource:
    """One language pair's parallel data. Exactly one of the input forms is given.

    Input forms: ``src_file`` + ``tgt_file`` (two line-aligned files); ``file`` (``src ||| tgt`` lines, or
    TSV/JSONL/CSV with the columns ``src_column``/``tgt_column``; ``format`` or the extension says which);
    ``dataset`` (a Hub id or a local path that ``datasets.load_dataset``/``load_from_disk`` reads, with
    ``dataset_config`` and ``split``). A TSV/CSV has a header row naming its columns, or the columns are integer
    positions (``"0"``, ``"1"``) and there is no header. ``src_lang``/``tgt_lang`` are normalised; when missing they
    are inferred from file names (``test.spa`` -> ``es``, ``spa_Latn.devtest`` -> ``es``) or, for a dataset, taken
    from its ``src_lang``/``tgt_lang`` columns. ``alignments``: a Pharaoh file line-parallel to the corpus
    (0-based unless ``alignments_one_based``). ``max_pairs``: keep the first N pairs left after filtering
    (reading stops there).
    """

    src_file: str | None = None
    tgt_file: str | None = None
    file: str | None = None
    format: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    split: str = "train"
    src_column: str = "src"
    tgt_column: str = "tgt"
    src_lang: str | None = None
    tgt_lang: str | None = None
    alignments: str | None = None
    alignments_one_based: bool = False
    max_pairs: int | None = None

    def __post_init__(self) -> None:
        for name in ("src_file", "tgt_file", "file", "dataset", "alignments", "dataset_config", "split",
                     "src_column", "tgt_column"):
            value = getattr(self, name)
            if isinstance(value, Path) or (name.endswith("_column") and type(value) is int and value >= 0):
                setattr(self, name, value := str(value))
            optional = name not in ("split", "src_column", "tgt_column")
            if not ((value is None and optional) or (isinstance(value, str) and value)):
                raise ConfigError(f"parallel source field {name!r} must be a non-empty string, got {value!r}")
        if not isinstance(self.alignments_one_based, bool):
            raise ConfigError(f"alignments_one_based must be true or false, got {self.alignments_one_based!r}")
        if self.max_pairs is not None and (type(self.max_pairs) is not int or self.max_pairs < 0):
            raise ConfigError(f"max_pairs must be a non-negative integer or None, got {self.max_pairs!r}")
        for name in ("src_lang", "tgt_lang"):
            given = getattr(self, name)
            try:
                setattr(self, name, None if given is None else normalize_language(given))
            except ConfigError as err:
                raise ConfigError(f"{name}: {err}") from None
            if given is not None and any(sep in given for sep in "-_"):
                script = any(len(tag) == 4 and tag.isalpha() for tag in given.replace("_", "-").split("-")[1:])
                (logger.warning if script else logger.info)(
                    f"{name}: {given!r} is read as {getattr(self, name)!r} (languages are keyed by their primary "
                    "code; script and region subtags are dropped, so two scripts of one language share a pair)")
        self.form()

    def form(self) -> str:
        """The validated input form: ``lines``, ``bar``, ``tsv``, ``jsonl``, ``csv`` or ``dataset``."""
        if (self.src_file is None) != (self.tgt_file is None):
            missing = "tgt_file" if self.tgt_file is None else "src_file"
            raise ConfigError(f"src_file and tgt_file go together: {missing} is missing")
        given = [name for name, on in (("src_file + tgt_file", self.src_file is not None),
                                       ("file", self.file is not None), ("dataset", self.dataset is not None)) if on]
        if len(given) != 1:
            raise ConfigError(
                "a parallel source needs exactly one input form (src_file + tgt_file, file, or dataset); "
                + (f"got {' and '.join(given)}" if given else "got none")
            )
        fmt = None
        if self.format is not None:
            fmt = _FORMATS.get(str(self.format).lower())
            if fmt is None:
                raise ConfigError(f"unknown format {self.format!r}; valid formats: {sorted(_FORMATS)}")
        if self.dataset is not None:
            if fmt is not None:
                raise ConfigError(f"format {self.format!r} applies to files, not to dataset={self.dataset!r}")
            return "dataset"
        if self.src_file is not None:
            if fmt not in (None, "lines"):
                raise ConfigError(f"two files (src_file + tgt_file) are read as 'lines', not format {self.format!r}")
            return "lines"
        if fmt == "lines":
            raise ConfigError("format 'lines' needs src_file + tgt_file; one file is 'bar', 'tsv', 'jsonl' or 'csv'")
        return fmt or _EXTENSIONS.get(Path(self.file).suffix.lower(), "bar")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParallelSource:
        """Build from a config mapping; an unknown key raises :class:`ConfigError` naming it and the valid keys."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a parallel source must be a mapping of fields, got {type(d).__name__}: {d!r:.80}")
        valid = [f.name for f in fields(cls)]
        unknown = [key for key in d if key not in valid]
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in parallel source; valid keys: {valid}")
        return cls(**dict(d))

    def describe(self) -> str:
        """Short name for log lines and messages."""
        if self.src_file is not None:
            return f"{self.src_file} + {self.tgt_file}"
        if self.file is not None:
            return self.file
        config = f" {self.dataset_config}" if self.dataset_config else ""
        return f"dataset {self.dataset}{config} [{self.split}]"


# ---------------------------------------------------------------------------------------------- reading, filtering
def read_eval_sentences(paths: Iterable[str | Path]) -> set[str]:
    """The normalised (:func:`normalize_for_dedup`) non-empty lines of evaluation files, for ``dedup_texts``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: set[str] = set()
    for path in paths:
        found.update(normalize_for_dedup(line) for line in read_text_lines(path, what="evaluation file")[0])
    found.discard("")
    return found


def _tokenize(texts: list[str], pretokenized: bool, num_proc: int | None) -> list[list[str]]:
    if pretokenized:
        return [text.split() for text in texts]
    if num_proc is not None and num_proc > 1 and len(texts) >= _PARALLEL_TOKENIZE_MIN:
        ds = datasets.Dataset.from_dict({"text": texts}).map(
            lambda batch: {"words": word_tokenize_batch(batch["text"])},
            batched=True, num_proc=num_proc, remove_columns=["text"], desc="word-tokenizing",
        )
        return ds[:]["words"]  # a plain list: indexing ds["words"] (a lazy Column) row by row is very slow
    return word_tokenize_batch(texts)


def _tokenized_in_chunks(rows: Iterable[RawRow], pretokenized: bool, num_proc: int
                         ) -> Iterator[tuple[RawRow, list[str], list[str]]]:
    """:func:`~amber_align.data.readers.tokenized`, but word-tokenizing ``_TOKENIZE_CHUNK`` rows at a time in
    ``num_proc`` processes. A reading error is raised only after the rows before it (as the lazy path would), so
    it never surfaces when ``max_pairs`` stops the reading first."""
    it = iter(rows)
    while True:
        chunk: list[RawRow] = []
        error: Exception | None = None
        try:
            for row in it:
                chunk.append(row)
                if len(chunk) >= _TOKENIZE_CHUNK:
                    break
        except (DataFormatError, ConfigError) as err:
            error = err
        src_words = _tokenize([row.src for row in chunk], pretokenized, num_proc)
        tgt_words = _tokenize([row.tgt for row in chunk], pretokenized, num_proc)
        yield from zip(chunk, src_words, tgt_words)
        if error is not None:
            raise error
        if len(chunk) < _TOKENIZE_CHUNK:
            return


def _source_rows(item: Any, index: int) -> tuple[Iterable[RawRow], ParallelSource | None, str]:
    """The rows of one item of ``load_parallel``'s sources, the source (``None`` for a dataset), its name."""
    if isinstance(item, (datasets.Dataset, datasets.DatasetDict)):
        what = f"dataset #{index} ({len(item)} rows)" if isinstance(item, datasets.Dataset) else f"dataset #{index}"
        return from_dataset(item, "src", "tgt", None, None, what).rows(), None, what
    if not isinstance(item, (ParallelSource, Mapping)):
        raise ConfigError(f"source #{index} must be a ParallelSource, a mapping or a datasets.Dataset, "
                          f"got {type(item).__name__}")
    source = item if isinstance(item, ParallelSource) else ParallelSource.from_dict(item)
    if source.form() != "dataset":
        return iter_raw_rows(source), source, source.describe()
    raw = from_dataset(load_dataset_source(source), source.src_column, source.tgt_column, source.src_lang,
                       source.tgt_lang, f"dataset {source.dataset!r}")
    return raw.rows(), source, source.describe()


def _to_dataset(kept: list[KeptRow]) -> datasets.Dataset:
    """The kept rows as a dataset; columns go to Arrow whole (``from_dict`` on lists encodes row by row, slowly)."""
    columns = zip(*kept) if kept else ([] for _ in KeptRow._fields)
    schema = PARALLEL_FEATURES.arrow_schema
    arrays = {name: pa.array(values, type=schema.field(name).type) for name, values in zip(KeptRow._fields, columns)}
    return datasets.Dataset.from_dict(arrays, features=PARALLEL_FEATURES)


# ----------------------------------------------------------------------------------------------------------- loading
def load_parallel(
    sources: ParallelSource | Mapping | datasets.Dataset | Sequence[ParallelSource | Mapping | datasets.Dataset],
    *,
    max_words: int | None = 64,
    dedup_texts: Iterable[str] | None = None,
    pretokenized: bool = False,
    num_proc: int | None = None,
    keep_empty: bool = False,
) -> datasets.Dataset:
    """Read one or many language pairs into one dataset with the columns of :data:`PARALLEL_FEATURES`.

    ``sources``: a :class:`ParallelSource`, a mapping for :meth:`ParallelSource.from_dict`, a
    ``datasets.Dataset`` with ``src``/``tgt``/``src_lang``/``tgt_lang`` columns, or with a ``translation`` column of
    ``{lang: text}`` as the Hub's WMT/OPUS sets have (and optionally ``links``, ``has_links``), or a list of these
    (concatenated in order). ``max_words``: skip pairs with more words on
    either side (``None``: no limit). ``dedup_texts``: evaluation sentences (see :func:`read_eval_sentences`);
    pairs either side of which matches one after :func:`normalize_for_dedup` are dropped. ``pretokenized``: words
    are ``str.split()`` of the text instead of :func:`~amber_align.data.words.word_tokenize`. ``num_proc``:
    processes for word tokenization of large sources. ``keep_empty``: keep pairs with an empty side (with
    ``max_words=None``, every line is kept: for writing alignments line-parallel to the corpus).

    Raises:
        ConfigError: a bad source definition, a missing language that cannot be inferred, an unreadable path.
        DataFormatError: a malformed file or dataset (the message names the file and line).
    """
    if max_words is not None and (isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1):
        raise ConfigError(f"max_words must be a positive integer or None, got {max_words!r}")
    if isinstance(sources, (str, bytes, Path)):
        raise ConfigError(f"sources must be ParallelSource(s), mappings or datasets, not a path: {sources!r}; "
                          "use ParallelSource(file=...) or ParallelSource(src_file=..., tgt_file=...)")
    if isinstance(sources, (ParallelSource, Mapping, datasets.Dataset, datasets.DatasetDict)):
        sources = [sources]
    items = list(sources)
    if not items:
        raise ConfigError("no parallel sources given")
    dedup = {normalize_for_dedup(text) for text in dedup_texts} - {""} if dedup_texts is not None else set()
    parts: list[datasets.Dataset] = []
    for index, item in enumerate(items):
        rows, source, what = _source_rows(item, index)
        check = (RowCheck(what, max_words=max_words, dedup=dedup, keep_empty=keep_empty) if source is None
                 else RowCheck.of(source, max_words=max_words, dedup=dedup, keep_empty=keep_empty))
        words = (_tokenized_in_chunks(rows, pretokenized, num_proc) if num_proc is not None and num_proc > 1
                 else tokenized(rows, pretokenized))
        kept = list(checked_rows(words, check))
        logger.info(check.summary())
        parts.append(_to_dataset(kept))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
