"""`amber-align diagnose …` and `refine` end to end: numbers, tables and plots on disk; bad input exits 2."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_model_dir

from amber_align.cli import main
from amber_align.demo import demo_dir

DATA = demo_dir() / "data"
CORPUS = ["--file", str(DATA / "es-en.txt"), "--format", "bar", "--src_lang", "es", "--tgt_lang", "en",
          "--alignments", str(DATA / "es-en.pharaoh"), "--max_pairs", "30", "--pretokenized"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return tiny_model_dir("mbert", root / "before"), tiny_model_dir("mbert", root / "after", initializer_range=0.05)


def test_word_retrieval_writes_results_per_model(tmp_path, models, capsys):
    before, after = models
    out = tmp_path / "wr"
    assert main(["diagnose", "word-retrieval", "--model", f"before={before}", "--model", f"after={after}",
                 *CORPUS, "--output_dir", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.split("wrote results")[0])
    for name in ("before", "after"):
        saved = json.loads((out / name / "results.json").read_text())
        scores = saved["tasks"]["word-retrieval"]["languages"]["es"]
        assert scores == pytest.approx(printed[name]) and 0 <= scores["xx2en_accuracy"] <= 100
        assert (out / name / "word-retrieval.png").exists()
    assert main(["compare", str(out / "before"), str(out / "after"), "--output_dir", str(tmp_path / "cmp")]) == 0


def test_distances_table_and_histogram(tmp_path, models, capsys):
    before, after = models
    out = tmp_path / "dist"
    assert main(["diagnose", "distances", "--model", f"before={before}", "--model", f"after={after}", *CORPUS,
                 "--output_dir", str(out)]) == 0
    assert "before" in capsys.readouterr().out
    saved = json.loads((out / "distances.json").read_text())
    assert set(saved["summary"]) == {"before", "after"}
    assert saved["summary"]["before"]["num_links"] > 10
    assert (out / "distances.png").read_bytes()[:4] == b"\x89PNG" and (out / "distances.md").exists()


def test_aer_hand_computed_and_per_sentence(tmp_path, capsys):
    """Gold (1-based) sure {1-1, 3-2}, possible {2-3}; predicted (0-based) {0-0, 1-2, 2-2} on line 1, {0-0} on 2.
    Line 2 gold sure {1-1}. |A| = 4, |S| = 3, |A∩S| = 2 (0-0 twice), |A∩P| = 3 (+ 1-2 possible):
    AER = 1 − (2 + 3) / (4 + 3) = 2/7 = 28.57 %; line 1: 1 − (1 + 2)/(3 + 2) = 40 %, line 2: 0 %."""
    gold = tmp_path / "gold"
    gold.write_text("1-1 2p3 3-2\n1-1\n", encoding="utf-8")
    pred = tmp_path / "pred"
    pred.write_text("0-0 1-2 2-2\n0-0\n", encoding="utf-8")
    assert main(["aer", "--pred", str(pred), "--gold", str(gold), "--output_dir", str(tmp_path / "a")]) == 0
    scores = json.loads(capsys.readouterr().out.split("wrote results")[0])
    assert scores["aer"] == pytest.approx(100 * 2 / 7, abs=0.01)
    lines = (tmp_path / "a" / "aer_per_sentence.tsv").read_text().splitlines()
    assert lines == ["line\taer", "1\t40.00", "2\t0.00"]
    assert (tmp_path / "a" / "aer.png").exists()


def test_bli_on_a_hand_made_dictionary(tmp_path, models, capsys):
    before, _ = models
    dic = tmp_path / "muse"
    dic.mkdir()
    (dic / "es-en.0-5000.txt").write_text("el the\nde of\nla the\ny and\n", encoding="utf-8")
    (dic / "es-en.5000-6500.txt").write_text("en in\nque that\nzzzunseen nothing\n", encoding="utf-8")
    assert main(["diagnose", "bli", "--model", f"m={before}", "--lang", "es", "--dictionary_dir", str(dic), *CORPUS,
                 "--output_dir", str(tmp_path / "b")]) == 0
    result = json.loads(capsys.readouterr().out.split("wrote results")[0])["m"]
    assert result["coverage"] < 100  # 'zzzunseen' has no context: counted wrong, lowers coverage
    assert (tmp_path / "b" / "m" / "results.json").exists()


def test_refine_writes_maps_that_load(tmp_path, models, capsys):
    from amber_align.refinement.wang import load_refinement

    before, _ = models
    assert main(["refine", "--model", str(before), *CORPUS, "--layers", "1,2", "--tau", "0",
                 "--output_dir", str(tmp_path / "maps")]) == 0
    maps = load_refinement(tmp_path / "maps")
    assert sorted(maps.maps) == [1, 2]


def test_diagnose_bad_input_exits_2(tmp_path, models, capsys):
    before, _ = models
    assert main(["diagnose", "word-retrieval", "--model", str(before), "--src_file", "a.es",
                 "--output_dir", str(tmp_path)]) == 2
    assert "give the parallel corpus as --src_file and --tgt_file, or as --file" in capsys.readouterr().err
    assert main(["diagnose", "distances", "--model", f"x={before}", "--model", f"x={before}", *CORPUS,
                 "--output_dir", str(tmp_path)]) == 2
    assert "the name 'x' is given twice" in capsys.readouterr().err
    assert main(["diagnose", "bli", "--model", str(before), *CORPUS, "--output_dir", str(tmp_path)]) == 2
    assert "diagnose bli needs --lang" in capsys.readouterr().err
