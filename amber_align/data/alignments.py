"""Word alignments: Pharaoh files, symmetrisation and link filters.

Word alignments travel as Pharaoh lines (``"0-1 2-2"``: source word 0 with target word 1, ...), one line per
sentence pair, line-parallel to the corpus. eflomal and fast_align write them 0-based; the gold sets used for AER
are 1-based and mark *possible* links with ``p`` (``"3p4"``); simalign's gold files prefix each line with an id
and a tab. Everything inside the package is 0-based ``(src, tgt)`` tuples.

A bad alignment file must fail at load time with a message that names the file, the line and the link, never as
an ``IndexError`` inside the training loop: every link is checked against the sentence lengths when they are known.

Symmetrisation follows Koehn's grow-diag(-final(-and)) pseudocode (Koehn et al. 2003; the Moses manual), with
FINAL applied to the forward links and then to the reverse links.
"""

from __future__ import annotations

import heapq
import operator
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

from amber_align.io_utils import atomic_write_text
from amber_align.errors import AlignmentIndexError, DataFormatError

__all__ = [
    "Link",
    "SYMMETRIZATION_METHODS",
    "parse_pharaoh_line",
    "read_pharaoh",
    "read_gold_alignments",
    "write_pharaoh",
    "symmetrize",
    "one_to_one",
    "drop_identical",
]

Link = tuple[int, int]

SYMMETRIZATION_METHODS: tuple[str, ...] = (
    "intersection",
    "union",
    "grow-diag",
    "grow-diag-final",
    "grow-diag-final-and",
)

_POSSIBLE_MODES = ("error", "sure", "drop")
# ASCII digits only: int() would also accept e.g. Arabic-Indic digits, which no aligner writes.
_LINK_RE = re.compile(r"(-?[0-9]+)([-p])(-?[0-9]+)")
_MAX_DIGITS = 12
# Koehn's neighbourhood, in his order (the order matters: each added point changes what counts as aligned).
_DIAG_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _raise(
    cls: type[DataFormatError], message: str, path: str | os.PathLike | None, line_no: int | None
) -> NoReturn:
    if path is None and line_no is not None:
        message = f"line {line_no}: {message}"
    raise cls(message, path=path, line=line_no)


def _check_index(
    index: int, length: int | None, side: str, token: str, one_based: bool, path, line_no: int | None
) -> None:
    """Raise AlignmentIndexError when a 0-based ``index`` is negative or falls outside a sentence of ``length``."""
    base = 1 if one_based else 0
    shown = index + base
    if index < 0:
        if one_based and shown == 0:
            why = f"has {side} index 0, but this file is read as 1-based (smallest valid index 1)"
        else:
            why = f"has negative {side} index {shown}"
        _raise(AlignmentIndexError, f"link '{token}' {why}", path, line_no)
    if length is not None and index >= length:
        words = f"{length} word" + ("" if length == 1 else "s")
        valid = f"valid {base}..{length - 1 + base}, {base}-based" if length > 0 else "no valid index"
        _raise(
            AlignmentIndexError,
            f"link '{token}' has {side} index {shown} but the {side} sentence has {words} ({valid})",
            path,
            line_no,
        )


def _parse_links(
    text: str,
    *,
    one_based: bool,
    src_len: int | None,
    tgt_len: int | None,
    path,
    line_no: int | None,
) -> list[tuple[int, int, bool]]:
    """Parse whitespace-separated link tokens into 0-based ``(i, j, is_possible)`` triples, checking each one."""
    out: list[tuple[int, int, bool]] = []
    for token in text.split():
        m = _LINK_RE.fullmatch(token)
        if m is None:
            _raise(
                DataFormatError,
                f"malformed alignment link {token[:60]!r}: expected 'i-j' (or 'ipj' for a possible link) "
                "with non-negative integer word indices",
                path,
                line_no,
            )
        if max(len(m.group(1)), len(m.group(3))) > _MAX_DIGITS:
            # also keeps int() below clear of Python's limit on digits in int(str)
            _raise(AlignmentIndexError, f"link {token[:40]!r} has an index too large for any sentence", path, line_no)
        offset = 1 if one_based else 0
        i, j = int(m.group(1)) - offset, int(m.group(3)) - offset
        _check_index(i, src_len, "source", token, one_based, path, line_no)
        _check_index(j, tgt_len, "target", token, one_based, path, line_no)
        out.append((i, j, m.group(2) == "p"))
    return out


