"""load_parallel: every input form, the filters and their counts, alignments, and each error with its message."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import pytest

from amber_align.data import parallel as parallel_module
from amber_align.data.parallel import (
    PARALLEL_FEATURES,
    ParallelSource,
    load_parallel,
    normalize_for_dedup,
    read_eval_sentences,
)
from amber_align.data.readers import KeptRow
from amber_align.errors import AlignmentIndexError, ConfigError, DataFormatError

ES = ["¿Qué tal?", "Hola mundo", "El gato duerme."]
EN = ["How are you?", "Hello world", "The cat sleeps."]


def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def two_files(tmp_path: Path, src: list[str] = ES, tgt: list[str] = EN, names=("c.spa", "c.eng")) -> tuple[str, str]:
    return (write(tmp_path / names[0], "".join(s + "\n" for s in src)),
            write(tmp_path / names[1], "".join(t + "\n" for t in tgt)))


# ------------------------------------------------------------------------------------------------------ input forms
def test_two_files_rows_and_schema(tmp_path: Path) -> None:
    a, b = two_files(tmp_path)
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b))
    assert ds.features == PARALLEL_FEATURES and list(KeptRow._fields) == list(PARALLEL_FEATURES)
    assert ds["src"] == ES and ds["tgt"] == EN
    assert ds["src_lang"] == ["es"] * 3 and ds["tgt_lang"] == ["en"] * 3 and ds["pair"] == ["es-en"] * 3
    assert ds[0]["src_words"] == ["¿", "Qué", "tal", "?"] and ds[0]["tgt_words"] == ["How", "are", "you", "?"]
    assert ds["links"] == [[], [], []] and ds["has_links"] == [False] * 3 and ds["line"] == [1, 2, 3]


@pytest.mark.parametrize(("names", "langs"), [
    (("x.spa", "x.eng"), ("es", "en")),
    (("spa_Latn.devtest", "eng_Latn.devtest"), ("es", "en")),
    (("newstest2019-ref.zho-CN.txt", "newstest2019-src.eng.txt"), ("zh", "en")),
    (("train.de", "train.en"), ("de", "en")),
    (("esp.train", "eng.train"), ("es", "en")),
])
def test_languages_inferred_from_file_names(tmp_path: Path, names, langs) -> None:
    a, b = two_files(tmp_path, names=names)
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b))
    assert (ds[0]["src_lang"], ds[0]["tgt_lang"]) == langs


def test_language_codes_are_normalised(tmp_path: Path) -> None:
    a, b = two_files(tmp_path, names=("a.txt", "b.txt"))
    source = ParallelSource(src_file=a, tgt_file=b, src_lang="spa", tgt_lang="eng")
    assert (source.src_lang, source.tgt_lang) == ("es", "en")
    assert load_parallel(source)["pair"] == ["es-en"] * 3


def test_missing_language_that_cannot_be_inferred(tmp_path: Path) -> None:
    a, b = two_files(tmp_path, names=("a.txt", "b.en"))
    with pytest.raises(ConfigError, match="src_lang is not set and cannot be inferred from the file name 'a.txt'"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b))
    bar = write(tmp_path / "c.txt", "a ||| b\n")
    with pytest.raises(ConfigError, match="tgt_lang is not set"):
        load_parallel(ParallelSource(file=bar, src_lang="es"))


def test_bar_file(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.src-tgt", "".join(f"{s} ||| {t}\n" for s, t in zip(ES, EN)))
    ds = load_parallel(ParallelSource(file=path, src_lang="es", tgt_lang="en"))
    assert ds["src"] == ES and ds["tgt"] == EN
    same = load_parallel({"file": path, "format": "triple-bar", "src_lang": "es", "tgt_lang": "en"})
    assert same["src_words"] == ds["src_words"]


def test_tsv_with_header_and_positions(tmp_path: Path) -> None:
    rows = "".join(f"{i}\t{s}\t{t}\n" for i, (s, t) in enumerate(zip(ES, EN)))
    with_header = write(tmp_path / "h.tsv", "id\tspanish\tenglish\n" + rows)
    ds = load_parallel(ParallelSource(file=with_header, src_column="spanish", tgt_column="english",
                                      src_lang="es", tgt_lang="en"))
    assert ds["src"] == ES and ds["tgt"] == EN and ds["line"] == [2, 3, 4]
    no_header = write(tmp_path / "n.tsv", rows)
    ds = load_parallel(ParallelSource(file=no_header, src_column=1, tgt_column="2", src_lang="es", tgt_lang="en"))
    assert ds["src"] == ES and ds["line"] == [1, 2, 3]


def test_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = write(tmp_path / "p.jsonl", "".join(json.dumps({"es": s, "en": t, "n": 1}, ensure_ascii=False) + "\n"
                                               for s, t in zip(ES, EN)))
    ds = load_parallel(ParallelSource(file=jsonl, src_column="es", tgt_column="en", src_lang="es", tgt_lang="en"))
    assert ds["src"] == ES and ds["tgt"] == EN
    csv_text = 'src,tgt\n"Hola, amigo","Hello, friend"\n"dos\nlíneas","two ""lines"""\nfin,end\n'
    ds = load_parallel(ParallelSource(file=write(tmp_path / "p.csv", csv_text), src_lang="es", tgt_lang="en"))
    assert ds["src"] == ["Hola, amigo", "dos\nlíneas", "fin"] and ds["tgt"][1] == 'two "lines"'
    assert ds["line"] == [2, 3, 5]  # the physical line where each record starts


