"""The one reader of parallel corpora, shared by the map-style path (``load_parallel``) and the streaming path.

A source becomes a lazy iterator of :class:`RawRow` (line number, source and target text, languages, links a
dataset held) by :func:`iter_raw_rows`; :class:`RowCheck` then checks and filters each row in reading order (the
Pharaoh file read line by line beside it, links bounded by the word counts, empty sides, ``max_words``,
evaluation duplicates, ``max_pairs``), and :func:`checked_rows` ties the two together. ``load_parallel``
materialises that iterator into a ``datasets.Dataset``; ``streaming.iter_source_rows`` iterates it lazily. Both go
through the same functions, so their errors (naming file and line) and the rows they keep are the same by
construction. Why the reader is strict:

* files are read as bytes and decoded per line, so a bad byte is reported with its file and line; lines are split
  on ``\\n`` only (``str.splitlines`` would also split on U+2028, U+0085, ... and shift every later line);
* alignments are checked *before* filtering, bounded by each pair's word counts, because they are line-parallel
  to the raw corpus (one line per pair read);
* pairs with an empty side or over ``max_words`` words are skipped and counted, never truncated (truncation would
  silently cut linked words); pairs either side of which is an evaluation sentence are dropped and counted;
* reading stops once ``max_pairs`` pairs are kept: nothing after them is read, so nothing after them can fail.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from amber_align.data.alignments import parse_pharaoh_line
from amber_align.data.languages import is_known_language, normalize_language
from amber_align.data.words import word_tokenize
from amber_align.errors import ConfigError, DataFormatError
from amber_align.io_utils import check_not_utf16, check_text_line, iter_text_lines

if TYPE_CHECKING:
    from amber_align.data.parallel import ParallelSource

__all__ = ["RawRow", "KeptRow", "RowCheck", "iter_lines", "iter_raw_rows", "source_languages", "tokenized",
           "checked_rows", "checked_text", "normalize_for_dedup"]

_END = object()
_LINK = re.compile(r"-?[0-9]+[-p]-?[0-9]+")  # one Pharaoh link (as in alignments.py)


class RawRow(NamedTuple):
    """One pair as read: its 1-based line (the record's first line in a CSV), stripped texts, languages, and the
    links a dataset held (``None`` for files: their links come from a Pharaoh file, read by :class:`RowCheck`)."""

    line: int
    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    links: list[list[int]] | None = None
    has_links: bool = False


class KeptRow(NamedTuple):
    """One pair that passed every check, with the columns of ``parallel.PARALLEL_FEATURES`` in their order."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    pair: str
    src_words: list[str]
    tgt_words: list[str]
    links: list[list[int]]
    has_links: bool
    line: int


# ------------------------------------------------------------------------------------------------------------ lines
def iter_lines(path: str | Path, what: str = "file") -> Iterator[str]:
    """Lines of a UTF-8 file, read lazily (:func:`amber_align.io_utils.iter_text_lines`: split on ``\\n`` only, BOM
    and the CR of CRLF stripped, the same lines as ``read_text_lines``; a bad byte named with line and column)."""
    return iter_text_lines(path, what)


def _count_lines(path: str | Path, what: str) -> int:
    """How many lines :func:`iter_lines` gives for ``path``, counted in raw bytes (fast, nothing decoded)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err.strerror or err}") from None
    count, last = 0, b"\n"
    with handle:
        for number, chunk in enumerate(iter(lambda: handle.read(1 << 20), b"")):
            if number == 0:
                chunk = chunk.removeprefix(codecs.BOM_UTF8)
                check_not_utf16(chunk, path)
            if last == b"\r" and not chunk.startswith(b"\n"):
                _bare_cr(path, count + 1, 1)
            bare = _BARE_CR.search(chunk)
            if bare is not None:
                at = bare.start()
                _bare_cr(path, count + chunk.count(b"\n", 0, at) + 1, at - chunk.rfind(b"\n", 0, at))
            if chunk:
                count, last = count + chunk.count(b"\n"), chunk[-1:]
    if last == b"\r":
        _bare_cr(path, count + 1, 1)
    return count + (last != b"\n")


_BARE_CR = re.compile(rb"\r(?=[^\n])")  # a CR followed by anything but LF (a CR at a chunk's end is checked next)


def _bare_cr(path: str | Path, line: int, column: int) -> None:
    """CR-only line endings would make the file one line, reported as a line-count mismatch: say what it is (the
    message of :func:`amber_align.io_utils.check_text_line`; ``column`` counts bytes)."""
    check_text_line(" " * (column - 1) + "\r", path, line)


# -------------------------------------------------------------------------------------------------------- languages
def _infer_language(path: str, field_name: str) -> str:
    """Language named by a file name: the last dotted part that is a language (``a.spa``, ``spa_Latn.devtest``)."""
    for part in reversed(Path(path).name.split(".")):
        if is_known_language(part):
            return normalize_language(part)
    raise ConfigError(f"{field_name} is not set and cannot be inferred from the file name {Path(path).name!r}")


def source_languages(source: ParallelSource) -> tuple[str | None, str | None]:
    """``(src_lang, tgt_lang)`` of a source: as given, else inferred from two files' names; a single file must name
    both. A dataset source may leave them ``None`` (its rows then carry their own languages)."""
    fmt = source.form()
    if fmt == "lines":
        return (source.src_lang or _infer_language(source.src_file, "src_lang"),
                source.tgt_lang or _infer_language(source.tgt_file, "tgt_lang"))
    if fmt != "dataset":
        for name in ("src_lang", "tgt_lang"):
            if getattr(source, name) is None:
                raise ConfigError(f"{name} is not set for {source.file} (only two files' names are used to infer it)")
    return source.src_lang, source.tgt_lang


# ------------------------------------------------------------------------------------------------------ file readers
def checked_text(value: Any, path: str, line: int, column: str) -> str:
    """``value`` if it is text that encodes as UTF-8; else a ``DataFormatError`` naming the place and column."""
    if not isinstance(value, str):
        raise DataFormatError(f"column {column!r} must hold text, found {type(value).__name__} {value!r:.60}",
                              path=path, line=line)
    try:
        value.encode("utf-8")  # a JSON "\ud800" escape gives a lone surrogate, which no tokenizer accepts
    except UnicodeEncodeError as err:
        raise DataFormatError(f"column {column!r}: lone surrogate at character {err.start}", path=path,
                              line=line) from None
    return value


def _two_files(src_file: str, tgt_file: str) -> Iterator[tuple[int, str, str]]:
    """Two line-aligned files. Their line counts are compared first (a raw count, cheap beside word tokenization),
    so a mismatch is reported before any error it causes (links that no longer fit their pairs); the error names
    both files, both counts, and the first line of the longer file without a partner."""
    counts = _count_lines(src_file, "src_file"), _count_lines(tgt_file, "tgt_file")
    if counts[0] != counts[1]:
        raise DataFormatError(f"line counts differ: {src_file} has {counts[0]} lines, {tgt_file} has {counts[1]}",
                              path=src_file if counts[0] > counts[1] else tgt_file, line=min(counts) + 1)
    both = itertools.zip_longest(iter_lines(src_file, "src_file"), iter_lines(tgt_file, "tgt_file"), fillvalue=_END)
    for number, (src, tgt) in enumerate(both, 1):
        if src is _END or tgt is _END:  # a file changed while it was read
            raise DataFormatError(f"line counts differ: {src_file if tgt is _END else tgt_file} goes on past line "
                                  f"{number - 1} (the files changed while they were read)",
                                  path=src_file if tgt is _END else tgt_file, line=number)
        yield number, src, tgt


def _bar(path: str) -> Iterator[tuple[int, str, str]]:
    """``src ||| tgt`` lines."""
    for number, line in enumerate(iter_lines(path, "file"), 1):
        count = line.count("|||")
        if count != 1:
            what = "no ' ||| ' separator" if count == 0 else f"{count} ' ||| ' separators"
            raise DataFormatError(f"expected 'src ||| tgt', found {what}: {line!r:.80}", path=path, line=number)
        left, right = line.split("|||")
        yield number, left, right


def _jsonl(path: str, src_column: str, tgt_column: str) -> Iterator[tuple[int, str, str]]:
    """JSON Lines: one object per line with text columns ``src_column`` and ``tgt_column``."""
    for number, line in enumerate(iter_lines(path, "file"), 1):
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
        yield (number, checked_text(obj[src_column], path, number, src_column),
               checked_text(obj[tgt_column], path, number, tgt_column))


def _csv_records(path: str) -> Iterator[tuple[int, list[str]]]:
    """CSV records (RFC 4180 quoting, a record may span lines) with the line each starts on."""
    reader = csv.reader(line + "\n" for line in iter_lines(path, "file"))
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataFormatError(f"malformed CSV: {err}", path=path, line=reader.line_num or start) from None


def _table(path: str, fmt: str, src_column: str, tgt_column: str) -> Iterator[tuple[int, str, str]]:
    """TSV (split on tabs, no quoting) or CSV; a header row naming the columns, or integer column positions."""
    rows = ((n, line.split("\t")) for n, line in enumerate(iter_lines(path, "file"), 1)) if fmt == "tsv" \
        else _csv_records(path)
    expected, columns = 0, (0, 0)
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
        yield number, row[columns[0]], row[columns[1]]


def iter_raw_rows(source: ParallelSource) -> Iterator[RawRow]:
    """The pairs of a file source (two files, ``bar``, ``jsonl``, ``tsv``, ``csv``), lazily, texts stripped.

    The languages are checked when this is called; a malformed line raises ``DataFormatError`` (file and line) when
    the iterator reaches it. A ``dataset`` source is read by ``parallel_datasets`` (eagerly), not here.
    """
    fmt = source.form()
    if fmt == "dataset":
        raise ConfigError(f"{source.describe()}: a dataset source is read whole by load_parallel, not line by line")
    src_lang, tgt_lang = source_languages(source)
    if fmt == "lines":
        pairs = _two_files(source.src_file, source.tgt_file)
    elif fmt == "bar":
        pairs = _bar(source.file)
    elif fmt == "jsonl":
        pairs = _jsonl(source.file, source.src_column, source.tgt_column)
    else:
        pairs = _table(source.file, fmt, source.src_column, source.tgt_column)
    return (RawRow(number, src.strip(), tgt.strip(), src_lang, tgt_lang) for number, src, tgt in pairs)


# ------------------------------------------------------------------------------------------------- checks, filters
def normalize_for_dedup(text: str) -> str:
    """Key under which two sentences count as the same: casefolded, whitespace collapsed, stripped.

    Python's whitespace includes U+00A0 and U+202F (no-break spaces), so ``"boire ?"`` with a narrow no-break
    space matches ``"boire ?"`` with an ordinary one.
    """
    return " ".join(text.casefold().split())


def _alignment_lines(path: str) -> Iterator[str]:
    """Lines of a Pharaoh file, lazily; simalign's leading ``<id>\\t`` column is dropped when the first non-blank
    line has one (as ``alignments.read_pharaoh`` does), and then every non-blank line must have it."""
    with_id: bool | None = None
    for number, line in enumerate(iter_lines(path, "alignments"), 1):
        if not line.strip():
            yield ""
            continue
        if with_id is None:
            head = line.split("\t", 1)[0].strip() if "\t" in line else ""
            with_id = bool(head) and " " not in head and not _LINK.fullmatch(head)
        if with_id:
            if "\t" not in line:
                raise DataFormatError(f"expected an '<id><TAB>' column before the links, as on the file's first "
                                      f"line; got {line.strip()!r}", path=path, line=number)
            line = line.split("\t", 1)[1]
        yield line


class RowCheck:
    """The checks and filters of one source, applied to its rows in reading order (call it on each row).

    ``what`` names the source in messages and the summary. ``alignments``: a Pharaoh file line-parallel to the
    rows (one line per row read), read lazily beside them. ``max_pairs``: :attr:`full` once that many are kept.
    """

    def __init__(self, what: str, *, max_words: int | None, dedup: set[str] | frozenset = frozenset(),
                 keep_empty: bool = False, max_pairs: int | None = None, alignments: str | None = None,
                 one_based: bool = False):
        if alignments is not None and not Path(alignments).is_file():
            raise ConfigError(f"alignments {alignments!r} cannot be read: no such file")
        self.what, self.max_words, self.dedup, self.keep_empty = what, max_words, dedup, keep_empty
        self.max_pairs, self.alignments, self.one_based = max_pairs, alignments, one_based
        self._links = None if alignments is None else _alignment_lines(alignments)
        self.read = self.kept = self.empty = self.over = self.duplicates = 0
        self.exhausted = False

    @classmethod
    def of(cls, source: ParallelSource, *, max_words: int | None, dedup: set[str] | frozenset = frozenset(),
           keep_empty: bool = False) -> RowCheck:
        """The check of ``source``: its name, ``max_pairs`` and alignment file."""
        return cls(source.describe(), max_words=max_words, dedup=dedup, keep_empty=keep_empty,
                   max_pairs=source.max_pairs, alignments=source.alignments, one_based=source.alignments_one_based)

    @property
    def full(self) -> bool:
        """Whether ``max_pairs`` pairs are kept (the reader then stops)."""
        return self.max_pairs is not None and self.kept >= self.max_pairs

    def __call__(self, row: RawRow, src_words: list[str], tgt_words: list[str]) -> KeptRow | None:
        """Check ``row`` (with its words) and its links; the row to keep, or ``None`` (counted) when filtered out."""
        self.read += 1
        links, has_links = row.links, row.has_links
        if self._links is not None:
            text = next(self._links, None)
            if text is None:
                raise DataFormatError(f"alignment file ends at line {self.read - 1} but the corpus ({self.what}) "
                                      "goes on; it must be line-parallel to the corpus", path=self.alignments,
                                      line=self.read)
            links = [[i, j] for i, j in parse_pharaoh_line(
                text, one_based=self.one_based, src_len=len(src_words), tgt_len=len(tgt_words),
                path=self.alignments, line_no=self.read)]
            has_links = True
        elif links:
            for link in links:
                if (len(link) != 2 or not all(type(x) is int for x in link)
                        or not (0 <= link[0] < len(src_words) and 0 <= link[1] < len(tgt_words))):
                    raise DataFormatError(f"links column: link {list(link)} is outside the pair ({len(src_words)} "
                                          f"source words, {len(tgt_words)} target words)", path=self.what,
                                          line=row.line)
        if not self.keep_empty and (not src_words or not tgt_words):
            self.empty += 1
        elif self.max_words is not None and max(len(src_words), len(tgt_words)) > self.max_words:
            self.over += 1
        elif self.dedup and (normalize_for_dedup(row.src) in self.dedup or normalize_for_dedup(row.tgt) in self.dedup):
            self.duplicates += 1
        else:
            self.kept += 1
            return KeptRow(row.src, row.tgt, row.src_lang, row.tgt_lang, f"{row.src_lang}-{row.tgt_lang}", src_words,
                           tgt_words, links or [], bool(has_links), row.line)
        return None

    def finish(self) -> None:
        """The rows ran out: an empty corpus, or an alignment file with lines left over, is an error."""
        self.exhausted = True
        if self.read == 0:
            raise DataFormatError("no pairs: the corpus is empty", path=self.what)
        if self._links is not None and next(self._links, None) is not None:
            raise DataFormatError(f"alignment file has more lines than the corpus ({self.what}, {self.read} "
                                  "lines); it must be line-parallel to the corpus", path=self.alignments,
                                  line=self.read + 1)

    def summary(self) -> str:
        """One line of counts for the log."""
        limit = f"over {self.max_words} words" if self.max_words is not None else "over the word limit (none set)"
        rest = f"; stopped reading at max_pairs={self.max_pairs}" if not self.exhausted else ""
        return (f"{self.what}: kept {self.kept} of {self.read} pairs (skipped {self.empty} empty, {self.over} "
                f"{limit}, {self.duplicates} duplicates of evaluation sentences{rest})")


def tokenized(rows: Iterable[RawRow], pretokenized: bool) -> Iterator[tuple[RawRow, list[str], list[str]]]:
    """``(row, src_words, tgt_words)``, one row at a time: ``str.split`` when ``pretokenized``, else
    :func:`~amber_align.data.words.word_tokenize`."""
    split = str.split if pretokenized else word_tokenize
    for row in rows:
        yield row, split(row.src), split(row.tgt)


def checked_rows(rows: Iterable[tuple[RawRow, list[str], list[str]]], check: RowCheck) -> Iterator[KeptRow]:
    """The rows ``check`` keeps, lazily; no row is read once it is :attr:`~RowCheck.full`, and
    :meth:`~RowCheck.finish` runs when the rows run out."""
    it = iter(rows)
    while not check.full:
        item = next(it, _END)
        if item is _END:
            check.finish()
            return
        kept = check(*item)
        if kept is not None:
            yield kept
