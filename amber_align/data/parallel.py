"""Parallel corpora -> one ``datasets.Dataset`` of word-tokenized sentence pairs with their word links.

A corpus comes as two line-aligned files, ``src ||| tgt`` lines, TSV/CSV/JSONL with named columns, or a
``datasets`` dataset (local, or a Hub id; read by :mod:`amber_align.data.parallel_datasets`); word alignments come
as a Pharaoh file line-parallel to the raw corpus. :func:`load_parallel` reads any number of language pairs into
rows ``src, tgt, src_lang, tgt_lang, pair, src_words, tgt_words, links, has_links, line`` with language codes normalised
(``languages.normalize_language``) and words from ``words.word_tokenize``. Why it is strict:

* files are read as bytes and decoded per line, so a bad byte is reported with its file and line; lines are split
  on ``\\n`` only (``str.splitlines`` would also split on U+2028, U+0085, ... and shift every later line);
* alignments are read *before* filtering, bounded by each pair's word counts, because they are line-parallel to
  the raw corpus;
* pairs with an empty side or over ``max_words`` words are skipped and counted, never truncated (truncation would
  silently cut linked words); pairs either side of which is an evaluation sentence (README "Leakage traps") are
  dropped and counted; one log line per source gives the counts.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import datasets

from amber_align.data.languages import is_known_language, normalize_language
from amber_align.data.parallel_datasets import RawPairs, checked_text, from_dataset, load_dataset_source
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
    (0-based unless ``alignments_one_based``). ``max_pairs``: keep the first N pairs left after filtering.
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
            try:
                setattr(self, name, None if getattr(self, name) is None else normalize_language(getattr(self, name)))
            except ConfigError as err:
                raise ConfigError(f"{name}: {err}") from None
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


# ----------------------------------------------------------------------------------------------------------- reading
def _read_lines(path: str | Path, what: str = "file") -> list[str]:
    """Lines of a UTF-8 text file (see :func:`amber_align.io_utils.read_text_lines`)."""
    return read_text_lines(path, what=what)[0]


def _infer_language(path: str, field_name: str) -> str:
    """Language named by a file name: the last dotted part that is a language (``a.spa``, ``spa_Latn.devtest``)."""
    for part in reversed(Path(path).name.split(".")):
        if is_known_language(part):
            return normalize_language(part)
    raise ConfigError(f"{field_name} is not set and cannot be inferred from the file name {Path(path).name!r}")


def _read_bar(path: str) -> tuple[list[str], list[str], list[int]]:
    src, tgt = [], []
    for number, line in enumerate(_read_lines(path, "file"), 1):
        count = line.count("|||")
        if count != 1:
            what = "no ' ||| ' separator" if count == 0 else f"{count} ' ||| ' separators"
            raise DataFormatError(f"expected 'src ||| tgt', found {what}: {line!r:.80}", path=path, line=number)
        left, right = line.split("|||")
        src.append(left)
        tgt.append(right)
    return src, tgt, list(range(1, len(src) + 1))


def _read_table(path: str, fmt: str, src_column: str, tgt_column: str) -> tuple[list[str], list[str], list[int]]:
    """TSV (split on tabs, no quoting) or CSV (RFC 4180 quoting, a record may span lines); header or positions."""
    lines = _read_lines(path, "file")
    rows = ((n, line.split("\t")) for n, line in enumerate(lines, 1)) if fmt == "tsv" else _csv_records(lines, path)
    src, tgt, numbers, expected, columns = [], [], [], 0, (0, 0)
    for number, row in rows:
        if not expected:  # the first row: a header, or (columns given as positions) already data
            expected = len(row)
            if not (src_column.isdigit() and tgt_column.isdigit()):
                header = [name.strip() for name in row]
                missing = [c for c in (src_column, tgt_column) if c not in header]
                if missing:
                    raise DataFormatError(f"column(s) {missing} not in the header row; columns found: {header} (a "
                                          "file without a header row needs positions: src_column='0', "
                                          "tgt_column='1')", path=path, line=number)
                columns = (header.index(src_column), header.index(tgt_column))
                continue
            columns = (int(src_column), int(tgt_column))
            if max(columns) >= expected:
                raise DataFormatError(f"column position {max(columns)} requested, but the first line has "
                                      f"{expected} field(s)", path=path, line=number)
        if len(row) != expected:
            what = "tab-separated fields" if fmt == "tsv" else "comma-separated fields"
            hint = " (a tab inside a field?)" if fmt == "tsv" else ""
            raise DataFormatError(f"expected {expected} {what}, found {len(row)}{hint}", path=path, line=number)
        src.append(row[columns[0]])
        tgt.append(row[columns[1]])
        numbers.append(number)
    return src, tgt, numbers


def _csv_records(lines: list[str], path: str) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(line + "\n" for line in lines)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataFormatError(f"malformed CSV: {err}", path=path, line=reader.line_num or start) from None


def _read_jsonl(path: str, src_column: str, tgt_column: str) -> tuple[list[str], list[str], list[int]]:
    lines = _read_lines(path, "file")
    src, tgt, numbers = [], [], []
    for number, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as err:
            what = "blank line" if not line.strip() else getattr(err, "msg", "nested too deeply")
            hint = " (a JSON array? write one object per line)" if number == 1 and line.strip() == "[" else ""
            raise DataFormatError(f"malformed JSON ({what}); JSON Lines needs one object per line{hint}",
                                  path=path, line=number) from None
        if not isinstance(obj, dict):
            raise DataFormatError(f"expected a JSON object, found {type(obj).__name__}", path=path, line=number)
        for column in (src_column, tgt_column):
            if column not in obj:
                raise DataFormatError(f"no column {column!r}; columns found: {list(obj)}", path=path, line=number)
        src.append(checked_text(obj[src_column], path, number, src_column))
        tgt.append(checked_text(obj[tgt_column], path, number, tgt_column))
        numbers.append(number)
    return src, tgt, numbers


def _read_source(source: ParallelSource) -> RawPairs:
    fmt = source.form()
    if fmt == "dataset":
        return from_dataset(load_dataset_source(source), source.src_column, source.tgt_column, source.src_lang,
                             source.tgt_lang, f"dataset {source.dataset!r}")
    if fmt == "lines":
        src_lang = source.src_lang or _infer_language(source.src_file, "src_lang")
        tgt_lang = source.tgt_lang or _infer_language(source.tgt_file, "tgt_lang")
        src, tgt = _read_lines(source.src_file, "src_file"), _read_lines(source.tgt_file, "tgt_file")
        if len(src) != len(tgt):
            raise DataFormatError(f"line counts differ: {source.src_file} has {len(src)} lines, "
                                  f"{source.tgt_file} has {len(tgt)}")
        numbers = list(range(1, len(src) + 1))
    else:
        for name in ("src_lang", "tgt_lang"):
            if getattr(source, name) is None:
                raise ConfigError(f"{name} is not set for {source.file} (only two files' names are used to infer it)")
        src_lang, tgt_lang = source.src_lang, source.tgt_lang
        if fmt == "bar":
            src, tgt, numbers = _read_bar(source.file)
        elif fmt == "jsonl":
            src, tgt, numbers = _read_jsonl(source.file, source.src_column, source.tgt_column)
        else:
            src, tgt, numbers = _read_table(source.file, fmt, source.src_column, source.tgt_column)
    return RawPairs(src, tgt, numbers, [src_lang] * len(src), [tgt_lang] * len(src))


# -------------------------------------------------------------------------------------------------- dedup, filtering
def normalize_for_dedup(text: str) -> str:
    """Key under which two sentences count as the same: casefolded, whitespace collapsed, stripped.

    Python's whitespace includes U+00A0 and U+202F (no-break spaces), so ``"boire ?"`` with a narrow no-break
    space matches ``"boire ?"`` with an ordinary one.
    """
    return " ".join(text.casefold().split())


def read_eval_sentences(paths: Iterable[str | Path]) -> set[str]:
    """The normalised (:func:`normalize_for_dedup`) non-empty lines of evaluation files, for ``dedup_texts``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: set[str] = set()
    for path in paths:
        found.update(normalize_for_dedup(line) for line in _read_lines(path, "evaluation file"))
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
        return ds["words"]
    return word_tokenize_batch(texts)


