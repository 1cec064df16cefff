"""Property tests of the task readers (CoNLL, WikiANN, XNLI TSV, SQuAD JSON): random valid files round-trip;
random corruptions give the package's own errors (DataFormatError / ConfigError, with the file named), never
IndexError, KeyError, UnicodeDecodeError or a crash inside ``datasets``/pyarrow. Any syntactically valid language
code is accepted (no whitelist).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amber_align.data.languages import normalize_language
from amber_align.errors import ConfigError, DataFormatError
from amber_align.tasks.ner_data import read_conll, read_wikiann
from amber_align.tasks.nli_data import NLI_LABELS, read_xnli_tsv
from amber_align.tasks.qa_data import read_squad_json

logging.getLogger("amber_align").setLevel(logging.ERROR)

#: 40 examples per property in CI; AMBER_HYPOTHESIS_EXAMPLES=3000 for a longer hunt (run once here: no failure)
SETTINGS = settings(max_examples=int(os.environ.get("AMBER_HYPOTHESIS_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------- strategies
_TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\t\ufeff\x00 ")
_ODD = st.sampled_from(["\u2028", "\x85", "\x0c", "\x0b", "\x1c", "\u00a0", ":", '"', "'", "|", "é", "我", "ß"])
TOKEN = st.lists(st.one_of(_TEXT_CHARS, _ODD), min_size=1, max_size=8).map("".join).filter(
    lambda t: t != "-DOCSTART-")
#: language codes: a primary subtag of 2-3 letters (most are in no table), sometimes with a region
LANG = st.builds(lambda p, r: p + r, st.from_regex(r"[a-z]{2,3}", fullmatch=True),
                 st.sampled_from(["", "-ES", "_Latn"]))
TYPES = st.sampled_from(["PER", "LOC", "ORG", "MISC"])


@st.composite
def iob2_sentence(draw) -> tuple[list[str], list[str]]:
    n = draw(st.integers(1, 6))
    tokens, tags, previous = [], [], "O"
    for _ in range(n):
        tokens.append(draw(TOKEN))
        kind = draw(st.sampled_from(["O", "B", "I"]))
        if kind == "I" and previous != "O":
            tag = "I-" + previous[2:]
        elif kind == "O":
            tag = "O"
        else:
            tag = "B-" + draw(TYPES)
        tags.append(tag)
        previous = tag
    return tokens, tags


SENTENCES = st.lists(iob2_sentence(), min_size=1, max_size=5)


def _temp(data: bytes, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _corrupt(draw, data: bytes) -> bytes:
    """Insert, delete or overwrite a few bytes, favouring the bytes that carry structure."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "overwrite"]))
        chunk = draw(st.one_of(st.binary(min_size=1, max_size=3),
                               st.sampled_from([b"\t", b" ", b"\n", b"\r", b"\xff", b"\xc3", b"-", b":", b'"', b"{",
                                                b"]", b",", b"0", b"\x00", b"B_X", b"I-"])))
        if action == "insert":
            data[pos:pos] = chunk
        elif action == "delete":
            del data[pos:pos + len(chunk)]
        else:
            data[pos:pos + len(chunk)] = chunk
    return bytes(data)


def _only_our_errors(read, data: bytes, suffix: str) -> None:
    path = _temp(data, suffix)
    try:
        read(path)
    except (DataFormatError, ConfigError) as err:
        assert path in str(err) or "lang" in str(err), str(err)
    finally:
        os.unlink(path)


# --------------------------------------------------------------------------------------------------- CoNLL
def _conll_text(sentences, extra_columns: int, docstart: bool) -> str:
    lines = ["-DOCSTART- -X- O O", ""] if docstart else []
    for tokens, tags in sentences:
        lines += [" ".join([tok] + ["X"] * extra_columns + [tag]) for tok, tag in zip(tokens, tags)]
        lines.append("")
    return "\n".join(lines) + "\n"


