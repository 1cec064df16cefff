"""CJK and hyphenated words with gold alignments (tests/fixtures/word_alignment_cjk): without --pretokenized the
word splits cannot match a gold tokenized otherwise, and extract-alignments --gold refuses; gold links beyond a
line's word count are reported with file and line; with --pretokenized the indices are the gold's words."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import mbert_tokenizer, tiny_model, tiny_model_dir

from amber_align.cli import main
from amber_align.data.words import word_tokenize
from amber_align.errors import ConfigError, DataFormatError
from amber_align.extraction import WordAligner
from amber_align.extraction.stream import check_gold_matches_corpus, iter_corpus

CJK = Path(__file__).parent / "fixtures" / "word_alignment_cjk"


@pytest.mark.parametrize("pair, example", [("jaen", "'京都' -> '京 都'"), ("zhen", "'北京' -> '北 京'")])
def test_gold_tokenized_otherwise_is_refused_without_pretokenized(pair, example):
    corpus, gold = str(CJK / f"{pair}.src-tgt"), CJK / f"{pair}.gold"
    with pytest.raises(ConfigError, match=rf"3 of 3 corpus lines .*line \d: {example}.*--pretokenized"):
        check_gold_matches_corpus(gold, file=corpus)
    check_gold_matches_corpus(gold, file=corpus, pretokenized=True)  # whitespace words: the gold's indices fit


def test_hyphenated_words_alone_also_refuse(tmp_path):
    (tmp_path / "c").write_text("He cherry-picked them ||| Il a trié\n")
    (tmp_path / "g").write_text("1-1 2-3\n")
    with pytest.raises(ConfigError, match="'cherry-picked' -> 'cherry - picked'"):
        check_gold_matches_corpus(tmp_path / "g", file=str(tmp_path / "c"))


def test_gold_links_beyond_the_word_count_are_reported(tmp_path):
    gold = tmp_path / "zhen.gold"
    lines = (CJK / "zhen.gold").read_text().splitlines()
    gold.write_text("\n".join([lines[0], lines[1] + " 7-6", lines[2]]) + "\n")  # line 2 has 6 source words
    with pytest.raises(DataFormatError, match=r"zhen.gold.*2"):
        check_gold_matches_corpus(gold, file=str(CJK / "zhen.src-tgt"), pretokenized=True)
    short = tmp_path / "short.gold"
    short.write_text(lines[0] + "\n")
    with pytest.raises(DataFormatError):
        check_gold_matches_corpus(short, file=str(CJK / "zhen.src-tgt"), pretokenized=True)


def test_pretokenized_cjk_words_are_the_gold_words():
    pairs = list(iter_corpus(file=str(CJK / "jaen.src-tgt"), pretokenized=True))
    assert pairs[0][0][0] == "京都" and word_tokenize("京都") == ["京", "都"]  # what the default split would do
    aligner = WordAligner(tiny_model("mbert"), mbert_tokenizer(), layer=2, method="itermax")
    for (src, tgt), links in zip(pairs, aligner.iter_align(pairs)):
        assert links and all(i < len(src) and j < len(tgt) for i, j in links)


def test_cli_gold_without_pretokenized_exits_2_before_loading_the_model(tmp_path, capsys):
    rc = main(["extract-alignments", "--model", str(tmp_path / "no-model"), "--file", str(CJK / "zhen.src-tgt"),
               "--out", str(tmp_path / "o"), "--gold", str(CJK / "zhen.gold")])
    err = capsys.readouterr().err
    assert rc == 2 and "pass --pretokenized" in err and len(err.strip().splitlines()) == 1


def test_cli_pretokenized_cjk_with_gold_scores_and_writes_probabilities(tmp_path, capsys):
    model_dir = tiny_model_dir("mbert", tmp_path / "m")
    rc = main(["extract-alignments", "--model", str(model_dir), "--file", str(CJK / "zhen.src-tgt"), "--layer", "2",
               "--pretokenized", "--out", str(tmp_path / "o"), "--gold", str(CJK / "zhen.gold"),
               "--output_prob", str(tmp_path / "o.prob")])
    out = capsys.readouterr().out
    assert rc == 0 and '"aer"' in out
    links = [line.split() for line in (tmp_path / "o").read_text().splitlines()]
    probs = [line.split() for line in (tmp_path / "o.prob").read_text().splitlines()]
    assert [len(x) for x in links] == [len(x) for x in probs] and all(0 <= float(p) <= 1 for x in probs for p in x)


def test_extraction_without_pretokenized_warns_when_words_are_resplit(tmp_path, caplog):
    from amber_align.extraction.stream import extract_to_file

    aligner = WordAligner(tiny_model("mbert"), mbert_tokenizer(), layer=2)
    with caplog.at_level("WARNING"):
        extract_to_file(aligner, tmp_path / "o", file=str(CJK / "zhen.src-tgt"), progress=False)
    # the 3 Chinese sides and "no-win" on the English side of line 3
    assert "4 side(s) were split into other words" in caplog.text and "--pretokenized" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        extract_to_file(aligner, tmp_path / "p", file=str(CJK / "zhen.src-tgt"), pretokenized=True, progress=False)
    assert "split into other words" not in caplog.text