def _filter(raw: RawPairs, source: ParallelSource | None, what: str, max_words: int | None, dedup: set[str],
            pretokenized: bool, num_proc: int | None, keep_empty: bool) -> dict[str, list]:
    if not raw.src:
        raise DataFormatError("no pairs: the corpus is empty", path=what)
    src = [text.strip() for text in raw.src]
    tgt = [text.strip() for text in raw.tgt]
    src_words = _tokenize(src, pretokenized, num_proc)
    tgt_words = _tokenize(tgt, pretokenized, num_proc)
    links, has_links = raw.links, raw.has_links
    if source is not None and source.alignments is not None:
        from amber_align.data.alignments import read_pharaoh  # lazy: keeps this module importable on its own

        if not Path(source.alignments).is_file():
            raise ConfigError(f"alignments {source.alignments!r} cannot be read: no such file")
        pharaoh = read_pharaoh(
            source.alignments, one_based=source.alignments_one_based,
            src_lengths=[len(w) for w in src_words], tgt_lengths=[len(w) for w in tgt_words],
            expected_lines=len(src),
        )
        links = [[[int(i), int(j)] for i, j in row] for row in pharaoh]
        has_links = [True] * len(src)
    elif links is not None:
        _check_links(links, src_words, tgt_words, raw.line, what)
    max_pairs = source.max_pairs if source is not None else None
    keep: list[int] = []
    empty = over = dup = beyond = 0
    for k in range(len(src)):
        if not keep_empty and (not src_words[k] or not tgt_words[k]):
            empty += 1
        elif max_words is not None and max(len(src_words[k]), len(tgt_words[k])) > max_words:
            over += 1
        elif dedup and (normalize_for_dedup(src[k]) in dedup or normalize_for_dedup(tgt[k]) in dedup):
            dup += 1
        elif max_pairs is not None and len(keep) >= max_pairs:
            beyond += 1
        else:
            keep.append(k)
    limit = f"over {max_words} words" if max_words is not None else "over the word limit (none set)"
    rest = f", {beyond} beyond max_pairs={max_pairs}" if beyond else ""
    logger.info(f"{what}: kept {len(keep)} of {len(src)} pairs (skipped {empty} empty, {over} {limit}, "
                f"{dup} duplicates of evaluation sentences{rest})")
    return {
        "src": [src[k] for k in keep], "tgt": [tgt[k] for k in keep],
        "src_lang": [raw.src_lang[k] for k in keep], "tgt_lang": [raw.tgt_lang[k] for k in keep],
        "pair": [f"{raw.src_lang[k]}-{raw.tgt_lang[k]}" for k in keep],
        "src_words": [src_words[k] for k in keep], "tgt_words": [tgt_words[k] for k in keep],
        "links": [links[k] if links is not None else [] for k in keep],
        "has_links": [bool(has_links[k]) if has_links is not None else False for k in keep],
        "line": [raw.line[k] for k in keep],
    }


