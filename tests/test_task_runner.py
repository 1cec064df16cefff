"""finetune / evaluate / compare end to end on tiny models and hand-made files (2 training steps each)."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_model_dir

from amber_align.cli import main
from amber_align.config_io import build_config
from amber_align.errors import ConfigError
from amber_align.tasks.config import TaskConfig
from amber_align.tasks.runner import run_evaluate, run_finetune

NER_EN = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
visited VBD I-VP O
London NNP I-NP I-LOC
"""
NER_ES = "La B-LOC\nCoruña I-LOC\n, O\n23 O\nmay O\n\nEFECOM B-ORG\ninforma O\nhoy O\n"
NLI_EN = ("A man sleeps.\tSomeone rests.\tentailment\nA man sleeps.\tA man runs.\tcontradiction\n"
          "A dog barks.\tThe dog is loud.\tneutral\nA dog barks.\tAn animal makes noise.\tentailment\n")
NLI_DE = ("Ein Mann schläft.\tJemand ruht.\tentailment\tfiction\nEin Hund bellt.\tEine Katze schläft.\tneutral\tfiction\n"
          "Ein Mann läuft.\tEin Mann sitzt.\tcontradiction\tfiction\n")


def _qa_json(lang: str) -> dict:
    ctx = {"en": "Nairobi is the capital of Kenya. It is a large city.",
           "de": "Nairobi ist die Hauptstadt von Kenia. Es ist eine große Stadt."}[lang]
    q = {"en": "What is the capital of Kenya?", "de": "Was ist die Hauptstadt von Kenia?"}[lang]
    return {"version": "1.1", "data": [{"title": "Kenya", "paragraphs": [{"context": ctx, "qas": [
        {"id": f"{lang}-1", "question": q, "answers": [{"text": "Nairobi", "answer_start": 0}]}]}]}]}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "eng.train").write_text(NER_EN, encoding="utf-8")
    (tmp_path / "esp.testb").write_bytes(NER_ES.encode("latin-1"))
    (tmp_path / "dev-en.tsv").write_text(NLI_EN, encoding="utf-8")
    (tmp_path / "test-de.tsv").write_text(NLI_DE, encoding="utf-8")
    for lang in ("en", "de"):
        (tmp_path / f"qa.{lang}.json").write_text(json.dumps(_qa_json(lang)), encoding="utf-8")
    return tmp_path


def _config(tmp_path, files, task: str, **extra) -> TaskConfig:
    model = tiny_model_dir("mbert", tmp_path / "tiny")
    data = {"ner": (files / "eng.train", {"en": str(files / "eng.train"), "es": str(files / "esp.testb")}),
            "nli": (files / "dev-en.tsv", {"en": str(files / "dev-en.tsv"), "de": str(files / "test-de.tsv")}),
            "qa": (files / "qa.en.json", {"en": str(files / "qa.en.json"), "de": str(files / "qa.de.json")})}[task]
    values = {"task": task, "model_name_or_path": str(model), "output_dir": str(tmp_path / f"run_{task}"),
              "train_data": str(data[0]), "eval_data": data[1], "max_steps": 2, "per_device_train_batch_size": 2,
              "use_cpu": True, "report_to": [], "save_strategy": "no", "max_seq_length": 32, "doc_stride": 8,
              "seed": 0, **extra}
    return build_config(values, source="test", config_class=TaskConfig)


@pytest.mark.parametrize("task,metrics", [("ner", {"f1", "precision", "recall"}), ("nli", {"accuracy"}),
                                          ("qa", {"exact_match", "f1"})])