def test_line_endings_bom_and_unicode_line_separators(tmp_path: Path) -> None:
    a = write(tmp_path / "a.es", b"\xef\xbb\xbfHola\r\nuno\xe2\x80\xa8dos\r\nfin")  # BOM, CRLF, U+2028, no final \n
    b = write(tmp_path / "b.en", "Hello\none two\nend\n")
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b))
    assert ds["src"] == ["Hola", "uno\u2028dos", "fin"] and ds["tgt"] == ["Hello", "one two", "end"]
    assert ds[1]["src_words"] == ["uno", "dos"]


def test_many_sources_are_concatenated(tmp_path: Path) -> None:
    a, b = two_files(tmp_path)
    bar = write(tmp_path / "de.txt", "Hallo Welt ||| Hello world\n")
    ds = load_parallel([ParallelSource(src_file=a, tgt_file=b),
                        {"file": bar, "src_lang": "deu", "tgt_lang": "eng"}])
    assert ds["pair"] == ["es-en"] * 3 + ["de-en"] and ds["line"] == [1, 2, 3, 1]


def test_plain_dataset_input_and_round_trip(tmp_path: Path) -> None:
    plain = datasets.Dataset.from_dict({"src": ES, "tgt": EN, "src_lang": ["spa", "es", "ES"], "tgt_lang": ["eng"] * 3})
    ds = load_parallel(plain)
    assert ds["pair"] == ["es-en"] * 3 and ds["has_links"] == [False] * 3
    a, b = two_files(tmp_path)
    al = write(tmp_path / "al", "0-0 2-3\n0-0 1-1\n\n")
    first = load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments=al))
    again = load_parallel(first)  # a loaded dataset reads back unchanged, links included
    assert again.to_dict() == {**first.to_dict(), "line": [1, 2, 3]}
    bad = first.map(lambda row: {"links": [[9, 0]]})
    with pytest.raises(DataFormatError, match=r"link \[9, 0\] is outside the pair \(4 source words"):
        load_parallel(bad)


def test_plain_dataset_missing_columns() -> None:
    ds = datasets.Dataset.from_dict({"src": ["a"], "target": ["b"], "src_lang": ["es"]})
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['tgt', 'tgt_lang'\].*present: \['src', 'target', "
                                             r"'src_lang'\]"):
        load_parallel(ds)
    with pytest.raises(ConfigError, match="DatasetDict with splits"):
        load_parallel(datasets.DatasetDict({"train": ds}))


