"""Property tests of load_parallel: valid corpora round-trip in every format; corrupt ones fail cleanly.

"Cleanly" means a DataFormatError or ConfigError naming the problem, never an IndexError, KeyError,
UnicodeDecodeError or a crash inside ``datasets``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amber_align.data.parallel import ParallelSource, load_parallel
from amber_align.data.words import word_tokenize
from amber_align.errors import ConfigError, DataFormatError

logging.getLogger("amber_align").setLevel(logging.WARNING)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text a corpus line can hold: no line breaks of the file itself, no surrogates, no BOM; but U+2028, U+0085, \x0c
# and friends are allowed (they must not split a line). Stripped and with at least one word, so that no filter drops
# the pair and the round trip is exact.
# NUL is refused by the readers (a binary or UTF-16 file), so it is no valid text either.
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\ufeff\x00")
_SPECIAL = st.sampled_from(["\u2028", "\x85", "\x0c", "\x1c", "\u00a0", "\t", ",", '"', "'", "|", "{", "¿", "我"])
TEXT = st.lists(st.one_of(_CHARS, _SPECIAL), min_size=1, max_size=30).map("".join).filter(
    lambda t: t == t.strip() and bool(word_tokenize(t))
)


def corpora(exclude: str = "") -> st.SearchStrategy[list[tuple[str, str]]]:
    text = TEXT.filter(lambda t: not any(ch in t for ch in exclude)) if exclude else TEXT
    return st.lists(st.tuples(text, text), min_size=1, max_size=8)


def write_corpus(folder: Path, fmt: str, pairs: list[tuple[str, str]]) -> ParallelSource:
    """Write ``pairs`` in format ``fmt`` under ``folder``; return the source that reads them back."""
    langs = {"src_lang": "es", "tgt_lang": "en"}
    if fmt == "lines":
        (folder / "c.spa").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8", newline="")
        (folder / "c.eng").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8", newline="")
        return ParallelSource(src_file=str(folder / "c.spa"), tgt_file=str(folder / "c.eng"))
    if fmt == "bar":
        text = "".join(f"{s} ||| {t}\n" for s, t in pairs)
    elif fmt == "tsv":
        text = "es\ten\n" + "".join(f"{s}\t{t}\n" for s, t in pairs)
        langs.update(src_column="es", tgt_column="en")
    elif fmt == "jsonl":
        text = "".join(json.dumps({"src": s, "tgt": t}, ensure_ascii=False) + "\n" for s, t in pairs)
    else:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([("src", "tgt"), *pairs])
        text = buffer.getvalue()
    path = folder / f"c.{fmt}"
    path.write_text(text, encoding="utf-8", newline="")
    return ParallelSource(file=str(path), **langs)


def check_round_trip(fmt: str, pairs: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ds = load_parallel(write_corpus(Path(folder), fmt, pairs), max_words=None)
    assert ds["src"] == [s for s, _ in pairs] and ds["tgt"] == [t for _, t in pairs]
    assert ds["src_words"] == [word_tokenize(s) for s, _ in pairs]
    assert ds["tgt_words"] == [word_tokenize(t) for _, t in pairs]
    assert ds["pair"] == ["es-en"] * len(pairs)


@SETTINGS
@given(corpora())
def test_round_trip_two_files(pairs: list[tuple[str, str]]) -> None:
    check_round_trip("lines", pairs)


@SETTINGS
@given(corpora(exclude="|"))
def test_round_trip_bar(pairs: list[tuple[str, str]]) -> None:
    check_round_trip("bar", pairs)


@SETTINGS
@given(corpora(exclude="\t"))
def test_round_trip_tsv(pairs: list[tuple[str, str]]) -> None:
    check_round_trip("tsv", pairs)


@SETTINGS
@given(corpora())
def test_round_trip_jsonl_and_csv(pairs: list[tuple[str, str]]) -> None:
    check_round_trip("jsonl", pairs)
    check_round_trip("csv", pairs)


# ---------------------------------------------------------------------------------------------------- corruptions
_FRAGMENTS = st.sampled_from([b"\n", b"\r\n", b"\t", b"|||", b" ||| ", b'"', b"{", b"}", b",", b"\xff", b"\xc3",
                              b"\xe2\x80", b"\x00", b"\xef\xbb\xbf", b"[", b"\\ud800", b'"src"', b"0-0", b"-"])
_EDIT = st.tuples(st.sampled_from(["insert", "delete", "truncate"]), st.floats(0, 1), st.one_of(_FRAGMENTS, st.binary(
    max_size=4)))


def corrupt(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    for kind, where, fragment in edits:
        at = int(where * len(data))
        if kind == "insert":
            data = data[:at] + fragment + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + 1 + len(fragment):]
        else:
            data = data[:at]
    return data


def load_cleanly(source: ParallelSource) -> None:
    try:
        ds = load_parallel(source, max_words=8)
    except (DataFormatError, ConfigError) as err:
        assert str(err)
        return
    assert all(len(w) <= 8 for w in list(ds["src_words"]) + list(ds["tgt_words"]))
    assert all(0 <= i < len(s) and 0 <= j < len(t) for s, t, links in zip(ds["src_words"], ds["tgt_words"],
                                                                          ds["links"]) for i, j in links)


@SETTINGS
@given(st.sampled_from(["lines", "bar", "tsv", "jsonl", "csv"]), corpora(), st.lists(_EDIT, min_size=1, max_size=4),
       st.booleans())
def test_corrupt_corpora_fail_cleanly(fmt: str, pairs, edits, corrupt_target: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = write_corpus(Path(folder), fmt, pairs)
        path = Path(source.tgt_file if corrupt_target and fmt == "lines" else source.src_file or source.file)
        path.write_bytes(corrupt(path.read_bytes(), edits))
        load_cleanly(source)


@SETTINGS
@given(corpora(), st.lists(_EDIT, max_size=4), st.booleans())
def test_corrupt_alignments_fail_cleanly(pairs, edits, one_based: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = write_corpus(Path(folder), "lines", pairs)
        links = "".join(" ".join(f"{k}-{k}" for k in range(min(len(word_tokenize(s)), len(word_tokenize(t)))))
                        + "\n" for s, t in pairs)
        (Path(folder) / "al").write_bytes(corrupt(links.encode(), edits))
        source.alignments, source.alignments_one_based = str(Path(folder) / "al"), one_based
        load_cleanly(source)