def test_finetune_writes_metrics_table_plot_and_model(tmp_path, files, task, metrics):
    config = _config(tmp_path, files, task)
    report = run_finetune(config)
    langs = list(config.eval_data)
    for lang in langs:
        for m in metrics:
            assert 0.0 <= report["metrics"][f"eval_{task}_{lang}_{m}"] <= 100.0
    other = [lang for lang in langs if lang != "en"]
    for m in metrics:  # macro average over the non-training languages
        expected = sum(report["metrics"][f"eval_{task}_{lang}_{m}"] for lang in other) / len(other)
        assert report["metrics"][f"eval_{task}_avg_{m}"] == pytest.approx(expected)
    out = tmp_path / f"run_{task}"
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["tasks"][task]["languages"]) == set(langs)
    assert "| " in (out / "results.md").read_text() and (out / f"{task}.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    # evaluate the saved task model without training: same numbers
    again = run_evaluate(_config(tmp_path, files, task, model_name_or_path=str(out),
                                 output_dir=str(tmp_path / f"eval_{task}")))
    for lang in langs:
        for m in metrics:
            assert again["metrics"][f"eval_{task}_{lang}_{m}"] == pytest.approx(
                report["metrics"][f"eval_{task}_{lang}_{m}"], abs=1e-6)


def test_ner_label_set_mismatch_is_an_error_unless_mapped(tmp_path, files):
    (files / "wiki.en").write_text("en:Peter\tB-PER\nen:visited\tO\nen:London\tB-LOC\n", encoding="utf-8")
    config = _config(tmp_path, files, "ner", train_data=str(files / "wiki.en"),
                     eval_data={"es": str(files / "esp.testb")})  # CoNLL es has ORG, WikiANN-en training has not
    with pytest.raises(ConfigError, match="ORG"):
        run_finetune(config)
    config = _config(tmp_path, files, "ner", train_data=str(files / "wiki.en"),
                     eval_data={"es": str(files / "esp.testb")}, label_mapping={"ORG": "O"})
    report = run_finetune(config)
    assert "eval_ner_es_f1" in report["metrics"]


def test_cli_finetune_evaluate_compare(tmp_path, files, capsys):
    """The done-when path: evaluate --task xsr, finetune --task nli into two run folders, compare them."""
    from amber_align.demo import demo_dir

    model = tiny_model_dir("mbert", tmp_path / "tiny")
    cfg = tmp_path / "nli.yaml"
    cfg.write_text(f"task: nli\ntrain_data: {files / 'dev-en.tsv'}\neval_data:\n  de: {files / 'test-de.tsv'}\n"
                   "max_steps: 2\nper_device_train_batch_size: 2\nuse_cpu: true\nreport_to: []\n"
                   "save_strategy: no\nmax_seq_length: 32\n", encoding="utf-8")
    runs = []
    for name, seed in (("a", "0"), ("b", "1")):
        run = tmp_path / name
        assert main(["evaluate", "--task", "xsr", "--model", str(model), "--languages", "es,de",
                     "--data_dir", str(demo_dir() / "data" / "xsr"), "--max_eval_examples", "20",
                     "--output_dir", str(run)]) == 0
        assert main(["finetune", "--task", "nli", "--config", str(cfg), "--model", str(model),
                     "--output_dir", str(run / "nli"), "--results_dir", str(run), "--seed", seed]) == 0
        saved = json.loads((run / "results.json").read_text())
        assert set(saved["tasks"]) == {"xsr", "nli"}
        assert (run / "xsr.png").exists() and (run / "nli.png").exists()
        runs.append(str(run))
    capsys.readouterr()
    assert main(["compare", *runs, "--output_dir", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "Δ" in out and "de" in out
    assert (tmp_path / "cmp" / "comparison.md").exists()
    assert list((tmp_path / "cmp").glob("comparison_*.png"))


def test_cli_task_mismatch_and_missing_eval_data(tmp_path, files, capsys):
    cfg = tmp_path / "nli.yaml"
    cfg.write_text("task: nli\n", encoding="utf-8")
    assert main(["finetune", "--task", "ner", "--config", str(cfg)]) == 2
    assert "task is 'nli', but --task ner" in capsys.readouterr().err
    model = tiny_model_dir("mbert", tmp_path / "tiny")
    assert main(["evaluate", "--task", "nli", "--model", str(model), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and "NLI labels" in err  # a bare encoder is not a fine-tuned NLI model


def test_task_config_errors_name_field_and_value(tmp_path):
    base = {"output_dir": str(tmp_path / "o"), "report_to": []}
    with pytest.raises(ConfigError, match=r"TaskConfig.task: expected one of .*got 'pos'"):
        TaskConfig(task="pos", **base)
    with pytest.raises(ConfigError, match=r"doc_stride: must be below max_seq_length \(64\), got 64"):
        TaskConfig(task="qa", max_seq_length=64, doc_stride=64, **base)
    with pytest.raises(ConfigError, match=r"languages: 'fr' has no entry in eval_data \(have: de, es\)"):
        TaskConfig(task="nli", eval_data={"es": "a", "de": "b"}, languages=["fr"], **base)
    with pytest.raises(ConfigError, match=r"qa_normalization: expected one of"):
        TaskConfig(task="qa", qa_normalization="xtreme", **base)
    assert TaskConfig(task="nli", eval_data={"es": "a", "de": "b"}, languages="de", **base).eval_languages() == ["de"]


def test_finetune_rejects_evaluation_only_tasks(tmp_path):
    config = TaskConfig(task="xsr", model_name_or_path="m", output_dir=str(tmp_path / "o"), report_to=[])
    with pytest.raises(ConfigError, match="has no training; use evaluate"):
        run_finetune(config)


def test_finetune_resumes_from_the_newest_checkpoint_and_saves_atomically(tmp_path, files):
    """save_steps 1 -> checkpoint-1, checkpoint-2; a second run with resume_from_checkpoint true continues from
    checkpoint-2 to step 3; the final model is moved in with nothing of the staging folder left behind."""
    config = _config(tmp_path, files, "nli", save_strategy="steps", save_steps=1)
    run_finetune(config)
    out = tmp_path / "run_nli"
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (out / ".incomplete-model").exists() and (out / "config.json").is_file()
    resumed = _config(tmp_path, files, "nli", save_strategy="steps", save_steps=1, max_steps=3,
                      resume_from_checkpoint=True)
    assert resumed.resume_from_checkpoint is True
    report = run_finetune(resumed)
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and report["metrics"]["eval_nli_de_accuracy"] >= 0
    with pytest.raises(ConfigError, match="no complete checkpoint-N folder"):
        run_finetune(_config(tmp_path, files, "nli", output_dir=str(tmp_path / "empty"), resume_from_checkpoint=True))


@pytest.mark.parametrize("kind,limit", [("mbert", 128), ("xlmr", 128)])
def test_max_seq_length_beyond_the_models_positions_is_refused_before_training(tmp_path, files, kind, limit):
    """A 384-subword QA window on a model with 128 positions used to fail mid-training with a tensor size
    mismatch; XLM-R counts positions from pad_token_id + 1, so its 130 rows give 128 usable positions too."""
    config = _config(tmp_path, files, "qa", max_seq_length=limit + 1, doc_stride=64,
                     model_name_or_path=str(tiny_model_dir(kind, tmp_path / kind)))
    with pytest.raises(ConfigError, match=rf"max_seq_length: {limit + 1} is longer than model .*{kind} accepts "
                                          rf"\({limit} positions.*expected max_seq_length <= {limit}"):
        run_finetune(config)
    assert not (tmp_path / "run_qa").exists()  # nothing trained, nothing written
    # exactly the limit is accepted by the check (and trains)
    run_finetune(_config(tmp_path, files, "qa", max_seq_length=limit, doc_stride=64,
                         model_name_or_path=str(tmp_path / kind)))


def test_a_ner_head_with_entity_f1_0_on_english_is_warned_about(tmp_path, files, caplog):
    """Issue 23 item 9: a fine-tune that learned nothing finished without a word."""
    import logging

    with caplog.at_level(logging.WARNING):
        report = run_finetune(_config(tmp_path, files, "ner"))
    assert report["metrics"]["eval_ner_en_f1"] == 0.0  # 2 steps of a random tiny model
    assert any("finetune ner: entity F1 on en (the training language) is 0 after 2 steps" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")


def test_an_nli_head_that_predicts_one_class_on_english_is_warned_about(tmp_path, files, caplog, monkeypatch):
    """Issue 23 item 9: a head predicting one class for everything finished without a word. The predictions are
    forced to one class (2 steps of a tiny model may or may not collapse)."""
    import logging

    import numpy as np
    from transformers import Trainer

    real_predict = Trainer.predict

    def one_class(self, dataset, *args, **kwargs):
        out = real_predict(self, dataset, *args, **kwargs)
        logits = np.zeros_like(out.predictions)
        logits[:, 1] = 1.0
        return out._replace(predictions=logits)

    monkeypatch.setattr(Trainer, "predict", one_class)
    with caplog.at_level(logging.WARNING):
        run_finetune(_config(tmp_path, files, "nli"))
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "finetune nli" in r.getMessage()]
    assert len(warned) == 1, warned  # the training language only, not de
    assert "finetune nli: the head predicts" in warned[0] and "for all 4 en examples (the training language)" \
        in warned[0]