def _check_links(links: list, src_words: list, tgt_words: list, lines: list[int], what: str) -> None:
    for k, row in enumerate(links):
        for link in row:
            if (len(link) != 2 or not all(type(x) is int for x in link)
                    or not (0 <= link[0] < len(src_words[k]) and 0 <= link[1] < len(tgt_words[k]))):
                raise DataFormatError(f"links column: link {list(link)} is outside the pair ({len(src_words[k])} "
                                      f"source words, {len(tgt_words[k])} target words)", path=what, line=lines[k])


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
        if isinstance(item, (datasets.Dataset, datasets.DatasetDict)):
            what = f"dataset #{index} ({len(item)} rows)" if isinstance(item, datasets.Dataset) else f"dataset #{index}"
            raw, source = from_dataset(item, "src", "tgt", None, None, what), None
        elif isinstance(item, (ParallelSource, Mapping)):
            source = item if isinstance(item, ParallelSource) else ParallelSource.from_dict(item)
            raw, what = _read_source(source), source.describe()
        else:
            raise ConfigError(f"source #{index} must be a ParallelSource, a mapping or a datasets.Dataset, "
                              f"got {type(item).__name__}")
        columns = _filter(raw, source, what, max_words, dedup, pretokenized, num_proc, keep_empty)
        parts.append(datasets.Dataset.from_dict(columns, features=PARALLEL_FEATURES))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
