"""Task data readers (NER, NLI, QA): every input form, the conversions, each error and its message, the real data.

Hand-made fixtures in ``tests/fixtures/tasks/``: ``ner/esp.testb`` (CoNLL-2002 style, Latin-1 bytes, one token
with a no-break space), ``ner/eng.testa`` (CoNLL-2003 style IOB1 with ``-DOCSTART-``, one of them inside a
sentence as in CoNLL-2002 ned), ``ner/wikiann_de.dev`` (tokens with ``:`` inside), ``nli/dev-en.tsv`` (XTREME dev,
CRLF, quotes), ``nli/test-es.tsv`` (genre column, ``contradictory``), ``nli/xnli.test.tsv`` (XNLI 1.0 header, three
languages), ``qa/xquad.es.json`` and ``qa/dev-context-de-question-de.json`` (SQuAD v1.1 JSON, MLQA file name).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import pytest

from amber_align.errors import ConfigError, DataFormatError
from amber_align.tasks import ner_data, nli_data, qa_data, sources
from amber_align.tasks.ner_data import (
    NER_FEATURES,
    apply_label_mapping,
    check_label_set,
    iob1_to_iob2,
    load_ner,
    read_conll,
    read_wikiann,
)
from amber_align.tasks.nli_data import NLI_FEATURES, NLI_LABELS, load_nli, read_xnli_tsv
from amber_align.tasks.preprocess import ner_label_list
from amber_align.tasks.qa_data import QA_FEATURES, load_qa, read_squad_json

TASKS = Path(__file__).parent / "fixtures" / "tasks"
CONLL_TYPES = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
WIKIANN_TAGS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def fake_load_dataset(monkeypatch: pytest.MonkeyPatch, module, ds: datasets.Dataset) -> list[tuple]:
    """Replace ``datasets.load_dataset`` as the module calls it; returns the list of calls made."""
    calls: list[tuple] = []

    def load(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return ds

    monkeypatch.setattr(module.datasets, "load_dataset", load)
    return calls


# ------------------------------------------------------------------------------------------------ shared helpers
@pytest.mark.parametrize(("name", "lang"), [
    ("esp.testb", "es"), ("ned.train", "nl"), ("eng.train", "en"), ("deu.testa", "de"), ("dev-en.tsv", "en"),
    ("test-es.tsv", "es"), ("xquad.es.json", "es"), ("tydiqa.goldp.en.train.json", "en"),
    ("dev-context-de-question-en.json", "de"), ("mlqa.de.en", "de"), ("PAN-X.de", "de"), ("es", "es"),
    ("xnli.test.tsv", None), ("train.txt", None),
])
def test_language_from_file_and_config_names(name: str, lang: str | None) -> None:
    assert sources.infer_language(name) == lang


@pytest.mark.parametrize("reader", [read_conll, read_wikiann, read_xnli_tsv, read_squad_json])
def test_empty_files_are_errors(tmp_path: Path, reader) -> None:
    path = write(tmp_path / "empty.es.json", "{\"data\": []}" if reader is read_squad_json else "\n\n")
    with pytest.raises(DataFormatError, match=r"empty\.es\.json: no (sentences|examples|questions)"):
        reader(path)


# ------------------------------------------------------------------------------------------------------------- NER
def test_iob1_to_iob2_hand_worked() -> None:
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC"]) == ["B-PER", "I-PER", "O", "B-LOC"]
    # B- in IOB1 only separates adjacent entities of one type; it stays B-
    assert iob1_to_iob2(["I-LOC", "B-LOC", "I-LOC", "O"]) == ["B-LOC", "B-LOC", "I-LOC", "O"]
    assert iob1_to_iob2(["I-ORG", "I-LOC", "I-LOC"]) == ["B-ORG", "B-LOC", "I-LOC"]  # a type change starts one
    valid_iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-MISC"]
    assert iob1_to_iob2(valid_iob2) == valid_iob2  # a no-op on IOB2


def test_conll_latin1_lang_and_nbsp(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="amber_align.tasks.ner_data"):
        ds = read_conll(TASKS / "ner" / "esp.testb")
    assert "encoding latin-1" in caplog.text
    assert ds.features == NER_FEATURES and len(ds) == 3 and set(ds["lang"]) == {"es"}
    assert ds[1]["tokens"][:2] == ["La", "Coruña"] and ds[1]["ner_tags"][:2] == ["B-LOC", "I-LOC"]
    assert "10\u00a0000" in ds[2]["tokens"]  # columns split on spaces/tabs only, not on U+00A0
    assert ds[2]["tokens"][-3:] == ["José", "Muñoz", "."]


def test_conll_iob1_docstart_and_schemes() -> None:
    path = TASKS / "ner" / "eng.testa"
    ds = read_conll(path)
    assert ds["lang"] == ["en"] * 3
    assert ds["tokens"][2] == ["German", "Acme", "Corp", "Beta", "Ltd"]  # the -DOCSTART- line ended sentence 2
    assert ds["ner_tags"] == [
        ["B-PER", "O", "B-PER", "O", "B-LOC", "I-LOC", "O"],
        ["B-LOC", "B-LOC", "B-LOC", "O"],
        ["B-MISC", "B-ORG", "I-ORG", "B-ORG", "I-ORG"],
    ]
    assert read_conll(path, scheme="iob1")["ner_tags"] == ds["ner_tags"]
    assert read_conll(path, scheme="iob2")["ner_tags"][0][0] == "I-PER"  # kept as is


def test_conll_options_and_language_inference(tmp_path: Path) -> None:
    text = "De Art O\nRotterdam N B-LOC\nhaven N O\n\n"
    assert read_conll(write(tmp_path / "ned.train", text))["lang"] == ["nl"]
    swapped = write(tmp_path / "swapped.ned", "De O Art\nRotterdam B-LOC N\n")
    assert read_conll(swapped, tag_column=1)["ner_tags"] == [["O", "B-LOC"]]
    with pytest.raises(DataFormatError, match=r"ned\.train:1: tag 'Art' is not 'O'"):
        read_conll(tmp_path / "ned.train", tag_column=1)  # the POS column holds no tags
    assert read_conll(tmp_path / "ned.train", lang="spa")["lang"] == ["es"]  # explicit lang wins
    with pytest.raises(ConfigError, match="cannot be inferred from the file name 'data.txt'"):
        read_conll(write(tmp_path / "data.txt", text))
    with pytest.raises(ConfigError, match="scheme must be one of"):
        read_conll(tmp_path / "ned.train", scheme="bio")
    with pytest.raises(ConfigError, match="cannot be read"):
        read_conll(tmp_path / "missing.eng")


def test_conll_errors_name_file_line_and_tag(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.eng", "EU B-ORG\nrejects\n")
    with pytest.raises(DataFormatError, match=r"bad\.eng:2: expected at least 2 columns .* found 1: 'rejects'"):
        read_conll(path)
    path = write(tmp_path / "bad2.eng", "EU B-ORG\n\nrejects B_ORG\n")
    with pytest.raises(DataFormatError, match=r"bad2\.eng:3: tag 'B_ORG' is not 'O', 'B-<type>' or 'I-<type>'"):
        read_conll(path)
    path = write(tmp_path / "bad3.eng", "EU NNP B-ORG\nrejects O\n")
    with pytest.raises(DataFormatError, match=r"bad3\.eng:2: tag_column 2 asks for a column"):
        read_conll(path, tag_column=2)
    latin1 = TASKS / "ner" / "esp.testb"
    with pytest.raises(DataFormatError, match=r"esp\.testb:5: not valid utf-8 \(byte 0xf1\)"):
        read_conll(latin1, encoding="utf-8")  # an explicit encoding is strict


def test_wikiann_prefix_and_colons() -> None:
    ds = read_wikiann(TASKS / "ner" / "wikiann_de.dev")
    assert ds.features == NER_FEATURES and ds["lang"] == ["de", "de"]
    assert ds[0]["tokens"][2] == "Foo:Bar" and ds[0]["tokens"][6] == "Köln"
    assert ds[1]["tokens"] == ["Max", "Mustermann", ":", "http://example.org"]
    assert ds[1]["ner_tags"] == ["B-PER", "I-PER", "O", "O"]


@pytest.mark.parametrize(("line", "message"), [
    ("de:Anton B-PER", r"found 1 tab-separated field"),
    ("Anton\tB-PER", r"token 'Anton' has no 'xx:' language prefix"),
    ("de:Anton\tB-PER\tx", r"found 3 tab-separated field"),
    ("de:\tO", r"empty token after the prefix 'de:'"),
    ("de:Anton\tB_PER", r"tag 'B_PER' is not"),
    ("nl:Anton\tB-PER", r"prefix 'nl:' differs from the language 'de' of the sentence's first token"),
])
def test_wikiann_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "dev", f"de:Der\tO\n{line}\n")
    with pytest.raises(DataFormatError, match=r"/dev:2: .*" + message):
        read_wikiann(path)


def test_wikiann_lang_must_match_the_prefix(tmp_path: Path) -> None:
    path = write(tmp_path / "test", "nl:Jan\tB-PER\n")
    assert read_wikiann(path, lang="ned")["lang"] == ["nl"]
    with pytest.raises(DataFormatError, match=r"test:1: prefix 'nl:' names language 'nl', but lang 'de' was asked"):
        read_wikiann(path, lang="de")


def test_label_set_mismatch_and_mapping() -> None:
    found = ["O", "B-PER", "B-MISC", "I-MISC", "B-MISC"]
    with pytest.raises(ConfigError) as err:
        check_label_set(found, WIKIANN_TAGS, source="eval/esp.testb")
    message = str(err.value)
    assert "eval/esp.testb" in message and "entity type 'MISC' (B-MISC 2x, I-MISC 1x)" in message
    assert "entity types LOC, ORG, PER" in message and "{'MISC': 'O'}" in message
    assert check_label_set(found, WIKIANN_TAGS, source="x", mapping={"MISC": "O"}) == ["O", "B-PER"]
    assert check_label_set(found, WIKIANN_TAGS, source="x", mapping={"B-MISC": "O", "I-MISC": "O"}) == ["O", "B-PER"]
    with pytest.raises(ConfigError, match=r"entity type 'MISC' \(I-MISC 1x\)"):
        check_label_set(found, WIKIANN_TAGS, source="x", mapping={"B-MISC": "O"})
    with pytest.raises(ConfigError, match=r"label_mapping maps 'B-MISC' -> 'B-GPE', 'I-MISC' -> 'I-GPE'"):
        check_label_set(found, WIKIANN_TAGS, source="x", mapping={"MISC": "GPE"})
    with pytest.raises(ConfigError, match="an entity-type key maps to 'O' or another type"):
        check_label_set(found, WIKIANN_TAGS, source="x", mapping={"MISC": "B-LOC"})


def test_apply_label_mapping_rewrites_tags() -> None:
    ds = datasets.Dataset.from_dict({"tokens": [["a", "b", "c"]], "ner_tags": [["B-MISC", "I-MISC", "B-PER"]],
                                     "lang": ["es"]}, features=NER_FEATURES)
    assert apply_label_mapping(ds, WIKIANN_TAGS, {"MISC": "O"}, source="s")["ner_tags"] == [["O", "O", "B-PER"]]
    assert apply_label_mapping(ds, CONLL_TYPES, None, source="s") is ds  # nothing to change
    with pytest.raises(ConfigError, match="s: label"):
        apply_label_mapping(ds, WIKIANN_TAGS, {}, source="s")


def test_load_ner_guesses_format_and_reads_mappings(tmp_path: Path) -> None:
    assert load_ner(str(TASKS / "ner" / "wikiann_de.dev"))["tokens"][1][0] == "Max"  # guessed: wikiann
    assert len(load_ner(TASKS / "ner" / "eng.testa")) == 3  # guessed: conll
    ds = load_ner({"file": str(TASKS / "ner" / "esp.testb"), "format": "conll", "encoding": "latin-1",
                   "max_examples": 2}, lang="es")
    assert len(ds) == 2 and ds["lang"] == ["es", "es"]
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['path'\] in ner data source"):
        load_ner({"path": "x"})
    with pytest.raises(ConfigError, match="exactly one of 'file' or 'hub'"):
        load_ner({"file": "x", "hub": "wikiann", "split": "test"})
    with pytest.raises(ConfigError, match="needs a dataset id and 'split'"):
        load_ner({"hub": "wikiann", "name": "de"})
    with pytest.raises(ConfigError, match=r"\['encoding'\] apply to format 'conll'"):
        load_ner({"file": str(TASKS / "ner" / "wikiann_de.dev"), "encoding": "latin-1"})
    with pytest.raises(ConfigError, match="says lang 'de' but it is read as language 'es'"):
        load_ner({"file": str(TASKS / "ner" / "esp.testb"), "lang": "de"}, lang="es")
    with pytest.raises(ConfigError, match="max_examples must be a positive integer"):
        load_ner({"file": str(TASKS / "ner" / "esp.testb"), "max_examples": 0})


def test_load_ner_from_hub_converts_classlabels(monkeypatch: pytest.MonkeyPatch) -> None:
    features = datasets.Features({"tokens": datasets.List(datasets.Value("string")),
                                  "ner_tags": datasets.List(datasets.ClassLabel(names=WIKIANN_TAGS)),
                                  "langs": datasets.List(datasets.Value("string"))})
    panx = datasets.Dataset.from_dict({"tokens": [["Max", "in", "Köln"], ["Bonn"]], "ner_tags": [[5, 0, 1], [1]],
                                       "langs": [["de"] * 3, ["de"]]}, features=features)
    calls = fake_load_dataset(monkeypatch, ner_data, panx)
    ds = load_ner({"hub": "xtreme", "name": "PAN-X.de", "split": "test", "max_examples": 1})
    assert calls == [("xtreme", "PAN-X.de", "test")]
    assert ds.features == NER_FEATURES and ds.to_dict() == {"tokens": [["Max", "in", "Köln"]],
                                                             "ner_tags": [["B-PER", "O", "B-LOC"]], "lang": ["de"]}
    conll = panx.remove_columns("langs")
    fake_load_dataset(monkeypatch, ner_data, conll)
    assert load_ner({"hub": "unimelb-nlp/wikiann", "name": "de", "split": "test"})["lang"] == ["de", "de"]
    with pytest.raises(ConfigError, match="lang is not set and cannot be inferred from the config name None"):
        load_ner({"hub": "conll2003", "split": "test"})
    assert load_ner({"hub": "conll2003", "split": "test"}, lang="en")["lang"] == ["en", "en"]

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(ner_data.datasets, "load_dataset", offline)
    with pytest.raises(ConfigError, match=r"cannot load hub dataset 'xtreme' \('PAN-X.de', split 'test'\)"):
        load_ner({"hub": "xtreme", "name": "PAN-X.de", "split": "test"})


# ------------------------------------------------------------------------------------------------------------- NLI
def test_xnli_xtreme_dev_crlf_and_quotes() -> None:
    ds = read_xnli_tsv(TASKS / "nli" / "dev-en.tsv")
    assert ds.features == NLI_FEATURES and len(ds) == 3 and set(ds["lang"]) == {"en"}
    assert ds[0] == {"premise": 'He said "I am home."', "hypothesis": "Someone spoke.", "label": "entailment",
                     "lang": "en"}
    assert ds["label"] == ["entailment", "contradiction", "neutral"]


def test_xnli_test_with_genre_and_contradictory() -> None:
    ds = load_nli(TASKS / "nli" / "test-es.tsv")
    assert ds["label"] == ["entailment", "neutral", "contradiction", "entailment"] and set(ds["lang"]) == {"es"}
    assert ds[0]["premise"] == 'Ella compró un coche "rojo".'


def test_xnli_original_format_by_column_names() -> None:
    path = TASKS / "nli" / "xnli.test.tsv"
    every = read_xnli_tsv(path)
    assert every["lang"] == ["en", "en", "es", "es", "de"]
    es = load_nli({"file": str(path), "lang": "es"})
    assert es["premise"] == ["El gato duerme en la alfombra."] * 2 and es["label"] == ["entailment", "neutral"]
    assert es["hypothesis"][1] == 'El gato es "negro".'
    with pytest.raises(DataFormatError, match=r"no rows with language 'fr'; languages in the file: \['de', 'en', "
                                              r"'es'\]"):
        read_xnli_tsv(path, lang="fr")


def test_xnli_header_of_our_own_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", "premise\thypothesis\tlabel\nA b.\tC d.\tNEUTRAL\n")
    assert read_xnli_tsv(path, lang="en").to_dict() == {"premise": ["A b."], "hypothesis": ["C d."],
                                                        "label": ["neutral"], "lang": ["en"]}


@pytest.mark.parametrize(("text", "message"), [
    ("A.\tB.\tentailment\nC.\tD.\tmaybe\n", r"dev-fr\.tsv:2: unknown label 'maybe'; expected one of entailment, "
                                            r"neutral, contradiction"),
    ("A.\tB.\tentailment\nC.\tD\t.\tneutral\tx\n", r"dev-fr\.tsv:2: expected 3 tab-separated fields like line 1, "
                                                    r"found 5"),
    ("A.\tB.\n", r"dev-fr\.tsv:1: expected 3 or 4 tab-separated fields .* found 2 \(an unlabelled file\?"),
    ("A.\t \tneutral\n", r"dev-fr\.tsv:1: empty hypothesis"),
    ("A.\tB.\t-\n", r"dev-fr\.tsv:1: unknown label '-' \(an unlabelled example\?\)"),
    ("premise\thypothesis\tgenre\nA.\tB.\tfiction\n", r"dev-fr\.tsv:1: header row has no column for \['label'\]"),
    ("sentence1\tsentence2\tgold_label\nA.\tB.\tneutral\textra\n", r"dev-fr\.tsv:2: expected 3 tab-separated fields "
                                                                   r"like the header, found 4"),
])
def test_xnli_errors_name_file_line_and_label(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        read_xnli_tsv(write(tmp_path / "dev-fr.tsv", text))


def test_load_nli_from_hub_converts_classlabels(monkeypatch: pytest.MonkeyPatch) -> None:
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})
    xnli = datasets.Dataset.from_dict({"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"],
                                       "label": [2, 0, 1]}, features=features)
    assert tuple(xnli.features["label"].names) == NLI_LABELS  # label ids agree with the Hub's xnli
    calls = fake_load_dataset(monkeypatch, nli_data, xnli)
    ds = load_nli({"hub": "xnli", "name": "es", "split": "test", "max_examples": 2})
    assert calls == [("xnli", "es", "test")]
    assert ds.features == NLI_FEATURES and ds.to_dict() == {"premise": ["a", "b"], "hypothesis": ["x", "y"],
                                                            "label": ["contradiction", "entailment"],
                                                            "lang": ["es", "es"]}
    unlabelled = xnli.cast_column("label", datasets.Value("int64")).map(lambda r: {"label": -1})
    fake_load_dataset(monkeypatch, nli_data, unlabelled.cast_column("label", features["label"]))
    with pytest.raises(DataFormatError, match=r"row 0: label -1 is not a class id"):
        load_nli({"hub": "xnli", "name": "es", "split": "test"})


# -------------------------------------------------------------------------------------------------------------- QA
def squad(context: str, answers: list[dict], qid: str = "q1", **qa_extra) -> dict:
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": context, "qas": [{"id": qid, "question": "Q?", "answers": answers, **qa_extra}]}]}]}


def test_squad_json_rows_spans_and_lang() -> None:
    ds = read_squad_json(TASKS / "qa" / "xquad.es.json")
    assert ds.features == QA_FEATURES and ds["id"] == ["q1", "q2", "q3"] and set(ds["lang"]) == {"es"}
    assert ds["title"] == ["Gatos", "Gatos", "Trenes"]
    row = ds[0]
    assert row["answers"] == {"text": ["9500 años", "unos 9500 años"], "answer_start": [69, 64]}
    for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
        assert row["context"][start:start + len(text)] == text
    mlqa = load_qa(TASKS / "qa" / "dev-context-de-question-de.json")
    assert mlqa["lang"] == ["de"] and mlqa["id"] == ["0123abcd"]


def test_squad_bad_span_names_file_id_start_text_and_context(tmp_path: Path) -> None:
    path = write(tmp_path / "xquad.de.json", json.dumps(squad("Die Katze schläft.", [{"text": "Katze",
                                                                                       "answer_start": 3}])))
    with pytest.raises(DataFormatError) as err:
        read_squad_json(path)
    assert str(err.value) == (f"{path}: data[0].paragraphs[0].qas[0]: question 'q1': answer 'Katze' at answer_start 3 "
                              "does not match: the context has ' Katz' there")
    assert read_squad_json(path, check_spans=False)["answers"][0]["answer_start"] == [3]
    far = write(tmp_path / "xquad.en.json", json.dumps(squad("Short.", [{"text": "x", "answer_start": 50}])))
    with pytest.raises(DataFormatError, match=r"outside the context \(6 characters\)"):
        read_squad_json(far)


@pytest.mark.parametrize(("document", "message"), [
    ({"version": "1.1"}, r"top level: missing key 'data'"),
    ({"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}, r"data\[0\]\.paragraphs\[0\]: missing key 'context'"),
    (squad("ctx", [{"text": "ctx"}]), r"qas\[0\]\.answers\[0\]: missing key 'answer_start'"),
    (squad("ctx", [{"text": "ctx", "answer_start": "0"}]), r"answers\[0\]\.answer_start: expected int, found str"),
    (squad("ctx", []), r"question 'q1' has no answers \(SQuAD v2 unanswerable"),
    (squad("ctx", [{"text": "", "answer_start": 0}]), r"empty answer text; 1 of 1 questions have one"),
])
def test_squad_structure_errors_name_key_and_file(tmp_path: Path, document: dict, message: str) -> None:
    path = write(tmp_path / "xquad.es.json", json.dumps(document))
    with pytest.raises(DataFormatError, match=r"xquad\.es\.json: .*" + message):
        read_squad_json(path)


def test_squad_malformed_json_and_duplicate_ids(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"xquad\.es\.json:2: malformed JSON"):
        read_squad_json(write(tmp_path / "xquad.es.json", '{"data":\n [,]}'))
    doc = squad("abc abc", [{"text": "abc", "answer_start": 0}])
    doc["data"][0]["paragraphs"][0]["qas"] *= 3
    path = write(tmp_path / "tydiqa.goldp.en.train.json", json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"question id 'q1' occurs 3 times .* set on_duplicate_id: rename"):
        read_squad_json(path)
    ds = load_qa({"file": path, "on_duplicate_id": "rename"})
    assert ds["id"] == ["q1", "q1-2", "q1-3"] and set(ds["lang"]) == {"en"}
    with pytest.raises(ConfigError, match="on_duplicate_id must be one of"):
        read_squad_json(path, on_duplicate_id="skip")


def test_load_qa_from_hub_squad_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    features = datasets.Features({
        "id": datasets.Value("string"), "title": datasets.Value("string"), "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answers": datasets.Sequence({"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}),
    })  # fmt: skip
    rows = {"id": ["a", "b"], "title": ["T", "T"], "context": ["Hola mundo", "Adiós"], "question": ["?", "?"],
            "answers": [{"text": ["mundo"], "answer_start": [5]}, {"text": ["Adiós"], "answer_start": [0]}]}
    calls = fake_load_dataset(monkeypatch, qa_data, datasets.Dataset.from_dict(rows, features=features))
    ds = load_qa({"hub": "google/xquad", "name": "xquad.es", "split": "validation"})
    assert calls == [("google/xquad", "xquad.es", "validation")]
    assert ds.features == QA_FEATURES and ds["lang"] == ["es", "es"] and ds[0]["answers"]["answer_start"] == [5]
    rows["answers"][1]["answer_start"] = [1]
    fake_load_dataset(monkeypatch, qa_data, datasets.Dataset.from_dict(rows, features=features))
    with pytest.raises(DataFormatError, match=r"hub dataset 'mlqa' \('mlqa.de.de', split 'test'\): row 1: question "
                                              r"'b': answer 'Adiós' at answer_start 1"):
        load_qa({"hub": "mlqa", "name": "mlqa.de.de", "split": "test"})
    assert load_qa({"hub": "mlqa", "name": "mlqa.de.de", "split": "test", "check_spans": False})["lang"][0] == "de"


# -------------------------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_ner(shared_data: Path) -> dict[str, datasets.Dataset]:
    ner = shared_data / "ner"
    return {"esp.testb": read_conll(ner / "conll_yuto16" / "conll2002" / "esp.testb"),
            "eng.testa": read_conll(ner / "conll_yuto16" / "conll2003" / "eng.testa"),
            "ned.testa": read_conll(ner / "conll_yuto16" / "conll2002" / "ned.testa"),
            "wikiann.de.dev": load_ner(ner / "wikiann_rahimi" / "de" / "dev")}


def _entity_initial_i(ds: datasets.Dataset) -> int:
    return sum(tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:])
               for tags in ds["ner_tags"] for prev, tag in zip(["O", *tags], tags))


def test_real_conll_and_wikiann(real_ner: dict[str, datasets.Dataset]) -> None:
    esp, eng, ned, wiki = (real_ner[k] for k in ("esp.testb", "eng.testa", "ned.testa", "wikiann.de.dev"))
    assert len(esp) == 1517 and set(esp["lang"]) == {"es"}
    assert esp[0]["tokens"][:2] == ["La", "Coruña"]  # Latin-1 decoded
    assert len(eng) == 3250 and sum(map(len, eng["tokens"])) == 51362 and set(eng["lang"]) == {"en"}
    assert len(ned) == 2895 and set(ned["lang"]) == {"nl"}
    assert len(wiki) == 10000 and set(wiki["lang"]) == {"de"}
    for ds in (esp, eng, ned, wiki):
        assert _entity_initial_i(ds) == 0  # IOB2 everywhere (eng converted from IOB1)
    assert ner_label_list(wiki["ner_tags"]) == WIKIANN_TAGS and ner_label_list(esp["ner_tags"]) == CONLL_TYPES


def test_real_label_set_mismatch_conll_vs_wikiann(real_ner: dict[str, datasets.Dataset]) -> None:
    labels = ner_label_list(real_ner["wikiann.de.dev"]["ner_tags"])
    with pytest.raises(ConfigError, match=r"esp\.testb: label\(s\) not in the training label list .* entity type "
                                          r"'MISC' \(B-MISC \d+x, I-MISC \d+x\)"):
        apply_label_mapping(real_ner["esp.testb"], labels, None, source="esp.testb")
    mapped = apply_label_mapping(real_ner["esp.testb"], labels, {"MISC": "O"}, source="esp.testb")
    assert {t for tags in mapped["ner_tags"] for t in tags} <= set(labels) and len(mapped) == 1517


def test_real_xnli(shared_data: Path) -> None:
    test_es = load_nli(shared_data / "nli" / "xnli_test_labeled_derived" / "test-es.tsv")
    assert len(test_es) == 5010 and set(test_es["lang"]) == {"es"}
    assert {label: test_es["label"].count(label) for label in NLI_LABELS} == dict.fromkeys(NLI_LABELS, 1670)
    dev_en = load_nli({"file": str(shared_data / "nli" / "xnli_xtreme" / "dev-en.tsv")}, lang="en")
    assert len(dev_en) == 2490 and not any(label.endswith("\r") for label in dev_en["label"])


def test_real_xquad_all_languages_pass_strict_spans(shared_data: Path) -> None:
    files = sorted((shared_data / "qa" / "xquad").glob("xquad.*.json"))
    assert len(files) == 12
    for path in files:
        ds = read_squad_json(path)
        assert len(ds) == 1190 and ds[0]["lang"] == path.name.split(".")[1], path


def test_real_tydiqa_ids_and_blank_dev_answers(shared_data: Path) -> None:
    tydiqa = shared_data / "qa" / "tydiqa_goldp"
    train = tydiqa / "tydiqa.goldp.en.train.json"
    with pytest.raises(DataFormatError, match="question id '0' occurs 1651 times"):
        read_squad_json(train)  # this copy's ids are per-document indices: 89 distinct ids for 3,696 questions
    ds = read_squad_json(train, on_duplicate_id="rename")
    assert len(ds) == 3696 == len(set(ds["id"])) and set(ds["lang"]) == {"en"}
    with pytest.raises(DataFormatError, match="empty answer text; 440 of 440 questions"):
        read_squad_json(tydiqa / "tydiqa.goldp.en.dev.json")  # this copy of the dev files has no gold answers