def parse_pharaoh_line(
    line: str,
    *,
    one_based: bool = False,
    possible: str = "error",
    src_len: int | None = None,
    tgt_len: int | None = None,
    path: str | None = None,
    line_no: int | None = None,
) -> list[Link]:
    """Parse one Pharaoh line (``"0-1 2-2"``) into 0-based ``(src, tgt)`` links, in file order.

    ``possible`` says what to do with possible links (``"3p4"``): ``"error"`` raises, ``"sure"`` keeps them as
    ordinary links, ``"drop"`` ignores them. ``src_len``/``tgt_len`` (word counts), when given, bound the indices.
    ``path``/``line_no`` only go into error messages. An empty or blank line is a pair without links.
    """
    if possible not in _POSSIBLE_MODES:
        raise ValueError(f"possible must be one of {', '.join(_POSSIBLE_MODES)}; got {possible!r}")
    links: list[Link] = []
    for i, j, is_possible in _parse_links(
        line, one_based=one_based, src_len=src_len, tgt_len=tgt_len, path=path, line_no=line_no
    ):
        if is_possible:
            if possible == "drop":
                continue
            if possible == "error":
                token = f"{i + one_based}p{j + one_based}"
                _raise(
                    DataFormatError,
                    f"possible link {token!r} found; this reader expects sure links only "
                    "(pass possible='sure' to keep such links or possible='drop' to ignore them, "
                    "or read gold files with read_gold_alignments)",
                    path,
                    line_no,
                )
        links.append((i, j))
    return links