def test_dataset_from_disk_and_local_loader(tmp_path: Path) -> None:
    saved = datasets.Dataset.from_dict({"es": ES, "en": EN})
    datasets.DatasetDict({"train": saved, "dev": saved.select([0])}).save_to_disk(str(tmp_path / "dd"))
    ds = load_parallel(ParallelSource(dataset=str(tmp_path / "dd"), split="dev", src_column="es", tgt_column="en",
                                      src_lang="es", tgt_lang="en"))
    assert ds["src"] == ES[:1]
    with pytest.raises(ConfigError, match=r"no split 'test'; splits: \['train', 'dev'\]"):
        load_parallel(ParallelSource(dataset=str(tmp_path / "dd"), split="test", src_lang="es", tgt_lang="en"))
    folder = tmp_path / "jsonl_dir"
    folder.mkdir()
    write(folder / "train.jsonl", "".join(json.dumps({"src": s, "tgt": t, "src_lang": "spa", "tgt_lang": "eng"}) + "\n"
                                          for s, t in zip(ES, EN)))
    ds = load_parallel(ParallelSource(dataset=str(folder)))  # languages from the dataset's own columns
    assert ds["src"] == ES and ds["pair"] == ["es-en"] * 3
    with pytest.raises(ConfigError, match="is a local file: give it as file="):
        load_parallel(ParallelSource(dataset=str(folder / "train.jsonl")))


def test_hub_id_goes_to_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load_dataset(name, config=None, *, split):
        calls.append((name, config, split))
        return datasets.Dataset.from_dict({"translation_es": ["Hola"], "translation_en": ["Hello"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_parallel(ParallelSource(dataset="someone/corpus", dataset_config="es-en", split="validation",
                                      src_column="translation_es", tgt_column="translation_en",
                                      src_lang="es", tgt_lang="en"))
    assert calls == [("someone/corpus", "es-en", "validation")] and ds["src"] == ["Hola"]


# ------------------------------------------------------------------------------------------------ filters and counts
def test_skips_empty_and_long_pairs_never_truncates(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    long = " ".join(["palabra"] * 5)
    a, b = two_files(tmp_path, ["uno", "", long, "dos", "  ", "tres"], ["one", "x", "five words", "two", "y", "three"])
    caplog.set_level(logging.INFO, logger="amber_align")
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b), max_words=4)
    assert ds["src"] == ["uno", "dos", "tres"] and ds["line"] == [1, 4, 6]
    assert f"{a} + {b}: kept 3 of 6 pairs (skipped 2 empty, 1 over 4 words, 0 duplicates" in caplog.text
    assert len(load_parallel(ParallelSource(src_file=a, tgt_file=b), max_words=None)) == 4
    with pytest.raises(ConfigError, match="max_words"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b), max_words=0)


def test_keep_empty_keeps_every_line(tmp_path: Path) -> None:
    a, b = two_files(tmp_path, ["uno", "", "dos tres"], ["one", "zero", "two three"])
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b), max_words=None, keep_empty=True)
    assert ds["src_words"] == [["uno"], [], ["dos", "tres"]] and ds["line"] == [1, 2, 3]


def test_dedup_drops_pairs_with_either_side_an_eval_sentence(tmp_path: Path, caplog) -> None:
    a, b = two_files(tmp_path)
    evals = write(tmp_path / "eval.txt", "  HOLA   mundo \n\nthe cat\u00a0SLEEPS.\n")
    found = read_eval_sentences([evals])
    assert found == {"hola mundo", "the cat sleeps."}
    caplog.set_level(logging.INFO, logger="amber_align")
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b), dedup_texts=found)
    assert ds["src"] == ES[:1] and "2 duplicates of evaluation sentences" in caplog.text
    assert load_parallel(ParallelSource(src_file=a, tgt_file=b), dedup_texts=["¿QUÉ  tal?"])["src"] == ES[1:]
    assert normalize_for_dedup("  Straße\u202fX \t") == "strasse x"


def test_max_pairs_counts_after_filtering(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = two_files(tmp_path, ["", "uno", "dos", "tres"], ["zero", "one", "two", "three"])
    caplog.set_level(logging.INFO, logger="amber_align")
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b, max_pairs=2))
    assert ds["src"] == ["uno", "dos"]
    assert "kept 2 of 3 pairs (skipped 1 empty" in caplog.text and "stopped reading at max_pairs=2" in caplog.text
    bad_after = write(tmp_path / "p.txt", "uno ||| one\nno separator here\n")  # never read: max_pairs stops first
    assert load_parallel(ParallelSource(file=bad_after, src_lang="es", tgt_lang="en", max_pairs=1))["src"] == ["uno"]