@SETTINGS
@given(SENTENCES, st.integers(0, 2), st.booleans(), LANG, st.sampled_from(["utf-8", "latin-1"]))
def test_conll_round_trip(sentences, extra_columns, docstart, lang, encoding):
    text = _conll_text(sentences, extra_columns, docstart)
    if encoding == "latin-1":
        text = text.encode("latin-1", errors="replace").decode("latin-1")
        sentences = [([t.encode("latin-1", errors="replace").decode("latin-1") for t in toks], tags)
                     for toks, tags in sentences]
    path = _temp(text.encode(encoding), ".txt")
    try:
        ds = read_conll(path, lang=lang, encoding=encoding if encoding == "latin-1" else None)
    finally:
        os.unlink(path)
    assert ds["tokens"] == [t for t, _ in sentences]
    assert ds["ner_tags"] == [g for _, g in sentences]
    assert set(ds["lang"]) == {normalize_language(lang)}


@st.composite
def corrupted_conll(draw) -> bytes:
    return _corrupt(draw, _conll_text(draw(SENTENCES), draw(st.integers(0, 2)), draw(st.booleans())).encode())


@SETTINGS
@given(corrupted_conll())
def test_conll_corruptions_raise_only_our_errors(data):
    _only_our_errors(lambda p: read_conll(p, lang="de"), data, ".conll")


# ------------------------------------------------------------------------------------------------- WikiANN
def _wikiann_text(sentences, prefix: str) -> str:
    lines: list[str] = []
    for tokens, tags in sentences:
        lines += [f"{prefix}:{tok}\t{tag}" for tok, tag in zip(tokens, tags)]
        lines.append("")
    return "\n".join(lines)


@SETTINGS
@given(SENTENCES, LANG)
def test_wikiann_round_trip(sentences, prefix):
    prefix = prefix.replace("_", "-")  # a WikiANN prefix joins subtags with '-'
    path = _temp(_wikiann_text(sentences, prefix).encode(), ".txt")
    try:
        ds = read_wikiann(path)
    finally:
        os.unlink(path)
    assert ds["tokens"] == [t for t, _ in sentences]
    assert ds["ner_tags"] == [g for _, g in sentences]
    assert set(ds["lang"]) == {normalize_language(prefix)}


@st.composite
def corrupted_wikiann(draw) -> bytes:
    return _corrupt(draw, _wikiann_text(draw(SENTENCES), draw(st.sampled_from(["de", "nl", "gsw"]))).encode())


@SETTINGS
@given(corrupted_wikiann(), st.sampled_from([None, "de"]))
def test_wikiann_corruptions_raise_only_our_errors(data, lang):
    _only_our_errors(lambda p: read_wikiann(p, lang=lang), data, ".txt")


# ---------------------------------------------------------------------------------------------------- XNLI
_HEADER_WORDS = {"premise", "sentence1", "sentence_a", "hypothesis", "sentence2", "sentence_b", "label",
                 "gold_label", "entailment_judgment", "language", "lang"}
SENTENCE = st.lists(st.one_of(_TEXT_CHARS, _ODD, st.just(" ")), min_size=1, max_size=20).map("".join).filter(
    lambda s: bool(s.strip(" \x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u00a0")) and s.strip().lower() not in _HEADER_WORDS)
LABEL = st.sampled_from([*NLI_LABELS, "Entailment", "NEUTRAL", "contradictory", " neutral "])
NLI_ROWS = st.lists(st.tuples(SENTENCE, SENTENCE, LABEL), min_size=1, max_size=6)


def _label(value: str) -> str:
    value = value.strip().lower()
    return "contradiction" if value == "contradictory" else value


def _xnli_text(rows, genre: bool) -> str:
    return "".join("\t".join([p, h, label] + (["fiction"] if genre else [])) + "\n" for p, h, label in rows)


@SETTINGS
@given(NLI_ROWS, st.booleans(), LANG)
def test_xnli_round_trip(rows, genre, lang):
    path = _temp(_xnli_text(rows, genre).encode(), ".tsv")
    try:
        ds = read_xnli_tsv(path, lang=lang)
    finally:
        os.unlink(path)
    assert ds["premise"] == [p for p, _, _ in rows] and ds["hypothesis"] == [h for _, h, _ in rows]
    assert ds["label"] == [_label(label) for _, _, label in rows]
    assert set(ds["lang"]) == {normalize_language(lang)}


@st.composite
def corrupted_xnli(draw) -> bytes:
    return _corrupt(draw, _xnli_text(draw(NLI_ROWS), draw(st.booleans())).encode())


@SETTINGS
@given(corrupted_xnli())
def test_xnli_corruptions_raise_only_our_errors(data):
    _only_our_errors(lambda p: read_xnli_tsv(p, lang="fr"), data, ".tsv")