def _read_lines(path: str | os.PathLike) -> list[str]:
    """Read a text file as UTF-8 lines split on ``\\n`` only; invalid UTF-8 names the line and byte."""
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()  # the newline that ends the last line
    lines = []
    for n, chunk in enumerate(raw, start=1):
        try:
            lines.append(chunk.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DataFormatError(
                f"invalid UTF-8 byte {chunk[err.start:err.start + 1]!r} at byte {err.start} of the line "
                "(alignment files must be UTF-8 text)",
                path=path,
                line=n,
            ) from None
    return lines


def _strip_id_column(lines: list[str], path) -> list[str]:
    """Drop simalign's leading ``<id>\\t`` column when the file has one (decided on its first non-blank line)."""
    first = next((line for line in lines if line.strip()), None)
    if first is None or "\t" not in first:
        return lines
    head = first.split("\t", 1)[0].strip()
    if not head or " " in head or _LINK_RE.fullmatch(head):
        return lines  # a tab between links, not an id column
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            out.append("")
            continue
        if "\t" not in line:
            raise DataFormatError(
                f"expected an '<id><TAB>' column before the links, as on the file's first line; got {line.strip()!r}",
                path=path,
                line=n,
            )
        out.append(line.split("\t", 1)[1])
    return out


def _check_count(what: str, expected: int, found: int, path) -> None:
    if expected != found:
        raise DataFormatError(
            f"alignment file has {found} lines but {what} has {expected}; the file must be line-parallel "
            "to the corpus (one line per sentence pair, empty lines for pairs without links)",
            path=path,
        )


def _read_parsed(
    path,
    *,
    one_based: bool,
    src_lengths: Sequence[int] | None,
    tgt_lengths: Sequence[int] | None,
    expected_lines: int | None,
) -> list[list[tuple[int, int, bool]]]:
    lines = _strip_id_column(_read_lines(path), path)
    if expected_lines is not None:
        _check_count("the corpus (expected_lines)", expected_lines, len(lines), path)
    if src_lengths is not None:
        _check_count("src_lengths", len(src_lengths), len(lines), path)
    if tgt_lengths is not None:
        _check_count("tgt_lengths", len(tgt_lengths), len(lines), path)
    return [
        _parse_links(
            line,
            one_based=one_based,
            src_len=None if src_lengths is None else src_lengths[k],
            tgt_len=None if tgt_lengths is None else tgt_lengths[k],
            path=str(path),
            line_no=k + 1,
        )
        for k, line in enumerate(lines)
    ]


def read_pharaoh(
    path: str | os.PathLike,
    *,
    one_based: bool = False,
    possible: str = "error",
    src_lengths: Sequence[int] | None = None,
    tgt_lengths: Sequence[int] | None = None,
    expected_lines: int | None = None,
) -> list[list[Link]]:
    """Read a Pharaoh file: one list of 0-based ``(src, tgt)`` links per line, line-parallel to the corpus.

    ``src_lengths``/``tgt_lengths`` (word counts per pair) bound the indices and, like ``expected_lines``, must
    match the number of lines. An optional leading ``<id>\\t`` column (simalign's gold format) is detected per file
    and dropped. ``possible`` as in :func:`parse_pharaoh_line`.
    """
    if possible not in _POSSIBLE_MODES:
        raise ValueError(f"possible must be one of {', '.join(_POSSIBLE_MODES)}; got {possible!r}")
    parsed = _read_parsed(
        path, one_based=one_based, src_lengths=src_lengths, tgt_lengths=tgt_lengths, expected_lines=expected_lines
    )
    out: list[list[Link]] = []
    for k, triples in enumerate(parsed):
        if possible == "error":
            bad = next((t for t in triples if t[2]), None)
            if bad is not None:
                token = f"{bad[0] + one_based}p{bad[1] + one_based}"
                raise DataFormatError(
                    f"possible link {token!r} found; this reader expects sure links only (pass possible='sure' "
                    "or possible='drop', or read gold files with read_gold_alignments)",
                    path=path,
                    line=k + 1,
                )
        out.append([(i, j) for i, j, p in triples if not (p and possible == "drop")])
    return out


def read_gold_alignments(
    path: str | os.PathLike,
    *,
    one_based: bool = True,
    src_lengths: Sequence[int] | None = None,
    tgt_lengths: Sequence[int] | None = None,
    expected_lines: int | None = None,
) -> tuple[list[set[Link]], list[set[Link]]]:
    """Read a gold alignment file into ``(sure, possible)`` link sets per line, with possible ⊇ sure.

    ``i-j`` tokens are sure links, ``ipj`` tokens possible ones; a sure link is also possible (the AER convention).
    Gold files are 1-based by default (the awesome-align sets); the result is 0-based.
    """
    parsed = _read_parsed(
        path, one_based=one_based, src_lengths=src_lengths, tgt_lengths=tgt_lengths, expected_lines=expected_lines
    )
    sure = [{(i, j) for i, j, p in triples if not p} for triples in parsed]
    possible = [{(i, j) for i, j, _ in triples} for triples in parsed]
    return sure, possible


def _as_links(links: Iterable[Iterable[int]], what: str = "link") -> set[Link]:
    """Normalise an iterable of 2-sequences of non-negative ints to a set of ``(int, int)`` tuples."""
    out: set[Link] = set()
    for link in links:
        try:
            if isinstance(link, (str, bytes)) or any(isinstance(x, bool) for x in link):
                raise TypeError
            pair = tuple(operator.index(x) for x in link)  # ints, numpy ints; not floats or strings
        except TypeError:
            pair = ()
        if len(pair) != 2:
            raise AlignmentIndexError(f"{what} {link!r} is not a pair of integer word indices")
        if pair[0] < 0 or pair[1] < 0:
            raise AlignmentIndexError(f"{what} {pair[0]}-{pair[1]} has a negative word index")
        out.add((pair[0], pair[1]))
    return out


def write_pharaoh(path: str | os.PathLike, links: Iterable[Iterable[Link]]) -> None:
    """Write one sorted, de-duplicated 0-based ``i-j`` line per sentence pair, atomically (temp file + rename)."""
    path = Path(path)
    lines = []
    for n, sentence in enumerate(links, start=1):
        pairs = sorted(_as_links(sentence, what=f"sentence {n}: link"))
        lines.append(" ".join(f"{i}-{j}" for i, j in pairs) + "\n")
    atomic_write_text(path, "".join(lines))


def _check_lengths(links: set[Link], src_len: int | None, tgt_len: int | None, what: str) -> None:
    for i, j in sorted(links):
        if src_len is not None and i >= src_len:
            raise AlignmentIndexError(
                f"{what} link '{i}-{j}' has source index {i} but the source sentence has {src_len} words"
            )
        if tgt_len is not None and j >= tgt_len:
            raise AlignmentIndexError(
                f"{what} link '{i}-{j}' has target index {j} but the target sentence has {tgt_len} words"
            )


def _grow_diag(alignment: set[Link], union: set[Link]) -> None:
    """Koehn's GROW-DIAG, in place: repeat full scans in (src, tgt) order until a scan adds nothing.

    Equivalent to scanning every cell of the matrix, but only visits aligned cells: a heap holds the cells still to
    visit in this scan, and a cell added beyond the scan position is pushed so that this scan reaches it.
    """
    src_aligned = Counter(i for i, _ in alignment)
    tgt_aligned = Counter(j for _, j in alignment)
    added = True
    while added:
        added = False
        heap = list(alignment)
        heapq.heapify(heap)
        while heap:
            current = heapq.heappop(heap)
            e, f = current
            for de, df in _DIAG_NEIGHBOURS:
                cand = (e + de, f + df)
                if cand in union and cand not in alignment and (
                    not src_aligned[cand[0]] or not tgt_aligned[cand[1]]
                ):
                    alignment.add(cand)
                    src_aligned[cand[0]] += 1
                    tgt_aligned[cand[1]] += 1
                    added = True
                    if cand > current:
                        heapq.heappush(heap, cand)


def _final(alignment: set[Link], candidates: set[Link], both_unaligned: bool) -> None:
    """Koehn's FINAL / FINAL-AND, in place: add candidate links whose words are unaligned, in (src, tgt) order."""
    src_aligned = {i for i, _ in alignment}
    tgt_aligned = {j for _, j in alignment}
    for i, j in sorted(candidates - alignment):
        free_src, free_tgt = i not in src_aligned, j not in tgt_aligned
        if (free_src and free_tgt) if both_unaligned else (free_src or free_tgt):
            alignment.add((i, j))
            src_aligned.add(i)
            tgt_aligned.add(j)


def symmetrize(
    forward: Iterable[Link],
    reverse: Iterable[Link],
    method: str = "intersection",
    src_len: int | None = None,
    tgt_len: int | None = None,
) -> list[Link]:
    """Combine two directional alignments of one sentence pair (both in ``(src, tgt)`` orientation).

    Methods: ``intersection``, ``union``, ``grow-diag`` (intersection grown towards the union through the 8
    neighbours of aligned points while a word of the new point is unaligned), ``grow-diag-final`` (then FINAL:
    add forward, then reverse, links one of whose words is still unaligned) and ``grow-diag-final-and`` (FINAL-AND:
    both words unaligned). Growth only ever adds union links, so ``src_len``/``tgt_len`` are optional: when given,
    links beyond them raise :class:`AlignmentIndexError`. Returns sorted links.
    """
    if method not in SYMMETRIZATION_METHODS:
        raise ValueError(f"unknown symmetrization method {method!r}; valid: {', '.join(SYMMETRIZATION_METHODS)}")
    fwd = _as_links(forward, what="forward")
    rev = _as_links(reverse, what="reverse")
    _check_lengths(fwd, src_len, tgt_len, "forward")
    _check_lengths(rev, src_len, tgt_len, "reverse")
    union = fwd | rev
    if method == "union":
        return sorted(union)
    alignment = fwd & rev
    if method != "intersection":
        _grow_diag(alignment, union)
        if method in ("grow-diag-final", "grow-diag-final-and"):
            both = method == "grow-diag-final-and"
            _final(alignment, fwd, both)
            _final(alignment, rev, both)
    return sorted(alignment)


def one_to_one(links: Iterable[Link]) -> list[Link]:
    """Keep the links whose source word and target word each occur in exactly one link (sorted, de-duplicated)."""
    unique = _as_links(links)
    src_count = Counter(i for i, _ in unique)
    tgt_count = Counter(j for _, j in unique)
    return sorted((i, j) for i, j in unique if src_count[i] == 1 and tgt_count[j] == 1)


def drop_identical(links: Iterable[Link], src_words: Sequence[str], tgt_words: Sequence[str]) -> list[Link]:
    """Drop links whose two words are the same string (numbers, names, punctuation copied across); sorted."""
    unique = _as_links(links)
    _check_lengths(unique, len(src_words), len(tgt_words), "drop_identical:")
    return sorted((i, j) for i, j in unique if src_words[i] != tgt_words[j])