def test_pretokenized_splits_on_whitespace_only(tmp_path: Path) -> None:
    a, b = two_files(tmp_path, ["¿Qué tal ?"], ["How are you?"])
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b), pretokenized=True)
    assert ds[0]["src_words"] == ["¿Qué", "tal", "?"] and ds[0]["tgt_words"] == ["How", "are", "you?"]


def test_num_proc_gives_the_same_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two_files(tmp_path, ES * 20, EN * 20)
    serial = load_parallel(ParallelSource(src_file=a, tgt_file=b))
    monkeypatch.setattr(parallel_module, "_PARALLEL_TOKENIZE_MIN", 10)
    assert load_parallel(ParallelSource(src_file=a, tgt_file=b), num_proc=2).to_dict() == serial.to_dict()


# -------------------------------------------------------------------------------------------------------- alignments
def test_alignments_are_read_before_filtering(tmp_path: Path) -> None:
    a, b = two_files(tmp_path, ["uno", "", "el gato"], ["one", "x", "the cat"])
    al = write(tmp_path / "al.txt", "0-0\n\n0-0 1-1\n")
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments=al))
    assert ds["links"] == [[[0, 0]], [[0, 0], [1, 1]]] and ds["has_links"] == [True, True]
    one_based = write(tmp_path / "al1.txt", "1-1\n\n1-2 2-1\n")
    ds = load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments=one_based, alignments_one_based=True))
    assert ds["links"] == [[[0, 0]], [[0, 1], [1, 0]]]


def test_alignment_errors(tmp_path: Path) -> None:
    a, b = two_files(tmp_path, ["uno", "el gato"], ["one", "the cat"])
    out_of_range = write(tmp_path / "bad.txt", "0-0\n0-2\n")
    with pytest.raises(AlignmentIndexError, match="bad.txt:2"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments=out_of_range))
    with pytest.raises(ConfigError, match="alignments 'nope.txt' cannot be read"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments="nope.txt"))
    short = write(tmp_path / "short.txt", "0-0\n")
    with pytest.raises(DataFormatError, match=r"short\.txt:2: alignment file ends at line 1 but the corpus"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments=short))
    long = write(tmp_path / "long.txt", "0-0\n0-0\n1-1\n")
    with pytest.raises(DataFormatError, match=r"long\.txt:3: alignment file has more lines than the corpus"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments=long))
    with_ids = write(tmp_path / "ids.txt", "s1\t0-0\ns2\t0-0 1-1\n")  # simalign's leading id column is dropped
    assert load_parallel(ParallelSource(src_file=a, tgt_file=b, alignments=with_ids))["links"] == [[[0, 0]],
                                                                                                   [[0, 0], [1, 1]]]


# ------------------------------------------------------------------------------------------------------------ errors
def test_line_counts_differ(tmp_path: Path) -> None:
    a, b = two_files(tmp_path, ES, EN[:2], names=("a.es", "b.en"))
    with pytest.raises(DataFormatError, match=r"line counts differ: .*a\.es has 3 lines, .*b\.en has 2") as err:
        load_parallel(ParallelSource(src_file=a, tgt_file=b))
    assert str(err.value).startswith(f"{a}:3: ")  # the longer file, at its first line without a partner
    longer = write(tmp_path / "c.en", "".join(t + "\n" for t in EN + ["x"]))
    with pytest.raises(DataFormatError, match=r"a\.es has 3 lines, .*c\.en has 4") as err:
        load_parallel(ParallelSource(src_file=a, tgt_file=longer))
    assert str(err.value).startswith(f"{longer}:4: ")


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    a = write(tmp_path / "a.es", "uno\ndos\n".encode() + b"caf\xe9\n")  # Latin-1 é on line 3
    b = write(tmp_path / "b.en", "one\ntwo\ncafe\n")
    with pytest.raises(DataFormatError, match=r"a\.es:3: invalid UTF-8 \(byte 0xe9 at column 4\)"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b))
    with pytest.raises(DataFormatError, match=r"a\.es:3: invalid UTF-8"):
        read_eval_sentences([a])


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])
def test_empty_files(tmp_path: Path, content: bytes) -> None:
    a, b = write(tmp_path / "a.es", content), write(tmp_path / "b.en", content)
    with pytest.raises(DataFormatError, match="no pairs"):
        load_parallel(ParallelSource(src_file=a, tgt_file=b))
    with pytest.raises(DataFormatError, match="no pairs"):
        load_parallel(ParallelSource(file=write(tmp_path / "e.tsv", "src\ttgt\n"), src_lang="es", tgt_lang="en"))


