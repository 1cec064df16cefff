"""The comparison recipe's Wang unit (recipes/comparison/wang_ner.py): feature-based NER on the frozen encoder with
and without refinement maps, its table (paired per-seed differences), and its place in the run-folder settings."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import load_recipe, tiny_model_dir

from amber_align.demo import demo_dir

compare = load_recipe("recipes/comparison/compare.py")
NER = Path(__file__).resolve().parent / "fixtures" / "tasks" / "ner"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a loaded 2-core machine: one intra-op thread is faster than two fighting for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_wang_layers_are_the_last_four():
    wang = load_recipe("recipes/comparison/wang_ner.py")
    assert wang.wang_layers(12) == (9, 10, 11, 12)  # Wang et al.'s 9-12 of mBERT
    assert wang.wang_layers(2) == (1, 2)
    assert wang.paired_delta([52.0, 61.0], [50.0, 60.0]) == pytest.approx((1.5, 0.5 ** 0.5))


def test_feature_ner_table_shows_both_conditions_and_the_paired_difference(tmp_path):
    compare._write(tmp_path / "results" / "none" / "ner_features.json", {
        "method": "none", "task": "ner_features", "layers": [9, 10, 11, 12], "seeds": [0, 1], "train_sentences": 100,
        "joint": {"en": [80.0, 82.0], "es": [50.0, 60.0], "nl": [40.0, 44.0]}, "refined": {"es": [52.0, 61.0]},
        "maps": {"es": {"pairs": 5, "links": 50, "links_fit": 40, "unmapped_words": 3}}})
    result = compare.aggregate(tmp_path, ["none"])
    row = next(line for line in result["markdown"].splitlines() if line.startswith("| none |"))
    assert row == "| none | 2 | 81.0 ± 1.4 | 55.0 ± 7.1 | 42.0 ± 2.8 | 56.5 ± 6.4 | +1.5 ± 0.7 |"
    assert "| es + maps | Δ es (paired) |" in result["markdown"]
    assert result["summary"]["none"]["ner_features"] == pytest.approx(48.5)  # (55 + 42) / 2, English left out
    assert result["summary"]["none"]["ner_features_delta_es"] == pytest.approx(1.5)


def _data_tree(root: Path) -> Path:
    conll = root / "ner" / "conll_yuto16"
    (conll / "conll2003").mkdir(parents=True)
    (conll / "conll2002").mkdir(parents=True)
    shutil.copy(NER / "eng.testa", conll / "conll2003" / "eng.train")
    shutil.copy(NER / "eng.testa", conll / "conll2003" / "eng.testb")
    shutil.copy(NER / "esp.testb", conll / "conll2002" / "esp.testb")
    shutil.copy(NER / "esp.testb", conll / "conll2002" / "ned.testb")
    return root


def _corpus(root: Path, n: int = 20) -> Path:
    lines = (demo_dir() / "data" / "es-en.txt").read_text(encoding="utf-8").splitlines()[:n]
    (root / "parallel").mkdir(parents=True)
    (root / "parallel" / "es-en.es").write_text("".join(f"{l.split(' ||| ')[0]}\n" for l in lines), encoding="utf-8")
    (root / "parallel" / "es-en.en").write_text("".join(f"{l.split(' ||| ')[1]}\n" for l in lines), encoding="utf-8")
    return root


def test_ner_features_unit_maps_only_languages_with_parallel_data_and_resumes(tmp_path):
    model = tiny_model_dir("mbert", tmp_path / "model")
    args = argparse.Namespace(out=tmp_path / "out", data=_data_tree(tmp_path / "data"),
                              corpus=_corpus(tmp_path / "corpus"), max_pairs=20, align_languages=("es",),
                              ner_seeds=[0, 1], ner_train_examples=None, ner_lr=5e-4, ner_epochs=3)
    result = compare.ner_features_unit("none", str(model), args)
    assert result["task"] == "ner_features" and result["layers"] == [1, 2] and result["seeds"] == [0, 1]
    assert sorted(result["joint"]) == ["en", "es", "nl"] and list(result["refined"]) == ["es"]  # no nl corpus
    for scores in [*result["joint"].values(), result["refined"]["es"]]:
        assert len(scores) == 2 and all(0.0 <= f <= 100.0 for f in scores)
    fit = result["maps"]["es"]
    assert fit["pairs"] == 20 and 0 < fit["links_fit"] <= fit["links"]
    path = tmp_path / "out" / "results" / "none" / "ner_features.json"
    assert json.loads(path.read_text()) == result
    assert compare.ner_features_unit("none", str(tmp_path / "missing"), args) == result  # a finished unit is kept


def test_ner_settings_are_fixed_once_feature_ner_has_a_result(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    args = argparse.Namespace(out=tmp_path, **{k: 1 for k in compare.SETTINGS})
    compare.check_settings(args, parser)
    args.ner_train_examples = 2  # no NER result yet: may change
    compare.check_settings(args, parser)
    compare._write(tmp_path / "results" / "none" / "ner_features.json", {"method": "none"})
    args.ner_train_examples = 3
    with pytest.raises(SystemExit):
        compare.check_settings(args, parser)
    assert "--ner_train_examples '2' there, '3' now" in capsys.readouterr().err


def test_one_tagger_per_seed_scores_both_conditions(tmp_path, monkeypatch):
    """Identity maps make the refined features the joint ones: the two conditions' scores must then be equal seed
    for seed (each seed's tagger scores both; a difference would come from the maps alone)."""
    import amber_align.refinement.wang as wang

    def identity(model, tokenizer, pairs, *, layers, **_):
        eye = torch.eye(int(model.config.hidden_size))
        return wang.RefinementMaps(maps={layer: eye for layer in layers}, method="orthogonal", languages=("es",),
                                   tau=None)

    monkeypatch.setattr(wang, "fit_refinement", identity)
    model = tiny_model_dir("mbert", tmp_path / "model")
    args = argparse.Namespace(out=tmp_path / "out", data=_data_tree(tmp_path / "data"),
                              corpus=_corpus(tmp_path / "corpus", 5), max_pairs=5, align_languages=("es",),
                              ner_seeds=[0, 1], ner_train_examples=None, ner_lr=5e-4, ner_epochs=3)
    result = compare.ner_features_unit("none", str(model), args)
    assert result["refined"]["es"] == result["joint"]["es"]


def test_a_missing_ner_file_exits_2_naming_it_before_the_encoder_runs(tmp_path, capsys):
    data = _data_tree(tmp_path / "data")
    (data / "ner" / "conll_yuto16" / "conll2002" / "ned.testb").unlink()
    argv = ["--model", str(tiny_model_dir("mbert", tmp_path / "model")), "--data", str(data),
            "--corpus", str(_corpus(tmp_path / "corpus", 5)), "--out", str(tmp_path / "out"), "--methods", "none",
            "--tasks", "ner_features", "--align_languages", "es", "--control_languages", ""]
    with pytest.raises(SystemExit) as exit_info:
        compare.main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # progress bars (the tiny model's save) come first
    assert last.startswith("error: ") and "ned.testb" in last and "cannot be read" in last
    assert not (tmp_path / "out" / "results" / "none" / "ner_features.json").exists()