# ---------------------------------------------------------------------------------------------------- SQuAD
@st.composite
def squad_document(draw) -> dict:
    articles, n = [], 0
    for _ in range(draw(st.integers(1, 2))):
        paragraphs = []
        for _ in range(draw(st.integers(1, 2))):
            context = draw(st.text(min_size=1, max_size=40).filter(lambda s: "\ufeff" not in s))
            qas = []
            for _ in range(draw(st.integers(1, 3))):
                answers = []
                for _ in range(draw(st.integers(1, 2))):
                    start = draw(st.integers(0, len(context) - 1))
                    end = draw(st.integers(start + 1, len(context)))
                    answers.append({"text": context[start:end], "answer_start": start})
                n += 1
                qas.append({"id": f"q{n}", "question": draw(st.text(max_size=15)), "answers": answers})
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": draw(st.text(max_size=10)), "paragraphs": paragraphs})
    return {"version": "1.1", "data": articles}


def _rows(doc: dict) -> list[tuple]:
    return [(qa["id"], a["title"], p["context"], qa["question"],
             {"text": [x["text"] for x in qa["answers"]], "answer_start": [x["answer_start"] for x in qa["answers"]]})
            for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]]


@SETTINGS
@given(squad_document(), LANG, st.booleans())
def test_squad_round_trip(doc, lang, ascii_only):
    path = _temp(json.dumps(doc, ensure_ascii=ascii_only).encode(), ".json")
    try:
        ds = read_squad_json(path, lang=lang)
    finally:
        os.unlink(path)
    assert list(zip(ds["id"], ds["title"], ds["context"], ds["question"], ds["answers"])) == _rows(doc)
    assert set(ds["lang"]) == {normalize_language(lang)}


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=5), st.just([]), st.just({}), st.just([{"text": "x"}]))


@st.composite
def mutated_squad(draw) -> tuple[dict, bool]:
    """A valid document with one structural change: a key deleted, a value replaced, an offset moved."""
    doc = draw(squad_document())
    article = draw(st.sampled_from(doc["data"]))
    paragraph = draw(st.sampled_from(article["paragraphs"]))
    qa = draw(st.sampled_from(paragraph["qas"]))
    answer = draw(st.sampled_from(qa["answers"]))
    target = draw(st.sampled_from([doc, article, paragraph, qa, answer]))
    key = draw(st.sampled_from(sorted(target)))
    action = draw(st.sampled_from(["delete", "replace", "shift", "duplicate_id"]))
    if action == "delete":
        del target[key]
    elif action == "replace":
        target[key] = draw(_VALUES)
    elif action == "shift":
        answer["answer_start"] += draw(st.integers(-50, 50).filter(lambda k: k != 0)) if draw(st.booleans()) \
            else draw(st.sampled_from([2**31, 2**40, -2**31 - 1]))
    else:
        qa["id"] = paragraph["qas"][0]["id"] if len(paragraph["qas"]) > 1 else 0
    return doc, draw(st.booleans())


@SETTINGS
@given(mutated_squad())
def test_squad_structural_corruptions_raise_only_our_errors(case):
    doc, check_spans = case
    _only_our_errors(lambda p: read_squad_json(p, lang="de", check_spans=check_spans), json.dumps(doc).encode(),
                     ".json")


@st.composite
def corrupted_squad_bytes(draw) -> bytes:
    return _corrupt(draw, json.dumps(draw(squad_document()), ensure_ascii=draw(st.booleans())).encode())


@SETTINGS
@given(corrupted_squad_bytes())
def test_squad_byte_corruptions_raise_only_our_errors(data):
    _only_our_errors(lambda p: read_squad_json(p, lang="de"), data, ".json")


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"data": ' * 50_000])
def test_squad_absurdly_nested_json_is_a_data_error(tmp_path, data):
    path = tmp_path / "deep.json"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match="deep.json"):
        read_squad_json(path, lang="de")


def test_readers_name_the_file_on_a_missing_path(tmp_path):
    for read in (read_conll, read_wikiann, read_xnli_tsv, read_squad_json):
        with pytest.raises(ConfigError, match="nope.txt"):
            read(Path(tmp_path / "nope.txt"), lang="de")