@pytest.mark.parametrize(("line", "found"), [("Hola Hello", "no ' ||| ' separator"),
                                             ("a ||| b ||| c", "2 ' ||| ' separators"), ("", "no ' ||| ' separator")])
def test_bar_separator_errors(tmp_path: Path, line: str, found: str) -> None:
    path = write(tmp_path / "p.txt", f"uno ||| one\n{line}\n")
    with pytest.raises(DataFormatError, match=rf"p\.txt:2: expected 'src \|\|\| tgt', found {found}"):
        load_parallel(ParallelSource(file=path, src_lang="es", tgt_lang="en"))


def test_tsv_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "p.tsv", "src\ttgt\nuno\tone\ndos\tt\two\n")
    with pytest.raises(DataFormatError, match=r"p\.tsv:3: expected 2 tab-separated fields, found 3"):
        load_parallel(ParallelSource(file=path, src_lang="es", tgt_lang="en"))
    with pytest.raises(DataFormatError, match=r"p\.tsv:1: column\(s\) \['es'\] not in the header row; columns found: "
                                              r"\['src', 'tgt'\]"):
        load_parallel(ParallelSource(file=path, src_column="es", src_lang="es", tgt_lang="en"))
    with pytest.raises(DataFormatError, match="column position 5 requested"):
        load_parallel(ParallelSource(file=path, src_column="0", tgt_column="5", src_lang="es", tgt_lang="en"))


def test_jsonl_errors(tmp_path: Path) -> None:
    good = '{"src": "uno", "tgt": "one"}\n'
    cases = [
        ('{"src": "dos", "tgt": }\n', r"p\.jsonl:2: malformed JSON"),
        ('{"src": "dos", "target": "two"}\n', r"p\.jsonl:2: no column 'tgt'; columns found: \['src', 'target'\]"),
        ('{"src": "dos", "tgt": 2}\n', r"p\.jsonl:2: column 'tgt' must hold text, found int"),
        ('{"src": "\\ud800", "tgt": "x"}\n', r"p\.jsonl:2: column 'src': lone surrogate"),
        ('["dos", "two"]\n', r"p\.jsonl:2: expected a JSON object, found list"),
        ("\n", r"p\.jsonl:2: malformed JSON \(blank line\)"),
    ]
    for bad, message in cases:
        path = write(tmp_path / "p.jsonl", good + bad)
        with pytest.raises(DataFormatError, match=message):
            load_parallel(ParallelSource(file=path, src_lang="es", tgt_lang="en"))


def test_csv_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", 'src,tgt\nuno,one\ndos,two,extra\n')
    with pytest.raises(DataFormatError, match=r"p\.csv:3: expected 2 comma-separated fields, found 3"):
        load_parallel(ParallelSource(file=path, src_lang="es", tgt_lang="en"))


def test_source_definition_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one input form.*got none"):
        ParallelSource()
    with pytest.raises(ConfigError, match="got src_file \\+ tgt_file and file"):
        ParallelSource(src_file="a", tgt_file="b", file="c")
    with pytest.raises(ConfigError, match="got file and dataset"):
        ParallelSource(file="c", dataset="d")
    with pytest.raises(ConfigError, match="src_file and tgt_file go together: tgt_file is missing"):
        ParallelSource(src_file="a")
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        ParallelSource(file="c", format="xml")
    with pytest.raises(ConfigError, match="read as 'lines'"):
        ParallelSource(src_file="a", tgt_file="b", format="tsv")
    with pytest.raises(ConfigError, match="max_pairs"):
        ParallelSource(file="c", max_pairs=-1)
    with pytest.raises(ConfigError, match="src_lang: language code .e s. is not a language code"):
        ParallelSource(file="c", src_lang="e s")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['source_file'\] in parallel source; valid keys: "
                                          r"\['src_file', 'tgt_file', 'file'"):
        ParallelSource.from_dict({"source_file": "a"})
    with pytest.raises(ConfigError, match="not a path"):
        load_parallel("corpus.tsv")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no parallel sources"):
        load_parallel([])
    with pytest.raises(ConfigError, match="src_file 'nope.es' cannot be read"):
        load_parallel(ParallelSource(src_file="nope.es", tgt_file="nope.en"))


def test_format_inferred_from_extension() -> None:
    assert ParallelSource(file="x.TSV").form() == "tsv"
    assert ParallelSource(file="x.json").form() == "jsonl"
    assert ParallelSource(file="x.csv").form() == "csv"
    assert ParallelSource(file="x.src-tgt").form() == "bar"
    assert ParallelSource(file=Path("x.jsonl")).file == "x.jsonl"


# ---------------------------------------------------------------------------------------------------------- real data
@pytest.mark.parametrize(("code", "pairs", "overlap"), [("spa", 16583, 59), ("deu", 17565, 53), ("fra", 12681, 58)])
def test_tatoeba_challenge_dedup_against_xsr(shared_data: Path, code: str, pairs: int, overlap: int) -> None:
    """README "Leakage traps": drop Tatoeba-Challenge pairs either side of which is in the XSR test.

    The README measured es 59, de 52, fr 57. We get es 59, de 53, fr 58: the extra de and fr pairs are real
    duplicates whose XSR copy has a no-break space (de "was\\u00a0 jeder Beliebige\\u00a0 tun", fr
    "boire\\u202f?") where the training copy has a plain space; whitespace normalisation (str.split) collapses both.
    """
    test_dir = shared_data / "parallel" / "opus_mt_testsets" / f"eng-{code}"
    xsr = shared_data / "xsr" / "tatoeba"
    evals = read_eval_sentences([xsr / f"tatoeba.{code}-eng.{code}", xsr / f"tatoeba.{code}-eng.eng"])
    source = ParallelSource(src_file=str(test_dir / f"tatoeba-test-v2021-08-07.{code}"),
                            tgt_file=str(test_dir / f"tatoeba-test-v2021-08-07.eng"))
    ds = load_parallel(source, max_words=None, dedup_texts=evals)
    assert len(ds) == pairs - overlap
    assert set(ds["pair"]) == {{"spa": "es-en", "deu": "de-en", "fra": "fr-en"}[code]}
    kept = {normalize_for_dedup(t) for t in ds["src"]} | {normalize_for_dedup(t) for t in ds["tgt"]}
    assert not kept & evals


@pytest.mark.parametrize("data, message", [
    (b"ab\nc\x00d\n", r"f\.txt:2: NUL byte at column 2"),
    (b"ab\rcd\r", r"f\.txt:1: carriage return inside the line \(column 3\): CR-only"),
    ("ab\ncd\n".encode("utf-16"), r"f\.txt:1: a UTF-16 file \(byte-order mark ff fe\); convert it to UTF-8"),
    ("ab\n".encode("utf-32"), r"f\.txt:1: a UTF-32 file"),
])
def test_nul_cr_only_and_utf16_are_named_by_both_line_readers(tmp_path, data, message):
    """Issue 23 item 7: NUL bytes reached the tokenizer, CR-only files were 'one line', UTF-16 was told latin-1."""
    from amber_align.io_utils import iter_text_lines, read_text_lines

    path = tmp_path / "f.txt"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=message):
        list(iter_text_lines(path))
    with pytest.raises(DataFormatError, match=message):
        read_text_lines(path, fallback="latin-1")
